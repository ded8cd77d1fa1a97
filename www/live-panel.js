// The page's Live panel: the camera and its reconstruction side by side (www/live.js does the
// work), and ?receive, a second tab that decodes the live tokens another tab broadcasts.

import { live, openCamera } from './live.js';
import { drawFrame } from './video-gpt.js';
import { drawMetrics } from './draw.js';

/** Wire the Live button to the page (its state `app`, element lookup `$`, and its job, status,
 *  error and button helpers); returns `startReceiving` for ?receive. */
export function setupLive({ app, $, job, status, showError, setButtons }) {
  /** Start live mode, or stop it. It holds the page's job slot, so nothing else runs meanwhile;
   *  the camera is released on stop, when the tab is hidden, and on errors. */
  $('live').onclick = () => (app.live ? stopLive() : startLive());

  async function startLive() {
    let stopped;
    const running = new Promise((resolve) => { stopped = resolve; });
    job('Live: opening the camera…', async () => {
      const track = await openCamera();
      app.liveTrack = track;
      $('live-view').hidden = false;
      $('live').setAttribute('aria-pressed', 'true');
      $('live').textContent = 'Stop live';
      const fail = (e) => { showError(e); stopLive(); };
      app.live = live(app.session, track, {
        stopTrack: true,
        onError: fail,
        onChunk: (c) => {
          // the tokens alone travel to any other tab of this page on this machine (?receive)
          liveChannel().postMessage({ hash: app.session.model.hash, seq: c.seq, contextSeq: c.contextSeq, latent: c.latent, tokens: c.tokens });
          app.liveSent = [...(app.liveSent ?? []).slice(-15), { seq: c.seq, frames: c.output.data }];
          drawFrame($('live-in'), c.input, c.input.frames - 1);
          drawFrame($('live-out'), c.output, c.output.frames - 1);
          drawMetrics($('live-plot'), c.stats.psnr, []);
          const s = c.stats;
          $('live-stats').textContent = `${s.fpsIn.toFixed(1)} fps in, ${s.fpsOut.toFixed(1)} fps out, ${s.framesDropped} frames dropped; `
            + `latency ${s.latencyMs.toFixed(0)} ms; tokens ${s.kbitPerSecond.toFixed(1)} kbit/s; PSNR ${c.psnr.toFixed(2)} dB`;
        },
      });
      app.liveStopped = stopped;
      setButtons();
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

  document.addEventListener('visibilitychange', () => { if (document.hidden) stopLive(); });

  let channel = null;
  /** Where live tokens are broadcast: every tab of this origin (a second page with ?receive decodes
   *  them: the tokens as a ~10 kbit/s video transport; WebRTC data channels would carry them
   *  between machines). */
  function liveChannel() {
    return (channel ??= new BroadcastChannel('videogpt-live'));
  }

  /** ?receive: decode the live tokens another tab broadcasts, each chunk with the chunk before it
   *  as context, as the sender reconstructed it; chunks that arrive while one decodes are dropped. */
  function startReceiving() {
    $('live-view').hidden = false;
    $('live-in').parentElement.hidden = true;
    const got = (app.received = { chunks: 0, dropped: 0, bits: 0, frames: [] });
    const started = performance.now();
    let previous = null, busyDecoding = false;
    liveChannel().onmessage = async ({ data: m }) => {
      if (m.hash !== app.session.model.hash) { status('Receiving tokens of another model: load the same model here.'); return; }
      if (busyDecoding) { got.dropped++; previous = null; return; }
      busyDecoding = true;
      try {
        const withContext = previous && m.contextSeq === previous.seq;
        const tokens = withContext ? Uint32Array.from([...previous.tokens, ...m.tokens]) : m.tokens;
        const latent = [m.latent[0] * (withContext ? 2 : 1), m.latent[1], m.latent[2]];
        const video = await app.session.decode({ tokens, latent });
        const n = video.height * video.width * 3, frames = video.frames / latent[0] * m.latent[0];
        const own = { ...video, data: video.data.subarray((video.frames - frames) * n), frames };
        drawFrame($('live-out'), own, own.frames - 1);
        previous = m;
        got.chunks++;
        got.bits += m.tokens.length * app.session.model.tokenBits;
        got.frames = [...(got.frames ?? []).slice(-15), { seq: m.seq, frames: own.data.slice() }];
        $('live-stats').textContent = `received ${got.chunks} chunks (${got.dropped} dropped) at ${(got.bits / (performance.now() - started)).toFixed(1)} kbit/s of tokens`;
      } finally {
        busyDecoding = false;
      }
    };
    status('Receiving: open this page in another tab and press Live there.');
  }

  return { startReceiving };
}
