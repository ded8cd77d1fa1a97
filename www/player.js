// Players on one clock: every registered canvas shows the same frame index, so the input, its
// reconstruction, a sample and the clip it continues play in step.

import { app } from './state.js';
import { $ } from './ui.js';
import { drawFrame } from './util.js';

export const player = {
  clips: new Map(), // canvas → clip
  fps: 8,
  playing: true,
  start: performance.now(),
  last: -1,
  set(canvas, clip) {
    this.clips.set(canvas, clip);
    this.draw(true);
  },
  frame() {
    return Math.floor(((performance.now() - this.start) / 1000) * this.fps);
  },
  draw(force) {
    const i = this.frame();
    if (!force && i === this.last) return;
    this.last = i;
    for (const [canvas, clip] of this.clips) drawFrame(canvas, clip, i % clip.frames);
    const r = app.result;
    if (r) $('frame-label').textContent = `frame ${(i % r.output.frames) + 1}/${r.output.frames}`;
    markKept(app.sample, i);
  },
};

function tick() {
  if (player.playing) player.draw(false);
  requestAnimationFrame(tick);
}
requestAnimationFrame(tick);

$('play').onclick = () => {
  player.playing = !player.playing;
  if (player.playing) player.start = performance.now() - (player.last / player.fps) * 1000;
  $('play').textContent = player.playing ? 'Pause' : 'Play';
};

/** A continuation's frames say which are the clip's own (kept, through the tokenizer) and
 *  which the prior sampled: the caption, and an outline on the kept ones. */
function markKept(sample, i) {
  if (!sample?.keptFrames) return;
  const f = i % sample.video.frames;
  const kept = f < sample.keptFrames;
  $('sample-video').classList.toggle('kept', kept);
  $('sample-caption').textContent = `frame ${f + 1}/${sample.video.frames}: ${kept ? 'kept from the clip' : 'sampled by the prior'}`;
}
