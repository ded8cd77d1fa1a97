//! Reconstruction quality: PSNR over RGB and SSIM (Wang et al. 2004: 11×11 Gaussian window,
//! σ = 1.5, K1 = 0.01, K2 = 0.03, valid region) over BT.601 luma, averaged over frames.

use crate::video::Video;
use crate::{bail, Result};

fn same_size(a: &Video, b: &Video) -> Result<()> {
    if (a.frames, a.height, a.width) != (b.frames, b.height, b.width) {
        bail!(Input, "cannot compare a {}×{}×{} clip with a {}×{}×{} one", a.frames, a.height, a.width, b.frames, b.height, b.width);
    }
    Ok(())
}

/// PSNR in dB of `b` against `a` over all RGB values (infinite when equal).
pub fn psnr(a: &Video, b: &Video) -> Result<f64> {
    same_size(a, b)?;
    let se: f64 = a.rgb.iter().zip(&b.rgb).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum();
    let mse = se / a.rgb.len() as f64;
    Ok(10.0 * (255.0f64 * 255.0 / mse).log10())
}

/// Per-frame PSNR in dB.
pub fn psnr_per_frame(a: &Video, b: &Video) -> Result<Vec<f64>> {
    same_size(a, b)?;
    Ok((0..a.frames).map(|f| psnr(&a.slice(f, 1), &b.slice(f, 1)).unwrap_or(f64::NAN)).collect())
}

fn luma(v: &Video, f: usize) -> Vec<f64> {
    v.rgb[f * v.frame_len()..(f + 1) * v.frame_len()].chunks_exact(3).map(|p| 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64).collect()
}

fn gaussian_window(size: usize, sigma: f64) -> Vec<f64> {
    let c = (size as f64 - 1.0) / 2.0;
    let g: Vec<f64> = (0..size).map(|i| (-((i as f64 - c).powi(2)) / (2.0 * sigma * sigma)).exp()).collect();
    let s: f64 = g.iter().sum();
    g.into_iter().map(|v| v / s).collect()
}

/// Mean SSIM of one luma plane pair; the window shrinks for frames smaller than 11 pixels.
fn ssim_plane(x: &[f64], y: &[f64], h: usize, w: usize) -> f64 {
    let size = 11.min(h).min(w);
    let g = gaussian_window(size, 1.5);
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    // separable filtering of x, y, x², y², xy over the valid region
    let filter = |img: &dyn Fn(usize) -> f64| -> Vec<f64> {
        let ow = w - size + 1;
        let mut rows = vec![0.0; h * ow];
        for r in 0..h {
            for c in 0..ow {
                rows[r * ow + c] = (0..size).map(|k| g[k] * img(r * w + c + k)).sum();
            }
        }
        let oh = h - size + 1;
        let mut out = vec![0.0; oh * ow];
        for r in 0..oh {
            for c in 0..ow {
                out[r * ow + c] = (0..size).map(|k| g[k] * rows[(r + k) * ow + c]).sum();
            }
        }
        out
    };
    let mx = filter(&|i| x[i]);
    let my = filter(&|i| y[i]);
    let sxx = filter(&|i| x[i] * x[i]);
    let syy = filter(&|i| y[i] * y[i]);
    let sxy = filter(&|i| x[i] * y[i]);
    let n = mx.len() as f64;
    (0..mx.len())
        .map(|i| {
            let (vx, vy, cxy) = (sxx[i] - mx[i] * mx[i], syy[i] - my[i] * my[i], sxy[i] - mx[i] * my[i]);
            ((2.0 * mx[i] * my[i] + c1) * (2.0 * cxy + c2)) / ((mx[i] * mx[i] + my[i] * my[i] + c1) * (vx + vy + c2))
        })
        .sum::<f64>()
        / n
}

/// Per-frame SSIM on luma.
pub fn ssim_per_frame(a: &Video, b: &Video) -> Result<Vec<f64>> {
    same_size(a, b)?;
    Ok((0..a.frames).map(|f| ssim_plane(&luma(a, f), &luma(b, f), a.height, a.width)).collect())
}

pub fn ssim(a: &Video, b: &Video) -> Result<f64> {
    let s = ssim_per_frame(a, b)?;
    Ok(s.iter().sum::<f64>() / s.len().max(1) as f64)
}
