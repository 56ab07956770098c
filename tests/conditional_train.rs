//! Class-conditional training (`train --cond`): labels from the dataset through the loader into
//! D, per-class grids (reals and fakes, one row per class), snapshots, exact resume, per-class
//! generation, and FID drawing classes from the dataset's labels as the reference's metrics.
mod common;

use common::{dataset, fpgan, fpgan_with_home, private_home, run_dir, text, train_args};
use fpgan::eval::detector::Detector;
use fpgan::eval::evaluator::generated_features;
use fpgan::nets::generator::{GenCfg, Generator, GeneratorConfig};
use fpgan::snapshot::snapshots_in;
use fpgan::util::images::to_uint8;
use fpgan::util::safetensors;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// The colour of class k: red, green, blue.
const COLOURS: [[u8; 3]; 3] = [[230, 20, 20], [20, 230, 20], [20, 20, 230]];

/// A labelled dataset of `counts[k]` images of class k (folders c0, c1, c2; each image class k's
/// colour with a darker square at a varying place), prepared at 128 by `fpgan dataset`.
fn labelled_dataset(dir: &Path, counts: [usize; 3]) -> PathBuf {
    let src = dir.join("src");
    for (k, &n) in counts.iter().enumerate() {
        for i in 0..n {
            let mut img = image::RgbImage::from_pixel(64, 64, image::Rgb(COLOURS[k]));
            for y in 0..16 {
                for x in 0..16 {
                    img.put_pixel(8 * i as u32 + x, 4 * i as u32 + y, image::Rgb([40; 3]));
                }
            }
            let p = src.join(format!("c{k}/{i}.png"));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            img.save(p).unwrap();
        }
    }
    let dest = dir.join("labelled");
    let o = dataset(&src, &dest, &["--resolution", "128", "--labels", "folders"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    dest
}

/// `train_args` with `--cond` and the automatic grid (one row per class).
fn cond_args<'a>(data: &'a str, out: &'a str, kimg: &'a str) -> Vec<&'a str> {
    let mut a = train_args(data, out, kimg);
    let g = a.iter().position(|x| *x == "--grid").unwrap();
    a.drain(g..g + 2);
    a.push("--cond");
    a
}

/// Mean colour of grid row `y` (tiles of 128 px).
fn row_mean(img: &image::RgbImage, y: u32) -> [f64; 3] {
    let mut s = [0.0; 3];
    for yy in y * 128..(y + 1) * 128 {
        for x in 0..img.width() {
            let p = img.get_pixel(x, yy).0;
            (0..3).for_each(|c| s[c] += p[c] as f64);
        }
    }
    s.map(|v| v / (128 * img.width()) as f64)
}

