//! Frames that go to the GPU as images rather than as host bytes. In a browser the page hands the
//! engine `ImageBitmap`s (decoded video frames, scaled by the browser on its GPU) and
//! `copyExternalImageToTexture` puts them in a texture without passing through wasm memory; the
//! `rgba_to_rgb` kernel then lays them out as the RGB clip the preprocessing kernel reads. The
//! same texture → RGB path also takes RGBA bytes (what a canvas gives), which is how it is tested
//! natively.

use super::params::RgbaToRgbParams;
use super::{workgroups, Gpu, GpuBuffer};
use crate::backend::Tensor;
use crate::video::Video;
use crate::{bail, Result};

/// A T×H×W×3 uint8 clip held in a GPU buffer (bytes packed four to a word, as uploaded clips are).
pub struct GpuFrames {
    rgb: GpuBuffer,
    pub frames: usize,
    pub height: usize,
    pub width: usize,
}

/// Bytes per texture row in a texture → buffer copy: RGBA, padded to wgpu's row alignment.
fn padded_row_bytes(width: usize) -> usize {
    (width * 4).next_multiple_of(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT as usize)
}

impl Gpu {
    /// An rgba8 texture of `frames` layers that images or bytes can be copied into.
    fn frame_texture(&self, [frames, height, width]: [usize; 3]) -> Result<wgpu::Texture> {
        self.check()?;
        let l = &self.limits;
        if frames == 0 || height == 0 || width == 0 {
            bail!(Input, "empty video ({frames}×{height}×{width})");
        }
        if width > l.max_texture_dimension_2d as usize || height > l.max_texture_dimension_2d as usize {
            bail!(Input, "frames of {width}×{height} exceed this GPU's texture limit of {} pixels a side", l.max_texture_dimension_2d);
        }
        if frames > l.max_texture_array_layers as usize {
            bail!(Input, "{frames} frames exceed this GPU's limit of {} texture layers; send fewer frames", l.max_texture_array_layers);
        }
        // the copy's buffer (texture_to_rgb), checked before any image is copied
        self.check_size((frames * height * padded_row_bytes(width)) as u64, "the frames")?;
        // a stream of same-sized chunks reuses one texture; the work still unsubmitted that reads
        // it goes first, as the copies into it happen on the queue at once
        let size = wgpu::Extent3d { width: width as u32, height: height as u32, depth_or_array_layers: frames as u32 };
        if let Some(texture) = self.frame_texture.borrow().as_ref().filter(|t| t.size() == size) {
            self.submit();
            return Ok(texture.clone());
        }
        self.count_buffer((frames * height * width * 4) as u64); // a texture, counted with the buffers
        let texture = self.device.create_texture(&wgpu::TextureDescriptor {
            label: Some("frames"),
            size,
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba8Unorm,
            // copyExternalImageToTexture needs RENDER_ATTACHMENT on its destination
            usage: wgpu::TextureUsages::COPY_DST | wgpu::TextureUsages::COPY_SRC | wgpu::TextureUsages::RENDER_ATTACHMENT,
            view_formats: &[],
        });
        *self.frame_texture.borrow_mut() = Some(texture.clone());
        Ok(texture)
    }

