// Helpers the page and the <video-gpt> element share: frames onto a canvas, and base64url, the
// form a .vgt file takes in a link or an attribute.

/** base64url (RFC 4648 §5, no padding) ↔ bytes: how a .vgt file travels in a link or attribute. */
export function toBase64Url(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function fromBase64Url(text) {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new Error('inline tokens are not base64url');
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

/** Frame `index` of an RGB clip onto a canvas (sized to the clip). */
export function drawFrame(canvas, clip, index) {
  const { width: w, height: h } = clip;
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  const img = new ImageData(w, h);
  const src = clip.data.subarray(index * w * h * 3, (index + 1) * w * h * 3);
  for (let i = 0, j = 0; i < src.length; i += 3, j += 4) {
    img.data[j] = src[i];
    img.data[j + 1] = src[i + 1];
    img.data[j + 2] = src[i + 2];
    img.data[j + 3] = 255;
  }
  canvas.getContext('2d').putImageData(img, 0, 0);
}
