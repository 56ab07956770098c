//! `fpgan metrics` and metrics during training: cache reuse and invalidation, metric lines,
//! best snapshot. Uses a private FPGAN_HOME whose weights link to the installed ones.

mod common;
use common::{fpgan_with_home as fpgan, private_home, run_dir, set_flag, shapes, text, train_args};
use std::path::Path;

#[test]
fn real_features_are_cached_and_invalidated_when_the_images_change() {
    let tmp = tempfile::tempdir().unwrap();
    let home = private_home(tmp.path());
    let (real, fake) = (tmp.path().join("real"), tmp.path().join("fake"));
    fpgan::data::synthetic::write_shapes(&real, 6, 1).unwrap();
    fpgan::data::synthetic::write_shapes(&fake, 5, 2).unwrap();
    let args = [
        "metrics",
        "--real",
        real.to_str().unwrap(),
        "--fake",
        fake.to_str().unwrap(),
        "--device",
        "cpu",
    ];
    let first = fpgan(&home, &args);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let out1 = text(&first.stdout);
    assert!(out1.contains("features computed and cached"), "{out1}");
    let second = text(&fpgan(&home, &args).stdout);
    assert!(second.contains("features from the cache"), "{second}");
    let value = |s: &str, m: &str| -> f64 {
        s.lines()
            .find_map(|l| l.strip_prefix(&format!("{m} ")))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(value(&out1, "fid"), value(&second, "fid"));
    assert!(value(&out1, "fid") > 0.0 && value(&out1, "kid").is_finite());
    assert_eq!(
        std::fs::read_dir(home.join("metrics-cache"))
            .unwrap()
            .count(),
        1
    );
    // other content: computed again; files that are not images are left out, with a note
    fpgan::data::synthetic::write_shapes(&real, 7, 1).unwrap();
    std::fs::write(fake.join("notes.txt"), "seeds 0-4").unwrap();
    std::fs::write(fake.join("a.md"), "#").unwrap();
    let third = fpgan(&home, &args);
    let (out3, err3) = (text(&third.stdout), text(&third.stderr));
    assert!(out3.contains("features computed and cached"), "{out3}");
    let note = format!(
        "note: {}: leaving out 2 files without an image extension (a.md, ...)",
        fake.display()
    );
    assert!(err3.contains(&note) && !err3.contains("real:"), "{err3}");
    // bad invocations
    let o = fpgan(&home, &["metrics", "--real", real.to_str().unwrap()]);
    assert!(!o.status.success());
    let o = fpgan(
        &home,
        &[
            "metrics",
            "--real",
            real.to_str().unwrap(),
            "--fake",
            fake.to_str().unwrap(),
            "--metrics",
            "is50k",
        ],
    );
    assert!(text(&o.stderr).contains("unknown metric"));
    // options of --network scoring are refused, not ignored
    let (r, f) = (real.to_str().unwrap(), fake.to_str().unwrap());
    for extra in [
        ["--num-gen", "3"],
        ["--seed", "5"],
        ["--background", "black"],
    ] {
        let mut args = vec!["metrics", "--real", r, "--fake", f];
        args.extend(extra);
        let err = text(&fpgan(&home, &args).stderr);
        assert!(
            err.contains("cannot be used with") && err.contains(extra[0]),
            "{err}"
        );
    }
}

#[test]
fn training_writes_metric_lines_and_keeps_the_best_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let home = private_home(tmp.path());
    let data = shapes(tmp.path());
    let out = tmp.path().join("runs");
    let mut args = train_args(data.to_str().unwrap(), out.to_str().unwrap(), "0.006");
    set_flag(&mut args, "--metrics", "fid50k_full,kid50k_full");
    // transparent shapes on black: `fpgan metrics` must prepare the folder the same way
    args.extend(["--num-gen", "8", "--background", "black"]);
    let o = fpgan(&home, &args);
    let stdout = text(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", text(&o.stderr));
    let dir = run_dir(&out);
    // tick 0 is not evaluated; the end (tick 1) is
    for m in ["fid50k_full", "kid50k_full"] {
        let lines = std::fs::read_to_string(dir.join(format!("metric-{m}.jsonl"))).unwrap();
        let v: Vec<serde_json::Value> = lines
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(v.len(), 1, "{m}: {lines}");
        assert_eq!(v[0]["metric"], m);
        assert_eq!(v[0]["num_gen"], 8, "a quick look says so");
        assert!(v[0]["results"][m].as_f64().unwrap().is_finite());
        assert!(v[0]["snapshot_pkl"]
            .as_str()
            .unwrap()
            .starts_with("network-snapshot-"));
    }
    assert!(stdout.contains("New best fid50k_full"), "{stdout}");
    // the cost of one evaluation is said at the start: fid and kid share their 8 images
    assert!(
        stdout.contains(
            "Metrics fid50k_full,kid50k_full at every snapshot, each 8 generated images, about"
        ),
        "{stdout}"
    );
    assert!(dir.join("best-snapshot.safetensors").is_file());
    // `fpgan metrics` on a snapshot of the run adds its line to the run's file, as the
    // reference's calc_metrics.py, when it scores as the run does (here: 8 images)
    let fid_lines = || {
        std::fs::read_to_string(dir.join("metric-fid50k_full.jsonl"))
            .unwrap()
            .lines()
            .count()
    };
    let score = |network: &Path, num_gen: &str, metrics: &str| {
        let (net, d) = (network.to_str().unwrap(), data.to_str().unwrap());
        let args = [
            "metrics",
            "--network",
            net,
            "--data",
            d,
            "--num-gen",
            num_gen,
        ];
        let o = fpgan(
            &home,
            &[&args[..], &["--metrics", metrics, "--device", "cpu"]].concat(),
        );
        assert!(o.status.success(), "{}", text(&o.stderr));
        text(&o.stdout)
    };
    let added = score(&dir, "8", "fid50k_full,fid10k_full");
    let want = format!(
        "metrics: added to metric-fid50k_full.jsonl in {}",
        dir.display()
    );
    assert!(added.contains(&want), "{added}");
    let want = "prepared as the run prepared it (--transform center-crop --background black)";
    assert!(added.contains(want), "{added}");
    assert!(
        added.contains("fid10k_full will not be added to")
            && added.contains("the run tracks fid50k_full,kid50k_full"),
        "{added}"
    );
    assert!(!dir.join("metric-fid10k_full.jsonl").exists());
    assert_eq!(fid_lines(), 2);
    // the reason is said before the work
    let other = score(&dir, "4", "fid50k_full");
    let want = "will not be added to a run's metric files: the run scores with --num-gen 8";
    let (said, scored) = (other.find(want), other.find("fid50k_full = "));
    assert!(said.is_some() && said < scored, "{other}");
    let best = score(&dir.join("best-snapshot.safetensors"), "8", "fid50k_full");
    let want = "only a run's network-snapshot-* files are (not best-snapshot.safetensors)";
    assert!(best.contains(want), "{best}");
    // prepared otherwise than the run prepared it: other data
    let (s, d) = (dir.to_str().unwrap(), data.to_str().unwrap());
    let args = ["metrics", "--network", s, "--data", d, "--num-gen", "8"];
    let o = fpgan(
        &home,
        &[&args[..], &["--background", "white", "--device", "cpu"]].concat(),
    );
    let white = text(&o.stdout);
    let want = "--data is not the data the snapshot was trained on (the same number of images \
        (12), other pixels; the run prepared it with --transform center-crop --background black)";
    assert!(o.status.success() && white.contains(want), "{white}");
    assert_eq!(fid_lines(), 2);
    assert_eq!(
        std::fs::read_to_string(dir.join("best_nimg.txt")).unwrap(),
        "6"
    );
    // the best snapshot is a complete, loadable network
    let g = tmp.path().join("g");
    let o = fpgan(
        &home,
        &[
            "generate",
            "--network",
            dir.join("best-snapshot.safetensors").to_str().unwrap(),
            "--seeds",
            "0",
            "--outdir",
            g.to_str().unwrap(),
            "--device",
            "cpu",
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
}

#[test]
fn the_cache_key_does_not_depend_on_batching() {
    use tch::{Kind, Tensor};
    let imgs = Tensor::randint(256, [6, 3, 8, 8], (Kind::Uint8, tch::Device::Cpu));
    let whole = fpgan::eval::evaluator::content_digest(&[imgs.shallow_clone()]);
    let split = fpgan::eval::evaluator::content_digest(&imgs.split(4, 0));
    assert_eq!(whole, split);
    let other = imgs.copy();
    let _ = other
        .get(5)
        .get(0)
        .get(0)
        .get(0)
        .fill_(imgs.int64_value(&[5, 0, 0, 0]) ^ 1);
    assert_ne!(whole, fpgan::eval::evaluator::content_digest(&[other]));
}

/// The tiny training run to `kimg` with `metric` at every snapshot (8 generated images); its
/// standard output.
fn train_scored(home: &Path, data: &Path, out: &Path, metric: &str, kimg: &str) -> String {
    let mut args = train_args(data.to_str().unwrap(), out.to_str().unwrap(), kimg);
    set_flag(&mut args, "--metrics", metric);
    args.extend(["--num-gen", "8"]);
    let o = fpgan(home, &args);
    let stdout = text(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", text(&o.stderr));
    stdout
}

/// A resume from the run's best snapshot keeps it the best: the best FID counts the kept metric
/// lines, the snapshot's own included (a snapshot is written before its metrics, so the best FID
/// it holds misses its own, and the next, worse FID replaced the best snapshot).
#[test]
fn a_resume_from_the_best_snapshot_keeps_it_the_best() {
    let tmp = tempfile::tempdir().unwrap();
    let home = private_home(tmp.path());
    let data = shapes(tmp.path());
    let out = tmp.path().join("runs");
    let train = |kimg: &str| train_scored(&home, &data, &out, "fid50k_full", kimg);
    // tick 0 ends at 2 images (not evaluated), the end at 6: one FID, the best
    assert!(train("0.006").contains("New best fid50k_full"));
    let dir = run_dir(&out);
    assert_eq!(
        std::fs::read_to_string(dir.join("best_nimg.txt")).unwrap(),
        "6"
    );
    // its FID made the lowest there can be: no later one is better
    let file = dir.join("metric-fid50k_full.jsonl");
    let mut line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&file).unwrap().trim()).unwrap();
    line["results"]["fid50k_full"] = 0.0.into();
    std::fs::write(&file, format!("{line}\n")).unwrap();
    // resumed from that snapshot, evaluated again at 10 images
    let stdout = train("0.010");
    assert!(!stdout.contains("New best"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 2);
    assert_eq!(
        std::fs::read_to_string(dir.join("best_nimg.txt")).unwrap(),
        "6"
    );
}

/// A run stopped or killed during a snapshot's metrics (its line missing) scores that snapshot
/// when it resumes, with the value the uninterrupted run recorded, before training on; a finished
/// run says which command scores it.
#[test]
fn a_snapshot_whose_metrics_were_lost_is_scored_on_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let home = private_home(tmp.path());
    let data = shapes(tmp.path());
    let out = tmp.path().join("runs");
    let train = |kimg: &str| train_scored(&home, &data, &out, "kid50k_full", kimg);
    // tick 0 ends at 2 images (not scored), tick 1 at 6 (the end): one line
    train("0.006");
    let dir = run_dir(&out);
    let file = dir.join("metric-kid50k_full.jsonl");
    let recorded = std::fs::read_to_string(&file).unwrap();
    let line: serde_json::Value = serde_json::from_str(recorded.trim()).unwrap();
    assert_eq!(
        line["snapshot_pkl"],
        "network-snapshot-000000.006.safetensors"
    );
    // as if killed during those metrics
    std::fs::write(&file, "").unwrap();
    let stdout = train("0.006");
    assert!(
        stdout.contains("Nothing to do")
            && stdout.contains("Its last snapshot was not scored")
            && stdout.contains("fpgan metrics --network"),
        "{stdout}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "");
    // resumed: scored first, then trained on to 10 images and scored there
    let stdout = train("0.010");
    let scoring = stdout
        .find("Scoring ")
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        stdout[scoring..].contains("tick 2"),
        "scored before training: {stdout}"
    );
    let lines = common::jsonl(&file);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["snapshot_pkl"], line["snapshot_pkl"]);
    assert_eq!(
        lines[0]["results"], line["results"],
        "the uninterrupted run's value"
    );
    assert_eq!(
        lines[1]["snapshot_pkl"],
        "network-snapshot-000000.010.safetensors"
    );
    // scored once: a further resume does not score it again
    let stdout = train("0.014");
    assert!(!stdout.contains("Scoring "), "{stdout}");
}
