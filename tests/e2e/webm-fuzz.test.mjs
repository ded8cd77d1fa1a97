// Fuzzing the page's WebM demuxer (www/webm.js) under Node, with a fixed budget: mutated real
// files (ffmpeg's VP8 and VP9 WebM of a test clip) and EBML built from random elements. Each
// parse returns frames that lie inside the file, or throws one of the demuxer's own errors (not a
// TypeError or RangeError from a bad index), and never hangs. VIDEOGPT_FUZZ_ITERS sets the count.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { demuxWebm } from '../../www/webm.js';
import { ROOT, ffmpegFromNpy, tmp } from './helpers.mjs';

const ITERS = Number(process.env.VIDEOGPT_FUZZ_ITERS ?? 2000);

function rng(seed) {
  let s = BigInt(seed);
  return (n) => {
    s ^= s << 13n;
    s &= (1n << 64n) - 1n;
    s ^= s >> 7n;
    s ^= s << 17n;
    s &= (1n << 64n) - 1n;
    return Number(s % BigInt(Math.max(1, n)));
  };
}

function mutate(r, bytes) {
  let b = Array.from(bytes);
  for (let k = 0; k <= r(4); k++) {
    const i = r(b.length);
    switch (r(5)) {
      case 0:
        b[i] ^= 1 << r(8);
        break;
      case 1:
        b[i] = [0x00, 0x01, 0x7f, 0x80, 0xff][r(5)];
        break;
      case 2:
        b.splice(i, 0, ...Array.from({ length: 1 + r(16) }, () => r(256)));
        break;
      case 3:
        b.splice(i, 1 + r(16));
        break;
      default:
        b = b.slice(0, i);
    }
  }
  return Uint8Array.from(b);
}

/** Random EBML: the header, then elements with ids the demuxer knows and sizes from the edges. */
function randomEbml(r) {
  const ids = [
    [0x1a, 0x45, 0xdf, 0xa3],
    [0x18, 0x53, 0x80, 0x67],
    [0x16, 0x54, 0xae, 0x6b],
    [0xae],
    [0xd7],
    [0x83],
    [0x86],
    [0xe0],
    [0xb0],
    [0xba],
    [0x1f, 0x43, 0xb6, 0x75],
    [0xe7],
    [0xa3],
    [0xa0],
    [0xa1],
    [0x2a, 0xd7, 0xb1],
    [0x44, 0x89],
    [0x63, 0xa2],
  ];
  const sizes = [
    [0x80],
    [0x81],
    [0x84],
    [0x88],
    [0xff],
    [0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    [0x40, 0x10],
    [0x08, 0x00, 0x00, 0x00, 0x10],
    [0x00],
  ];
  const out = [0x1a, 0x45, 0xdf, 0xa3, 0x80];
  for (let k = 0; k < 1 + r(40); k++) {
    out.push(...ids[r(ids.length)], ...sizes[r(sizes.length)]);
    for (let j = r(6); j > 0; j--) out.push(r(256));
  }
  return Uint8Array.from(out);
}

const OWN = /WebM|truncated|corrupt|laced|not a|track|codec|frame|unsupported/i;

test('the WebM demuxer returns frames inside the file or throws its own error, for any bytes', () => {
  const source = path.join(ROOT, 'tests/fixtures/carphone_8f.npy');
  const files = [
    fs.readFileSync(ffmpegFromNpy(source, path.join(tmp, 'fuzz-vp8.webm'), ['-c:v', 'libvpx', '-b:v', '200k'])),
    fs.readFileSync(ffmpegFromNpy(source, path.join(tmp, 'fuzz-vp9.webm'), ['-c:v', 'libvpx-vp9', '-b:v', '200k'])),
  ];
  for (const f of files) assert.equal(demuxWebm(f).chunks.length, 8, 'the unmutated file demuxes to its 8 frames');
  const r = rng(0x7765626d);
  let accepted = 0,
    refused = 0,
    slowest = 0;
  for (let i = 0; i < ITERS; i++) {
    const bytes = i % 3 === 2 ? randomEbml(r) : mutate(r, files[i % 2]);
    const started = performance.now();
    try {
      const m = demuxWebm(bytes.buffer, { partial: r(2) === 0 });
      for (const c of m.chunks) {
        assert.ok(c.data.length <= bytes.length && Number.isFinite(c.timestamp), `chunk outside the file or without a time (input ${i})`);
      }
      accepted++;
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e;
      assert.ok(!(e instanceof TypeError) && !(e instanceof RangeError) && OWN.test(e.message), `input ${i}: ${e.name}: ${e.message}`);
      refused++;
    }
    slowest = Math.max(slowest, performance.now() - started);
  }
  console.log(`fuzz webm demuxer: ${ITERS} executions, ${accepted} accepted, ${refused} refused, 0 crashes, slowest ${slowest.toFixed(1)} ms`);
  assert.ok(slowest < 1000, `a parse took ${slowest} ms`);
});

test('regressions the fuzzing found: a TrackEntry inside a TrackEntry, and nesting that would overflow the stack', () => {
  const header = [0x1a, 0x45, 0xdf, 0xa3, 0x80];
  // TrackEntry { TrackEntry { TrackNumber 1 } }: was a TypeError (the inner entry cleared the outer)
  const nested = Uint8Array.from([...header, 0xae, 0x85, 0xae, 0x83, 0xd7, 0x81, 0x01]);
  assert.throws(() => demuxWebm(nested.buffer), /no video track/);
  // 100,000 Segments of unknown size, each inside the last: was a RangeError (call stack)
  const deep = Uint8Array.from([...header, ...Array.from({ length: 100_000 }, () => [0x18, 0x53, 0x80, 0x67, 0xff]).flat()]);
  assert.throws(() => demuxWebm(deep.buffer), /nested too deeply/);
});
