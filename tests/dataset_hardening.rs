//! `fpgan dataset` on hostile or unlucky inputs: symlink loops, decompression bombs, damaged
//! zips, leftovers of interrupted runs, `--force` next to other data, a full disk, odd options,
//! and a seeded fuzz of the decoders and the zip reader. Every image is made here.
use fpgan::data::image_ops::decode_limited;
use fpgan::data::Source;
use fpgan::util::rng::SplitMix;
use image::{ImageFormat, Rgb, RgbImage};
use std::io::{Cursor, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{dataset, dataset_args, fuzz_cases, text, write_leftovers};

/// A `w` x `h` image with a pattern that depends on `seed`.
fn picture(w: u32, h: u32, seed: u8) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([(x * 7) as u8 ^ seed, (y * 5) as u8, seed.wrapping_mul(31)])
    })
}

fn encoded(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut buf = Vec::new();
    img.write_to(&mut Cursor::new(&mut buf), format).unwrap();
    buf
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `fpgan args...`, killed after `secs` seconds (then `None`).
fn fpgan_within(args: &[&str], secs: u64) -> Option<Output> {
    let out = tempfile::tempdir().unwrap();
    let (o, e) = (out.path().join("out"), out.path().join("err"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_fpgan"))
        .args(args)
        .stdout(Stdio::from(std::fs::File::create(&o).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&e).unwrap()))
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > Duration::from_secs(secs) {
            child.kill().unwrap();
            child.wait().unwrap();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Some(Output {
        status,
        stdout: std::fs::read(o).unwrap(),
        stderr: std::fs::read(e).unwrap(),
    })
}

/// The process ended by itself (no signal, no abort) and printed no panic.
fn assert_clean_exit(o: &Output) {
    let err = text(&o.stderr);
    assert!(o.status.code().is_some(), "killed by a signal: {err}");
    for bad in [
        "panicked",
        "memory allocation",
        "RUST_BACKTRACE",
        "Os {",
        "Io(",
    ] {
        assert!(!err.contains(bad), "{bad} in stderr: {err}");
    }
}

/// Exactly one stderr line, starting with "error:".
fn one_error_line(o: &Output) -> String {
    assert!(!o.status.success(), "should fail: {}", text(&o.stdout));
    assert_clean_exit(o);
    let err = text(&o.stderr);
    let errors: Vec<&str> = err.lines().filter(|l| !l.starts_with("warning:")).collect();
    assert_eq!(errors.len(), 1, "one error line: {err}");
    assert!(errors[0].starts_with("error: "), "{err}");
    errors[0].to_string()
}

/// A PID that belonged to a process which has ended (and been reaped).
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// `dataset` at 128 px, or None if it still runs after `secs`.
fn dataset_within(src: &Path, dest: &Path, extra: &[&str], secs: u64) -> Option<Output> {
    let mut e = vec!["--resolution", "128"];
    e.extend(extra);
    fpgan_within(&dataset_args(src, dest, &e), secs)
}

fn three_pngs(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    for (i, n) in ["a.png", "b.png", "sub/c.png"].iter().enumerate() {
        picture(16, 16, i as u8).save(dir.join(n)).unwrap();
    }
}

// ---- 3. symlink loops -------------------------------------------------------------------------

#[cfg(unix)]
#[test]
fn symlink_loops_and_repeated_directories_are_read_once_and_quickly() {
    use std::os::unix::fs::symlink;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    three_pngs(&src);
    symlink("..", src.join("sub/up")).unwrap(); // one loop
    let one = dataset_within(&src, &tmp.path().join("one.zip"), &[], 60)
        .expect("one symlink loop: still running after 60 s");
    assert!(one.status.success(), "{}", text(&one.stderr));
    assert!(
        text(&one.stdout).contains("3 images written, 0 skipped"),
        "{}",
        text(&one.stdout)
    );
    assert!(
        text(&one.stderr).contains("symlink loop"),
        "{}",
        text(&one.stderr)
    );

    symlink(".", src.join("again")).unwrap(); // a second loop
    symlink("sub", src.join("alias")).unwrap(); // and a second way into sub/
    let two = dataset_within(&src, &tmp.path().join("two.zip"), &[], 60)
        .expect("two symlink loops: still running after 60 s");
    assert!(two.status.success(), "{}", text(&two.stderr));
    assert!(
        text(&two.stdout).contains("3 images written, 0 skipped"),
        "{}",
        text(&two.stdout)
    );
    let err = text(&two.stderr);
    assert!(
        err.contains("already read") && err.contains("alias"),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn pipes_devices_broken_links_and_non_utf8_names_neither_hang_nor_confuse() {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::symlink;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    picture(16, 16, 1).save(src.join("a.png")).unwrap();
    let odd = src.join(std::ffi::OsStr::from_bytes(b"b\xff.png"));
    picture(16, 16, 2).save(&odd).unwrap();
    let fifo = tmp.path().join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    symlink(&fifo, src.join("c_pipe.png")).unwrap(); // reading it would wait for a writer
    symlink("/dev/zero", src.join("d_zero.png")).unwrap(); // reading it would never end
    symlink("missing.png", src.join("e_gone.png")).unwrap();
    let o =
        dataset_within(&src, &tmp.path().join("o.zip"), &[], 60).expect("still running after 60 s");
    assert_clean_exit(&o);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("2 images written, 1 skipped"),
        "{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let err = text(&o.stderr);
    for name in ["c_pipe.png", "d_zero.png", "e_gone.png"] {
        let line = err
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name}: {err}"));
        assert!(line.starts_with("warning: skipping"), "{line}");
    }
}

// ---- 4. decompression bombs -------------------------------------------------------------------

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
}

/// A 100-byte PNG whose header claims `w` x `h` RGB pixels.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&[0u8; 1000]).unwrap();
    png_chunk(&mut out, b"IDAT", &z.finish().unwrap());
    png_chunk(&mut out, b"IEND", &[]);
    out
}

#[test]
fn a_decompression_bomb_is_skipped_with_a_warning_naming_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    picture(32, 32, 1).save(src.join("a_good.png")).unwrap();
    std::fs::write(src.join("b_bomb.png"), png_claiming(100_000, 100_000)).unwrap();
    let dest = tmp.path().join("out.zip");
    let o = dataset_within(&src, &dest, &[], 120).expect("still running after 120 s");
    assert_clean_exit(&o);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("1 image written, 1 skipped"),
        "{}",
        text(&o.stdout)
    );
    let err = text(&o.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("b_bomb.png"))
        .expect("a warning for the bomb");
    assert!(
        line.starts_with("warning: skipping") && line.contains("--max-pixels"),
        "{line}"
    );
    assert!(write_leftovers(tmp.path()).is_empty());
}

