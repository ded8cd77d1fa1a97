// The page's pictures of a result: the token grid (a colour per codebook index) and the per-frame
// quality plot. Pure functions of their inputs and a canvas.

/** A colour per codebook index (golden-ratio hues, so neighbouring indices differ). */
export function codeColour(code) {
  const hue = (code * 0.618033988749895) % 1;
  const [r, g, b] = [0, 8, 4].map((n) => {
    const k = (n + hue * 12) % 12;
    return 0.55 - 0.45 * Math.max(-1, Math.min(k - 3, 9 - k, 1));
  });
  return [r * 255, g * 255, b * 255];
}

/** Latent frames side by side, one pixel per token; positions not drawn yet stay dark. */
export function drawTokens(canvas, tokens, [t, h, w]) {
  const gap = 1;
  canvas.width = t * (w + gap) - gap;
  canvas.height = h;
  const img = new ImageData(canvas.width, canvas.height);
  for (let f = 0; f < t; f++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const i = (f * h + y) * w + x;
        const j = (y * canvas.width + f * (w + gap) + x) * 4;
        const [r, g, b] = i < tokens.length ? codeColour(tokens[i]) : [24, 24, 24];
        img.data[j] = r;
        img.data[j + 1] = g;
        img.data[j + 2] = b;
        img.data[j + 3] = 255;
      }
  canvas.getContext('2d').putImageData(img, 0, 0);
}

/** PSNR (dB, blue) and SSIM (×40, orange) per frame, as lines over a 0–40 dB axis. */
export function drawMetrics(canvas, psnr, ssim) {
  const ctx = canvas.getContext('2d');
  const { width: W, height: H } = canvas;
  const pad = 24;
  ctx.clearRect(0, 0, W, H);
  ctx.strokeStyle = '#888';
  ctx.fillStyle = '#555';
  ctx.font = '10px sans-serif';
  ctx.strokeRect(pad, 4, W - pad - 4, H - pad);
  const top = 40; // dB
  for (const v of [0, 10, 20, 30, 40]) ctx.fillText(String(v), 2, 4 + (H - pad) * (1 - v / top) + 3);
  ctx.fillText('frame', W / 2 - 12, H - 6);
  const line = (values, scale, colour) => {
    ctx.strokeStyle = colour;
    ctx.lineWidth = 2;
    ctx.beginPath();
    values.forEach((v, i) => {
      const x = pad + ((W - pad - 4) * (i + 0.5)) / values.length;
      const y = 4 + (H - pad) * (1 - Math.min(Math.max(v * scale, 0), top) / top);
      if (i) ctx.lineTo(x, y);
      else ctx.moveTo(x, y);
    });
    ctx.stroke();
  };
  line(
    Array.from(psnr, (v) => (Number.isFinite(v) ? v : top)),
    1,
    '#1f77b4',
  );
  line(Array.from(ssim), 40, '#ff7f0e');
}
