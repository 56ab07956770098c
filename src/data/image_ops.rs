//! Per-image work of the dataset tool: decode (EXIF orientation applied, first GIF frame),
//! composite transparency onto a background colour, and fit to the target square.
use image::imageops;
use image::{ColorType, DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};
use std::io::Cursor;
use std::str::FromStr;

/// How a non-square image becomes a square training image.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Transform {
    /// Crop the centred square, then resize (reference `center-crop`).
    CenterCrop,
    /// Crop to the target aspect ratio, resize to WxH and paste into a WxW canvas
    /// (reference `center-crop-wide`; images narrower than W are skipped).
    CenterCropWide,
    /// Pad to a square with the background colour, then resize (keeps the whole image).
    Pad,
    /// Resize to the target ignoring the aspect ratio (reference behaviour without --transform).
    Stretch,
}

impl Transform {
    /// Whether [`fit`] enlarges a `w` x `h` image on its way to `width` pixels across: the side
    /// it scales from (the shorter for a crop, the longer for padding, either when stretched) is
    /// shorter. center-crop-wide only shrinks (narrower images are skipped).
    pub fn enlarges(self, w: u32, h: u32, width: u32) -> bool {
        match self {
            Transform::CenterCrop => w.min(h) < width,
            Transform::Pad => w.max(h) < width,
            Transform::Stretch => w < width || h < width,
            Transform::CenterCropWide => false,
        }
    }

    /// `--transform` of commands whose images are square (train, metrics): every transform but
    /// center-crop-wide, which makes WxH images.
    pub fn square_parser() -> impl clap::builder::TypedValueParser<Value = Transform> {
        use clap::builder::TypedValueParser;
        clap::builder::PossibleValuesParser::new(["center-crop", "pad", "stretch"]).map(|s| {
            <Transform as clap::ValueEnum>::from_str(&s, false).expect("a listed transform")
        })
    }
}

impl std::fmt::Display for Transform {
    /// The name `--transform` takes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = clap::ValueEnum::to_possible_value(self).expect("no variant is skipped");
        f.write_str(value.get_name())
    }
}

/// An RGB background colour: `white`, `black`, `R,G,B` (0-255 each) or `#RRGGBB`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Background(pub [u8; 3]);

impl FromStr for Background {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("bad colour '{s}': use white, black, R,G,B (0-255) or #RRGGBB");
        match s.trim().to_ascii_lowercase().as_str() {
            "white" => return Ok(Background([255; 3])),
            "black" => return Ok(Background([0; 3])),
            _ => {}
        }
        if let Some(hex) = s.trim().strip_prefix('#') {
            if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            let v = u32::from_str_radix(hex, 16).map_err(|_| bad())?;
            return Ok(Background([(v >> 16) as u8, (v >> 8) as u8, v as u8]));
        }
        let parts: Vec<u8> = s
            .split(',')
            .map(|p| p.trim().parse::<u8>())
            .collect::<Result<_, _>>()
            .map_err(|_| bad())?;
        match parts[..] {
            [r, g, b] => Ok(Background([r, g, b])),
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for Background {
    /// `white`, `black`, else `R,G,B`: what [`Background::from_str`] reads back, and a word a
    /// shell keeps (a `#` would start a comment).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            [255, 255, 255] => write!(f, "white"),
            [0, 0, 0] => write!(f, "black"),
            [r, g, b] => write!(f, "{r},{g},{b}"),
        }
    }
}