#[test]
fn every_decoder_respects_max_pixels() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    picture(16, 16, 1).save(src.join("small.png")).unwrap();
    let big = picture(64, 64, 2); // 4096 pixels, over the limit of 1000 below
    let kinds = [
        ("big.png", ImageFormat::Png),
        ("big.jpg", ImageFormat::Jpeg),
        ("big.gif", ImageFormat::Gif),
        ("big.webp", ImageFormat::WebP),
        ("big.bmp", ImageFormat::Bmp),
        ("big.tiff", ImageFormat::Tiff),
    ];
    for (name, format) in kinds {
        std::fs::write(src.join(name), encoded(&big, format)).unwrap();
    }
    let o = dataset(
        &src,
        &tmp.path().join("out"),
        &["--resolution", "128", "--max-pixels", "1000"],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("1 image written, 6 skipped"),
        "{}",
        text(&o.stdout)
    );
    let err = text(&o.stderr);
    for (name, _) in kinds {
        let line = err
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name}: {err}"));
        assert!(
            line.contains("64x64") && line.contains("--max-pixels"),
            "{line}"
        );
    }
}

// ---- 7. leftovers of interrupted runs ---------------------------------------------------------

#[test]
fn a_rerun_removes_the_leftovers_of_dead_runs_only() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    three_pngs(&src);
    let dir = tmp.path().join("out");
    std::fs::create_dir_all(&dir).unwrap();
    let dead = dead_pid();
    let alive = std::process::id();
    let p = |n: String| dir.join(n);
    std::fs::write(p(format!("set.zip.partial-{dead}")), b"").unwrap(); // a dead run's zip
    std::fs::create_dir_all(p(format!("set.partial-{dead}/00000"))).unwrap(); // and folder
    std::fs::write(p(format!("set.zip.partial-{alive}")), b"").unwrap(); // a live run's
    std::fs::write(p(format!("other.zip.partial-{dead}")), b"").unwrap(); // another dest's
    std::fs::write(p("set.zip.partial-notapid".into()), b"").unwrap();
    for dest in ["set.zip", "set"] {
        let o = dataset(&src, &dir.join(dest), &["--resolution", "128"]);
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    let mut left = write_leftovers(&dir);
    left.sort();
    let mut want = vec![
        format!("other.zip.partial-{dead}"),
        format!("set.zip.partial-{alive}"),
        "set.zip.partial-notapid".to_string(),
    ];
    want.sort();
    assert_eq!(left, want);
}

