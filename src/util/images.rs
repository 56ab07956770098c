//! Generator output as images: the reference's two uint8 quantisations (image grids and
//! gen_images/metrics), grids of a batch tiled into one PNG (reals.png, fakes*.png), PNG files.
use anyhow::{bail, Context, Result};
use std::path::Path;
use tch::{Kind, Tensor};

/// Generator output in [-1, 1] to uint8 for image files: rint((x + 1) * 127.5), clipped.
pub fn to_uint8_grid(x: &Tensor) -> Tensor {
    ((x + 1.0) * 127.5)
        .round()
        .clamp(0.0, 255.0)
        .to_kind(Kind::Uint8)
}

/// Generator output to uint8 as the reference's metrics and gen_images: trunc(clamp(x*127.5+128)).
pub fn to_uint8(x: &Tensor) -> Tensor {
    (x * 127.5 + 128.0).clamp(0.0, 255.0).to_kind(Kind::Uint8)
}

/// Tile `images` (uint8, N x 3 x H x W) into a `cols`-wide grid and save it as PNG at `path`
/// (written to a temporary file and renamed).
pub fn save_grid(images: &Tensor, cols: usize, path: &Path) -> Result<()> {
    save_png(&grid_image(images, cols)?, path)
}

/// Tile `images` (uint8, N x 3 x H x W) into a `cols`-wide grid, empty cells black.
pub fn grid_image(images: &Tensor, cols: usize) -> Result<image::RgbImage> {
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
    image::RgbImage::from_raw((cols * w) as u32, (rows * h) as u32, bytes)
        .context("grid buffer size")
}

/// The `side` x `side` tiles of a grid image (row by row) as uint8 N x 3 x side x side.
pub fn grid_tiles(img: &image::RgbImage, side: i64) -> Result<Tensor> {
    let (w, h) = (img.width() as i64, img.height() as i64);
    if side <= 0 || w % side != 0 || h % side != 0 {
        bail!("a {w}x{h} grid is not made of {side}x{side} tiles");
    }
    let (rows, cols) = (h / side, w / side);
    Ok(Tensor::from_slice(img.as_raw())
        .view([rows, side, cols, side, 3])
        .permute([0, 2, 4, 1, 3])
        .reshape([rows * cols, 3, side, side]))
}

/// An RGB image as PNG bytes.
pub fn png_bytes(img: &image::RgbImage) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    img.write_with_encoder(image::codecs::png::PngEncoder::new(&mut out))
        .context("PNG encoding")?;
    Ok(out)
}

/// One uint8 CHW image tensor as an RGB image.
pub fn to_image(chw: &Tensor) -> Result<image::RgbImage> {
    let (c, h, w) = chw.size3().context("image needs C x H x W")?;
    if c != 3 || chw.kind() != Kind::Uint8 {
        bail!(
            "image needs 3 uint8 channels, got {:?} {:?}",
            chw.size(),
            chw.kind()
        );
    }
    let hwc = chw
        .permute([1, 2, 0])
        .to_device(tch::Device::Cpu)
        .contiguous();
    let bytes = Vec::<u8>::try_from(hwc.view([-1])).context("image to bytes")?;
    image::RgbImage::from_raw(w as u32, h as u32, bytes).context("image buffer size")
}

/// Save a PNG atomically (temporary file, then rename).
pub fn save_png(img: &image::RgbImage, path: &Path) -> Result<()> {
    super::atomic::atomic_write(path, |w| {
        img.write_with_encoder(image::codecs::png::PngEncoder::new(w))?;
        Ok(())
    })
}
