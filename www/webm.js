// A minimal WebM/Matroska demuxer for WebCodecs: the first video track's codec and its frames
// (SimpleBlocks and Blocks) as encoded chunks with timestamps. Enough for files from ffmpeg,
// MediaRecorder and browsers; lacing (used for audio, never for video here) is refused. And the
// matching muxer: one video track of VideoEncoder chunks → a WebM file.

const ID = {
  EBML: 0x1a45dfa3,
  Segment: 0x18538067,
  Info: 0x1549a966,
  TimecodeScale: 0x2ad7b1,
  Duration: 0x4489,
  Tracks: 0x1654ae6b,
  TrackEntry: 0xae,
  TrackNumber: 0xd7,
  TrackType: 0x83,
  CodecID: 0x86,
  CodecPrivate: 0x63a2,
  Video: 0xe0,
  PixelWidth: 0xb0,
  PixelHeight: 0xba,
  Cluster: 0x1f43b675,
  Timecode: 0xe7,
  SimpleBlock: 0xa3,
  BlockGroup: 0xa0,
  Block: 0xa1,
  EBMLVersion: 0x4286,
  EBMLReadVersion: 0x42f7,
  EBMLMaxIDLength: 0x42f2,
  EBMLMaxSizeLength: 0x42f3,
  DocType: 0x4282,
  DocTypeVersion: 0x4287,
  DocTypeReadVersion: 0x4285,
  MuxingApp: 0x4d80,
  WritingApp: 0x5741,
  TrackUID: 0x73c5,
};
// master elements we descend into; everything else is skipped or read as a value
const MASTER = new Set([ID.Segment, ID.Info, ID.Tracks, ID.TrackEntry, ID.Video, ID.Cluster, ID.BlockGroup]);

function vint(bytes, pos, keepMarker) {
  const first = bytes[pos];
  if (first === undefined) throw new Error('truncated WebM file');
  let len = 1;
  while (len <= 8 && !(first & (0x80 >> (len - 1)))) len++;
  if (len > 8) throw new Error('corrupt WebM file (bad element size)');
  let value = keepMarker ? first : first & (0xff >> len);
  let unknown = value === 0xff >> len;
  for (let i = 1; i < len; i++) {
    const b = bytes[pos + i];
    if (b === undefined) throw new Error('truncated WebM file');
    value = value * 256 + b;
    unknown = unknown && b === 0xff;
  }
  return { value, len, unknown: !keepMarker && unknown };
}

const uint = (b) => b.reduce((v, x) => v * 256 + x, 0);

/** Parse a WebM file (ArrayBuffer) → `{ codecId, codecPrivate, width, height, duration, chunks }` where each
 *  chunk is `{ key, timestamp (µs), data }` in file (decode) order. `partial`: the buffer is the
 *  start of a longer file, so an element cut off at its end ends the parse instead of failing it. */
export function demuxWebm(buffer, { maxFrames = Infinity, partial = false } = {}) {
  const bytes = new Uint8Array(buffer);
  if (uint(bytes.subarray(0, 4)) !== ID.EBML) throw new Error('not a WebM/Matroska file');
  let scale = 1e6; // ns per timecode unit
  const tracks = new Map();
  let track = null;
  let clusterTime = 0;
  const chunks = [];
  let video = null;
  let durationUnits = 0;

  const block = (data, keyFlag) => {
    const t = vint(data, 0, false);
    if (data.length < t.len + 3) throw new Error('corrupt WebM file (a block shorter than its header)');
    const number = t.value;
    if (!video) video = [...tracks.values()].find((x) => x.type === 1);
    if (!video || number !== video.number) return;
    const rel = (((data[t.len] << 8) | data[t.len + 1]) << 16) >> 16; // int16
    const flags = data[t.len + 2];
    if (flags & 0x06) throw new Error('laced video blocks are not supported');
    chunks.push({
      key: keyFlag === undefined ? !!(flags & 0x80) : keyFlag,
      timestamp: Math.round(((clusterTime + rel) * scale) / 1000),
      data: data.subarray(t.len + 3),
    });
  };

  // real files nest five deep (Segment > Cluster > BlockGroup > Block); a crafted one could nest
  // until the call stack overflows
  const walk = (start, end, depth = 0) => {
    if (depth > 16) throw new Error('corrupt WebM file (elements nested too deeply)');
    let pos = start;
    while (pos < end && chunks.length < maxFrames) {
      const id = vint(bytes, pos, true);
      const size = vint(bytes, pos + id.len, false);
      const body = pos + id.len + size.len;
      const stop = size.unknown ? end : Math.min(end, body + size.value);
      if (!size.unknown && body + size.value > bytes.length && id.value !== ID.Segment && id.value !== ID.Cluster) {
        throw new Error('truncated WebM file');
      }
      const data = bytes.subarray(body, stop);
      switch (id.value) {
        case ID.TimecodeScale:
          scale = uint(data);
          break;
        case ID.Duration: {
          const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
          durationUnits = data.length === 4 ? v.getFloat32(0) : data.length === 8 ? v.getFloat64(0) : 0;
          break;
        }
        case ID.TrackEntry: {
          // a TrackEntry inside a TrackEntry (never in a real file) must not lose the outer one
          const outer = track;
          track = { type: 0 };
          const entry = track;
          walk(body, stop, depth + 1);
          tracks.set(entry.number, entry);
          track = outer;
          break;
        }
        case ID.TrackNumber:
          if (track) track.number = uint(data);
          break;
        case ID.TrackType:
          if (track) track.type = uint(data);
          break;
        case ID.CodecID:
          if (track) track.codecId = new TextDecoder().decode(data);
          break;
        case ID.CodecPrivate:
          if (track) track.codecPrivate = data.slice();
          break;
        case ID.PixelWidth:
          if (track) track.width = uint(data);
          break;
        case ID.PixelHeight:
          if (track) track.height = uint(data);
          break;
        case ID.Timecode:
          clusterTime = uint(data);
          break;
        case ID.SimpleBlock:
          block(data);
          break;
        case ID.Block:
          block(data, chunks.length === 0);
          break; // a BlockGroup without ReferenceBlock is a key frame; the first must be
        default:
          if (MASTER.has(id.value)) walk(body, stop, depth + 1);
      }
      pos = stop;
    }
  };
  try {
    walk(0, bytes.length);
  } catch (e) {
    if (!(partial && e.message === 'truncated WebM file')) throw e;
  }
  video = video || [...tracks.values()].find((x) => x.type === 1);
  if (!video) throw new Error('the WebM file has no video track');
  const duration = durationUnits ? (durationUnits * scale) / 1e9 : undefined; // seconds
  return { codecId: video.codecId, codecPrivate: video.codecPrivate, width: video.width, height: video.height, duration, chunks };
}

