//! Helpers shared by the integration tests: run the `fpgan` binary, read its output, find
//! leftovers of interrupted writes, wait for a training run's snapshots.
#![allow(dead_code)] // each test binary uses a subset
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// Run `fpgan args...` to completion.
pub fn fpgan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fpgan"))
        .args(args)
        .output()
        .expect("run fpgan")
}

/// `fpgan dataset --source src --dest dest extra...`'s arguments.
pub fn dataset_args<'a>(src: &'a Path, dest: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let (s, d) = (src.to_str().unwrap(), dest.to_str().unwrap());
    let mut args = vec!["dataset", "--source", s, "--dest", d];
    args.extend(extra);
    args
}

/// Run `fpgan dataset --source src --dest dest extra...` to completion.
pub fn dataset(src: &Path, dest: &Path, extra: &[&str]) -> Output {
    fpgan(&dataset_args(src, dest, extra))
}

/// Run `fpgan args...` with `FPGAN_HOME=home`.
pub fn fpgan_with_home(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fpgan"))
        .env("FPGAN_HOME", home)
        .args(args)
        .output()
        .expect("run fpgan")
}

/// A private FPGAN_HOME in `dir` whose weights link to the installed ones (its metrics cache
/// starts empty).
pub fn private_home(dir: &Path) -> PathBuf {
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let weights = fpgan::util::home::weight_file(fpgan::util::home::FID_FILE).unwrap();
    std::os::unix::fs::symlink(weights.parent().unwrap(), home.join("weights")).unwrap();
    home
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Names in `dir` left by unfinished dataset writes (`*.partial-*`, `*.old-*`).
pub fn write_leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".partial-") || n.contains(".old-"))
        .collect()
}

/// Wait (up to 2 minutes) until the first run directory under `outdir` holds `n` snapshots,
/// failing if `child` exits first.
pub fn wait_for_snapshots(child: &mut Child, outdir: &Path, n: usize) {
    let t0 = Instant::now();
    loop {
        let have = outdir
            .read_dir()
            .ok()
            .and_then(|mut d| d.next())
            .map(|d| fpgan::snapshot::snapshots_in(&d.unwrap().path()).len())
            .unwrap_or(0);
        if have >= n {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "fewer than {n} snapshots after 2 minutes"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "fpgan exited before writing {n} snapshots"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A folder of 12 generated RGBA images (prepared on the fly by `train --res 128`).
pub fn shapes(dir: &Path) -> PathBuf {
    let d = dir.join("shapes");
    fpgan::data::synthetic::write_shapes(&d, 12, 7).unwrap();
    d
}

/// `fpgan train` on `data` with a tiny CPU configuration (faster, 128 px, ngf 8, batch 2,
/// tick 0.004 kimg, a snapshot every tick, metrics off) for `kimg`.
pub fn train_args<'a>(data: &'a str, out: &'a str, kimg: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--data",
        data,
        "--outdir",
        out,
        "--res",
        "128",
        "--cfg",
        "faster",
        "--ngf",
        "8",
        "--batch",
        "2",
        "--tick",
        "0.004",
        "--snap",
        "1",
        "--grid",
        "2x1",
        "--device",
        "cpu",
        "--kimg",
        kimg,
        "--metrics",
        "none",
    ]
}

/// Give `flag` the value `value` in a command line such as [`train_args`]'s.
pub fn set_flag<'a>(args: &mut [&'a str], flag: &str, value: &'a str) {
    let i = args.iter().position(|a| *a == flag);
    args[i.unwrap_or_else(|| panic!("{flag} is not in {args:?}")) + 1] = value;
}

