//! `fpgan dataset` and the loader on synthetic inputs of every kind a user may bring.
use fpgan::data::{prepare, ImageSet, PrepareOptions, Source};
use image::{DynamicImage, ImageEncoder, Luma, LumaA, Rgb, RgbImage, Rgba, RgbaImage};
use std::io::Read;
use std::path::{Path, PathBuf};

mod common;
use common::{dataset, fpgan, text, write_leftovers};

/// Left half `a`, right half `b`.
fn halves(w: u32, h: u32, a: [u8; 3], b: [u8; 3]) -> RgbImage {
    RgbImage::from_fn(w, h, |x, _| Rgb(if x < w / 2 { a } else { b }))
}

const RED: [u8; 3] = [255, 0, 0];
const BLUE: [u8; 3] = [0, 0, 255];
const GREEN: [u8; 3] = [0, 255, 0];

/// EXIF (TIFF, little endian) with a single Orientation tag.
fn exif_orientation(o: u16) -> Vec<u8> {
    let mut v = vec![
        0x49, 0x49, 0x2A, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0,
    ];
    v.extend_from_slice(&o.to_le_bytes());
    v.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    v
}

/// Every supported kind, named so that sorted order is known; returns the valid names in order.
fn write_all_kinds(dir: &Path) -> Vec<&'static str> {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let p = |n: &str| dir.join(n);
    // 8-bit RGB, red left / blue right
    halves(64, 64, RED, BLUE).save(p("a_rgb8.png")).unwrap();
    // 16-bit RGB
    let rgb16 = image::ImageBuffer::<Rgb<u16>, _>::from_fn(48, 48, |x, _| {
        Rgb(if x < 24 { [65535, 0, 0] } else { [0, 0, 65535] })
    });
    DynamicImage::ImageRgb16(rgb16)
        .save(p("b_rgb16.png"))
        .unwrap();
    // palette PNG: index 0 = green, 1 = red
    {
        let f = std::fs::File::create(p("c_palette.png")).unwrap();
        let mut enc = png::Encoder::new(f, 16, 16);
        enc.set_color(png::ColorType::Indexed);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_palette(vec![0, 255, 0, 255, 0, 0]);
        let mut w = enc.write_header().unwrap();
        let data: Vec<u8> = (0..256).map(|i| ((i % 16) >= 8) as u8).collect();
        w.write_image_data(&data).unwrap();
    }
    // gray and gray+alpha (transparent left half)
    image::GrayImage::from_pixel(20, 20, Luma([100]))
        .save(p("d_gray.png"))
        .unwrap();
    image::GrayAlphaImage::from_fn(20, 20, |x, _| LumaA([0, if x < 10 { 0 } else { 255 }]))
        .save(p("e_gray_alpha.png"))
        .unwrap();
    // RGBA: transparent left half (garbage colour under alpha 0), opaque red right half
    RgbaImage::from_fn(40, 40, |x, _| {
        Rgba(if x < 20 {
            [0, 0, 0, 0]
        } else {
            [255, 0, 0, 255]
        })
    })
    .save(p("f_rgba.png"))
    .unwrap();
    // JPEG stored 40x20 red|blue with EXIF orientation 6 (rotate 90 CW): shows red on top
    {
        let img = halves(40, 20, RED, BLUE);
        let f = std::fs::File::create(p("g_photo.jpg")).unwrap();
        let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(f, 95);
        enc.set_exif_metadata(exif_orientation(6)).unwrap();
        enc.write_image(img.as_raw(), 40, 20, image::ExtendedColorType::Rgb8)
            .unwrap();
    }
    // WebP (lossless), BMP, TIFF in a subfolder
    {
        let img = halves(32, 32, RED, BLUE);
        let f = std::fs::File::create(p("h_img.webp")).unwrap();
        image::codecs::webp::WebPEncoder::new_lossless(f)
            .write_image(img.as_raw(), 32, 32, image::ExtendedColorType::Rgb8)
            .unwrap();
    }
    halves(32, 32, RED, BLUE).save(p("i_img.bmp")).unwrap();
    halves(32, 32, RED, BLUE).save(p("sub/j_img.tiff")).unwrap();
    // GIF with two frames: red then blue; the first is used
    {
        let f = std::fs::File::create(p("sub/k_anim.gif")).unwrap();
        let mut enc = image::codecs::gif::GifEncoder::new(f);
        for c in [RED, BLUE] {
            let fr = RgbaImage::from_pixel(16, 16, Rgba([c[0], c[1], c[2], 255]));
            enc.encode_frame(image::Frame::new(fr)).unwrap();
        }
    }
    // an 8x8 image and a 4000x100 strip (green with a red centre column band)
    halves(8, 8, RED, BLUE).save(p("l_tiny.png")).unwrap();
    RgbImage::from_fn(4000, 100, |x, _| {
        Rgb(if (1950..2050).contains(&x) {
            RED
        } else {
            GREEN
        })
    })
    .save(p("m_wide.png"))
    .unwrap();
    // bad files
    let mut good = Vec::new();
    halves(64, 64, RED, BLUE)
        .write_to(
            &mut std::io::Cursor::new(&mut good),
            image::ImageFormat::Png,
        )
        .unwrap();
    std::fs::write(p("x_truncated.png"), &good[..good.len() / 2]).unwrap();
    let mut corrupt = good[..8].to_vec(); // PNG signature then junk
    corrupt.extend((0..500u32).map(|i| (i * 7919 % 251) as u8));
    std::fs::write(p("x_corrupt.png"), corrupt).unwrap();
    std::fs::write(p("x_empty.png"), b"").unwrap();
    std::fs::write(p("x_text.png"), b"this is not an image\n").unwrap();
    vec![
        "a_rgb8",
        "b_rgb16",
        "c_palette",
        "d_gray",
        "e_gray_alpha",
        "f_rgba",
        "g_photo",
        "h_img",
        "i_img",
        "l_tiny",
        "m_wide",
        "sub/j_img",
        "sub/k_anim",
    ]
}

