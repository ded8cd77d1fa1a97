"""Golden values for the engine's quality metrics, from an independent implementation.

    python3 train/make_metric_fixtures.py      # needs numpy, pillow, scikit-image, safetensors

The pair: the first 4 frames of the committed carphone clip (tests/fixtures/carphone_8f.npy) and
the same frames JPEG-compressed at quality 15 by Pillow (blocking, ringing, colour bleeding: a
real distortion). SSIM is scikit-image's `structural_similarity` in Wang et al.'s convention (11×11
Gaussian window, σ 1.5, K1 0.01, K2 0.03, population covariance, the valid region), on BT.601
luma in float64, which is what src/metrics.rs computes. PSNR is left to ffmpeg, run by the test.
"""

import io
from pathlib import Path

import numpy as np
from PIL import Image
from safetensors.numpy import save_file
from skimage.metrics import structural_similarity

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def luma(frame):
    f = frame.astype(np.float64)
    return 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]


def main():
    clip = np.load(OUT / "carphone_8f.npy")[:4]
    distorted = []
    for frame in clip:
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="JPEG", quality=15)
        distorted.append(np.asarray(Image.open(buf).convert("RGB")))
    distorted = np.stack(distorted)
    ssim = [structural_similarity(luma(a), luma(b), data_range=255, gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False) for a, b in zip(clip, distorted)]
    save_file({"distorted": np.ascontiguousarray(distorted), "ssim_skimage": np.array(ssim, np.float64)},
              str(OUT / "metrics_pair.safetensors"))
    print("SSIM per frame (scikit-image):", [round(s, 5) for s in ssim])


if __name__ == "__main__":
    main()