#[test]
fn a_dataset_moved_aside_by_an_interrupted_replacement_is_put_back() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    three_pngs(&src);
    let first = tmp.path().join("first.zip");
    assert!(dataset(&src, &first, &["--resolution", "128"])
        .status
        .success());
    // killed between moving the old dataset aside and renaming the new one into place
    let dest = tmp.path().join("set.zip");
    let old = tmp.path().join(format!("set.zip.old-{}", dead_pid()));
    std::fs::rename(&first, &old).unwrap();
    let before = std::fs::read(&old).unwrap();
    let o = dataset(&src, &dest, &["--resolution", "256"]);
    let e = one_error_line(&o); // it is back, so replacing it needs --force
    assert!(e.contains("--force"), "{e}");
    assert!(text(&o.stderr).contains("restored"), "{}", text(&o.stderr));
    assert_eq!(std::fs::read(&dest).unwrap(), before);
    assert!(!old.exists());
    let o = dataset(&src, &dest, &["--resolution", "256", "--force"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(write_leftovers(tmp.path()).is_empty());
}

// ---- 8. --force replaces datasets only --------------------------------------------------------

#[test]
fn force_refuses_to_replace_anything_but_a_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("photos");
    three_pngs(&src);
    let res = ["--resolution", "128", "--force"];

    // a folder of other data
    let data = tmp.path().join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("notes.txt"), "notes").unwrap();
    std::fs::write(data.join("sub/data.csv"), "1,2").unwrap();
    let e = one_error_line(&dataset(&src, &data, &res));
    assert!(
        e.contains(s(&data)) && e.contains("not part of a dataset"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("notes.txt")).unwrap(),
        "notes"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("sub/data.csv")).unwrap(),
        "1,2"
    );

    // the source itself, and a folder containing it
    for dest in [src.clone(), tmp.path().to_path_buf()] {
        let e = one_error_line(&dataset(&src, &dest, &res));
        assert!(e.contains("--source") && e.contains(s(&dest)), "{e}");
        assert!(src.join("a.png").is_file() && src.join("sub/c.png").is_file());
    }

    // a file that is not a dataset zip, and a zip of other things
    let file = tmp.path().join("keep.zip");
    std::fs::write(&file, "not a zip").unwrap();
    let e = one_error_line(&dataset(&src, &file, &res));
    assert!(e.contains("keep.zip") && e.contains("not a dataset"), "{e}");
    // without --force too: no advice to pass --force, which would not replace it
    let e = one_error_line(&dataset(&src, &file, &res[..2]));
    assert!(
        e.contains("not a dataset") && !e.contains("pass --force"),
        "{e}"
    );
    let other = tmp.path().join("other.zip");
    {
        let mut z = zip::ZipWriter::new(std::fs::File::create(&other).unwrap());
        z.start_file("report.docx", zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(b"text").unwrap();
        z.finish().unwrap();
    }
    let e = one_error_line(&dataset(&src, &other, &res));
    assert!(e.contains("report.docx"), "{e}");
    assert_eq!(std::fs::read(&file).unwrap(), b"not a zip");

    // datasets are replaced: ours (zip, folder) and a reference-layout folder without json
    let ours_zip = tmp.path().join("ours.zip");
    let ours_dir = tmp.path().join("ours");
    for d in [&ours_zip, &ours_dir] {
        assert!(dataset(&src, d, &["--resolution", "128"]).status.success());
        let o = dataset(&src, d, &["--resolution", "256", "--force"]);
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    let reference = tmp.path().join("reference");
    std::fs::create_dir_all(reference.join("00000")).unwrap();
    picture(8, 8, 3)
        .save(reference.join("00000/img00000000.png"))
        .unwrap();
    let o = dataset(&src, &reference, &res);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(reference.join("dataset.json").is_file());
    assert!(write_leftovers(tmp.path()).is_empty());
}

#[test]
fn a_destination_inside_the_source_is_not_read_back_as_input() {
    let tmp = tempfile::tempdir().unwrap();
    for dest in ["set", "set.zip"] {
        let src = tmp.path().join(format!("photos_for_{dest}"));
        three_pngs(&src);
        let d = src.join(dest);
        std::fs::write(src.join(format!("{dest}.partial-{}", dead_pid())), b"").unwrap();
        for extra in [&[][..], &["--force"][..]] {
            let mut args = vec!["--resolution", "128"];
            args.extend(extra);
            let o = dataset(&src, &d, &args);
            assert!(o.status.success(), "{}", text(&o.stderr));
            let out = text(&o.stdout);
            assert!(out.contains("3 images written, 0 skipped"), "{dest}: {out}");
        }
        assert!(write_leftovers(&src).is_empty());
    }
}

// ---- 14, 15 and wording -----------------------------------------------------------------------

#[test]
fn sizes_train_cannot_use_are_named_at_dataset_time() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    three_pngs(&src);
    let o = dataset(&src, &tmp.path().join("small"), &["--resolution", "64"]);
    assert!(o.status.success());
    let err = text(&o.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("cannot be trained"))
        .expect("a warning");
    assert!(
        line.starts_with("warning:") && line.contains("128, 256, 512 or 1024"),
        "{line}"
    );
    let o = dataset(&src, &tmp.path().join("fine"), &["--resolution", "128"]);
    assert!(o.status.success());
    assert!(
        !text(&o.stderr).contains("cannot be trained"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn nothing_to_write_is_said_without_pointing_at_missing_warnings() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    three_pngs(&src);
    let dest = tmp.path().join("out");
    let e = one_error_line(&dataset(&src, &dest, &["--max-images", "0"]));
    assert!(
        e.contains("--max-images") && !e.contains("warnings above"),
        "{e}"
    );
    // a folder with only hidden files: nothing to prepare, and no warnings either
    let hidden = tmp.path().join("hidden");
    std::fs::create_dir_all(&hidden).unwrap();
    picture(8, 8, 1).save(hidden.join(".thumb.png")).unwrap();
    let e = one_error_line(&dataset(&hidden, &dest, &[]));
    assert!(
        e.contains(s(&hidden)) && !e.contains("warnings above"),
        "{e}"
    );
    assert!(!dest.exists() && write_leftovers(tmp.path()).is_empty());
}

#[test]
fn counts_are_worded_in_singular_and_plural() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    picture(16, 16, 1).save(src.join("a.png")).unwrap();
    std::fs::write(src.join("b.png"), b"not a png").unwrap();
    let o = dataset(&src, &tmp.path().join("out"), &["--resolution", "128"]);
    let out = text(&o.stdout);
    assert!(out.contains("1 image written, 1 skipped"), "{out}");
    assert!(
        out.contains("the skipped file is named in the warning above"),
        "{out}"
    );
    assert!(
        !out.contains("1 images") && !out.contains("1 skipped files"),
        "{out}"
    );
    std::fs::remove_file(src.join("a.png")).unwrap();
    let e = one_error_line(&dataset(&src, &tmp.path().join("out2"), &[]));
    assert!(
        e.contains("1 of 1 file skipped") && e.contains("the warning above"),
        "{e}"
    );
}

// ---- 16. damaged zips -------------------------------------------------------------------------

fn zip_of(path: &Path, files: &[(&str, Vec<u8>)], method: zip::CompressionMethod) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in files {
        let opts = zip::write::SimpleFileOptions::default().compression_method(method);
        z.start_file(*name, opts).unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap();
}

#[test]
fn a_damaged_zip_entry_is_skipped_with_a_warning_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let zip_path = tmp.path().join("in.zip");
    let files: Vec<(&str, Vec<u8>)> = ["a.png", "b.png", "c.png"]
        .iter()
        .enumerate()
        .map(|(i, n)| (*n, encoded(&picture(16, 16, i as u8), ImageFormat::Png)))
        .collect();
    zip_of(&zip_path, &files, zip::CompressionMethod::Stored);
    // damage the local header of the second entry (its signature)
    let mut bytes = std::fs::read(&zip_path).unwrap();
    let headers: Vec<usize> = bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"PK\x03\x04")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(headers.len(), 3);
    bytes[headers[1]..headers[1] + 4].copy_from_slice(b"JUNK");
    std::fs::write(&zip_path, bytes).unwrap();
    let o = dataset(&zip_path, &tmp.path().join("out"), &["--resolution", "128"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("2 images written, 1 skipped"),
        "{}",
        text(&o.stdout)
    );
    let err = text(&o.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("b.png"))
        .expect("a warning naming b.png");
    assert!(line.starts_with("warning: skipping"), "{line}");
}

