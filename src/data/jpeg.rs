//! JPEG decoding exactly as PIL: libjpeg-turbo's decoder (through mozjpeg, built from source) with
//! libjpeg's defaults that PIL keeps (accurate integer IDCT, fancy upsampling), to RGB; CMYK as
//! PIL reads it (Adobe's inverted convention) and converts it; a file whose data ends early is
//! refused, as PIL refuses it ("image file is truncated").
use image::RgbImage;
use mozjpeg_sys::jpeg_error_mgr as ErrorMgr;
use mozjpeg_sys::{jpeg_common_struct, JWRN_JPEG_EOF, J_COLOR_SPACE};
use std::cell::Cell;
use std::os::raw::c_int;

thread_local! {
    /// Set when libjpeg's source ran out of data (it then goes on with grey rows or a made-up end
    /// marker; PIL refuses such a file, even one that lacks only the end marker).
    static DATA_ENDED: Cell<bool> = const { Cell::new(false) };
}

extern "C-unwind" fn on_message(cinfo: &mut jpeg_common_struct, level: c_int) {
    // SAFETY: libjpeg calls this with its own error manager set
    let code = unsafe { (*cinfo.err).msg_code };
    if level < 0 && code == JWRN_JPEG_EOF as c_int {
        DATA_ENDED.set(true);
    }
}

extern "C-unwind" fn on_fatal(_cinfo: &mut jpeg_common_struct) {
    std::panic::resume_unwind(Box::new("libjpeg gave up"));
}

/// libjpeg's standard error manager, with fatal errors unwinding to [`decode_rgb`] and the
/// premature end of the data noted (other warnings, such as extraneous bytes, are ignored as PIL
/// ignores them).
fn error_mgr() -> ErrorMgr {
    // SAFETY: a zeroed jpeg_error_mgr is what jpeg_std_error expects to fill
    let mut err: ErrorMgr = unsafe { std::mem::zeroed() };
    unsafe { mozjpeg_sys::jpeg_std_error(&mut err) };
    err.error_exit = Some(on_fatal);
    err.emit_message = Some(on_message);
    err
}

/// Decode an RGB (YCbCr), greyscale or CMYK (YCCK) JPEG to RGB; `Err` is a reason to skip the
/// file.
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbImage, String> {
    DATA_ENDED.set(false);
    let run = || -> std::io::Result<RgbImage> {
        let d = mozjpeg::Decompress::with_err(error_mgr()).from_mem(bytes)?;
        let cmyk = matches!(
            d.color_space(),
            J_COLOR_SPACE::JCS_CMYK | J_COLOR_SPACE::JCS_YCCK
        );
        let mut started = match cmyk {
            true => d.to_colorspace(J_COLOR_SPACE::JCS_CMYK)?,
            false => d.rgb()?,
        };
        let (w, h) = (started.width() as u32, started.height() as u32);
        let px: Vec<u8> = started.read_scanlines()?;
        started.finish()?;
        if DATA_ENDED.get() {
            return Err(std::io::Error::other(
                "the file is truncated (its data ends early)",
            ));
        }
        let rgb = if cmyk { cmyk_to_rgb(&px) } else { px };
        RgbImage::from_raw(w, h, rgb).ok_or_else(|| std::io::Error::other("truncated JPEG data"))
    };
    match std::panic::catch_unwind(run) {
        Ok(r) => r.map_err(|e| format!("bad JPEG: {e}")),
        Err(_) => Err("bad JPEG (libjpeg gave up)".into()),
    }
}

/// libjpeg's CMYK samples as PIL turns them into RGB: inverted first (PIL's `CMYK;I`, Adobe's
/// convention, which it assumes for every CMYK JPEG), then its `cmyk2rgb`
/// (`nk = 255 - k; x = nk - c * nk / 255`, with PIL's rounded division by 255).
fn cmyk_to_rgb(px: &[u8]) -> Vec<u8> {
    let muldiv255 = |a: u32, b: u32| {
        let t = a * b + 128;
        ((t >> 8) + t) >> 8
    };
    let mut out = Vec::with_capacity(px.len() / 4 * 3);
    for p in px.chunks_exact(4) {
        let [c, m, y, k] = [0, 1, 2, 3].map(|i| 255 - p[i] as u32);
        let nk = 255 - k;
        out.extend([c, m, y].map(|v| (nk - muldiv255(v, nk)) as u8));
    }
    out
}