/// The only run directory under `out`.
pub fn run_dir(out: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

/// The lines of a JSON-lines file (stats.jsonl, metric-*.jsonl), parsed.
pub fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Make every floating-point weight of G in the snapshot `path` NaN (a run that diverged).
pub fn poison_generator(path: &Path) {
    let (tensors, meta) = fpgan::util::safetensors::load(path).unwrap();
    let tensors: Vec<(String, tch::Tensor)> = tensors
        .into_iter()
        .map(
            |(n, t)| match n.starts_with("G.") && t.is_floating_point() {
                true => (n, t.full_like(f64::NAN)),
                false => (n, t),
            },
        )
        .collect();
    fpgan::util::safetensors::save(path, &tensors, &meta).unwrap();
}

/// `fpgan metrics` of `network` on `data` from 4 generated images on the CPU (a quick look).
pub fn quick_metrics_args<'a>(network: &'a str, data: &'a str) -> Vec<&'a str> {
    vec![
        "metrics",
        "--network",
        network,
        "--data",
        data,
        "--num-gen",
        "4",
        "--device",
        "cpu",
    ]
}

/// Training options of a tiny CPU run (faster, 128 px, ngf 8, batch 4 in chunks of 2, metrics
/// off) writing under `outdir`.
pub fn tiny_options(outdir: &Path) -> fpgan::train::options::TrainOptions {
    use fpgan::nets::generator::GenCfg;
    use fpgan::train::options::TrainOptions;
    TrainOptions {
        outdir: outdir.to_path_buf(),
        ngf: 8,
        batch: 4,
        batch_gpu: 2,
        kimg: 1.0,
        tick: 1.0,
        snap: 1,
        device: "cpu".into(),
        grid: (2, 1),
        ..TrainOptions::without_data("test", GenCfg::Faster, 128)
    }
}

/// A snapshot holding only what `generate` reads (G_ema and the header) of `cfg` at 128 px,
/// ngf 8, with every NoiseInjection weight (G's scalar parameters) set to `noise`; returns its bytes.
/// The weights are drawn after `tch::manual_seed(0)`, under the caller's [`torch_rng`] lock: some
/// unseeded initialisations of these tiny widths give NaN images in eval mode.
pub fn g_ema_snapshot(
    rng: &RngLock,
    path: &Path,
    cfg: fpgan::nets::generator::GenCfg,
    noise: f64,
) -> Vec<u8> {
    g_ema_snapshot_c(rng, path, cfg, noise, 0)
}

/// [`g_ema_snapshot`] of a generator with `classes` classes (0: unconditional).
pub fn g_ema_snapshot_c(
    _rng: &RngLock,
    path: &Path,
    cfg: fpgan::nets::generator::GenCfg,
    noise: f64,
    classes: i64,
) -> Vec<u8> {
    use fpgan::nets::generator::{Generator, GeneratorConfig};
    use fpgan::snapshot::{FORMAT, VERSION};
    use fpgan::util::safetensors;
    let config = GeneratorConfig {
        ngf: 8,
        classes,
        ..GeneratorConfig::new(cfg, 128)
    };
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    tch::manual_seed(0);
    Generator::new(&vs.root(), &config).unwrap();
    tch::no_grad(|| {
        for (_, mut v) in vs.variables() {
            if v.numel() == 1 {
                let _ = v.fill_(noise);
            }
        }
    });
    let meta = serde_json::json!({"format": FORMAT, "version": VERSION, "generator": config});
    safetensors::save(path, &safetensors::export(&vs, "G_ema."), &meta).unwrap();
    std::fs::read(path).unwrap()
}

/// The project virtualenv's python (`$FPGAN_VENV`, default `<repo>/.venv`), made by the set-up.
pub fn venv_python() -> PathBuf {
    let venv = std::env::var_os("FPGAN_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    venv.join("bin/python")
}

/// The salt of a name in the parity fixtures' formula (the scripts' name_salt).
pub fn name_salt(name: &str) -> f64 {
    let s: u64 = name
        .bytes()
        .enumerate()
        .map(|(i, c)| (i as u64 + 1) * c as u64)
        .sum();
    (s % 1000) as f64 / 10.0
}

/// The closed-form weights of the parity fixtures (the same formula as the fixture scripts):
/// sin(0.37 i + salt) / sqrt(fan_in), in f64 then f32; i the flat index, fan_in the product of
/// the dims after the first (the length for 1-D tensors).
pub fn formula_weight(shape: &[i64], salt: f64) -> tch::Tensor {
    use tch::{Device, Kind, Tensor};
    let n: i64 = shape.iter().product();
    let fan_in: i64 = if shape.len() > 1 {
        shape[1..].iter().product()
    } else {
        shape[0]
    };
    let i = Tensor::arange(n, (Kind::Double, Device::Cpu));
    ((i * 0.37 + salt).sin() / (fan_in as f64).sqrt())
        .to_kind(Kind::Float)
        .reshape(shape)
}

/// A committed fixture `tests/fixtures/<file>` (safetensors) as a map from name to tensor.
pub fn fixture<C: FromIterator<(String, tch::Tensor)>>(file: &str) -> C {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(file);
    tch::Tensor::read_safetensors(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .collect()
}

/// Proof that a test holds torch's random generator ([`torch_rng`]).
pub type RngLock = std::sync::MutexGuard<'static, ()>;

/// Hold torch's random generator for a whole test. It is one per process and the tests of a
/// binary run as threads: in a binary whose tests seed it and expect its draws (weights, latents,
/// augmentation), every test that draws takes this first.
pub fn torch_rng() -> RngLock {
    static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}

/// Fuzz cases per input: 400, or `FPGAN_FUZZ_CASES` for a deeper run.
pub fn fuzz_cases() -> usize {
    std::env::var("FPGAN_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400)
}
