// Video in: files decoded with WebCodecs (MP4 through mp4box, WebM through webm.js) and webcam
// recordings, as RGB frames `{ data: Uint8Array T×H×W×3, frames, height, width, fps }` — the
// layout the engine (and `videogpt encode` on a .npy) takes — or, with `{ images: true }` (for a
// WebGPU session), as `{ images: ImageBitmap[], frames, height, width, fps }`: the browser scales
// each decoded frame on its GPU and the engine copies it into a texture, so the pixels never pass
// through JavaScript or wasm memory (`session.pixels(clip)` reads them back when needed).

import { createFile, DataStream, Endianness, MP4BoxBuffer } from '../node_modules/mp4box/dist/mp4box.all.mjs';
import { demuxWebm, muxWebm } from './webm.js';

/** Larger frames are scaled down by the browser to this shorter side before they are handed to
 *  the engine, so a 4K clip does not need gigabytes; the model then resizes them as VideoGPT does. */
export const MAX_SHORT_SIDE = 512;

export class MediaError extends Error {
  constructor(message) {
    super(message);
    this.name = 'MediaError';
  }
}

/** Copy a drawable (VideoFrame, video element, canvas) into RGB bytes at `width`×`height`. */
export function frameToRgb(source, width, height, canvas) {
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  canvas.width = width;
  canvas.height = height;
  ctx.drawImage(source, 0, 0, width, height);
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    rgb[j] = rgba[i];
    rgb[j + 1] = rgba[i + 1];
    rgb[j + 2] = rgba[i + 2];
  }
  return rgb;
}

function outputSize(w, h) {
  const s = Math.min(w, h);
  if (s <= MAX_SHORT_SIDE) return [w, h];
  const k = MAX_SHORT_SIDE / s;
  return [Math.round(w * k), Math.round(h * k)];
}

/** A frame (VideoFrame, video element) as an ImageBitmap of `width`×`height`, scaled by the browser. */
function frameToImage(source, width, height) {
  const w = source.displayWidth ?? source.videoWidth,
    h = source.displayHeight ?? source.videoHeight;
  return createImageBitmap(source, w === width && h === height ? {} : { resizeWidth: width, resizeHeight: height, resizeQuality: 'medium' });
}

/** Per-frame ImageBitmaps (all `width`×`height`) as one clip. */
function imageClip(images, width, height, fps) {
  return { images, frames: images.length, height, width, fps };
}

/** Join per-frame RGB arrays into one clip. */
export function joinFrames(list, width, height, fps) {
  const n = width * height * 3;
  const data = new Uint8Array(list.length * n);
  for (const [i, f] of list.entries()) data.set(f, i * n);
  return { data, frames: list.length, height, width, fps };
}

function mp4Description(file, track) {
  const trak = file.getTrackById(track.id);
  for (const entry of trak.mdia.minf.stbl.stsd.entries) {
    const box = entry.avcC || entry.hvcC || entry.vpcC || entry.av1C;
    if (box) {
      const stream = new DataStream(undefined, 0, Endianness.BIG_ENDIAN);
      box.write(stream);
      return new Uint8Array(stream.buffer, 8); // without the box header
    }
  }
  return undefined;
}

/** Random access to a video file's bytes without loading it whole: a File or Blob is read in
 *  slices, so a multi-gigabyte recording costs only the bytes its first frames need. */
function byteSource(input) {
  const source = { size: 0, bytesRead: 0 };
  let slice;
  if (input instanceof ArrayBuffer) {
    source.size = input.byteLength;
    slice = async (pos, len) => input.slice(pos, pos + len);
  } else if (input instanceof Blob) {
    source.size = input.size;
    slice = (pos, len) =>
      input
        .slice(pos, pos + len)
        .arrayBuffer()
        .catch((e) => {
          throw new MediaError(`the file could not be read (${e.message}); was it moved or deleted?`);
        });
  } else {
    throw new MediaError('expected a File, Blob or ArrayBuffer');
  }
  source.read = async (pos, len) => {
    const bytes = await slice(pos, len);
    source.bytesRead += bytes.byteLength;
    return bytes;
  };
  return source;
}