#[test]
fn deflated_zips_as_made_by_every_os_are_read() {
    let tmp = tempfile::tempdir().unwrap();
    let zip_path = tmp.path().join("photos.zip");
    let files = vec![
        ("a.png", encoded(&picture(16, 16, 1), ImageFormat::Png)),
        ("b.jpg", encoded(&picture(16, 16, 2), ImageFormat::Jpeg)),
    ];
    zip_of(&zip_path, &files, zip::CompressionMethod::Deflated);
    let o = dataset(&zip_path, &tmp.path().join("out"), &["--resolution", "128"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("2 images written, 0 skipped"),
        "{}",
        text(&o.stdout)
    );
}

// ---- 17. a full disk ----------------------------------------------------------------------------

/// `fpgan args...` allowed to write files of at most 64 blocks (32-64 KiB): writes past that
/// fail with EFBIG as they would with ENOSPC on a full disk (SIGXFSZ ignored, as a shell's
/// `trap "" XFSZ` leaves it for the program it runs).
#[cfg(unix)]
fn fpgan_with_small_disk(args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -f 64 && trap "" XFSZ && exec "$0" "$@""#)
        .arg(env!("CARGO_BIN_EXE_fpgan"))
        .args(args)
        .output()
        .unwrap()
}

#[cfg(unix)]
#[test]
fn a_full_disk_gives_one_clean_error_line_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..8u8 {
        picture(64, 64, i)
            .save(src.join(format!("{i}.png")))
            .unwrap();
    }
    for dest in ["full.zip", "full"] {
        let d = tmp.path().join(dest);
        let o = fpgan_with_small_disk(&dataset_args(&src, &d, &["--resolution", "128"]));
        let e = one_error_line(&o);
        assert!(e.contains("disk full?") && e.contains(s(&d)), "{e}");
        assert!(
            !text(&o.stderr).contains("ZipWriter"),
            "{}",
            text(&o.stderr)
        );
        assert!(!d.exists());
    }
    assert!(
        write_leftovers(tmp.path()).is_empty(),
        "{:?}",
        write_leftovers(tmp.path())
    );
}