fn px(set: &ImageSet, i: usize, x: usize, y: usize) -> [u8; 3] {
    let img = set.item(i);
    let r = set.resolution;
    [0, 1, 2].map(|c| img[c * r * r + y * r + x])
}

fn close(a: [u8; 3], b: [u8; 3], tol: i32) -> bool {
    a.iter()
        .zip(b)
        .all(|(&x, y)| (x as i32 - y as i32).abs() <= tol)
}

#[test]
fn every_kind_of_input_becomes_rgb_and_bad_files_are_skipped_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let order = write_all_kinds(&src);
    let dest = tmp.path().join("out.zip");
    let o = dataset(&src, &dest, &["--resolution", "32"]);
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "stdout: {out}\nstderr: {err}");
    assert!(out.contains("13 images written, 4 skipped"), "{out}");
    for bad in [
        "x_truncated.png",
        "x_corrupt.png",
        "x_empty.png",
        "x_text.png",
    ] {
        let lines: Vec<_> = err.lines().filter(|l| l.contains(bad)).collect();
        assert_eq!(lines.len(), 1, "one warning for {bad}: {err}");
        assert!(lines[0].starts_with("warning: skipping"), "{}", lines[0]);
    }
    assert!(err.contains("empty file"), "{err}");

    let set = ImageSet::open(&dest).unwrap();
    assert_eq!(
        (set.num_images(), set.resolution, set.name.as_str()),
        (13, 32, "out")
    );
    let idx = |n: &str| order.iter().position(|&o| o == n).unwrap();
    // left/right halves survive for 8-bit, 16-bit, WebP, BMP, TIFF, tiny
    for n in ["a_rgb8", "b_rgb16", "h_img", "i_img", "sub/j_img", "l_tiny"] {
        assert!(
            close(px(&set, idx(n), 2, 16), RED, 2),
            "{n} left {:?}",
            px(&set, idx(n), 2, 16)
        );
        assert!(close(px(&set, idx(n), 29, 16), BLUE, 2), "{n} right");
    }
    assert!(close(px(&set, idx("c_palette"), 2, 5), GREEN, 0));
    assert!(close(px(&set, idx("c_palette"), 29, 5), RED, 0));
    assert_eq!(px(&set, idx("d_gray"), 10, 10), [100, 100, 100]);
    // transparency goes onto white (not black, not the hidden colour)
    assert_eq!(px(&set, idx("e_gray_alpha"), 2, 10), [255, 255, 255]);
    assert_eq!(px(&set, idx("e_gray_alpha"), 29, 10), [0, 0, 0]);
    assert_eq!(px(&set, idx("f_rgba"), 2, 10), [255, 255, 255]);
    assert_eq!(px(&set, idx("f_rgba"), 29, 10), RED);
    // EXIF orientation 6: red on top, blue at the bottom (JPEG: loose tolerance)
    let g = idx("g_photo");
    assert!(
        close(px(&set, g, 16, 2), RED, 40),
        "{:?}",
        px(&set, g, 16, 2)
    );
    assert!(
        close(px(&set, g, 16, 29), BLUE, 40),
        "{:?}",
        px(&set, g, 16, 29)
    );
    // GIF: first frame
    assert!(close(px(&set, idx("sub/k_anim"), 16, 16), RED, 0));
    // 4000x100 strip: the centre-cropped square is the red band
    assert!(close(px(&set, idx("m_wide"), 16, 16), RED, 2));
}

