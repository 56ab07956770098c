//! Training on CPU with tiny widths: updates, EMA, frozen features, snapshots, exact resume,
//! SIGKILL and Ctrl-C, corrupt checkpoints, generate, output files.
use fpgan::eval::generate::seed_latent;
use fpgan::snapshot::snapshots_in;
use fpgan::train::ema::EmaSchedule;
use fpgan::train::optim::{Adam, AdamConfig};
use fpgan::train::options::TrainOptions;
use fpgan::train::{state::SnapshotMeta, trainer::Progress, trainer::Trainer};
use fpgan::util::safetensors;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod common;
use common::{
    fpgan, run_dir, set_flag, shapes, text, tiny_options, train_args, wait_for_snapshots,
};
use tch::{nn, Device, Kind, Tensor};

fn copy_vars(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<_> = vs
        .variables()
        .into_iter()
        .map(|(n, t)| (n, t.copy()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn changed(vs: &nn::VarStore, before: &[(String, Tensor)], trainable_only: bool) -> usize {
    let now = vs.variables();
    before
        .iter()
        .filter(|(n, _)| !trainable_only || now[n].requires_grad())
        .filter(|(n, t)| !now[n].equal(t))
        .count()
}

#[test]
fn iterations_update_g_d_and_ema_and_never_the_feature_network() {
    let _rng = common::torch_rng();
    let tmp = tempfile::tempdir().unwrap();
    let mut t = Trainer::new(&tiny_options(tmp.path()), Device::Cpu).unwrap();
    let (g0, d0, f0) = (copy_vars(&t.gvs), copy_vars(&t.dvs), copy_vars(&t.fvs));
    let ema0 = copy_vars(&t.ema_vs);
    let reals = Tensor::randint(256, [4, 3, 128, 128], (Kind::Uint8, Device::Cpu));
    let (g, d) = t.step(&reals, None).unwrap().values();
    assert!(g.is_finite() && d.is_finite());
    // first update: beta = 0, so G_ema equals G exactly
    let g = t.gvs.variables();
    for (n, e) in t.ema_vs.variables() {
        assert!(
            e.equal(&g[&n]),
            "{n}: G_ema must equal G after the first update"
        );
    }
    t.step(&reals, None).unwrap();
    let g_trainable = t.gvs.trainable_variables().len();
    // parameters unused at 128 (feat_256, se_256) get no gradient and do not move
    let unused = t
        .gvs
        .variables()
        .keys()
        .filter(|n| n.contains("_256."))
        .filter(|n| t.gvs.variables()[*n].requires_grad())
        .count();
    assert_eq!(
        changed(&t.gvs, &g0, true),
        g_trainable - unused,
        "every used G parameter moved"
    );
    assert_eq!(
        changed(&t.dvs, &d0, true),
        t.dvs.trainable_variables().len(),
        "every D parameter moved"
    );
    assert!(changed(&t.ema_vs, &ema0, false) > 0);
    assert_eq!(
        changed(&t.fvs, &f0, false),
        0,
        "the feature network never changes"
    );
    assert_eq!(
        (
            t.progress.cur_nimg,
            t.progress.batch_idx,
            t.opt_g.step,
            t.opt_d.step
        ),
        (8, 2, 2, 2)
    );
}

#[test]
fn ema_schedule_follows_the_reference() {
    let _rng = common::torch_rng();
    let s = EmaSchedule::for_batch(64);
    assert_eq!(s.ema_kimg, 20.0);
    assert_eq!(s.beta(0, 64), 0.0);
    let fin = s.beta(10_000_000, 64);
    assert!((fin - 0.5f64.powf(1.0 / 312.5)).abs() < 1e-12 && (fin - 0.99778).abs() < 1e-5);
    // during the rampup: ema_nimg = 0.05 * cur_nimg
    assert!((s.beta(64_000, 64) - 0.5f64.powf(64.0 / 3200.0)).abs() < 1e-12);
}

/// The fixture of scripts/fixtures/make_adam_fixture.py (torch.optim.Adam in the reference's loop).
fn adam_fixture() -> std::collections::BTreeMap<String, Tensor> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/adam.safetensors");
    safetensors::load(&path).unwrap().0
}

/// Largest |a - b| over two tensors.
fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn adam_steps_as_torch_optim_adam_in_the_reference_loop() {
    let _rng = common::torch_rng();
    let fx = adam_fixture();
    let forms = [
        ("G", AdamConfig::generator(2e-4), false),
        ("D", AdamConfig::discriminator(2e-4), false),
        ("G", AdamConfig::generator(2e-4), true),
        ("D", AdamConfig::discriminator(2e-4), true),
    ];
    for (name, config, capturable) in forms {
        let vs = nn::VarStore::new(Device::Cpu);
        let params: Vec<Tensor> = (0..4)
            .map(|i| {
                let p0 = &fx[&format!("p0.{i}")];
                let p = vs.root().zeros(&format!("p{i}"), &p0.size());
                tch::no_grad(|| p.shallow_clone().copy_(p0));
                p
            })
            .collect();
        let mut opt = Adam::new(&vs, config);
        if capturable {
            opt.make_capturable(); // bias corrections in device tensors, for CUDA graphs
        }
        for step in 0..3 {
            opt.zero_grad().unwrap();
            // d/dp sum(p * g) = g exactly, NaN and inf included; p3 never has a gradient
            let loss = (0..4)
                .filter_map(|i| {
                    fx.get(&format!("grad.{step}.{i}"))
                        .map(|g| (&params[i] * g).sum(Kind::Float))
                })
                .reduce(|a, b| a + b)
                .unwrap();
            loss.backward();
            opt.step().unwrap();
            for (i, p) in params.iter().enumerate() {
                for form in ["single", "multi"] {
                    let want = &fx[&format!("{name}.{form}.{step}.{i}")];
                    let d = max_diff(p, want);
                    assert!(
                        d == 0.0,
                        "{name} step {step} param {i} vs torch ({form}; capturable {capturable}): {d:e}, not equal to the bit"
                    );
                }
            }
        }
        assert_eq!(opt.step, 3);
        assert!(
            params[3].equal(&fx["p0.3"]),
            "a parameter without gradients stays"
        );
        assert!(
            params
                .iter()
                .all(|p| p.isfinite().all().int64_value(&[]) == 1),
            "non-finite gradients were cleaned"
        );
    }
    let d = AdamConfig::discriminator(2e-4);
    assert!((d.lr - 1.88235e-4).abs() < 1e-9 && (d.beta2 - 0.9905855).abs() < 1e-7);
}

#[test]
fn ema_updates_as_the_reference_loop() {
    let fx = adam_fixture();
    let (src, ema) = (
        nn::VarStore::new(Device::Cpu),
        nn::VarStore::new(Device::Cpu),
    );
    for (vs, key) in [(&src, "p0"), (&ema, "ema.in")] {
        for i in 0..4 {
            let t = &fx[&format!("{key}.{i}")];
            let v = vs.root().zeros(&format!("w{i}"), &t.size());
            tch::no_grad(|| v.shallow_clone().copy_(t));
        }
        let b = vs.root().zeros_no_train("buffer", &[3]);
        let _ = tch::no_grad(|| b.shallow_clone().fill_(if key == "p0" { 7.0 } else { 0.0 }));
    }
    fpgan::train::ema::Ema::new(&src, &ema)
        .unwrap()
        .update(0.9)
        .unwrap();
    let e = ema.variables();
    for i in 0..4 {
        let d = max_diff(&e[&format!("w{i}")], &fx[&format!("ema.out.{i}")]);
        assert!(d == 0.0, "EMA of parameter {i}: {d:e}");
    }
    assert!(
        e["buffer"].equal(&Tensor::full([3], 7.0, (Kind::Float, Device::Cpu))),
        "buffers copied"
    );
}

fn load(p: &Path) -> (std::collections::BTreeMap<String, Tensor>, SnapshotMeta) {
    let (t, m) = safetensors::load(p).unwrap();
    (t, SnapshotMeta::from_json(&m, p).unwrap())
}

/// The `Loss/*` means of stats.jsonl's line for `tick` (each iteration's losses, averaged).
fn tick_losses(run: &Path, tick: f64) -> Vec<(String, serde_json::Value)> {
    let stats = common::jsonl(&run.join("stats.jsonl"));
    let line = stats
        .iter()
        .find(|v| v["Progress/tick"]["mean"].as_f64() == Some(tick))
        .unwrap_or_else(|| panic!("no tick {tick} in {stats:?}"));
    let losses: Vec<_> = line
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("Loss/"))
        .map(|(k, v)| (k.clone(), v["mean"].clone()))
        .collect();
    assert!(!losses.is_empty(), "{line}");
    losses
}

/// Stopped on a tick's end or inside a tick (as a Ctrl-C or a `--kimg` off the ticks does), a
/// run resumed to the end holds bit for bit the uninterrupted run's state, ends its ticks where
/// that run did, and logs the same losses for the ticks after the stop.
#[test]
fn a_resumed_run_continues_exactly_where_the_uninterrupted_one_goes() {
    let _rng = common::torch_rng();
    let tmp = tempfile::tempdir().unwrap();
    let data = shapes(tmp.path());
    let data = data.to_str().unwrap();
    // batch 2, ticks of 4 images: the ticks end at 2, 6, 10 and 14 images
    let a = tmp.path().join("a");
    let o = fpgan(&train_args(data, a.to_str().unwrap(), "0.014"));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let (ta, ma) = load(&snapshots_in(&run_dir(&a))[0]);
    assert_eq!(
        (ma.progress.cur_nimg, ma.progress.cur_tick, ma.opt_g_step),
        (14, 4, 7)
    );
    for stop in ["0.006", "0.008"] {
        let b = tmp.path().join(format!("b{stop}"));
        let o = fpgan(&train_args(data, b.to_str().unwrap(), stop));
        assert!(o.status.success(), "{}", text(&o.stderr));
        let (_, m) = load(&snapshots_in(&run_dir(&b))[0]);
        let inside = stop == "0.008";
        // a stop inside a tick names its grid as its snapshot: it replaces no scheduled one
        let stop_grid = run_dir(&b).join(format!("fakes{:0>10}.png", stop.trim_start_matches('0')));
        assert_eq!(stop_grid.is_file(), inside, "{stop_grid:?}");
        assert_eq!(
            (m.progress.cur_tick, m.progress.tick_start_nimg),
            if inside { (2, Some(6)) } else { (2, None) },
            "--kimg {stop}"
        );
        let o = fpgan(&train_args(data, b.to_str().unwrap(), "0.014"));
        assert!(o.status.success(), "{}", text(&o.stderr));
        let out = text(&o.stdout);
        assert!(
            out.contains("Resuming") && out.contains(&format!("at kimg {stop}")),
            "{out}"
        );
        let (tb, mb) = load(&snapshots_in(&run_dir(&b))[0]);
        let untimed = |p: &Progress| Progress {
            total_sec: 0.0,
            ..p.clone()
        };
        assert_eq!(
            untimed(&ma.progress),
            untimed(&mb.progress),
            "--kimg {stop}"
        );
        assert_eq!(
            (ma.opt_g_step, ma.opt_d_step),
            (mb.opt_g_step, mb.opt_d_step)
        );
        assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>());
        for (name, t) in &ta {
            assert!(
                t.equal(&tb[name]),
                "{name} differs between the uninterrupted run and the one stopped at --kimg {stop}"
            );
        }
        // tick 2 of the run stopped inside it is logged from the resume on
        let ticks: Vec<f64> = common::jsonl(&run_dir(&b).join("stats.jsonl"))
            .iter()
            .map(|v| v["Progress/tick"]["mean"].as_f64().unwrap())
            .collect();
        assert_eq!(ticks, [0.0, 1.0, 2.0, 3.0], "--kimg {stop}");
        assert_eq!(
            tick_losses(&run_dir(&a), 3.0),
            tick_losses(&run_dir(&b), 3.0)
        );
    }
}