// ---- further defects: a seeded fuzz of the decoders and the zip reader -----------------------

/// `base` with a few bytes changed, inserted, removed or the end cut off.
fn mutate(base: &[u8], rng: &mut SplitMix) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        if v.is_empty() {
            break;
        }
        let at = rng.below(v.len() as u32) as usize;
        match rng.below(5) {
            0 => v[at] = rng.below(256) as u8,
            1 => v[at] ^= 1 << rng.below(8),
            2 => v[at] = [0, 0xff, 0x7f, 0x80][rng.below(4) as usize],
            3 => v.insert(at, rng.below(256) as u8),
            _ => v.truncate(at.max(1)),
        }
    }
    v
}

fn fuzz_bases() -> Vec<(&'static str, Vec<u8>)> {
    let img = picture(24, 16, 9);
    let mut bases: Vec<(&str, Vec<u8>)> = [
        ("png", ImageFormat::Png),
        ("jpg", ImageFormat::Jpeg),
        ("gif", ImageFormat::Gif),
        ("webp", ImageFormat::WebP),
        ("bmp", ImageFormat::Bmp),
        ("tiff", ImageFormat::Tiff),
    ]
    .into_iter()
    .map(|(n, f)| (n, encoded(&img, f)))
    .collect();
    bases.push(("png", png_claiming(30_000, 30_000)));
    bases
}

