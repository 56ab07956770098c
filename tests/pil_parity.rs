//! The dataset tool reads and resizes images exactly as PIL 9.5 (which the official
//! dataset_tool.py and the reference metrics use): LANCZOS resizing, JPEG decoding
//! (libjpeg-turbo), and `fpgan dataset --transform center-crop` against the official tool's own
//! output; fixtures from scripts/fixtures/make_pil_fixture.py.
mod common;

use fpgan::data::image_ops::decode;
use fpgan::data::resample::resize_lanczos;
use image::RgbImage;
use std::collections::BTreeMap;
use tch::Tensor;

const RESIZE: [((u32, u32), (u32, u32)); 8] = [
    ((37, 45), (16, 16)),
    ((64, 64), (128, 128)),
    ((100, 30), (7, 13)),
    ((40, 40), (20, 40)),
    ((17, 33), (32, 32)),
    ((200, 256), (64, 64)),
    ((9, 9), (64, 64)),
    ((300, 299), (128, 128)),
];

/// The fixture script's `image(k, h, w)`.
fn image(k: u32, h: u32, w: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let v = |c: u32| {
            ((x * (7 + k) + y * (13 + 2 * k) + c * 50 + k * 31 + (x * y) % (17 + k)) % 256) as u8
        };
        image::Rgb([v(0), v(1), v(2)])
    })
}

fn fixture() -> BTreeMap<String, Tensor> {
    common::fixture("pil.safetensors")
}

fn bytes(t: &Tensor) -> Vec<u8> {
    Vec::<u8>::try_from(t.flatten(0, -1)).unwrap()
}

/// Number of differing bytes and the largest difference.
fn diff(a: &[u8], b: &[u8]) -> (usize, u8) {
    assert_eq!(a.len(), b.len());
    let d: Vec<u8> = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).collect();
    (
        d.iter().filter(|&&v| v > 0).count(),
        d.into_iter().max().unwrap_or(0),
    )
}

#[test]
fn lanczos_resize_equals_pil() {
    let f = fixture();
    for (k, ((h, w), (th, tw))) in RESIZE.into_iter().enumerate() {
        let ours = resize_lanczos(&image(k as u32, h, w), tw, th);
        let pil = bytes(&f[&format!("resize.{k}")]);
        assert_eq!(
            diff(ours.as_raw(), &pil),
            (0, 0),
            "case {k}: {h}x{w} -> {th}x{tw}"
        );
    }
}

/// The `n` JPEGs `<name>.<k>` of the fixture decode to PIL's RGB `<name>_px.<k>`, bit for bit.
fn decodes_as_pil(name: &str, n: usize) {
    let f = fixture();
    for k in 0..n {
        let jpeg = bytes(&f[&format!("{name}.{k}")]);
        let ours = decode(&jpeg).unwrap().to_rgb8();
        let pil = bytes(&f[&format!("{name}_px.{k}")]);
        assert_eq!(diff(ours.as_raw(), &pil), (0, 0), "{name} {k}");
    }
}

#[test]
fn jpeg_decoding_equals_pil() {
    decodes_as_pil("jpeg", 5);
}

#[test]
fn cmyk_jpegs_become_the_rgb_of_pil_s_convert() {
    decodes_as_pil("cmyk", 2);
}

#[test]
fn truncated_jpegs_are_refused_as_pil_refuses_them() {
    // PIL 9.5: "image file is truncated", even when only the end marker is missing
    let f = fixture();
    for name in ["jpeg.0", "jpeg.4", "cmyk.0"] {
        let jpeg = bytes(&f[name]);
        // a cut in the headers fails while reading them; later ones are named as truncated
        assert!(
            decode(&jpeg[..jpeg.len() / 10]).is_err(),
            "{name} cut to a tenth"
        );
        for keep in [jpeg.len() / 2, jpeg.len() - 2] {
            let e = decode(&jpeg[..keep]).err().map(|e| e.to_string());
            assert!(
                e.as_deref().is_some_and(|e| e.contains("truncated")),
                "{name} cut to {keep}: {e:?}"
            );
        }
    }
}

#[test]
fn dataset_tool_writes_the_pixels_of_the_official_dataset_tool() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for k in 0..5 {
        std::fs::write(
            src.join(format!("{k:02}.jpg")),
            bytes(&f[&format!("jpeg.{k}")]),
        )
        .unwrap();
    }
    std::fs::write(src.join("05.png"), bytes(&f["tool_png"])).unwrap();
    let dest = tmp.path().join("out");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_fpgan"))
        .args(["dataset", "--source", src.to_str().unwrap(), "--dest"])
        .args([
            dest.to_str().unwrap(),
            "--resolution",
            "32",
            "--transform",
            "center-crop",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for k in 0..6 {
        let ours = image::open(dest.join(format!("00000/img{k:08}.png")))
            .unwrap()
            .to_rgb8();
        let official = bytes(&f[&format!("tool.{k}")]);
        assert_eq!(diff(ours.as_raw(), &official), (0, 0), "image {k}");
    }
}

#[test]
fn metrics_read_jpegs_as_pil_does() {
    // the same pictures as JPEG files and as PNGs of PIL's decoding: identical features, FID 0
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let (jpg, png) = (tmp.path().join("jpg"), tmp.path().join("png"));
    std::fs::create_dir_all(&jpg).unwrap();
    std::fs::create_dir_all(&png).unwrap();
    for k in 0..5 {
        std::fs::write(
            jpg.join(format!("{k}.jpg")),
            bytes(&f[&format!("jpeg.{k}")]),
        )
        .unwrap();
        let t = &f[&format!("jpeg_px.{k}")];
        let (h, w) = (t.size()[0] as u32, t.size()[1] as u32);
        let img = RgbImage::from_raw(w, h, bytes(t)).unwrap();
        img.save(png.join(format!("{k}.png"))).unwrap();
    }
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_fpgan"))
        .args(["metrics", "--real", png.to_str().unwrap(), "--fake"])
        .args([jpg.to_str().unwrap(), "--metrics", "fid", "--device", "cpu"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let fid: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("fid "))
        .expect("a fid line")
        .trim()
        .parse()
        .unwrap();
    assert!(
        fid.abs() < 1e-3,
        "FID {fid} between a JPEG set and PIL's decoding of it"
    );
}
