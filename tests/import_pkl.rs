//! `fpgan import` on an official snapshot pickle written by the official training loop's code
//! (tests/fixtures/official_faster128.pkl, made by scripts/fixtures/make_official_fixture.py):
//! generate then gives the official gen_images.py images, every tensor lands under its name,
//! training continues in reference mode only, and anything but an official pickle is refused.
mod common;

use common::{fixture, formula_weight, name_salt, shapes, text, train_args};
use fpgan::nets::generator::{GenCfg, GeneratorConfig};
use fpgan::snapshot::official::{detect_generator, state_shapes};
use fpgan::util::safetensors;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::Tensor;

fn pkl() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/official_faster128.pkl")
}

/// `fpgan import --pkl pkl --out out`.
fn import_cmd(pkl: &Path, out: &Path) -> std::process::Output {
    common::fpgan(&[
        "import",
        "--pkl",
        pkl.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
}

/// `fpgan import` of `pkl` into `out`; the snapshot file it wrote.
fn import(pkl: &Path, out: &Path) -> PathBuf {
    let o = import_cmd(pkl, out);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let stdout = text(&o.stdout);
    assert!(
        stdout.contains("faster at 128x128, ngf 8, z_dim 32"),
        "{stdout}"
    );
    let file = out.join("network-snapshot-001234.000.safetensors");
    assert!(file.is_file(), "{stdout}");
    file
}

#[test]
fn imported_pickle_generates_the_official_images() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("imported");
    import(&pkl(), &out);
    let gen = tmp.path().join("gen");
    let o = common::fpgan(&[
        "generate",
        "--network",
        out.to_str().unwrap(),
        "--seeds",
        "0-3",
        "--outdir",
        gen.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let fx: HashMap<String, Tensor> = fixture("official.safetensors");
    let mut images = Vec::new();
    for s in 0..4 {
        let want = &fx[&format!("pkl.seed{s}")];
        let png = image::open(gen.join(format!("seed{s:04}.png")))
            .unwrap()
            .to_rgb8();
        let got = Tensor::from_slice(png.as_raw()).view([128, 128, 3]);
        let diff = (got.to_kind(tch::Kind::Int) - want.to_kind(tch::Kind::Int))
            .abs()
            .max()
            .int64_value(&[]);
        assert!(diff <= 1, "seed {s}: {diff} levels from gen_images.py");
        images.push(got);
    }
    assert_ne!(images[0], images[1], "seeds must give different images");
}

/// A class-conditional official snapshot: `generate --class` gives gen_images.py --class's images.
#[test]
fn imported_conditional_pickle_generates_each_class_as_the_official() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("imported");
    let pkl = pkl().with_file_name("official_faster128_cond.pkl");
    import(&pkl, &out);
    let gen = tmp.path().join("gen");
    let generate = |class: &str| {
        common::fpgan(&[
            "generate",
            "--network",
            out.to_str().unwrap(),
            "--seeds",
            "0-3",
            "--class",
            class,
            "--outdir",
            gen.to_str().unwrap(),
            "--device",
            "cpu",
        ])
    };
    let o = generate("all");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let fx: HashMap<String, Tensor> = fixture("official.safetensors");
    for (k, s) in [(0, 0), (0, 3), (4, 1), (4, 2)] {
        let want = &fx[&format!("pklc.class{k}.seed{s}")];
        let name = format!("class{k:02}-seed{s:04}.png");
        let png = image::open(gen.join(&name)).unwrap().to_rgb8();
        let got = Tensor::from_slice(png.as_raw()).view([128, 128, 3]);
        let diff = (got.to_kind(tch::Kind::Int) - want.to_kind(tch::Kind::Int))
            .abs()
            .max()
            .int64_value(&[]);
        assert!(
            diff <= 1,
            "{name}: {diff} levels from gen_images.py --class {k}"
        );
    }
    let grid = image::open(gen.join("grid.png")).unwrap();
    assert_eq!(
        (grid.width(), grid.height()),
        (4 * 128, 5 * 128),
        "a row per class"
    );
    let o = generate("5");
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("from 0 to 4"),
        "{}",
        text(&o.stderr)
    );
}

/// The fixture script's constants: every parameter of G (prefix "G.") and of D ("D.") is the
/// constant name_salt(prefix + official name); G_ema's follow the formula.
#[test]
fn every_tensor_lands_under_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    let file = import(&pkl(), &tmp.path().join("imported"));
    let (t, meta) = safetensors::load(&file).unwrap();
    let params = |prefix: &str| -> Vec<(String, &Tensor)> {
        t.iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .filter(|(n, _)| !n.contains("running_") && !n.ends_with("weight_u"))
            .filter(|(n, _)| !n.ends_with("weight_v"))
            .map(|(n, x)| (n[prefix.len()..].to_string(), x))
            .collect()
    };
    let check = |prefix: &str, official: &str, want: &dyn Fn(&str, &Tensor) -> Tensor| {
        let ps = params(prefix);
        assert!(ps.len() > 10, "{prefix}: {} parameters", ps.len());
        for (n, x) in ps {
            let w = want(&format!("{official}{n}"), x);
            assert!(x.allclose(&w, 0.0, 0.0, false), "{prefix}{n}");
        }
    };
    let constant = |name: &str, x: &Tensor| x.full_like(name_salt(name));
    check("G.", "G.", &constant);
    check("D.", "D.", &constant);
    check("F.scratch.", "D.feature_network.scratch.", &constant);
    check("G_ema.", "", &|name, x| {
        formula_weight(&x.size(), name_salt(name))
    });
    assert_eq!(meta["progress"]["cur_nimg"], 1_234_000);
    assert_eq!(meta["generator"]["cfg"], "faster");
    assert_eq!(meta["generator"]["z_dim"], 32);
    assert!(meta["imported_from"].as_str().unwrap().ends_with(".pkl"));
}