/// A raw folder that changed between sessions of a run: the resume says so, and the run goes on
/// with the images as they are now.
#[test]
fn resuming_on_changed_data_says_so() {
    let _rng = common::torch_rng();
    let tmp = tempfile::tempdir().unwrap();
    let data = shapes(tmp.path());
    let out = tmp.path().join("runs");
    let (d, o) = (data.to_str().unwrap(), out.to_str().unwrap());
    let r = fpgan(&train_args(d, o, "0.004"));
    assert!(r.status.success(), "{}", text(&r.stderr));
    let dir = run_dir(&out);
    let recorded = |dir: &Path| -> serde_json::Value {
        let f = std::fs::read(dir.join("training_options.json")).unwrap();
        serde_json::from_slice::<serde_json::Value>(&f).unwrap()["dataset"].clone()
    };
    assert_eq!(recorded(&dir)["images"], 12);
    let first = std::fs::read_dir(&data)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_file(first).unwrap();
    let reals_time = || {
        std::fs::metadata(dir.join("reals.png"))
            .unwrap()
            .modified()
            .unwrap()
    };
    let before = reals_time();
    let r = fpgan(&train_args(d, o, "0.008"));
    assert!(r.status.success(), "{}", text(&r.stderr));
    assert!(
        reals_time() > before,
        "reals.png shows the data as it is now"
    );
    let note = format!("note: {d} changed since the snapshot was written (11 images, 12 before)");
    assert!(text(&r.stdout).contains(&note), "{}", text(&r.stdout));
    let log = std::fs::read_to_string(dir.join("log.txt")).unwrap();
    assert!(log.contains(&note), "{log}");
    assert_eq!(
        recorded(&dir)["images"],
        11,
        "the run records the data it goes on with"
    );
    // a run with nothing left to do keeps the record of what it trained on
    let second = std::fs::read_dir(&data)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_file(second).unwrap();
    let events = || fpgan::util::files::files_named(&dir, "events.out.tfevents", "").len();
    let before = events();
    let r = fpgan(&train_args(d, o, "0.008"));
    assert!(
        text(&r.stdout).contains("Nothing to do"),
        "{}",
        text(&r.stdout)
    );
    assert_eq!(recorded(&dir)["images"], 11);
    assert_eq!(events(), before, "nothing to do, nothing logged");
}