// ---------- writing ----------

const concat = (parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
};
const idBytes = (id) => {
  const b = [];
  for (let v = id; v > 0; v = Math.floor(v / 256)) b.unshift(v & 0xff);
  return b;
};
/** Element sizes as 8-byte vints: always valid, and simple. */
const sizeBytes = (n) => {
  const b = [0x01];
  for (let i = 6; i >= 0; i--) b.push(Math.floor(n / 2 ** (8 * i)) & 0xff);
  return b;
};
const element = (id, ...children) => {
  const body = concat(children);
  return concat([Uint8Array.from([...idBytes(id), ...sizeBytes(body.length)]), body]);
};
const uintEl = (id, v) => {
  const b = [];
  do {
    b.unshift(v & 0xff);
    v = Math.floor(v / 256);
  } while (v > 0);
  return element(id, Uint8Array.from(b));
};
const stringEl = (id, s) => element(id, new TextEncoder().encode(s));
const floatEl = (id, v) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setFloat64(0, v);
  return element(id, b);
};

/**
 * Mux one video track into a WebM file: `codecId` 'V_VP8' | 'V_VP9' | 'V_AV1', the frame size, and
 * `chunks` of `{ data: Uint8Array, timestamp (µs), key }` in decode order (VideoEncoder's output).
 * Timecodes are in milliseconds; a new cluster starts before a block's offset would overflow.
 */
export function muxWebm({ codecId, width, height, chunks, durationUs }) {
  if (!chunks.length) throw new Error('no frames to write');
  const ms = (us) => Math.round(us / 1000);
  const header = element(
    ID.EBML,
    uintEl(ID.EBMLVersion, 1),
    uintEl(ID.EBMLReadVersion, 1),
    uintEl(ID.EBMLMaxIDLength, 4),
    uintEl(ID.EBMLMaxSizeLength, 8),
    stringEl(ID.DocType, 'webm'),
    uintEl(ID.DocTypeVersion, 4),
    uintEl(ID.DocTypeReadVersion, 2),
  );
  const last = chunks[chunks.length - 1].timestamp;
  const info = element(
    ID.Info,
    uintEl(ID.TimecodeScale, 1e6),
    stringEl(ID.MuxingApp, 'videogpt-web'),
    stringEl(ID.WritingApp, 'videogpt-web'),
    floatEl(ID.Duration, ms(durationUs ?? last)),
  );
  const tracks = element(
    ID.Tracks,
    element(
      ID.TrackEntry,
      uintEl(ID.TrackNumber, 1),
      uintEl(ID.TrackUID, 1),
      uintEl(ID.TrackType, 1),
      stringEl(ID.CodecID, codecId),
      element(ID.Video, uintEl(ID.PixelWidth, width), uintEl(ID.PixelHeight, height)),
    ),
  );
  const clusters = [];
  let cluster = null;
  for (const c of chunks) {
    const t = ms(c.timestamp);
    if (!cluster || t - cluster.time > 32767 || (c.key && t - cluster.time > 5000)) {
      cluster = { time: t, blocks: [] };
      clusters.push(cluster);
    }
    const rel = t - cluster.time;
    cluster.blocks.push(element(ID.SimpleBlock, Uint8Array.from([0x81, (rel >> 8) & 0xff, rel & 0xff, c.key ? 0x80 : 0]), c.data));
  }
  const body = clusters.map((k) => element(ID.Cluster, uintEl(ID.Timecode, k.time), ...k.blocks));
  return concat([header, element(ID.Segment, info, tracks, ...body)]);
}
