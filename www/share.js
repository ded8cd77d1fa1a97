// How a clip leaves the page: the tokens as an .npy file `videogpt decode` reads, a link that
// carries them in its fragment (never sent to a server), embed code for any blog, and the
// download that saves a file. app.js and live-panel.js wire them to their buttons.

import { toBase64Url } from './util.js';

/** Tokens as int32 .npy of T'×H'×W', the layout `videogpt encode` writes and `decode` reads. */
export function tokensToNpy(tokens, latent) {
  let header = `{'descr': '<i4', 'fortran_order': False, 'shape': (${latent.join(', ')}), }`;
  const total = 10 + header.length + 1;
  header += `${' '.repeat((64 - (total % 64)) % 64)}\n`;
  const bytes = new Uint8Array(10 + header.length + tokens.length * 4);
  bytes.set([0x93, ...new TextEncoder().encode('NUMPY'), 1, 0, header.length & 0xff, header.length >> 8]);
  bytes.set(new TextEncoder().encode(header), 10);
  new Int32Array(bytes.buffer, 10 + header.length).set(tokens);
  return bytes;
}

/** A link to `page` (this page's URL) that opens model `modelId` and decodes `vgt` from the fragment. */
export function linkFor(page, modelId, vgt) {
  const url = new URL(page);
  url.search = `?model=${encodeURIComponent(modelId)}`;
  url.hash = `vgt=${toBase64Url(vgt)}`;
  return url.href;
}

/** The two tags a blog needs, with absolute URLs resolved against `base` (this page's folder);
 *  `priorFile` for tokens coded under a prior (the element fetches it to decode them). */
export function embedCodeFor(base, modelFile, vgt, priorFile = null) {
  const model = modelFile ? new URL(modelFile, base).href : 'MODEL.safetensors';
  const prior = priorFile ? ` prior="${new URL(priorFile, base).href}"` : '';
  return (
    `<script type="module" src="${new URL('www/video-gpt.js', base).href}"></script>\n` +
    `<video-gpt model="${model}"${prior} tokens="${toBase64Url(vgt)}" autoplay loop controls></video-gpt>`
  );
}

/** Save `blob` as a file named `name` (the browser's download). */
export function download(blob, name) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}