#[test]
fn sigkill_between_snapshots_resumes_from_the_last_one_and_a_corrupt_one_is_reported() {
    let _rng = common::torch_rng();
    let tmp = tempfile::tempdir().unwrap();
    let data = shapes(tmp.path());
    let out = tmp.path().join("runs");
    let args = train_args(data.to_str().unwrap(), out.to_str().unwrap(), "1");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fpgan"))
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_snapshots(&mut child, &out, 2);
    std::thread::sleep(Duration::from_millis(700)); // kill between snapshots
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let dir = run_dir(&out);
    let snaps = snapshots_in(&dir);
    assert!(snaps.len() >= 2);
    let (t, meta) = load(&snaps[0]);

    // the restored trainer holds exactly the snapshot's counters and optimizer state
    let mut trainer = Trainer::new(&meta.options, Device::Cpu).unwrap();
    trainer.restore(&snaps[0]).unwrap();
    assert_eq!(trainer.progress, meta.progress);
    assert_eq!(
        (trainer.opt_g.step, trainer.opt_d.step),
        (meta.opt_g_step, meta.opt_d_step)
    );
    for (p, opt) in [("opt_G", &trainer.opt_g), ("opt_D", &trainer.opt_d)] {
        for s in &opt.slots {
            assert!(
                s.exp_avg.equal(&t[&format!("{p}.exp_avg.{}", s.name)]),
                "{p} {}",
                s.name
            );
            assert!(
                s.exp_avg_sq
                    .equal(&t[&format!("{p}.exp_avg_sq.{}", s.name)]),
                "{p} {}",
                s.name
            );
        }
    }
    assert!(
        trainer.opt_d.step > 0
            && trainer.opt_d.slots.iter().any(|s| s
                .exp_avg_sq
                .abs()
                .sum(Kind::Float)
                .double_value(&[])
                > 0.0)
    );

    // a truncated newest snapshot: clear error by name, the previous one still works,
    // and auto-resume falls back to it
    let bytes = std::fs::read(&snaps[0]).unwrap();
    std::fs::write(&snaps[0], &bytes[..bytes.len() / 2]).unwrap();
    let o = fpgan(&[
        "generate",
        "--network",
        snaps[0].to_str().unwrap(),
        "--seeds",
        "0",
        "--outdir",
        tmp.path().join("g").to_str().unwrap(),
    ]);
    let err = text(&o.stderr);
    assert!(
        !o.status.success()
            && err.contains("truncated or corrupt")
            && err.contains(snaps[0].to_str().unwrap()),
        "{err}"
    );
    let o = fpgan(&[
        "generate",
        "--network",
        snaps[1].to_str().unwrap(),
        "--seeds",
        "0",
        "--outdir",
        tmp.path().join("g").to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let (_, prev) = load(&snaps[1]);
    let target = format!("{:.3}", (prev.progress.cur_nimg + 4) as f64 / 1000.0);
    let args = train_args(data.to_str().unwrap(), out.to_str().unwrap(), &target);
    let o = fpgan(&args);
    let (so, se) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "{so}\n{se}");
    assert!(
        so.contains("truncated or corrupt") && so.contains("resuming from"),
        "{so}"
    );
    assert!(
        so.contains(&format!(
            "at kimg {:.3}",
            prev.progress.cur_nimg as f64 / 1000.0
        )),
        "{so}"
    );
    let (_, last) = load(&snapshots_in(&dir)[0]);
    assert!(last.progress.cur_nimg >= prev.progress.cur_nimg + 4);
}

#[test]
fn outputs_are_valid_and_generate_is_deterministic_per_seed() {
    let rng = common::torch_rng();
    let tmp = tempfile::tempdir().unwrap();
    let data = shapes(tmp.path());
    std::fs::write(data.join("broken.png"), b"not a png").unwrap();
    let out = tmp.path().join("runs");
    let o = fpgan(&train_args(
        data.to_str().unwrap(),
        out.to_str().unwrap(),
        "0.006",
    ));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let dir = run_dir(&out);
    // the lines of the preparation, printed before the run directory existed, head log.txt
    let log = std::fs::read_to_string(dir.join("log.txt")).unwrap();
    let first: Vec<&str> = log.lines().take(2).collect();
    assert!(
        first[0].starts_with(&format!(
            "warning: skipping {}",
            data.join("broken.png").display()
        )) && first[1].starts_with(&format!("prepared {} in memory: 12 images", data.display())),
        "{log}"
    );
    assert!(dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("00000-faster-shapes-batch2"));
    let opts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("training_options.json")).unwrap()).unwrap();
    assert_eq!(opts["cfg"], "faster");
    let stats = std::fs::read_to_string(dir.join("stats.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = stats
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "ticks at nimg 2 and 6");
    for name in [
        "Loss/G/loss",
        "Loss/D/loss",
        "Loss/scores/real",
        "Loss/signs/fake",
        "Progress/kimg",
        "Timing/sec_per_kimg",
        "Resources/cpu_mem_gb",
    ] {
        let v = &lines[1][name];
        assert!(
            v["num"].as_i64().unwrap() >= 1 && v["mean"].is_f64() && v["std"].is_f64(),
            "{name}: {v}"
        );
    }
    assert!(lines[1]["timestamp"].is_f64());
    assert!(log.contains("tick 0") && log.contains("sec/kimg"), "{log}");
    for f in ["reals.png", "fakes_init.png", "fakes000000.png"] {
        let img = image::open(dir.join(f)).unwrap();
        assert_eq!(
            (img.width(), img.height()),
            (256, 128),
            "{f}: 2x1 grid of 128 images"
        );
    }

    let g = |network: &Path, outdir: &Path, seeds: &str| {
        let o = fpgan(&[
            "generate",
            "--network",
            network.to_str().unwrap(),
            "--seeds",
            seeds,
            "--outdir",
            outdir.to_str().unwrap(),
            "--grid",
            "2x1",
            "--device",
            "cpu",
        ]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        text(&o.stdout)
    };
    let (g1, g2, g3) = (
        tmp.path().join("g1"),
        tmp.path().join("g2"),
        tmp.path().join("g3"),
    );
    let out = g(&dir, &g1, "3,5");
    assert!(!out.contains("note"), "{out}");
    g(&dir, &g2, "5");
    let read = |p: PathBuf| image::open(p).unwrap().to_rgb8();
    assert_eq!(
        read(g1.join("seed0005.png")),
        read(g2.join("seed0005.png")),
        "same seed, same image"
    );
    // after 3 iterations G_ema's eval-mode output hardly depends on the latent (its BN running
    // statistics have absorbed the first, huge activations), so that the seeds are told apart on
    // an untrained G_ema without noise, where only the latent differs
    let fresh = tmp.path().join("fresh.safetensors");
    common::g_ema_snapshot(&rng, &fresh, fpgan::nets::generator::GenCfg::Faster, 0.0);
    g(&fresh, &g3, "3,5");
    assert_ne!(read(g3.join("seed0003.png")), read(g3.join("seed0005.png")));
    assert_eq!(read(g1.join("seed0003.png")).dimensions(), (128, 128));
    assert_eq!(read(g1.join("grid.png")).dimensions(), (256, 128));
    // into a folder with images of an earlier call: they stay, and the output says so
    std::fs::write(g1.join("notes.txt"), "not an image").unwrap();
    let out = g(&dir, &g1, "5");
    let note = format!(
        "note: {} also holds 1 other image file from before",
        g1.display()
    );
    assert!(out.contains(&note), "{out}");
    let o = fpgan(&[
        "generate",
        "--network",
        dir.to_str().unwrap(),
        "--seeds",
        "1-2",
        "--outdir",
        g1.to_str().unwrap(),
        "--interpolate",
        "--frames",
        "3",
        "--device",
        "cpu",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    use image::AnimationDecoder;
    let gif = image::codecs::gif::GifDecoder::new(std::io::BufReader::new(
        std::fs::File::open(g1.join("walk.gif")).unwrap(),
    ))
    .unwrap();
    assert_eq!(gif.into_frames().count(), 6, "2 seeds x 3 frames, looping");
}

#[test]
fn seeds_give_numpy_randomstate_latents() {
    let _rng = common::torch_rng();
    let fx: std::collections::HashMap<String, Vec<f64>> =
        serde_json::from_str(include_str!("fixtures/numpy_randn.json")).unwrap();
    for (seed, want) in fx {
        let z = seed_latent(seed.parse().unwrap(), 256);
        for (i, w) in want.iter().enumerate() {
            assert!(
                (z.double_value(&[0, i as i64]) - w).abs() < 1e-6,
                "seed {seed} [{i}]"
            );
        }
    }
}

#[test]
fn bad_training_options_are_refused_with_the_fix() {
    let _rng = common::torch_rng();
    let tmp = tempfile::tempdir().unwrap();
    let data = shapes(tmp.path());
    let d = data.to_str().unwrap();
    let out = tmp.path().join("r");
    let o_ = out.to_str().unwrap();
    let err = |extra: &[&str]| {
        let mut a = vec![
            "train", "--data", d, "--outdir", o_, "--res", "128", "--kimg", "0.002",
        ];
        a.extend_from_slice(extra);
        let o = fpgan(&a);
        assert!(!o.status.success(), "{extra:?} should fail");
        text(&o.stderr)
    };
    assert!(err(&["--batch", "6", "--batch-gpu", "4"]).contains("multiple of --batch-gpu"));
    let e = err(&["--batch", "6", "--gpus", "4"]);
    assert!(
        e.contains("--batch 6 must divide evenly over the 4 processes (--gpus x --nnodes)"),
        "{e}"
    );
    let e = err(&["--cuda-graphs", "--gpus", "2", "--batch", "4"]);
    assert!(e.contains("--cuda-graphs trains in one process"), "{e}");
    assert!(err(&["--cuda-graphs"]).contains("--cuda-graphs needs a CUDA device"));
    let e = err(&["--nnodes", "2", "--node-rank", "2"]);
    assert!(e.contains("--node-rank below --nnodes"), "{e}");
    assert!(err(&["--device", "cuda"]).contains("--device cpu"));
    assert!(err(&["--metrics", "fid1k"]).contains("unknown metric"));
    assert!(err(&["--grid", "0x2"]).contains("COLSxROWS"));
    assert!(err(&["--keep", "0"]).contains("--keep 0 must be at least 1"));
    for lr in ["--lr=0", "--lr=-1e-4", "--lr=NaN", "--lr=inf", "--lr=2"] {
        let e = err(&[lr]);
        assert!(e.contains("must be a positive learning rate"), "{lr}: {e}");
    }
    assert!(err(&["--resume", "/nonexistent/snap.safetensors"]).contains("no such snapshot"));
    let o = fpgan(&[
        "train",
        "--data",
        tmp.path().join("missing").to_str().unwrap(),
    ]);
    assert!(text(&o.stderr).contains("does not exist"));
    // dry run prints the resolved options without training
    let o = fpgan(&[
        "train",
        "--data",
        d,
        "--outdir",
        o_,
        "--res",
        "128",
        "--dry-run",
        "--deterministic",
    ]);
    assert!(o.status.success());
    assert!(text(&o.stdout).contains("\"batch_gpu\": 64"));
    assert!(
        text(&o.stdout).contains("run: a new run in") && text(&o.stdout).contains("00000-faster-"),
        "{}",
        text(&o.stdout)
    );
    assert!(
        text(&o.stdout).contains("\"deterministic\": true"),
        "training_options.json records --deterministic"
    );
    assert!(!out.exists() || run_dirs_empty(&out));
}

fn run_dirs_empty(p: &Path) -> bool {
    std::fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

#[test]
fn ctrl_c_writes_a_snapshot_and_exits_cleanly() {
    let _rng = common::torch_rng();
    let tmp = tempfile::tempdir().unwrap();
    let data = shapes(tmp.path());
    let out = tmp.path().join("runs");
    let mut args = train_args(data.to_str().unwrap(), out.to_str().unwrap(), "1");
    // snapshots only at tick 0, the end, and the interruption
    set_flag(&mut args, "--snap", "1000");
    // with a metric: the interruption's snapshot is written without it (metrics can take hours)
    set_flag(&mut args, "--metrics", "kid50k_full");
    args.extend(["--num-gen", "8"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_fpgan"))
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_snapshots(&mut child, &out, 1);
    std::thread::sleep(Duration::from_millis(1500));
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status,
        text(&o.stderr)
    );
    let so = text(&o.stdout);
    assert!(
        so.contains("Stopped at kimg")
            && so.contains("Its metrics were skipped")
            && so.contains("--metrics kid50k_full --num-gen 8`"),
        "{so}"
    );
    assert!(
        !run_dir(&out).join("metric-kid50k_full.jsonl").exists(),
        "no metric computed after the interruption"
    );
    let snaps = snapshots_in(&run_dir(&out));
    assert_eq!(snaps.len(), 2, "tick 0 and the interruption");
    let (_, m) = load(&snaps[0]);
    assert!(m.progress.cur_nimg > 2);
}

/// Non-finite losses at ten readings in a row end the run with a message naming the last
/// snapshot written with finite losses: not the ones written while the losses were NaN.
#[test]
fn a_diverged_run_stops_and_names_the_last_good_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shapes(tmp.path());
    let out = tmp.path().join("runs");
    let (data, outs) = (data.to_str().unwrap(), out.to_str().unwrap());
    let o = fpgan(&train_args(data, outs, "0.006"));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let good = snapshots_in(&run_dir(&out))[0].clone();
    common::poison_generator(&good);
    // ticks end at 10, 14, 18 and 22 images, each with a snapshot of NaN weights; the tenth
    // reading of NaN losses, at 26, ends the run
    let o = fpgan(&train_args(data, outs, "1"));
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let want = format!(
        "training diverged at kimg 0.026: losses were not finite 10 times in a row (G NaN, D NaN); the last good snapshot is {};",
        good.display()
    );
    assert!(err.contains(&want) && err.contains("--lr L)"), "{err}");
    let errors = err.lines().filter(|l| l.starts_with("error:")).count();
    assert_eq!(errors, 1, "one line: {err}");
    let newest = snapshots_in(&run_dir(&out))[0].clone();
    assert!(
        newest.ends_with("network-snapshot-000000.022.safetensors"),
        "{newest:?}"
    );
}

#[test]
fn bf16_autocast_runs_the_forward_passes_in_bf16_and_keeps_fp32_state() {
    let _rng = common::torch_rng();
    use fpgan::fastpath::{autocast, Amp};
    let tmp = tempfile::tempdir().unwrap();
    let opts = TrainOptions {
        fast: fpgan::fastpath::FastPath {
            amp: Amp::Bf16,
            ..Default::default()
        },
        ..tiny_options(tmp.path())
    };
    let mut t = Trainer::new(&opts, Device::Cpu).unwrap();
    let z = Tensor::randn([2, 256], (Kind::Float, Device::Cpu));
    let img = tch::no_grad(|| autocast(Amp::Bf16, Device::Cpu, || t.g.forward_t(&z, true)));
    assert_eq!(
        img.kind(),
        Kind::BFloat16,
        "convolutions run in bf16 inside the region"
    );
    let after = tch::no_grad(|| t.g.forward_t(&z, true));
    assert_eq!(after.kind(), Kind::Float, "and in fp32 after it");
    let reals = Tensor::randint(256, [4, 3, 128, 128], (Kind::Uint8, Device::Cpu));
    let (g, d) = t.step(&reals, None).unwrap().values();
    assert!(g.is_finite() && d.is_finite());
    for (n, v) in t.gvs.variables().into_iter().chain(t.dvs.variables()) {
        assert_eq!(v.kind(), Kind::Float, "{n} stays fp32");
    }
    assert!(t
        .opt_g
        .slots
        .iter()
        .all(|s| s.exp_avg_sq.kind() == Kind::Float));
}

#[test]
fn channels_last_relays_weights_and_gives_the_same_first_step() {
    let _rng = common::torch_rng();
    use fpgan::fastpath::is_channels_last;
    let tmp = tempfile::tempdir().unwrap();
    let reals = Tensor::randint(256, [4, 3, 128, 128], (Kind::Uint8, Device::Cpu));
    let mut losses = Vec::new();
    for cl in [false, true] {
        let opts = TrainOptions {
            fast: fpgan::fastpath::FastPath {
                channels_last: cl,
                ..Default::default()
            },
            ..tiny_options(tmp.path())
        };
        let mut t = Trainer::new(&opts, Device::Cpu).unwrap();
        let pw = t.dvs.variables()["discriminator.mini_discs.0.main.0.main.0.weight_orig"]
            .shallow_clone();
        assert_eq!(
            is_channels_last(&pw),
            cl,
            "D weights follow --channels-last"
        );
        tch::manual_seed(5);
        losses.push(t.step(&reals, None).unwrap().values());
        // (1x1 kernels and depthwise weights have the same strides in both layouts)
        for (n, v) in t.gvs.variables() {
            let s = v.size();
            if v.dim() == 4 && s[1] > 1 && s[2] * s[3] > 1 {
                assert_eq!(is_channels_last(&v), cl, "{n} after a step");
            }
        }
    }
    // same initial weights and randomness: the losses agree up to summation order
    let ((g0, d0), (g1, d1)) = (losses[0], losses[1]);
    assert!(
        (g0 - g1).abs() < 1e-3 * g0.abs().max(1.0) && (d0 - d1).abs() < 1e-3 * d0.abs().max(1.0),
        "{losses:?}"
    );
}

#[test]
fn reference_resume_copies_weights_into_a_new_run_with_fresh_adam_and_kimg_zero() {
    let _rng = common::torch_rng();
    let tmp = tempfile::tempdir().unwrap();
    let data = shapes(tmp.path());
    let out = tmp.path().join("runs");
    let (d, o_) = (data.to_str().unwrap(), out.to_str().unwrap());
    assert!(fpgan(&train_args(d, o_, "0.002")).status.success());
    let first = run_dir(&out);
    let snap = snapshots_in(&first)[0].clone();
    // library level: weights copied, nothing else
    let (t, meta) = load(&snap);
    let mut trainer = Trainer::new(&meta.options, Device::Cpu).unwrap();
    trainer.restore_weights_only(&snap).unwrap();
    for (n, v) in trainer.gvs.variables() {
        assert!(v.equal(&t[&format!("G.{n}")]), "{n}");
    }
    assert_eq!(
        (
            trainer.progress.cur_nimg,
            trainer.opt_g.step,
            trainer.opt_d.step
        ),
        (0, 0, 0)
    );
    assert_eq!(trainer.ema_schedule.rampup, None);
    // command level: a new run directory that starts at kimg 0, on raw images prepared at the
    // snapshot's resolution when --res is not given (the only one its weights fit)
    let mut args = train_args(d, o_, "0.002");
    let at = args.iter().position(|&a| a == "--res").unwrap();
    args.drain(at..at + 2);
    args.extend([
        "--resume",
        first.to_str().unwrap(),
        "--resume-mode",
        "reference",
    ]);
    let o = fpgan(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("reference resume"));
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    assert_eq!(dirs.len(), 2);
    let (_, m2) = load(&snapshots_in(&dirs[1])[0]);
    assert_eq!(
        (m2.progress.cur_nimg, m2.opt_g_step),
        (2, 1),
        "kimg and Adam restarted"
    );
    // reference mode needs an explicit snapshot
    let mut args = train_args(d, o_, "0.002");
    args.extend(["--resume-mode", "reference"]);
    assert!(text(&fpgan(&args).stderr).contains("--resume-mode reference needs --resume"));
}

/// `train --data <raw folder>` prepares the images as `fpgan dataset` would with the same
/// --transform and --background (here: wide red images padded with black); on a prepared
/// dataset those options are refused, since its images are used as they are. A resume keeps the
/// run's preparation where the command does not say another.
#[test]
fn raw_images_are_fitted_as_transform_and_background_say() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("wide");
    std::fs::create_dir_all(&raw).unwrap();
    for i in 0..2 {
        image::RgbImage::from_pixel(64, 32, image::Rgb([255, 0, 0]))
            .save(raw.join(format!("{i}.png")))
            .unwrap();
    }
    let out = tmp.path().join("runs");
    let mut args = train_args(raw.to_str().unwrap(), out.to_str().unwrap(), "0.002");
    args.extend(["--transform", "pad", "--background", "black"]);
    let o = fpgan(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let dir = run_dir(&out);
    let reals = image::open(dir.join("reals.png")).unwrap().to_rgb8();
    assert_eq!(
        reals.get_pixel(64, 5).0,
        [0, 0, 0],
        "padding above the image"
    );
    assert_eq!(reals.get_pixel(64, 64).0, [255, 0, 0], "the image itself");
    let options: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("training_options.json")).unwrap()).unwrap();
    assert_eq!(
        (
            options["transform"].as_str(),
            options["background"].as_str()
        ),
        (Some("pad"), Some("black"))
    );
    // a resume without them (nor --res) prepares the images as the run did, and says so
    let mut args = train_args(raw.to_str().unwrap(), out.to_str().unwrap(), "0.004");
    let at = args.iter().position(|&a| a == "--res").unwrap();
    args.drain(at..at + 2);
    let o = fpgan(&args);
    let said = text(&o.stdout) + &text(&o.stderr);
    assert!(o.status.success(), "{said}");
    assert!(
        said.contains("prepared as the run it continues prepared it: --res 128 --transform pad --background black (not given here)")
            && !said.contains("other options than")
            && !said.contains("changed since"),
        "{said}"
    );
    // a flag given is taken and named as a changed option; the one not given is the run's
    let mut args = train_args(raw.to_str().unwrap(), out.to_str().unwrap(), "0.006");
    args.extend(["--background", "white"]);
    let o = fpgan(&args);
    let said = text(&o.stdout) + &text(&o.stderr);
    assert!(o.status.success(), "{said}");
    assert!(
        said.contains("other options than the snapshot's run: --background white (was black)")
            && said.contains("prepared it: --transform pad (not given here)")
            && !said.contains("(was pad)")
            && !said.contains("changed since"),
        "{said}"
    );
    // back to the snapshot of 0.004 kimg without flags: prepared as that snapshot was (black),
    // not as the run's latest session (white)
    let snap4 = dir.join("network-snapshot-000000.004.safetensors");
    let mut args = train_args(raw.to_str().unwrap(), out.to_str().unwrap(), "0.006");
    args.extend(["--resume", snap4.to_str().unwrap()]);
    let o = fpgan(&args);
    let said = text(&o.stdout) + &text(&o.stderr);
    assert!(o.status.success(), "{said}");
    assert!(
        said.contains("prepared it: --transform pad --background black (not given here)")
            && !said.contains("other options than"),
        "{said}"
    );
    // a run without metrics gets none appended by `fpgan metrics`, and is told so up front
    let home = common::private_home(tmp.path());
    let (d, r) = (dir.to_str().unwrap(), raw.to_str().unwrap());
    let args = common::quick_metrics_args(d, r);
    let o = common::fpgan_with_home(&home, &args);
    let said = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        said.contains(
            "will not be added to a run's metric files: the run tracks no metrics (--metrics none)"
        ),
        "{said}"
    );
    // center-crop-wide makes WxH images, not square training ones: not offered
    let mut args = train_args(raw.to_str().unwrap(), out.to_str().unwrap(), "0.002");
    args.extend(["--transform", "center-crop-wide"]);
    let err = text(&fpgan(&args).stderr);
    assert!(
        err.contains("invalid value 'center-crop-wide'")
            && err.contains("center-crop, pad, stretch"),
        "{err}"
    );

    let prepared = tmp.path().join("prepared.zip");
    let o = common::dataset(&raw, &prepared, &["--resolution", "128"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let mut args = train_args(prepared.to_str().unwrap(), out.to_str().unwrap(), "0.002");
    args.extend(["--background", "black"]);
    let o = fpgan(&args);
    let err = text(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("--background: ") && err.contains("is a prepared dataset"),
        "{err}"
    );
}
