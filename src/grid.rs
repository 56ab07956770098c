//! Image grids: a batch of uint8 NCHW images tiled into one PNG (reals.png, fake grids).
use anyhow::{bail, Context, Result};
use std::path::Path;
use tch::{Kind, Tensor};

/// Tile `images` (uint8, N x 3 x H x W) into a `cols`-wide grid and save it as PNG at `path`
/// (written to a temporary file and renamed).
pub fn save_grid(images: &Tensor, cols: usize, path: &Path) -> Result<()> {
    let (n, c, h, w) = images.size4().context("grid needs N x C x H x W images")?;
    if c != 3 || images.kind() != Kind::Uint8 || n == 0 {
        bail!(
            "grid needs a non-empty uint8 batch with 3 channels, got {:?}",
            images.size()
        );
    }
    let cols = cols.max(1) as i64;
    let rows = (n + cols - 1) / cols;
    let pad = Tensor::zeros([rows * cols - n, 3, h, w], (Kind::Uint8, images.device()));
    let grid = Tensor::cat(&[images.shallow_clone(), pad], 0)
        .view([rows, cols, 3, h, w])
        .permute([0, 3, 1, 4, 2]) // rows, H, cols, W, C
        .reshape([rows * h, cols * w * 3])
        .to_device(tch::Device::Cpu)
        .contiguous();
    let bytes = Vec::<u8>::try_from(grid.view([-1])).context("grid to bytes")?;
    let img = image::RgbImage::from_raw((cols * w) as u32, (rows * h) as u32, bytes)
        .context("grid buffer size")?;
    let tmp = path.with_extension("png.tmp");
    img.save_with_format(&tmp, image::ImageFormat::Png)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