/** The first `maxSamples` samples of an MP4's first video track. mp4box says which file position
 *  it needs next (it skips mdat until it has the moov, wherever that is), and after the moov we
 *  seek to the first sample, so only the boxes and the samples used are read. */
async function demuxMp4(source, maxSamples, chunkBytes) {
  const file = createFile();
  let config = null;
  let failure = null;
  let wanted = maxSamples;
  const chunks = [];
  file.onError = (_, message) => {
    failure = failure ?? message;
  };
  file.onReady = (info) => {
    const track = info.videoTracks[0];
    if (!track) {
      failure = 'the MP4 file has no video track';
      return;
    }
    config = {
      codec: track.codec.startsWith('vp08') ? 'vp8' : track.codec,
      codedWidth: track.video.width,
      codedHeight: track.video.height,
      description: mp4Description(file, track),
      fps: track.nb_samples / (track.samples_duration / track.timescale || 1),
      duration: info.duration / info.timescale || undefined,
    };
    // all the samples wanted come in one onSamples call, so the reading can stop right there
    wanted = Math.min(maxSamples, track.nb_samples);
    file.setExtractionOptions(track.id, null, { nbSamples: wanted });
    file.start();
  };
  file.onSamples = (_, __, samples) => {
    for (const s of samples) {
      if (chunks.length >= wanted) break;
      chunks.push({ key: s.is_sync, timestamp: Math.round((1e6 * s.cts) / s.timescale), data: s.data });
    }
  };
  try {
    let pos = 0,
      read = 0,
      sought = false;
    while (pos < source.size && chunks.length < wanted && !failure) {
      const ab = await source.read(pos, chunkBytes);
      read += ab.byteLength;
      // every byte is needed at most once or twice; more means boxes that point in circles
      if (read > 2 * source.size + 2 * chunkBytes) throw new Error('its boxes do not add up');
      if (read > MAX_READ)
        throw new MediaError(
          `the first frames of this MP4 are not within its first ${MAX_READ >> 20} MiB of boxes; remux it with: ffmpeg -i INPUT -c copy -movflags +faststart clip.mp4`,
        );
      let next = file.appendBuffer(MP4BoxBuffer.fromArrayBuffer(ab, pos), pos + ab.byteLength >= source.size);
      if (config && !sought) {
        sought = true;
        next = file.seek(0, true).offset;
      }
      pos = Number.isFinite(next) ? next : pos + ab.byteLength;
    }
    file.flush();
  } catch (e) {
    throw e instanceof MediaError ? e : new MediaError(`cannot read this MP4 file: ${e.message}`);
  }
  if (failure) throw new MediaError(failure.startsWith('the MP4') ? failure : `cannot read this MP4 file: ${failure}`);
  if (!config) throw new MediaError('cannot read this MP4 file (no movie header found; is it complete?)');
  return { config, chunks };
}

/** A WebM's first frames: demux a prefix of the file, growing it until it holds enough frames. */
async function demuxWebmPrefix(source, maxFrames, prefixBytes) {
  for (let prefix = Math.min(source.size, prefixBytes); ; prefix = Math.min(source.size, prefix * 4)) {
    const partial = prefix < source.size;
    let track;
    try {
      track = demuxWebm(await source.read(0, prefix), { maxFrames, partial });
    } catch (e) {
      throw e instanceof MediaError ? e : new MediaError(e.message);
    }
    if (track.chunks.length >= maxFrames || !partial || prefix >= MAX_WEBM_PREFIX) return track;
  }
}

/** How far into a WebM the first frames are looked for (its clusters follow a short header). */
const MAX_WEBM_PREFIX = 256 << 20;
/** How many bytes of an MP4's boxes may be read to find the first frames (mp4box keeps them). */
const MAX_READ = 512 << 20;

const WEBM_CODECS = { V_VP8: 'vp8', V_VP9: 'vp09.00.10.08', V_AV1: 'av01.0.04M.08' };

