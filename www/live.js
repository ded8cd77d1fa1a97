// Live mode: a camera (or any stream of frames) reconstructed continuously, chunk by chunk. A
// chunk is the model's temporal stride (4 frames for a 4,4,4 model: one latent frame). Each chunk
// is reconstructed with the frames just before it as context and only its own frames are kept (a
// sliding 8-frame window): measured on the test clips (train/chunk_cost.py, docs/performance.md),
// chunks on their own lose 3.2 dB to whole 16-frame windows, this loses 0.9 dB for twice the work,
// and a 16-frame sliding window 0.3 dB for four times it. The next chunk is collected while the
// engine works on one, so a chunk starts as soon as the engine is free and its frames are in: the
// rate is the slower of the camera and the engine. When the engine is slower, the oldest frames
// not yet in a chunk are dropped and counted, never queued: at most one chunk is in the engine and
// the last context + chunk frames are kept, and every VideoFrame is closed as soon as it is read.
//
//   const handle = live(session, track, { onChunk: (c) => draw(c.output) });
//   // c.tokens/c.latent: the chunk's own tokens; c.windowTokens/c.windowLatent: the whole window's
//   // (context and chunk), which c.output was decoded from
//   handle.stats;      // { framesIn, framesDropped, chunks, fpsIn, fpsOut, latencyMs, kbitPerSecond, psnr }
//   await handle.stop(); // releases the reader (and the track, with stopTrack)

import { cameraFrames, frameToRgb, joinFrames } from './media.js';

/**
 * Reconstruct `source` (a MediaStreamTrack, or an async iterator of `{ frame, width, height,
 * close }`) continuously with `session`'s model. `onChunk({ output, input, tokens, latent, psnr,
 * latencyMs, stats })` gets each reconstructed chunk; `onError(e)` a failure, which stops it.
 * `chunkFrames`: frames a chunk (default the model's temporal stride); `context`: frames before
 * the chunk reconstructed with it (default one chunk; 0: chunks on their own). Frames are read at
 * the camera's size, short side at most 320.
 */
export function live(session, source, { onChunk = () => {}, onError = () => {}, chunkFrames, context, stopTrack = false } = {}) {
  const frames = typeof source?.next === 'function' ? source : cameraFrames(source);
  const stride = chunkFrames ?? session.model.downsample[0];
  const keep = context ?? stride;
  const bits = session.model.tokenBits;
  const stats = { framesIn: 0, framesDropped: 0, chunks: 0, fpsIn: 0, fpsOut: 0, latencyMs: 0, kbitPerSecond: 0, psnr: [] };
  const canvas = new OffscreenCanvas(1, 1);
  const started = performance.now();
  let running = true,
    busy = false,
    size = null,
    seq = 0;
  // the last context + stride frames read, oldest first, consecutive: { rgb, at, n } (n counts
  // frames read); `fresh` of them, the newest, are not yet in a chunk
  let recent = [],
    fresh = 0;
  const outTimes = [];

  /** The last `stride` frames of a clip (the chunk itself, without its context), copied: a
   *  view would keep the whole context window alive for as long as the caller keeps the chunk. */
  const tail = (c) => {
    const n = c.height * c.width * 3;
    return { ...c, data: c.data.slice((c.frames - stride) * n), frames: stride };
  };

  /** Start a chunk if the engine is free and a chunk's worth of new frames is in. */
  const maybeStart = () => {
    if (busy || !running || fresh < stride) return;
    // as much context as is in (a whole number of chunks, at most `keep` frames)
    const context = Math.min(keep, Math.floor((recent.length - stride) / stride) * stride);
    const clipFrames = recent.slice(recent.length - stride - context);
    const chunk = clipFrames.slice(context);
    fresh = 0;
    handleChunk(
      joinFrames(
        clipFrames.map((f) => f.rgb),
        size[0],
        size[1],
        stats.fpsIn,
      ),
      chunk[0].at,
    );
  };

  const handleChunk = (clip, capturedAt) => {
    busy = true;
    session.reconstruct(clip).then(
      (full) => {
        busy = false;
        if (!running) return;
        const windows = clip.frames / stride;
        const r = {
          ...full,
          input: tail(full.input),
          output: tail(full.output),
          psnr: full.psnr.slice(-stride),
          tokens: full.tokens.slice(full.tokens.length - full.tokens.length / windows),
          latent: [full.latent[0] / windows, full.latent[1], full.latent[2]],
          // the whole window's grid (context and chunk): what the output was decoded from, so
          // a receiver that decodes it gets this chunk's frames exactly
          windowTokens: full.tokens,
          windowLatent: full.latent,
          seq: ++seq,
        };
        const now = performance.now();
        stats.chunks++;
        outTimes.push(now);
        while (outTimes.length && now - outTimes[0] > 2000) outTimes.shift();
        stats.fpsOut = (outTimes.length * stride) / 2;
        stats.latencyMs = now - capturedAt;
        // the tokens that carry this chunk, at the camera's rate
        stats.kbitPerSecond = (r.tokens.length * bits * (stats.fpsIn || 30)) / stride / 1000;
        const psnr = r.psnr.reduce((a, b) => a + b, 0) / r.psnr.length;
        stats.psnr.push(psnr);
        if (stats.psnr.length > 120) stats.psnr.shift();
        onChunk({ ...r, psnr, capturedAt, latencyMs: stats.latencyMs, stats });
        maybeStart();
      },
      (e) => {
        busy = false;
        stop();
        onError(e);
      },
    );
  };

  const loop = (async () => {
    while (running) {
      const { value: f, done } = await frames.next();
      if (done || !running) {
        f?.close();
        break;
      }
      stats.framesIn++;
      stats.fpsIn = stats.framesIn / ((performance.now() - started) / 1000);
      try {
        size = size ?? [
          Math.min(f.width, (320 * f.width) / Math.min(f.width, f.height)) | 0,
          Math.min(f.height, (320 * f.height) / Math.min(f.width, f.height)) | 0,
        ];
        recent.push({ rgb: frameToRgb(f.frame, size[0], size[1], canvas), at: performance.now(), n: stats.framesIn });
      } finally {
        f.close();
      }
      if (recent.length > keep + stride) recent.shift();
      if (++fresh > stride) {
        // the engine is behind the camera: the oldest frame not yet in a chunk will never be in
        // one (the next chunk takes the newest); drop it, never queue
        stats.framesDropped++;
        fresh = stride;
      }
      maybeStart();
    }
  })().catch((e) => {
    running = false;
    onError(e);
  });

  function stop() {
    running = false;
    frames.cancel?.();
    if (stopTrack && source?.stop) source.stop();
    return loop;
  }
  return { stats, stop, done: loop };
}
