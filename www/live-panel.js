// The page's Live panel: the camera and its reconstruction side by side (www/live.js does the
// work), and ?receive, a second tab that decodes the live tokens another tab broadcasts.

import { drawMetrics } from './draw.js';
import { live } from './live.js';
import { encodeWebm, joinFrames, openCamera } from './media.js';
import { download } from './share.js';
import { app, subscribe, update } from './state.js';
import { $, job, showError, status } from './ui.js';
import { drawFrame } from './util.js';

/** Seconds of live mode that "Save the last 10 s" keeps. */
const KEEP_SECONDS = 10;

/** Wire the Live button to the page; returns `startReceiving` for ?receive. */
export function setupLive() {
  // Live needs a loaded tokenizer; while it runs it holds the page's job, and its button stops it
  subscribe((s) => {
    $('live').disabled = !s.session?.model || (s.busy && !s.live);
  });

  /** Start live mode, or stop it. It holds the page's job slot, so nothing else runs meanwhile;
   *  the camera is released on stop, when the tab is hidden, and on errors. */
  $('live').onclick = () => (app.live ? stopLive() : startLive());

  async function startLive() {
    let stopped;
    const running = new Promise((resolve) => {
      stopped = resolve;
    });
    job('Live: opening the camera…', async () => {
      const track = await openCamera();
      app.liveTrack = track;
      $('live-view').hidden = false;
      $('live').setAttribute('aria-pressed', 'true');
      $('live').textContent = 'Stop live';
      const fail = (e) => {
        showError(e);
        stopLive();
      };
      app.live = live(app.session, track, {
        stopTrack: true,
        onError: fail,
        onChunk: (c) => {
          // the tokens alone travel to any other tab of this page on this machine (?receive): the
          // window's (the context's tokens as this window encoded them, then the chunk's), since
          // the frames before a chunk encode to other tokens in its window than in their own
          liveChannel().postMessage({ hash: app.session.model.hash, seq: c.seq, latent: c.latent, windowLatent: c.windowLatent, tokens: c.windowTokens });
          app.liveSent = [...(app.liveSent ?? []).slice(-15), { seq: c.seq, frames: c.output.data }];
          // the chunks captured in the last KEEP_SECONDS, for "Save the last 10 s": by the clock,
          // not by a count of chunks, so a slow engine (which drops most camera frames) keeps
          // fewer chunks rather than a longer stretch of time; never more than the camera's rate allows
          const keep = Math.ceil((KEEP_SECONDS * (c.stats.fpsIn || 30)) / c.output.frames);
          const since = c.capturedAt - KEEP_SECONDS * 1000;
          app.liveRecent = [
            ...(app.liveRecent ?? []).filter((k) => k.at > since).slice(1 - keep),
            { input: c.input, output: c.output, fps: c.stats.fpsIn || 30, at: c.capturedAt },
          ];
          $('live-save').disabled = false;
          drawFrame($('live-in'), c.input, c.input.frames - 1);
          drawFrame($('live-out'), c.output, c.output.frames - 1);
          drawMetrics($('live-plot'), c.stats.psnr, []);
          const s = c.stats;
          $('live-stats').textContent =
            `${s.fpsIn.toFixed(1)} fps in, ${s.fpsOut.toFixed(1)} fps out, ${s.framesDropped} frames dropped; ` +
            `latency ${s.latencyMs.toFixed(0)} ms; tokens ${s.kbitPerSecond.toFixed(1)} kbit/s; PSNR ${c.psnr.toFixed(2)} dB`;
        },
      });
      app.liveStopped = stopped;
      update();
      status('Live: the camera is reconstructed as it comes (Stop live to end).');
      await running;
    });
  }

  async function stopLive() {
    const l = app.live;
    if (!l) return;
    app.live = null;
    await l.stop();
    app.liveTrack?.stop();
    $('live').setAttribute('aria-pressed', 'false');
    $('live').textContent = 'Live';
    app.liveStopped?.();
    status(`Live stopped: ${l.stats.chunks} chunks, ${l.stats.framesDropped} of ${l.stats.framesIn} frames dropped.`);
  }

  document.addEventListener('visibilitychange', () => {
    if (document.hidden) stopLive();
  });

  /** The last 10 s, while live or after: the camera's frames (model-sized) re-encoded as a .vgt
   *  of whole windows, which any page or `videogpt decode` reads, and the live reconstruction as
   *  WebM. It runs beside live mode: the engine takes the .vgt between chunks. */
  $('live-save').onclick = async () => {
    const recent = app.liveRecent ?? [];
    if (!recent.length) return;
    $('live-save').disabled = true;
    try {
      const fps = Math.round(recent[recent.length - 1].fps);
      const join = (key) => {
        const { width, height } = recent[0][key];
        const n = width * height * 3;
        return joinFrames(
          recent.flatMap((c) => Array.from({ length: c[key].frames }, (_, i) => c[key].data.subarray(i * n, (i + 1) * n))),
          width,
          height,
          fps,
        );
      };
      const input = join('input'),
        output = join('output');
      const webm = await encodeWebm(output, { fps });
      const vgt = await app.session.encodeVgt(input, { fps });
      download(new Blob([vgt]), 'live.vgt');
      download(new Blob([webm], { type: 'video/webm' }), 'live.webm');
      app.liveSaved = { frames: input.frames, fps, vgtBytes: vgt.length, webmBytes: webm.length };
      status(
        `Saved the last ${(input.frames / fps).toFixed(1)} s: live.vgt (${(vgt.length / 1024).toFixed(1)} KiB of tokens) and live.webm (${input.frames} frames at ${fps} fps).`,
      );
    } catch (e) {
      showError(e);
    } finally {
      $('live-save').disabled = !(app.liveRecent ?? []).length;
    }
  };

  let channel = null;
  /** Where live tokens are broadcast: every tab of this origin (a second page with ?receive decodes
   *  them: the tokens as a ~10 kbit/s video transport; WebRTC data channels would carry them
   *  between machines). */
  function liveChannel() {
    channel ??= new BroadcastChannel('videogpt-live');
    return channel;
  }

  /** ?receive: decode the live tokens another tab broadcasts: each message is a window's tokens
   *  (the chunk with its context), decoded as the sender decoded it, of which the chunk's frames
   *  are shown; messages that arrive while one decodes are dropped. */
  function startReceiving() {
    $('live-view').hidden = false;
    $('live-in').parentElement.hidden = true;
    const got = { chunks: 0, dropped: 0, bits: 0, frames: [] };
    app.received = got;
    const started = performance.now();
    let busyDecoding = false;
    liveChannel().onmessage = async ({ data: m }) => {
      if (m.hash !== app.session.model.hash) {
        status('Receiving tokens of another model: load the same model here.');
        return;
      }
      if (busyDecoding) {
        got.dropped++;
        return;
      }
      busyDecoding = true;
      try {
        const video = await app.session.decode({ tokens: m.tokens, latent: m.windowLatent });
        const n = video.height * video.width * 3,
          frames = (video.frames / m.windowLatent[0]) * m.latent[0];
        const own = { ...video, data: video.data.subarray((video.frames - frames) * n), frames };
        drawFrame($('live-out'), own, own.frames - 1);
        got.chunks++;
        got.bits += m.tokens.length * app.session.model.tokenBits;
        got.frames = [...(got.frames ?? []).slice(-15), { seq: m.seq, withContext: m.windowLatent[0] > m.latent[0], frames: own.data.slice() }];
        $('live-stats').textContent =
          `received ${got.chunks} chunks (${got.dropped} dropped) at ${(got.bits / (performance.now() - started)).toFixed(1)} kbit/s of tokens`;
      } finally {
        busyDecoding = false;
      }
    };
    status('Receiving: open this page in another tab and press Live there.');
  }

  return { startReceiving };
}