function webmConfig(track) {
  const { codecId, codecPrivate, width, height } = track;
  if (codecId === 'V_MPEG4/ISO/AVC' && codecPrivate) {
    const hex = [...codecPrivate.subarray(1, 4)].map((b) => b.toString(16).padStart(2, '0')).join('');
    return { codec: `avc1.${hex}`, codedWidth: width, codedHeight: height, description: codecPrivate };
  }
  const codec = WEBM_CODECS[codecId];
  if (!codec) throw new MediaError(`the video codec ${codecId} is not supported (VP8, VP9, AV1 and H.264 are)`);
  const config = { codec, codedWidth: width, codedHeight: height };
  if (codecId === 'V_AV1' && codecPrivate?.length) config.description = codecPrivate;
  return config;
}

function sniff(bytes) {
  if (bytes.length >= 8 && String.fromCharCode(...bytes.subarray(4, 8)) === 'ftyp') return 'mp4';
  if (bytes.length >= 4 && bytes[0] === 0x1a && bytes[1] === 0x45 && bytes[2] === 0xdf && bytes[3] === 0xa3) return 'webm';
  if (bytes.length >= 4 && String.fromCharCode(...bytes.subarray(0, 4)) === 'OggS') return 'ogg';
  if (bytes.length >= 4 && String.fromCharCode(...bytes.subarray(0, 4)) === 'RIFF') return 'avi';
  return 'unknown';
}

/**
 * Decode the first `maxFrames` frames of a video file (File, Blob or ArrayBuffer) with WebCodecs.
 * `onProgress(done, total)` reports decoded frames; `images` returns ImageBitmaps instead of RGB
 * bytes (see the top of this file). Only the bytes those frames need are read (`chunkBytes` at a
 * time), so files of any size open. Rejects with a MediaError naming the problem (unknown
 * container, codec this browser cannot decode, corrupt data).
 */
export async function decodeVideoFile(input, { maxFrames = 16, images = false, onProgress = () => {}, chunkBytes = 4 << 20 } = {}) {
  if (typeof VideoDecoder === 'undefined') {
    throw new MediaError('this browser has no WebCodecs VideoDecoder (use a recent Chrome, Edge or Firefox)');
  }
  const source = byteSource(input);
  if (!source.size) throw new MediaError('the file is empty');
  const kind = sniff(new Uint8Array(await source.read(0, 16)));
  let config, chunks;
  if (kind === 'mp4') {
    // B-frames: a few more samples than frames, so that the first maxFrames in display order come out
    ({ config, chunks } = await demuxMp4(source, maxFrames + 16, chunkBytes));
  } else if (kind === 'webm') {
    const track = await demuxWebmPrefix(source, maxFrames + 16, chunkBytes);
    config = webmConfig(track);
    chunks = track.chunks;
    config.duration = track.duration;
    if (chunks.length > 1) config.fps = 1e6 / ((chunks[chunks.length - 1].timestamp - chunks[0].timestamp) / (chunks.length - 1));
  } else {
    const hint = kind === 'unknown' ? 'an unrecognised format' : `${kind.toUpperCase()}`;
    throw new MediaError(
      `this file is ${hint}; the page reads MP4 and WebM (H.264, VP8, VP9, AV1). Convert it with: ffmpeg -i INPUT -c:v libvpx-vp9 clip.webm`,
    );
  }
  if (!chunks.length) throw new MediaError('the file holds no video frames');
  const { fps, duration, ...decoderConfig } = config;
  const support = await VideoDecoder.isConfigSupported(decoderConfig).catch(() => ({ supported: false }));
  if (!support.supported) {
    throw new MediaError(`this browser cannot decode ${decoderConfig.codec} video; try H.264 (MP4) or VP9 (WebM)`);
  }

  const [width, height] = outputSize(config.codedWidth, config.codedHeight);
  const canvas = new OffscreenCanvas(width, height);
  const decoded = [];
  let failure = null;
  const decoder = new VideoDecoder({
    output: (frame) => {
      try {
        if (decoded.length < maxFrames + 16) {
          const w = frame.displayWidth,
            h = frame.displayHeight;
          // every frame at the first one's size (a stream may change size midway)
          const [ow, oh] = decoded.length ? [decoded[0].w, decoded[0].h] : outputSize(w, h);
          if (images) {
            const owned = frame;
            frame = null; // closed once the browser has made the bitmap
            const image = frameToImage(owned, ow, oh).finally(() => owned.close());
            image.catch(() => {}); // awaited below
            decoded.push({ t: owned.timestamp, image, w: ow, h: oh });
          } else {
            decoded.push({ t: frame.timestamp, rgb: frameToRgb(frame, ow, oh, canvas), w: ow, h: oh });
          }
          onProgress(Math.min(decoded.length, maxFrames), maxFrames);
        }
      } finally {
        frame?.close();
      }
    },
    error: (e) => {
      failure = e;
    },
  });
  try {
    decoder.configure(decoderConfig);
    let first = true;
    for (const c of chunks) {
      if (first && !c.key) throw new MediaError('the video does not start with a key frame');
      first = false;
      decoder.decode(new EncodedVideoChunk({ type: c.key ? 'key' : 'delta', timestamp: c.timestamp, data: c.data }));
    }
    await decoder.flush();
  } catch (e) {
    throw e instanceof MediaError ? e : new MediaError(`decoding failed: ${failure?.message ?? e.message}`);
  } finally {
    if (decoder.state !== 'closed') decoder.close();
  }
  if (failure) throw new MediaError(`decoding failed: ${failure.message}`);
  decoded.sort((a, b) => a.t - b.t);
  const frames = decoded.slice(0, maxFrames);
  if (!frames.length) throw new MediaError('no frame could be decoded');
  const { w, h } = frames[0];
  const rate = fps && Number.isFinite(fps) ? fps : undefined;
  let clip;
  if (images) {
    const bitmaps = await Promise.allSettled(decoded.map((f) => f.image));
    for (const extra of bitmaps.slice(maxFrames)) if (extra.status === 'fulfilled') extra.value.close();
    const failed = bitmaps.slice(0, maxFrames).find((b) => b.status === 'rejected');
    if (failed) throw new MediaError(`a decoded frame could not be turned into an image: ${failed.reason?.message ?? failed.reason}`);
    clip = imageClip(
      bitmaps.slice(0, maxFrames).map((b) => b.value),
      w,
      h,
      rate,
    );
  } else {
    clip = joinFrames(
      frames.map((f) => f.rgb),
      w,
      h,
      rate,
    );
  }
  // the whole file's bit rate, to compare with the tokens'
  if (duration > 0) clip.sourceBitsPerSecond = (source.size * 8) / duration;
  clip.fileBytes = source.size;
  clip.bytesRead = source.bytesRead;
  return clip;
}