#[test]
fn output_follows_the_reference_layout_and_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write_all_kinds(&src);
    let opts = PrepareOptions::square(16);
    let mut produced = Vec::new();
    let summary = prepare(&Source::open(&src).unwrap(), &opts, |_, img| {
        produced.push(img);
        Ok(())
    })
    .unwrap();
    assert_eq!((summary.written, summary.skipped), (13, 4));
    assert_eq!(summary.upscaled, 1, "only the 8x8 image is below 16");

    let zip_dest = tmp.path().join("set.zip");
    let dir_dest = tmp.path().join("set_dir");
    for d in [&zip_dest, &dir_dest] {
        let o = dataset(&src, d, &["--resolution", "16"]);
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    // zip: STORED entries, reference names, dataset.json
    let mut z = zip::ZipArchive::new(std::fs::File::open(&zip_dest).unwrap()).unwrap();
    let mut names: Vec<String> = (0..z.len())
        .map(|i| z.by_index(i).unwrap().name().to_string())
        .collect();
    names.sort();
    let mut want: Vec<String> = (0..13).map(|i| format!("00000/img{i:08}.png")).collect();
    want.push("dataset.json".into());
    want.sort();
    assert_eq!(names, want);
    for i in 0..z.len() {
        assert_eq!(
            z.by_index(i).unwrap().compression(),
            zip::CompressionMethod::Stored
        );
    }
    let mut json = String::new();
    z.by_name("dataset.json")
        .unwrap()
        .read_to_string(&mut json)
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["labels"], serde_json::Value::Null);
    // `sources`: which file each image came from, in the order written
    let sources = v["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 13);
    let mut seen = std::collections::HashSet::new();
    for (i, pair) in sources.iter().enumerate() {
        assert_eq!(pair[0], format!("00000/img{i:08}.png"));
        let from = pair[1].as_str().unwrap();
        assert!(src.join(from).is_file() && seen.insert(from), "{pair}");
    }
    assert!(seen.contains("sub/k_anim.gif"), "{seen:?}");
    assert!(dir_dest.join("00000/img00000012.png").is_file());
    assert!(dir_dest.join("dataset.json").is_file());

    // what the loader reads equals what the tool produced, from zip and from dir
    for d in [&zip_dest, &dir_dest] {
        let set = ImageSet::open(d).unwrap();
        assert_eq!(set.num_images(), produced.len());
        for (i, img) in produced.iter().enumerate() {
            let hwc: Vec<u8> = {
                let chw = set.item(i);
                (0..16 * 16)
                    .flat_map(|p| [chw[p], chw[256 + p], chw[512 + p]])
                    .collect()
            };
            assert_eq!(&hwc, img.as_raw(), "image {i} differs in {}", d.display());
        }
    }
    // no temporary leftovers
    let leftovers = write_leftovers(tmp.path());
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn mirror_appends_flipped_copies_and_batches_are_nchw_uint8() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    halves(8, 8, RED, BLUE).save(src.join("0.png")).unwrap();
    RgbImage::from_fn(8, 8, |x, y| Rgb([x as u8 * 30, y as u8 * 30, 7]))
        .save(src.join("1.png"))
        .unwrap();
    let dest = tmp.path().join("d.zip");
    let o = dataset(&src, &dest, &["--resolution", "8"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let set = ImageSet::open(&dest).unwrap().with_mirror(true);
    assert_eq!((set.num_images(), set.len()), (2, 4));
    for i in 0..2 {
        for y in 0..8 {
            for x in 0..8 {
                assert_eq!(px(&set, i + 2, x, y), px(&set, i, 7 - x, y));
            }
        }
    }
    let t = set.batch(&[3, 0]);
    assert_eq!(t.size(), vec![2, 3, 8, 8]);
    assert_eq!(t.kind(), tch::Kind::Uint8);
    assert_eq!(t.int64_value(&[1, 0, 0, 0]), 255); // item 0: red at left
    assert_eq!(t.int64_value(&[0, 0, 0, 7]), 0); // item 3: flipped image 1, x=7 shows x=0
    assert_eq!(t.int64_value(&[0, 0, 0, 0]), 210);
    assert_eq!(set.to_tensor().size(), vec![4, 3, 8, 8]);
}

#[test]
fn reference_made_datasets_load_and_raw_folders_are_prepared_on_the_fly() {
    let tmp = tempfile::tempdir().unwrap();
    // a dataset as the official tool writes it: grayscale PNGs and labels in dataset.json
    let refset = tmp.path().join("ref");
    std::fs::create_dir_all(refset.join("00000")).unwrap();
    for i in 0..3u8 {
        image::GrayImage::from_pixel(16, 16, Luma([i * 50]))
            .save(refset.join(format!("00000/img{i:08}.png")))
            .unwrap();
    }
    std::fs::write(
        refset.join("dataset.json"),
        r#"{"labels": [["00000/img00000000.png", 0]]}"#,
    )
    .unwrap();
    let set = ImageSet::open_or_prepare(&refset, &PrepareOptions::square(64)).unwrap();
    assert_eq!(set.labels, None, "labels that miss images are not used");
    assert_eq!(
        (set.num_images(), set.resolution),
        (3, 16),
        "prepared sets are read as they are"
    );
    assert_eq!(px(&set, 2, 3, 3), [100, 100, 100]);

    let raw = tmp.path().join("raw");
    std::fs::create_dir_all(&raw).unwrap();
    halves(30, 20, RED, BLUE).save(raw.join("a.png")).unwrap();
    std::fs::write(raw.join("notes.txt"), "hello").unwrap();
    let set = ImageSet::open_or_prepare(&raw, &PrepareOptions::square(16)).unwrap();
    assert_eq!(
        (set.num_images(), set.resolution, set.name.as_str()),
        (1, 16, "raw")
    );

    // a prepared set with mixed sizes is refused with the file named
    let bad = tmp.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    halves(16, 16, RED, BLUE).save(bad.join("a.png")).unwrap();
    halves(8, 8, RED, BLUE).save(bad.join("b.png")).unwrap();
    let e = format!("{:#}", ImageSet::open(&bad).err().unwrap());
    assert!(
        e.contains("b.png") && e.contains("square images of one size"),
        "{e}"
    );
}

fn dataset_err(src: &Path, dest: &Path, extra: &[&str]) -> (i32, String) {
    let o = dataset(src, dest, extra);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    (o.status.code().unwrap_or(-1), err)
}

#[test]
fn bad_invocations_fail_with_one_clear_line_and_leave_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let s = |p: &PathBuf| p.to_str().unwrap().to_string();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    halves(16, 16, RED, BLUE).save(src.join("a.png")).unwrap();
    let dest = tmp.path().join("out");

    // missing source
    let missing = tmp.path().join("nope");
    let (_, e) = dataset_err(&missing, &dest, &[]);
    assert!(
        e.starts_with("error:") && e.contains(&s(&missing)) && e.trim().lines().count() == 1,
        "{e}"
    );
    // empty folder
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (_, e) = dataset_err(&empty, &dest, &[]);
    assert!(e.contains("contains no files"), "{e}");
    // only bad files
    let junk = tmp.path().join("junk");
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::write(junk.join("a.png"), b"nope").unwrap();
    let (_, e) = dataset_err(&junk, &dest, &[]);
    assert!(
        e.contains("no usable image") && e.contains(&s(&junk)),
        "{e}"
    );
    // resolution not a power of two; unknown transform; unknown option (clap: exit 2)
    let (_, e) = dataset_err(&src, &dest, &["--resolution", "300"]);
    assert!(e.contains("power of two"), "{e}");
    let (c, _) = dataset_err(&src, &dest, &["--transform", "zoom"]);
    assert_eq!(c, 2);
    let (c, e) = dataset_err(&src, &dest, &["--colour", "red"]);
    assert_eq!(c, 2, "{e}");
    let (_, e) = dataset_err(&src, &dest, &["--background", "1,2"]);
    assert!(e.contains("bad colour"), "{e}");
    assert!(!dest.exists(), "failed runs create no destination");

    // an existing non-empty destination is kept unless --force
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::write(dest.join("keep.txt"), "precious").unwrap();
    let (_, e) = dataset_err(&src, &dest, &["--resolution", "8"]);
    assert!(e.contains("--force") && e.contains(&s(&dest)), "{e}");
    assert_eq!(
        std::fs::read_to_string(dest.join("keep.txt")).unwrap(),
        "precious"
    );
    // so is an existing zip named with a trailing slash (it hid the file until the rename)
    let zip = dest.with_extension("zip");
    std::fs::write(&zip, "not a dataset").unwrap();
    let slashed = std::path::PathBuf::from(format!("{}/", s(&zip)));
    let (_, e) = dataset_err(&src, &slashed, &["--resolution", "8"]);
    assert!(e.contains("--force") && !e.contains("rename"), "{e}");
    assert_eq!(std::fs::read_to_string(&zip).unwrap(), "not a dataset");
    // a failing --force run keeps the old content too
    let _ = dataset_err(&junk, &dest, &["--force"]);
    assert!(dest.join("keep.txt").exists());
    // --force replaces only a dataset: a folder holding keep.txt is refused, and kept
    let force = |res: &str| dataset(&src, &dest, &["--resolution", res, "--force"]);
    let o = force("8");
    assert!(!o.status.success() && text(&o.stderr).contains("keep.txt"));
    assert!(dest.join("keep.txt").exists());
    // a dataset there is replaced
    std::fs::remove_file(dest.join("keep.txt")).unwrap();
    assert!(force("8").status.success());
    let o = force("16");
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(ImageSet::open(&dest).unwrap().resolution, 16);
    // an existing empty directory is fine without --force (as the reference)
    let empty_dest = tmp.path().join("empty_dest");
    std::fs::create_dir_all(&empty_dest).unwrap();
    let o = dataset(&src, &empty_dest, &["--resolution", "8"]);
    assert!(o.status.success(), "{}", text(&o.stderr));

    let leftovers = write_leftovers(tmp.path());
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn max_images_and_zip_sources() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write_all_kinds(&src);
    // a zip source (made by the tool itself) re-prepared at a smaller size with a limit
    let first = tmp.path().join("first.zip");
    assert!(dataset(&src, &first, &["--resolution", "16"])
        .status
        .success());
    let second = tmp.path().join("second");
    let o = dataset(
        &first,
        &second,
        &[
            "--resolution",
            "8",
            "--max-images",
            "5",
            "--transform",
            "pad",
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let set = ImageSet::open(&second).unwrap();
    assert_eq!((set.num_images(), set.resolution), (5, 8));
}

#[test]
fn compressed_output_holds_the_same_pixels_in_less_space() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..3u8 {
        RgbImage::from_fn(40, 40, |x, y| Rgb([x as u8 * 6, y as u8 * 6, i * 80]))
            .save(src.join(format!("{i}.png")))
            .unwrap();
    }
    let (plain, small) = (tmp.path().join("plain.zip"), tmp.path().join("small.zip"));
    for (d, extra) in [(&plain, None), (&small, Some("--compress"))] {
        let mut args = vec![
            "dataset",
            "--source",
            src.to_str().unwrap(),
            "--dest",
            d.to_str().unwrap(),
            "--resolution",
            "32",
        ];
        args.extend(extra);
        assert!(fpgan(&args).status.success());
    }
    let (a, b) = (
        ImageSet::open(&plain).unwrap(),
        ImageSet::open(&small).unwrap(),
    );
    for i in 0..3 {
        assert_eq!(a.item(i), b.item(i));
    }
    let size = |p: &PathBuf| std::fs::metadata(p).unwrap().len();
    assert!(
        size(&small) * 2 < size(&plain),
        "{} vs {}",
        size(&small),
        size(&plain)
    );
}
