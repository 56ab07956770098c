//! JPEG decoding exactly as PIL: libjpeg-turbo's decoder (through mozjpeg, built from source) with
//! libjpeg's defaults that PIL keeps (accurate integer IDCT, fancy upsampling), to RGB.
use image::RgbImage;

/// Decode an RGB (YCbCr) or greyscale JPEG to RGB; `Err` is a reason to skip the file.
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbImage, String> {
    let run = || -> std::io::Result<RgbImage> {
        let mut started = mozjpeg::Decompress::new_mem(bytes)?.rgb()?;
        let (w, h) = (started.width() as u32, started.height() as u32);
        let px: Vec<[u8; 3]> = started.read_scanlines()?;
        started.finish()?;
        RgbImage::from_raw(w, h, px.concat())
            .ok_or_else(|| std::io::Error::other("truncated JPEG data"))
    };
    match std::panic::catch_unwind(run) {
        Ok(r) => r.map_err(|e| format!("bad JPEG: {e}")),
        Err(_) => Err("bad JPEG (libjpeg gave up)".into()),
    }
}