#[test]
fn imported_snapshot_trains_on_in_reference_mode_only() {
    let tmp = tempfile::tempdir().unwrap();
    let snap = import(&pkl(), &tmp.path().join("imported"));
    let data = shapes(tmp.path());
    let runs = tmp.path().join("runs");
    let (d, r) = (data.to_str().unwrap(), runs.to_str().unwrap());
    let snap_s = snap.to_str().unwrap();
    let mut args = train_args(d, r, "0.004");
    args.extend(["--z-dim", "32", "--resume", snap_s]);
    let o = common::fpgan(&args);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("imported from") && err.contains("--resume-mode reference"),
        "{err}"
    );
    // refused from the header: nothing written beside the snapshot (no .lock, no log.txt)
    let beside: Vec<_> = std::fs::read_dir(snap.parent().unwrap()).unwrap().collect();
    assert_eq!(beside.len(), 1, "{beside:?}");
    args.extend(["--resume-mode", "reference"]);
    let o = common::fpgan(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("Copied the weights"),
        "{}",
        text(&o.stderr)
    );
    // a new run whose G started from the pickle's G: two Adam steps of lr 2e-4 away from it
    let run = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let newest = fpgan::snapshot::snapshots_in(&run)[0].clone();
    let (t, meta) = safetensors::load(&newest).unwrap();
    assert!(meta["imported_from"].is_null());
    let w = &t["G.synthesis.to_big.weight_orig"];
    let moved = (w - w.full_like(name_salt("G.synthesis.to_big.weight_orig")))
        .abs()
        .max()
        .double_value(&[]);
    assert!(moved < 1e-2, "G moved {moved} from the imported weights");
}

#[test]
fn anything_but_an_official_pickle_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |bytes: &[u8], name: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let out = tmp.path().join(format!("{name}-out"));
        let o = import_cmd(&p, &out);
        assert!(!o.status.success(), "{name} was accepted");
        assert!(!out.exists(), "{name}: output written");
        let err = text(&o.stderr);
        assert!(err.contains(name) && !err.contains("panicked"), "{err}");
        err
    };
    // os.system("echo hi") as a pickle: refused unread, naming the global
    let evil = b"\x80\x04cos\nsystem\n\x8c\x07echo hi\x85R.";
    let err = run(evil, "evil.pkl");
    assert!(
        err.contains("os.system") && err.contains("refused"),
        "{err}"
    );
    let whole = std::fs::read(pkl()).unwrap();
    let err = run(&whole[..whole.len() / 2], "truncated.pkl");
    assert!(err.contains("truncated"), "{err}");
    let err = run(b"\x80\x04}\x94.", "empty.pkl");
    assert!(err.contains("no 'G' network"), "{err}");
    let err = run(b"\x89PNG\r\n\x1a\n", "image.png");
    assert!(err.contains("is not a Python pickle"), "{err}");
}

/// fpgan's four configurations are told apart by their names and shapes alone, at every size.
#[test]
fn configurations_are_detected_from_names_and_shapes() {
    for cfg in GenCfg::ALL {
        for (res, ngf) in [(128, 16), (256, 8), (512, 8)] {
            let config = GeneratorConfig {
                ngf,
                z_dim: 64,
                ..GeneratorConfig::new(cfg, res)
            };
            let shapes = state_shapes(&config).unwrap();
            assert_eq!(detect_generator(&shapes, res, 64, 0).unwrap(), config);
        }
    }
    let mut shapes = state_shapes(&GeneratorConfig::new(GenCfg::Faster, 128)).unwrap();
    shapes.insert("synthesis.extra.weight".into(), vec![3]);
    let e = detect_generator(&shapes, 128, 256, 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("none of fpgan's configurations"), "{e}");
}

/// An import never lands in a training run's directory nor replaces a snapshot it did not
/// write; an earlier import of the same pickle is replaced.
#[test]
fn import_keeps_out_of_runs_and_other_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("imported");
    let file = import(&pkl(), &out);
    import(&pkl(), &out);
    let refused = |dir: &Path, what: &str| {
        let o = import_cmd(&pkl(), dir);
        assert!(!o.status.success(), "{what}: accepted");
        let err = text(&o.stderr);
        assert!(err.contains(what) && !err.contains("panicked"), "{err}");
    };
    let run = tmp.path().join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::write(run.join("training_options.json"), "{}").unwrap();
    refused(&run, "training run's directory");
    assert_eq!(std::fs::read_dir(&run).unwrap().count(), 1);
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let name = file.file_name().unwrap();
    std::fs::write(other.join(name), b"weights of a run").unwrap();
    refused(&other, "not written by fpgan import");
    assert_eq!(
        std::fs::read(other.join(name)).unwrap(),
        b"weights of a run"
    );
}