#[test]
fn fuzzed_images_never_panic_the_decoders() {
    let mut rng = SplitMix(2024);
    for (kind, base) in fuzz_bases() {
        for case in 0..fuzz_cases() {
            let bytes = mutate(&base, &mut rng);
            let r = std::panic::catch_unwind(|| decode_limited(&bytes, 1 << 20).map(|_| ()));
            assert!(r.is_ok(), "{kind} case {case} panicked: bytes {:?}", bytes);
        }
    }
}

#[test]
fn fuzzed_zips_never_panic_the_reader() {
    let tmp = tempfile::tempdir().unwrap();
    let base_path = tmp.path().join("base.zip");
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("a.png", encoded(&picture(8, 8, 1), ImageFormat::Png)),
        ("dir/b.png", encoded(&picture(8, 8, 2), ImageFormat::Png)),
    ];
    let mut rng = SplitMix(7);
    for method in [
        zip::CompressionMethod::Stored,
        zip::CompressionMethod::Deflated,
    ] {
        zip_of(&base_path, &files, method);
        let base = std::fs::read(&base_path).unwrap();
        for case in 0..fuzz_cases() {
            let path = tmp.path().join("case.zip");
            std::fs::write(&path, mutate(&base, &mut rng)).unwrap();
            let r = std::panic::catch_unwind(|| {
                if let Ok(src) = Source::open(&path) {
                    for i in 0..src.len() {
                        let _ = src.read(i).map(|b| decode_limited(&b, 1 << 20).is_ok());
                    }
                }
            });
            assert!(r.is_ok(), "{method:?} case {case} panicked");
        }
    }
}

#[test]
fn the_binary_survives_a_folder_of_fuzzed_files() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut rng = SplitMix(99);
    // 280 files: the base's number keeps the two PNG bases' names apart
    for (n, (kind, base)) in fuzz_bases().into_iter().enumerate() {
        for i in 0..40 {
            std::fs::write(
                src.join(format!("{n}_{kind}_{i:03}.{kind}")),
                mutate(&base, &mut rng),
            )
            .unwrap();
        }
    }
    picture(16, 16, 0).save(src.join("zz_good.png")).unwrap();
    let o = dataset_within(
        &src,
        &tmp.path().join("o.zip"),
        &["--max-pixels", "1000000"],
        240,
    )
    .expect("still running after 240 s");
    assert_clean_exit(&o);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(write_leftovers(tmp.path()).is_empty());
}