/** Open the camera (live mode, recordings): its video track, which the caller stops. */
export async function openCamera({ width = 320, height = 240 } = {}) {
  if (!navigator.mediaDevices?.getUserMedia)
    throw new MediaError('this browser gives pages no camera access (getUserMedia is missing; is the page on http://127.0.0.1 or https?)');
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: width }, height: { ideal: height } }, audio: false });
    return stream.getVideoTracks()[0];
  } catch (e) {
    throw new MediaError(e.name === 'NotAllowedError' ? 'camera permission was denied' : `no camera could be opened (${e.message})`);
  }
}

/** Frames of a MediaStreamTrack as an async iterator of VideoFrames (or of a <video> element
 *  where MediaStreamTrackProcessor is missing), with a `cancel()`. */
export function cameraFrames(track) {
  if (typeof MediaStreamTrackProcessor !== 'undefined') {
    const reader = new MediaStreamTrackProcessor({ track }).readable.getReader();
    return {
      async next() {
        const { value, done } = await reader.read();
        return done ? { done: true } : { value: { frame: value, width: value.displayWidth, height: value.displayHeight, close: () => value.close() } };
      },
      cancel: () => reader.cancel().catch(() => {}),
    };
  }
  const video = document.createElement('video');
  video.muted = true;
  video.playsInline = true;
  video.srcObject = new MediaStream([track]);
  const playing = video.play();
  let stopped = false;
  return {
    async next() {
      await playing;
      if (stopped || track.readyState === 'ended') return { done: true };
      await new Promise((r) => (video.requestVideoFrameCallback ? video.requestVideoFrameCallback(r) : setTimeout(r, 33)));
      return { value: { frame: video, width: video.videoWidth, height: video.videoHeight, close() {} } };
    },
    cancel() {
      stopped = true;
      video.srcObject = null;
    },
  };
}