#[test]
fn a_conditional_run_trains_with_class_rows_resumes_exactly_and_generates_per_class() {
    let _rng = common::torch_rng();
    let tmp = tempfile::tempdir().unwrap();
    let data = labelled_dataset(tmp.path(), [2, 3, 2]);
    let data = data.to_str().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let o = fpgan(&cond_args(data, a.to_str().unwrap(), "0.012"));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let dir = run_dir(&a);
    assert!(
        dir.to_string_lossy().ends_with("-cond"),
        "{}",
        dir.display()
    );
    let opts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("training_options.json")).unwrap()).unwrap();
    assert_eq!(opts["classes"], 3);
    assert_eq!(opts["grid"], serde_json::json!([8, 3]));
    // reals.png: row k holds images of class k only
    let reals = image::open(dir.join("reals.png")).unwrap().to_rgb8();
    assert_eq!(reals.dimensions(), (8 * 128, 3 * 128));
    for k in 0..3u32 {
        let m = row_mean(&reals, k);
        let top = (0..3).max_by(|&i, &j| m[i].total_cmp(&m[j])).unwrap();
        assert_eq!(
            top, k as usize,
            "row {k} of reals.png has mean colour {m:?}"
        );
    }
    let fakes = image::open(dir.join("fakes000000.png")).unwrap().to_rgb8();
    assert_eq!(fakes.dimensions(), (8 * 128, 3 * 128));

    // the same run stopped at 0.006 kimg and resumed ends with the same state, bit for bit
    let o = fpgan(&cond_args(data, b.to_str().unwrap(), "0.006"));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = fpgan(&cond_args(data, b.to_str().unwrap(), "0.012"));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("Resuming"), "{}", text(&o.stdout));
    let (ta, ma) = safetensors::load(&snapshots_in(&dir)[0]).unwrap();
    let (tb, _) = safetensors::load(&snapshots_in(&run_dir(&b))[0]).unwrap();
    assert_eq!(ma["generator"]["classes"], 3);
    assert!(ta.contains_key("G_ema.synthesis.embed.weight"));
    assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>());
    for (name, t) in &ta {
        assert!(t.equal(&tb[name]), "{name} differs after the resume");
    }

    // the same command without --cond is another (unconditional) run, and says how to condition
    let o = fpgan(&train_args(data, a.to_str().unwrap(), "0.002"));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("add --cond"),
        "{}",
        text(&o.stderr)
    );

    // one image per class and seed, and a grid with a row per class
    let gen = tmp.path().join("gen");
    let o = fpgan(&[
        "generate",
        "--network",
        dir.to_str().unwrap(),
        "--seeds",
        "0-1",
        "--class",
        "all",
        "--outdir",
        gen.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    for k in 0..3 {
        for s in 0..2 {
            assert!(gen.join(format!("class{k:02}-seed{s:04}.png")).is_file());
        }
    }
    let (w, h) = image::image_dimensions(gen.join("grid.png")).unwrap();
    assert_eq!(w * 3, h * 2, "two seeds by three classes: {w}x{h}");
    // one class: a --grid of the caller's shape
    let one = tmp.path().join("one");
    let o = fpgan(&[
        "generate",
        "--network",
        dir.to_str().unwrap(),
        "--seeds",
        "0-3",
        "--class",
        "1",
        "--grid",
        "2x2",
        "--outdir",
        one.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let (w, h) = image::image_dimensions(one.join("grid.png")).unwrap();
    assert_eq!(w, h, "--grid 2x2: {w}x{h}");
    // a class the network lacks, and no class at all
    for (class, says) in [
        ("3", "--class 3: give a class from 0 to 2 or `all`"),
        ("cat", "give a class index (0, 1, ...) or `all`"),
        ("-1", "give a class index (0, 1, ...) or `all`"),
    ] {
        let d = dir.to_str().unwrap();
        let o = fpgan(&[
            "generate",
            "--network",
            d,
            "--class",
            class,
            "--device",
            "cpu",
        ]);
        let err = text(&o.stderr);
        assert!(!o.status.success() && err.contains(says), "{err}");
    }
    // metrics of a conditional network on images without labels: refused before any feature
    let raw = common::shapes(tmp.path());
    let (n, r) = (dir.to_str().unwrap(), raw.to_str().unwrap());
    let o = fpgan(&common::quick_metrics_args(n, r));
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(
        !o.status.success() && err.contains("has no labels"),
        "{err}"
    );
    assert!(!out.contains("real images"), "{out}");
    let o = fpgan(&[
        "generate",
        "--network",
        dir.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    let err = text(&o.stderr);
    assert!(
        !o.status.success() && err.contains("class-conditional (3 classes): give --class K"),
        "{err}"
    );
    // a latent walk of class 1 starts at class 1's image of its first seed
    let walk = tmp.path().join("walk");
    let o = fpgan(&[
        "generate",
        "--network",
        dir.to_str().unwrap(),
        "--seeds",
        "0,1",
        "--class",
        "1",
        "--interpolate",
        "--frames",
        "2",
        "--format",
        "png-frames",
        "--outdir",
        walk.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let png = |p: PathBuf| image::open(p).unwrap().to_rgb8();
    let first = png(walk.join("walk/frame00000.png"));
    assert!(
        first == png(gen.join("class01-seed0000.png")),
        "class 1's seed 0"
    );
    assert!(
        first != png(gen.join("class00-seed0000.png")),
        "not class 0's"
    );
}

#[test]
fn cond_needs_a_labelled_dataset() {
    let _rng = common::torch_rng();
    let tmp = tempfile::tempdir().unwrap();
    let data = common::shapes(tmp.path());
    let out = tmp.path().join("out");
    let o = fpgan(&cond_args(
        data.to_str().unwrap(),
        out.to_str().unwrap(),
        "0.002",
    ));
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("--cond")
            && err.contains("no class labels")
            && err.contains("--labels folders"),
        "{err}"
    );
    assert!(
        !err.contains("prepared"),
        "raw images are refused before they are prepared: {err}"
    );
    assert!(!out.exists() || std::fs::read_dir(&out).unwrap().next().is_none());
    // a prepared dataset without labels: refused as well
    let plain = tmp.path().join("plain.zip");
    assert!(dataset(&data, &plain, &["--resolution", "128"])
        .status
        .success());
    let err = text(
        &fpgan(&cond_args(
            plain.to_str().unwrap(),
            out.to_str().unwrap(),
            "0.002",
        ))
        .stderr,
    );
    assert!(err.contains("no class labels"), "{err}");
}

/// The metrics of a conditional G draw each image's class from the dataset's labels: with every
/// label k they are the features of class-k images from the same latents; without labels they
/// are refused.
#[test]
fn conditional_metrics_draw_classes_from_the_dataset_labels() {
    let _rng = common::torch_rng();
    tch::manual_seed(3);
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let config = GeneratorConfig {
        ngf: 8,
        classes: 3,
        ..GeneratorConfig::new(GenCfg::Faster, 128)
    };
    let g = Generator::new(&vs.root(), &config).unwrap();
    let det = Detector::load(Device::Cpu).unwrap();
    let feats =
        |labels: &[i64]| generated_features(&det, &g, Device::Cpu, 3, 3, 7, Some(labels)).unwrap();
    let by_class = |k: i64| {
        let _guard = tch::no_grad_guard();
        tch::manual_seed(7);
        let z = Tensor::randn([3, config.z_dim], (Kind::Float, Device::Cpu));
        let _ = Tensor::randint(2, [3], (Kind::Int64, Device::Cpu)); // the draw of the items
        let c = Tensor::full([3], k, (Kind::Int64, Device::Cpu));
        det.features(&to_uint8(&g.forward_c(&z, Some(&c), false)))
            .unwrap()
    };
    let (f1, f2) = (feats(&[1, 1]), feats(&[2, 2]));
    assert!(f1.allclose(&by_class(1), 1e-5, 1e-5, false));
    assert!(f2.allclose(&by_class(2), 1e-5, 1e-5, false));
    assert!(
        !f1.allclose(&f2, 1e-3, 1e-3, false),
        "the class changes the images"
    );
    let err = generated_features(&det, &g, Device::Cpu, 3, 3, 7, None).unwrap_err();
    assert!(format!("{err:#}").contains("labels"), "{err:#}");
    let err = generated_features(&det, &g, Device::Cpu, 3, 3, 7, Some(&[0, 5])).unwrap_err();
    assert!(format!("{err:#}").contains("label 5"), "{err:#}");
}

/// `fpgan metrics` scores a conditional snapshot against its labelled dataset.
#[test]
fn metrics_cli_scores_a_conditional_network() {
    let _rng = common::torch_rng();
    let tmp = tempfile::tempdir().unwrap();
    let home = private_home(tmp.path());
    let data = labelled_dataset(tmp.path(), [2, 2, 2]);
    let out = tmp.path().join("out");
    let o = fpgan(&cond_args(
        data.to_str().unwrap(),
        out.to_str().unwrap(),
        "0.002",
    ));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = fpgan_with_home(
        &home,
        &[
            "metrics",
            "--network",
            run_dir(&out).to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--metrics",
            "fid50k_full",
            "--num-gen",
            "4",
            "--device",
            "cpu",
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let line = text(&o.stdout);
    assert!(
        line.contains("metrics: 4 generated images, about"),
        "the estimate up front: {line}"
    );
    let fid: f64 = line
        .lines()
        .find_map(|l| l.strip_prefix("metrics: fid50k_full = "))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no FID in {line}"));
    assert!(fid.is_finite() && fid > 0.0, "{fid}");
}

/// The grid of a conditional trainer cycles through the dataset's classes row by row, and its
/// fakes are G_ema's images of those classes.
#[test]
fn the_sample_grid_has_a_row_per_class_present() {
    let _rng = common::torch_rng();
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = common::tiny_options(tmp.path());
    (opts.classes, opts.grid) = (4, (2, 3));
    let mut t = fpgan::train::trainer::Trainer::new(&opts, Device::Cpu).unwrap();
    let grid = |t: &fpgan::train::trainer::Trainer| {
        Vec::<i64>::try_from(t.grid_c.as_ref().unwrap()).unwrap()
    };
    assert_eq!(grid(&t), [0, 0, 1, 1, 2, 2]);
    t.set_label_distribution(&[3, 1, 3]).unwrap();
    assert_eq!(grid(&t), [1, 1, 3, 3, 1, 1]);
    assert!(t.set_label_distribution(&[1, 4]).is_err());
    let fakes = t.fakes();
    let want = tch::no_grad(|| {
        let c = t.grid_c.as_ref().unwrap();
        fpgan::util::images::to_uint8_grid(&t.g_ema.forward_c(&t.grid_z, Some(c), false))
    });
    assert!(fakes.equal(&want));
    let class0 = tch::no_grad(|| {
        fpgan::util::images::to_uint8_grid(&t.g_ema.forward_c(&t.grid_z, None, false))
    });
    assert!(
        !fakes.equal(&class0),
        "the grid's classes change the images"
    );
}
