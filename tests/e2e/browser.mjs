// Launching Debian's Chromium with WebGPU on SwiftShader (no GPU needed) for the e2e tests.
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** `webgpu: false` starts Chromium without WebGPU (the CPU-fallback test); `webcam` is a .y4m
 *  played as a fake camera. */
export async function launch({ webgpu = true, webcam } = {}) {
  const args = [
    '--no-sandbox',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-quic',
    '--use-angle=swiftshader',
    // window.gc(), so that memory tests measure what is kept rather than what awaits collection
    '--js-flags=--expose-gc',
  ];
  if (webgpu) {
    // Chromium keeps only the last --enable-features, so the features go in one flag
    args.push('--enable-unsafe-webgpu', '--use-vulkan=swiftshader', '--enable-features=CDPScreenshotNewSurface,SkipListAccountsWithoutGaiaCookies,Vulkan');
  } else {
    args.push('--disable-features=WebGPU,Vulkan');
  }
  if (webcam) {
    args.push('--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-video-capture=${webcam}`);
  }
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args });
}