/**
 * Record `frames` consecutive webcam frames (every frame where the browser has
 * MediaStreamTrackProcessor; see cameraFrames). The camera is released when done or on error.
 * `onFrame(i, n)` reports progress; `images` returns ImageBitmaps instead of RGB bytes.
 */
export async function recordWebcam({ frames = 16, width = 320, height = 240, images = false, onFrame = () => {} } = {}) {
  const track = await openCamera({ width, height });
  const fps = track.getSettings().frameRate;
  const source = cameraFrames(track);
  const canvas = new OffscreenCanvas(1, 1);
  const list = [];
  let size = null;
  try {
    while (list.length < frames) {
      const { value, done } = await source.next();
      if (done) throw new MediaError('the camera stopped');
      try {
        size = size || outputSize(value.width, value.height);
        list.push(images ? await frameToImage(value.frame, size[0], size[1]) : frameToRgb(value.frame, size[0], size[1], canvas));
        onFrame(list.length, frames);
      } finally {
        value.close();
      }
    }
  } catch (e) {
    if (images) for (const b of list) b.close();
    throw e;
  } finally {
    source.cancel();
    track.stop();
  }
  return images ? imageClip(list, size[0], size[1], fps) : joinFrames(list, size[0], size[1], fps);
}

/**
 * RGB frames (`{ data, frames, height, width }`) → a WebM file (Uint8Array), encoded with WebCodecs
 * VideoEncoder as VP8 (VP9 where VP8 is not offered) at `fps`. Small frames get a high bit rate:
 * the file should show the frames, not the encoder.
 */
export async function encodeWebm(clip, { fps = 15 } = {}) {
  if (typeof VideoEncoder === 'undefined') throw new MediaError('this browser has no WebCodecs VideoEncoder; save the PNG strip instead');
  const { width, height, frames } = clip;
  const bitrate = Math.max(500_000, Math.round(width * height * fps * 2));
  let chosen = null;
  for (const [codec, codecId] of [
    ['vp8', 'V_VP8'],
    ['vp09.00.10.08', 'V_VP9'],
  ]) {
    const config = { codec, width, height, bitrate, framerate: fps };
    const support = await VideoEncoder.isConfigSupported(config).catch(() => ({ supported: false }));
    if (support.supported) {
      chosen = { config, codecId };
      break;
    }
  }
  if (!chosen) throw new MediaError(`this browser cannot encode ${width}×${height} VP8 or VP9 video; save the PNG strip instead`);
  const chunks = [];
  let failure = null;
  const encoder = new VideoEncoder({
    output: (chunk) => {
      const data = new Uint8Array(chunk.byteLength);
      chunk.copyTo(data);
      chunks.push({ data, timestamp: chunk.timestamp, key: chunk.type === 'key' });
    },
    error: (e) => {
      failure = e;
    },
  });
  const frameUs = 1e6 / fps;
  try {
    encoder.configure(chosen.config);
    const rgba = new Uint8Array(width * height * 4);
    for (let f = 0; f < frames; f++) {
      const rgb = clip.data.subarray(f * width * height * 3, (f + 1) * width * height * 3);
      for (let i = 0, j = 0; i < rgb.length; i += 3, j += 4) {
        rgba[j] = rgb[i];
        rgba[j + 1] = rgb[i + 1];
        rgba[j + 2] = rgb[i + 2];
        rgba[j + 3] = 255;
      }
      const frame = new VideoFrame(rgba, {
        format: 'RGBA',
        codedWidth: width,
        codedHeight: height,
        timestamp: Math.round(f * frameUs),
        duration: Math.round(frameUs),
      });
      encoder.encode(frame, { keyFrame: f === 0 });
      frame.close();
    }
    await encoder.flush();
  } catch (e) {
    throw new MediaError(`encoding the WebM failed: ${failure?.message ?? e.message}`);
  } finally {
    if (encoder.state !== 'closed') encoder.close();
  }
  if (failure) throw new MediaError(`encoding the WebM failed: ${failure.message}`);
  return muxWebm({ codecId: chosen.codecId, width, height, chunks, durationUs: Math.round(frames * frameUs) });
}