    /// The filled texture → the packed RGB clip: one copy to a buffer (rows padded to 256 bytes)
    /// and one `rgba_to_rgb` dispatch, recorded in order with the work around them.
    fn texture_to_rgb(&self, texture: &wgpu::Texture, [frames, height, width]: [usize; 3]) -> Result<GpuFrames> {
        let row_bytes = padded_row_bytes(width);
        let rgba = self.storage(frames * height * row_bytes / 4, "the frames")?;
        {
            let mut slot = self.encoder.borrow_mut();
            let encoder = slot.get_or_insert_with(|| self.device.create_command_encoder(&Default::default()));
            encoder.copy_texture_to_buffer(
                texture.as_image_copy(),
                wgpu::TexelCopyBufferInfo {
                    buffer: &rgba,
                    layout: wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(row_bytes as u32), rows_per_image: Some(height as u32) },
                },
                texture.size(),
            );
        }
        let words = (frames * height * width * 3).div_ceil(4);
        let rgb = self.storage(words, "the frames")?;
        let (gx, gy) = workgroups(words, 256, self.limits.max_compute_workgroups_per_dimension)?;
        #[rustfmt::skip]
        let params = RgbaToRgbParams {
            frames: frames as u32, height: height as u32, width: width as u32, row_words: (row_bytes / 4) as u32,
            words: words as u32, row_threads: gx * 256, ..Default::default()
        };
        self.dispatch(self.kernels.rgba_to_rgb(), &params, &[&rgba, &rgb], (gx, gy, 1))?;
        Ok(GpuFrames { rgb, frames, height, width })
    }

    /// RGBA frames (T×H×W×4 bytes, as canvases and `ImageData` give them) → a clip on the GPU.
    pub fn upload_rgba_frames(&self, rgba: &[u8], [frames, height, width]: [usize; 3]) -> Result<GpuFrames> {
        if frames.checked_mul(height).and_then(|n| n.checked_mul(width)).and_then(|n| n.checked_mul(4)) != Some(rgba.len()) {
            bail!(Input, "{} bytes are not {frames}×{height}×{width}×4 RGBA", rgba.len());
        }
        let texture = self.frame_texture([frames, height, width])?;
        self.queue.write_texture(
            texture.as_image_copy(),
            rgba,
            wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(width as u32 * 4), rows_per_image: Some(height as u32) },
            texture.size(),
        );
        self.texture_to_rgb(&texture, [frames, height, width])
    }

    /// Browser images, all of one size, → a clip on the GPU, copied GPU to GPU. A closed or
    /// detached image (size 0) or a size mismatch is an input error: the browser's copy would
    /// throw, which wgpu cannot report.
    #[cfg(target_arch = "wasm32")]
    pub fn upload_images(&self, images: &[web_sys::ImageBitmap]) -> Result<GpuFrames> {
        let Some(first) = images.first() else { bail!(Input, "no frames") };
        let (width, height) = (first.width() as usize, first.height() as usize);
        for (i, image) in images.iter().enumerate() {
            let (w, h) = (image.width() as usize, image.height() as usize);
            if w == 0 || h == 0 {
                bail!(Input, "frame {i} is an empty or closed image");
            }
            if (w, h) != (width, height) {
                bail!(Input, "frame {i} is {w}×{h}, frame 0 {width}×{height}: all frames must have one size");
            }
        }
        let texture = self.frame_texture([images.len(), height, width])?;
        for (i, image) in images.iter().enumerate() {
            self.queue.copy_external_image_to_texture(
                &wgpu::CopyExternalImageSourceInfo {
                    source: wgpu::ExternalImageSource::ImageBitmap(image.clone()),
                    origin: wgpu::Origin2d::ZERO,
                    flip_y: false,
                },
                wgpu::CopyExternalImageDestInfo {
                    texture: &texture,
                    mip_level: 0,
                    origin: wgpu::Origin3d { x: 0, y: 0, z: i as u32 },
                    aspect: wgpu::TextureAspect::All,
                    color_space: wgpu::PredefinedColorSpace::Srgb,
                    premultiplied_alpha: false,
                },
                wgpu::Extent3d { width: width as u32, height: height as u32, depth_or_array_layers: 1 },
            );
        }
        self.texture_to_rgb(&texture, [images.len(), height, width])
    }

    /// VideoGPT's `preprocess` of a clip already on the GPU (see [`crate::backend::Backend::preprocess`]).
    pub fn preprocess_frames(&self, clip: &GpuFrames, resolution: usize, resize: crate::video::Resize) -> Result<Tensor<Gpu>> {
        self.preprocess_rgb(&clip.rgb, [clip.frames, clip.height, clip.width], resolution, resize)
    }

    /// The clip's bytes, read back (for pages that export or measure the frames they sent).
    pub async fn read_frames(&self, clip: &GpuFrames) -> Result<Video> {
        let bytes = clip.frames * clip.height * clip.width * 3;
        let rgb = self.read_bytes(&clip.rgb, bytes.next_multiple_of(4) as u64).await?;
        Video::new(clip.frames, clip.height, clip.width, rgb[..bytes].to_vec())
    }
}