impl serde::Serialize for Background {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Background {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Default of `fpgan dataset --max-pixels`: 178,956,970 pixels (512 MiB of 8-bit RGB, the
/// image crate's default allocation limit; also where the reference's PIL refuses a file as a
/// decompression bomb).
pub const DEFAULT_MAX_PIXELS: u64 = 178_956_970;

/// Decode any supported image from memory, applying its EXIF orientation, if it has at most
/// [`DEFAULT_MAX_PIXELS`] pixels. The error is a short reason for a warning line.
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, String> {
    decode_limited(bytes, DEFAULT_MAX_PIXELS)
}

/// [`decode`] with a limit on the pixels of the image, checked on the header before anything
/// is allocated (a small file may claim 100000 x 100000 pixels); decoders also get the matching
/// allocation limit for their own buffers.
pub fn decode_limited(bytes: &[u8], max_pixels: u64) -> Result<DynamicImage, String> {
    if bytes.is_empty() {
        return Err("empty file (0 bytes)".into());
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let format = reader.format();
    if format.is_none() {
        return Err("not an image (unrecognised content)".into());
    }
    let mut limits = Limits::default();
    // 16 bytes a pixel: the widest decoded layout (RGBA, 32-bit float).
    limits.max_alloc = Some(max_pixels.saturating_mul(16));
    reader.limits(limits.clone());
    let mut decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    let (w, h) = decoder.dimensions();
    let pixels = w as u64 * h as u64;
    if pixels > max_pixels {
        return Err(format!(
            "{w}x{h} is {pixels} pixels, more than the limit of {max_pixels} \
             (a decompression bomb?); raise it with `fpgan dataset --max-pixels` to use it"
        ));
    }
    limits
        .reserve(decoder.total_bytes())
        .map_err(|e| e.to_string())?;
    let orientation = decoder.orientation().map_err(|e| e.to_string())?;
    // JPEGs through libjpeg-turbo, as PIL reads them (`image` reports CMYK ones as Rgb8)
    let as_pil = format == Some(ImageFormat::Jpeg)
        && matches!(decoder.color_type(), ColorType::Rgb8 | ColorType::L8);
    let mut img = if as_pil {
        DynamicImage::ImageRgb8(super::jpeg::decode_rgb(bytes)?)
    } else {
        DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?
    };
    img.apply_orientation(orientation);
    if img.width() == 0 || img.height() == 0 {
        return Err("image has no pixels".into());
    }
    Ok(img)
}

/// RGB version of `img`: transparent pixels are composited onto `bg` (straight alpha,
/// computed in 16 bits and rounded once); gray becomes RGB.
pub fn flatten(img: &DynamicImage, bg: Background) -> RgbImage {
    if !img.color().has_alpha() {
        return img.to_rgb8();
    }
    let rgba = img.to_rgba16();
    let mut out = RgbImage::new(rgba.width(), rgba.height());
    for (o, p) in out.pixels_mut().zip(rgba.pixels()) {
        let a = p.0[3] as u64;
        for c in 0..3 {
            // value in 0..=255 = (c16 * a + bg*257 * (65535 - a)) / (65535 * 257), rounded
            let num = p.0[c] as u64 * a + bg.0[c] as u64 * 257 * (65535 - a);
            let den = 65535u64 * 257;
            o.0[c] = ((num + den / 2) / den) as u8;
        }
    }
    out
}

/// Fit `img` to the output: a `width` x `width` square whose content is `width` x `height`
/// (`height` < `width` only for `CenterCropWide`). `Err` is a reason to skip the image.
pub fn fit(
    img: RgbImage,
    transform: Transform,
    width: u32,
    height: u32,
    bg: Background,
) -> Result<RgbImage, String> {
    let (w, h) = img.dimensions();
    let resize = |im: &RgbImage, tw: u32, th: u32| {
        if im.dimensions() == (tw, th) {
            im.clone()
        } else {
            super::resample::resize_lanczos(im, tw, th)
        }
    };
    match transform {
        Transform::CenterCrop => {
            let c = w.min(h);
            let sq = imageops::crop_imm(&img, (w - c) / 2, (h - c) / 2, c, c).to_image();
            Ok(resize(&sq, width, width))
        }
        Transform::Stretch => Ok(resize(&img, width, width)),
        Transform::Pad => {
            let c = w.max(h);
            let mut canvas = RgbImage::from_pixel(c, c, image::Rgb(bg.0));
            imageops::replace(
                &mut canvas,
                &img,
                ((c - w) / 2) as i64,
                ((c - h) / 2) as i64,
            );
            Ok(resize(&canvas, width, width))
        }
        Transform::CenterCropWide => {
            // reference: ch = round(W_target * H / W) rows of the original are kept
            let ch = (width as f64 * h as f64 / w as f64).round() as u32;
            if w < width {
                return Err(format!(
                    "{w}x{h} is narrower than {width} pixels, too small for center-crop-wide at {width}x{height}"
                ));
            }
            if ch < height {
                return Err(format!(
                    "{w}x{h} is wider than {width}:{height}, too wide for center-crop-wide at {width}x{height} (the reference skips it too)"
                ));
            }
            let ch = ch.min(h);
            let band = imageops::crop_imm(&img, 0, (h - ch) / 2, w, ch).to_image();
            let band = resize(&band, width, height);
            let mut canvas = RgbImage::from_pixel(width, width, image::Rgb(bg.0));
            imageops::replace(&mut canvas, &band, 0, ((width - height) / 2) as i64);
            Ok(canvas)
        }
    }
}

/// Encode as PNG: uncompressed as the reference (compress_level=0), or deflate-compressed
/// (lossless, about 4x smaller for artwork, slower to write and read).
pub fn encode_png(img: &RgbImage, compress: bool) -> image::ImageResult<Vec<u8>> {
    use image::codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder};
    let mut buf = Vec::with_capacity(img.as_raw().len() + img.height() as usize + 1024);
    let enc = if compress {
        PngEncoder::new_with_quality(&mut buf, CompressionType::Default, PngFilter::Adaptive)
    } else {
        PngEncoder::new_with_quality(&mut buf, CompressionType::Uncompressed, PngFilter::NoFilter)
    };
    img.write_with_encoder(enc)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 200x120 image at 128: cropping scales its 120 rows up, padding its 200 columns down.
    #[test]
    fn enlarging_depends_on_the_side_a_transform_scales_from() {
        let at = |t: Transform| t.enlarges(200, 120, 128);
        assert!(at(Transform::CenterCrop));
        assert!(!at(Transform::Pad));
        assert!(at(Transform::Stretch));
        assert!(!at(Transform::CenterCropWide));
        assert!(Transform::Pad.enlarges(100, 60, 128));
    }

    #[test]
    fn center_crop_wide_keeps_a_band_and_names_why_it_skips() {
        let bg = Background([255, 255, 255]);
        let fit_wide = |w, h| fit(RgbImage::new(w, h), Transform::CenterCropWide, 256, 128, bg);
        let band = fit_wide(512, 300).unwrap();
        assert_eq!(band.dimensions(), (256, 256));
        // white above and below the band, the image's black inside it
        assert_eq!(band.get_pixel(0, 0).0, [255; 3]);
        assert_eq!(band.get_pixel(0, 128).0, [0; 3]);
        let e = fit_wide(4000, 500).unwrap_err();
        assert!(e.contains("too wide"), "{e}");
        let e = fit_wide(200, 100).unwrap_err();
        assert!(e.contains("too small"), "{e}");
    }

    #[test]
    fn a_background_is_written_as_it_is_read() {
        for (given, shown) in [
            ("white", "white"),
            ("0,0,0", "black"),
            ("#0A80fF", "10,128,255"),
        ] {
            let b: Background = given.parse().unwrap();
            assert_eq!(b.to_string(), shown);
            assert_eq!(shown.parse::<Background>(), Ok(b));
            let json = serde_json::to_value(b).unwrap();
            assert_eq!(serde_json::from_value::<Background>(json).unwrap(), b);
        }
    }
}
