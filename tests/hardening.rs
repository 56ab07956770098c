//! Faults and bad input a demanding user tried on `train`, `generate`, `metrics`, `bench` and
//! `demo` (the training-side items of the hardening issue): each is refused up front with the fix,
//! or survived without losing data; the binary never panics, segfaults or aborts.
mod common;

use common::{
    dataset, fpgan, fpgan_with_home, run_dir, set_flag, shapes, text, train_args,
    wait_for_snapshots,
};
use fpgan::snapshot::snapshots_in;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// No panic, abort or crash: the process exited by itself with a code, and said nothing of Rust
/// internals.
fn assert_clean_exit(o: &Output) {
    let err = text(&o.stderr);
    assert!(
        o.status.code().is_some(),
        "killed by a signal: {:?}\n{err}",
        o.status
    );
    for bad in [
        "panicked",
        "RUST_BACKTRACE",
        "memory allocation",
        "Os {",
        "Error {",
    ] {
        assert!(!err.contains(bad), "{bad} in stderr:\n{err}");
    }
}

/// `fpgan args...` is refused with a message containing every one of `needles`.
fn refused(o: Output, needles: &[&str]) -> String {
    assert_clean_exit(&o);
    assert!(!o.status.success(), "should fail: {}", text(&o.stdout));
    let err = text(&o.stderr);
    for n in needles {
        assert!(err.contains(n), "'{n}' not in: {err}");
    }
    err
}

fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_fpgan"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, sig: &str) {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args([sig, &pid])
        .status()
        .unwrap()
        .success());
}

/// The tiny training command with `--snap 1000` (snapshots at tick 0, the end and a stop).
fn long_run<'a>(data: &'a str, out: &'a str) -> Vec<&'a str> {
    let mut args = train_args(data, out, "1");
    set_flag(&mut args, "--snap", "1000");
    args
}

/// A finished tiny run of `kimg` in `<tmp>/runs`; returns (data dir, outdir).
fn trained(tmp: &Path, kimg: &str) -> (PathBuf, PathBuf) {
    let data = shapes(tmp);
    let out = tmp.join("runs");
    let o = fpgan(&train_args(
        data.to_str().unwrap(),
        out.to_str().unwrap(),
        kimg,
    ));
    assert!(o.status.success(), "{}", text(&o.stderr));
    (data, out)
}

/// Ticks of stats.jsonl in order.
fn stats_ticks(run: &Path) -> Vec<i64> {
    common::jsonl(&run.join("stats.jsonl"))
        .iter()
        .map(|v| v["Progress/tick"]["mean"].as_f64().unwrap() as i64)
        .collect()
}

// 1. A second Ctrl-C quits at once with exit code 130: no segfault, no libtorch panic.
#[test]
fn a_second_interrupt_quits_at_once_without_crashing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shapes(tmp.path());
    for (k, gap_ms) in [20u64, 80, 150].into_iter().enumerate() {
        let out = tmp.path().join(format!("runs{k}"));
        let mut child = spawn(&long_run(data.to_str().unwrap(), out.to_str().unwrap()));
        wait_for_snapshots(&mut child, &out, 1);
        std::thread::sleep(Duration::from_millis(300));
        signal(&child, "-INT");
        std::thread::sleep(Duration::from_millis(gap_ms));
        signal(&child, "-INT");
        let o = child.wait_with_output().unwrap();
        assert_clean_exit(&o);
        let code = o.status.code();
        // 130 when the second signal came in time, 0 when the snapshot was already written
        assert!(matches!(code, Some(130) | Some(0)), "{code:?}");
        // whatever it left, a rerun resumes
        let mut args = long_run(data.to_str().unwrap(), out.to_str().unwrap());
        set_flag(&mut args, "--kimg", "0.002");
        let o = fpgan(&args);
        assert_clean_exit(&o);
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
}

// 18. SIGTERM (Slurm, Docker, timeout) is a request to snapshot and exit, like Ctrl-C.
#[test]
fn sigterm_writes_a_snapshot_and_exits_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shapes(tmp.path());
    let out = tmp.path().join("runs");
    let mut child = spawn(&long_run(data.to_str().unwrap(), out.to_str().unwrap()));
    wait_for_snapshots(&mut child, &out, 1);
    std::thread::sleep(Duration::from_millis(1500));
    signal(&child, "-TERM");
    let o = child.wait_with_output().unwrap();
    assert_clean_exit(&o);
    assert!(o.status.success(), "{:?}: {}", o.status, text(&o.stderr));
    assert!(text(&o.stdout).contains("Stopped at kimg"));
    let snaps = snapshots_in(&run_dir(&out));
    assert_eq!(snaps.len(), 2, "tick 0 and the stop: {snaps:?}");
}

// 2. Non-finite or absurd lengths are refused up front, each with its own message.
#[test]
fn non_finite_and_absurd_numbers_are_refused_up_front() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shapes(tmp.path());
    let out = tmp.path().join("runs");
    let (d, o_) = (data.to_str().unwrap(), out.to_str().unwrap());
    for (flag, value) in [
        ("--kimg", "inf"),
        ("--kimg", "NaN"),
        ("--kimg", "1e30"),
        ("--kimg", "0"),
        ("--tick", "inf"),
        ("--tick", "0"),
    ] {
        let mut args = train_args(d, o_, "0.002");
        if let Some(i) = args.iter().position(|a| *a == flag) {
            args[i + 1] = value;
        }
        // the value as given (1e30, not 31 digits)
        let err = refused(fpgan(&args), &[&format!("{flag} {value} must be")]);
        assert!(!err.contains("--snap"), "{err}");
    }
    let mut args = train_args(d, o_, "0.002");
    set_flag(&mut args, "--snap", "0");
    let err = refused(fpgan(&args), &["--snap 0"]);
    assert!(!err.contains("--kimg"), "{err}");
    // a batch whose images alone would not fit in memory: refused, not an allocation abort
    let mut args = train_args(d, o_, "0.002");
    set_flag(&mut args, "--batch", "1000000");
    let err = refused(fpgan(&args), &["--batch 1000000 is too large"]);
    assert!(!err.contains("--kimg"), "{err}");
    assert!(!out.exists(), "nothing may be written for refused options");
    refused(fpgan(&["demo", "--kimg", "inf"]), &["--kimg"]);
}

// 5. A huge seed range is refused before anything is allocated or loaded.
#[test]
fn a_huge_seed_range_is_refused_without_allocating() {
    let tmp = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let o = fpgan(&[
        "generate",
        "--network",
        tmp.path().join("none.safetensors").to_str().unwrap(),
        "--seeds",
        "0-4294967295",
        "--grid",
        "2x2",
    ]);
    refused(o, &["--seeds", "more than"]);
    assert!(t0.elapsed() < Duration::from_secs(10));
    let o = fpgan(&[
        "generate",
        "--network",
        "x",
        "--seeds",
        "0-4294967295,5",
        "--interpolate",
    ]);
    refused(o, &["--seeds"]);
}

// 6. and 12. --num-gen 0 (or 1) and image sets of one image are refused, not NaN or a panic.
#[test]
fn metrics_need_two_images_on_each_side() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shapes(tmp.path());
    let d = data.to_str().unwrap();
    let home = tmp.path().join("home"); // no weights: any work beyond validation would fail on them
    for n in ["0", "1"] {
        let o = fpgan_with_home(
            &home,
            &["metrics", "--network", d, "--data", d, "--num-gen", n],
        );
        refused(o, &["--num-gen", "at least 2"]);
        let unused = tmp.path().join("unused");
        let mut args = train_args(d, unused.to_str().unwrap(), "0.002");
        set_flag(&mut args, "--metrics", "fid50k_full");
        args.extend(["--num-gen", n]);
        refused(fpgan_with_home(&home, &args), &["--num-gen"]);
    }
    // one real image: a clear error, not "kid NaN"
    let one = tmp.path().join("one");
    std::fs::create_dir_all(&one).unwrap();
    std::fs::copy(
        std::fs::read_dir(&data)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path(),
        one.join("a.png"),
    )
    .unwrap();
    let o = fpgan(&["metrics", "--real", one.to_str().unwrap(), "--fake", d]);
    refused(o, &["--real", "1 readable image", "at least 2"]);
    // training on it with metrics: refused at the start, not at the first snapshot's metrics
    let unused = tmp.path().join("unused");
    let mut args = train_args(one.to_str().unwrap(), unused.to_str().unwrap(), "0.002");
    set_flag(&mut args, "--metrics", "fid50k_full");
    refused(
        fpgan_with_home(&home, &args),
        &["1 image", "need at least 2", "--metrics none"],
    );
}

// 13. Options are validated before the expensive work.
#[test]
fn options_are_validated_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shapes(tmp.path());
    let d = data.to_str().unwrap();
    let home = tmp.path().join("home"); // no weights: work before validation would fail on them
    let o = fpgan_with_home(
        &home,
        &[
            "metrics",
            "--real",
            d,
            "--fake",
            d,
            "--metrics",
            "fid,fid1k",
        ],
    );
    refused(o, &["unknown metric 'fid1k'"]);
    let o = fpgan_with_home(
        &home,
        &[
            "bench",
            "--json",
            data.join("shape_0000.png/b.json").to_str().unwrap(),
            "--device",
            "cpu",
        ],
    );
    refused(o, &["--json", "shape_0000.png is a file, not a folder"]);
    let demo = tmp.path().join("demo");
    for bad in [["--kimg", "0"], ["--res", "100"]] {
        let o = fpgan_with_home(
            &home,
            &["demo", "--outdir", demo.to_str().unwrap(), bad[0], bad[1]],
        );
        refused(o, &[]);
        assert!(
            !demo.join("dataset.zip").exists(),
            "{bad:?} wrote a dataset"
        );
    }
}

// 14. Advice that works: no `fpgan dataset --resolution 100`, which the dataset tool rejects.
#[test]
fn advice_names_values_that_work() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shapes(tmp.path());
    let ds = tmp.path().join("ds.zip");
    let o = dataset(&data, &ds, &["--resolution", "128"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let z = ds.to_str().unwrap();
    let unused = tmp.path().join("unused");
    let mut args = train_args(z, unused.to_str().unwrap(), "0.002");
    set_flag(&mut args, "--res", "100");
    let err = refused(fpgan(&args), &["128, 256, 512 or 1024"]);
    assert!(!err.contains("--resolution 100"), "{err}");
}

/// `--dry-run` refuses what the run would refuse, before printing anything: a resume of
/// another generator, a run directory given as data, --cuda-graphs on a CPU, an --outdir that
/// is a file, --batch-gpu 0. A 32 px dataset is refused naming its size and the fix.
#[test]
fn a_dry_run_refuses_what_the_run_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = trained(tmp.path(), "0.004");
    let run = run_dir(&out);
    let (d, o, r) = (
        data.to_str().unwrap(),
        out.to_str().unwrap(),
        run.to_str().unwrap(),
    );
    let listing = |p: &Path| {
        let mut v: Vec<_> = walkdir(p);
        v.sort();
        v
    };
    let before = listing(tmp.path());
    let notes = tmp.path().join("notes.txt");
    std::fs::write(&notes, "").unwrap();
    let n = notes.to_str().unwrap();
    let cases: [(&[&str], &[&str]); 5] = [
        (
            &["--ngf", "16", "--resume", r],
            &["was trained with", "--ngf 8,"],
        ),
        (&["--data", r], &["training run's directory", "--resume"]),
        (&["--cuda-graphs"], &["needs a CUDA device"]),
        (&["--outdir", n], &["is a file"]),
        (&["--batch-gpu", "0"], &["--batch-gpu 0 must be at least 1"]),
    ];
    for (extra, needles) in cases {
        let mut args = train_args(d, o, "0.008");
        for flag in extra.chunks(2) {
            match args.iter().position(|a| *a == flag[0]) {
                Some(i) => args[i + 1..i + flag.len()].copy_from_slice(&flag[1..]),
                None => args.extend(flag),
            }
        }
        args.push("--dry-run");
        let o = fpgan(&args);
        let out = text(&o.stdout);
        assert!(!out.contains("\"resolution\""), "options printed: {out}");
        refused(o, needles);
    }
    std::fs::remove_file(&notes).unwrap();
    assert_eq!(listing(tmp.path()), before, "a refused dry run wrote");
    let ds32 = tmp.path().join("ds32.zip");
    let made = dataset(&data, &ds32, &["--resolution", "32"]);
    assert!(made.status.success(), "{}", text(&made.stderr));
    let mut args = train_args(ds32.to_str().unwrap(), o, "0.008");
    args.retain(|a| *a != "--res" && *a != "128");
    refused(fpgan(&args), &["32x32", "fpgan dataset --resolution"]);
}

/// Every path under `dir`.
fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut all = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            all.extend(walkdir(&p));
        }
        all.push(p);
    }
    all
}

// 7. Temporary files of dead writers are removed by the next run; a live writer's stay.
#[test]
fn a_rerun_removes_the_leftovers_of_dead_runs_only() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = trained(tmp.path(), "0.002");
    let run = run_dir(&out);
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let live_pid = std::process::id();
    let dead_tmp = format!(".network-snapshot-000000.004.safetensors.tmp-{dead_pid}");
    let dead_png = format!(".fakes_init.png.tmp-{dead_pid}");
    let live_tmp = format!(".network-snapshot-000000.006.safetensors.tmp-{live_pid}");
    for n in [&dead_tmp, &dead_png, &live_tmp] {
        std::fs::write(run.join(n), b"partial").unwrap();
    }
    let o = fpgan(&train_args(
        data.to_str().unwrap(),
        out.to_str().unwrap(),
        "0.004",
    ));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(!run.join(&dead_tmp).exists() && !run.join(&dead_png).exists());
    assert!(
        run.join(&live_tmp).exists(),
        "a live process's file was removed"
    );
}

// 9. Two runs on one run directory: the second is refused while the first lives.
#[test]
fn a_second_run_on_the_same_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shapes(tmp.path());
    let out = tmp.path().join("runs");
    let args = long_run(data.to_str().unwrap(), out.to_str().unwrap());
    let mut first = spawn(&args);
    wait_for_snapshots(&mut first, &out, 1);
    let o = fpgan(&args);
    first.kill().unwrap();
    first.wait().unwrap();
    refused(o, &["another fpgan process is training", "00000-"]);
    // the lock dies with its process: now the same command resumes
    let mut args = args.clone();
    set_flag(&mut args, "--kimg", "0.002");
    let o = fpgan(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
}

// 10. and 11. A resumed run continues stats.jsonl exactly, and names the snapshot it used.
#[test]
fn a_resume_continues_the_stats_exactly_and_names_the_snapshot_it_used() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = trained(tmp.path(), "0.010");
    let run = run_dir(&out);
    let before = stats_ticks(&run);
    let snaps = snapshots_in(&run);
    assert!(snaps.len() >= 3, "{snaps:?}");
    // the newest snapshot is damaged: the run falls back to the one before it
    std::fs::write(&snaps[0], b"truncated").unwrap();
    let o = fpgan(&train_args(
        data.to_str().unwrap(),
        out.to_str().unwrap(),
        "0.010",
    ));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let so = text(&o.stdout);
    let resumed = so.lines().find(|l| l.starts_with("Resuming")).unwrap();
    assert!(
        resumed.ends_with(snaps[1].file_name().unwrap().to_str().unwrap()),
        "{resumed}"
    );
    let after = stats_ticks(&run);
    let expected: Vec<i64> = (0..after.len() as i64).collect();
    assert_eq!(after, expected, "ticks must run 0, 1, 2, ... once each");
    assert_eq!(after.len(), before.len(), "the same ticks as the first run");
}

// Wording: --outdir naming a file, an --ngf mismatch, a corrupt --network.
/// `--resume` given a file that is not a snapshot (an image in the training folder, a damaged
/// snapshot) is refused before anything is written beside it, and --outdir is not created for a
/// run that continues elsewhere.
#[test]
fn a_resume_from_a_file_that_is_no_snapshot_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shapes(tmp.path());
    let listing = || {
        let mut v: Vec<String> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let before = listing();
    let image = data.join(&before[0]);
    let damaged = data.join("network-snapshot-000001.000.safetensors");
    std::fs::write(&damaged, b"\x10\0\0\0\0\0\0\0{\"cut").unwrap();
    let before = listing();
    let out = tmp.path().join("never-made");
    for (file, says) in [
        (&image, "--resume takes a snapshot file"),
        (&damaged, "truncated or corrupt"),
    ] {
        let mut args = train_args(data.to_str().unwrap(), out.to_str().unwrap(), "0.002");
        args.extend(["--resume", file.to_str().unwrap()]);
        refused(fpgan(&args), &[says]);
        assert_eq!(
            listing(),
            before,
            "nothing written beside {}",
            file.display()
        );
        assert!(!out.exists(), "--outdir made for nothing");
    }
}

/// A resume from an earlier snapshot than the run's newest moves the later ones (and their
/// grids) aside instead of overwriting them, and a re-run continues the new branch.
#[test]
fn a_resume_from_an_earlier_snapshot_sets_the_later_ones_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shapes(tmp.path());
    let out = tmp.path().join("runs");
    let (d, o_) = (data.to_str().unwrap(), out.to_str().unwrap());
    let train = |kimg: &str, extra: &[&str]| {
        let mut args = train_args(d, o_, kimg);
        set_flag(&mut args, "--tick", "0.002");
        args.extend(extra);
        let o = fpgan(&args);
        assert!(o.status.success(), "{}", text(&o.stderr));
        text(&o.stdout)
    };
    train("0.008", &[]);
    let run = run_dir(&out);
    let names = |dir: &Path| -> Vec<String> {
        snapshots_in(dir)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    let snap = |kimg: &str| run.join(format!("network-snapshot-000000.{kimg}.safetensors"));
    let old_006 = std::fs::read(snap("006")).unwrap();
    let said = train(
        "0.006",
        &["--resume", snap("004").to_str().unwrap(), "--dry-run"],
    );
    assert!(
        said.contains("its 2 later snapshot(s) would be set aside"),
        "{said}"
    );
    let said = train("0.006", &["--resume", snap("004").to_str().unwrap()]);
    assert!(
        said.contains("earlier snapshot than the run's newest"),
        "{said}"
    );
    let aside: Vec<PathBuf> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        names(&aside[0]),
        [
            "network-snapshot-000000.008.safetensors",
            "network-snapshot-000000.006.safetensors"
        ]
    );
    let kept = std::fs::read(aside[0].join("network-snapshot-000000.006.safetensors")).unwrap();
    assert!(
        kept == old_006,
        "the earlier branch's snapshot is kept as it was"
    );
    assert!(aside[0].join("stats.jsonl").is_file());
    assert_eq!(names(&run)[0], "network-snapshot-000000.006.safetensors");
    let said = train("0.008", &["--dry-run"]);
    assert!(
        said.contains("run: continues") && said.contains("network-snapshot-000000.006"),
        "{said}"
    );
    let said = train("0.008", &[]);
    assert!(
        said.contains("Resuming") && said.contains("at kimg 0.006"),
        "{said}"
    );
    assert!(!said.contains("earlier snapshot"), "{said}");
    // an earlier snapshot with nothing left to do moves nothing and cuts no log
    let stats = std::fs::read(run.join("stats.jsonl")).unwrap();
    let said = train("0.004", &["--resume", snap("004").to_str().unwrap()]);
    assert!(said.contains("Nothing to do"), "{said}");
    assert_eq!(std::fs::read(run.join("stats.jsonl")).unwrap(), stats);
    assert_eq!(names(&run)[0], "network-snapshot-000000.008.safetensors");
}

#[test]
fn messages_say_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = trained(tmp.path(), "0.002");
    let run = run_dir(&out);
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let o = fpgan(&[
        "generate",
        "--network",
        run.to_str().unwrap(),
        "--seeds",
        "0",
        "--outdir",
        file.to_str().unwrap(),
    ]);
    refused(o, &["--outdir", "is a file"]);
    let mut args = train_args(data.to_str().unwrap(), out.to_str().unwrap(), "0.004");
    args.extend(["--resume", run.to_str().unwrap()]);
    set_flag(&mut args, "--ngf", "16");
    let log = std::fs::read(run.join("log.txt")).unwrap();
    refused(fpgan(&args), &["--ngf 8", "--ngf 16"]);
    assert_eq!(
        std::fs::read(run.join("log.txt")).unwrap(),
        log,
        "a refused resume writes nothing into the run's log"
    );
    // the same by auto-resume: a snapshot of other options is not a damaged one, so no
    // fall-back to an older snapshot of the run (which has the same options)
    let mut args = train_args(data.to_str().unwrap(), out.to_str().unwrap(), "0.004");
    set_flag(&mut args, "--ngf", "16");
    let o = fpgan(&args);
    let so = text(&o.stdout);
    let err = refused(o, &["--ngf 8", "--ngf 16"]);
    assert!(
        !so.contains("instead") && !err.contains("instead"),
        "{so}{err}"
    );
    // a run directory name, not a path
    let mut args = train_args(data.to_str().unwrap(), out.to_str().unwrap(), "0.004");
    args.extend(["--desc", "../../elsewhere"]);
    refused(fpgan(&args), &["--desc '../../elsewhere'", "without /"]);
    assert!(!out.join("elsewhere").exists() && !tmp.path().join("elsewhere").exists());
    // generate: a grid that does not fit the seeds is said; a walk's format without a walk,
    // and a grid with one, are refused
    let (r, g) = (run.to_str().unwrap(), tmp.path().join("gen"));
    let gen = |extra: &[&str]| {
        let mut args = vec!["generate", "--network", r, "--outdir", g.to_str().unwrap()];
        args.extend(extra);
        fpgan(&args)
    };
    let o = gen(&["--seeds", "0-2", "--grid", "2x2"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("--grid 2x2 has 4 cells for 3 images"),
        "{}",
        text(&o.stderr)
    );
    refused(
        gen(&["--seeds", "0-2", "--format", "png-frames"]),
        &["add --interpolate"],
    );
    refused(
        gen(&["--seeds", "0-2", "--frames", "10"]),
        &["--frames is the latent walk's"],
    );
    refused(
        gen(&["--seeds", "0-2", "--interpolate", "--grid", "2x2"]),
        &["not with --interpolate"],
    );
    refused(gen(&["--seeds", "7-0"]), &["runs backwards", "write 0-7"]);
    refused(
        gen(&["--seeds", "0", "--grid", "100x100"]),
        &["10000 cells; at most 4096"],
    );
    // export and plot never write over a file of another kind (their own input, say); an
    // earlier output of theirs is replaced
    let snap = snapshots_in(&run)[0].clone();
    let before = std::fs::read(&snap).unwrap();
    let n = run.to_str().unwrap();
    let export = |out: &Path| {
        let o_ = out.to_str().unwrap();
        fpgan(&["export", "--network", n, "--out", o_, "--device", "cpu"])
    };
    refused(export(&snap), &["--out", "is not a TorchScript file"]);
    assert_eq!(
        std::fs::read(&snap).unwrap(),
        before,
        "the snapshot is intact"
    );
    let pt = tmp.path().join("g.pt");
    for _ in 0..2 {
        let o = export(&pt);
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    let stats = run.join("stats.jsonl");
    let o = fpgan(&["plot", n, "--out", stats.to_str().unwrap()]);
    refused(o, &["--out", "give a .png name"]);
    let reals = run.join("reals.png");
    refused(
        fpgan(&["plot", n, "--out", reals.to_str().unwrap()]),
        &["is not an fpgan plot"],
    );
    let plot = tmp.path().join("p.png");
    for _ in 0..2 {
        let o = fpgan(&["plot", n, "--out", plot.to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    // a zip that is not TorchScript (a dataset) is not replaced either
    let set = tmp.path().join("set.zip");
    assert!(dataset(&data, &set, &["--resolution", "128"])
        .status
        .success());
    refused(export(&set), &["is not a TorchScript file"]);
    // nor a torch.save checkpoint (a zip of data.pkl and version, without TorchScript's code)
    let ckpt = tmp.path().join("ckpt.pt");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&ckpt).unwrap());
    for entry in ["archive/data.pkl", "archive/version", "archive/data/0"] {
        z.start_file(entry, zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut z, b"x").unwrap();
    }
    z.finish().unwrap();
    refused(export(&ckpt), &["is not a TorchScript file"]);
    // a shorter walk into the same folder leaves no frames of the longer one
    let walk = |seeds: &str, frames: &str| {
        let args = [
            "--seeds",
            seeds,
            "--interpolate",
            "--frames",
            frames,
            "--format",
            "png-frames",
        ];
        let o = gen(&args);
        assert!(o.status.success(), "{}", text(&o.stderr));
        text(&o.stdout)
    };
    walk("0-2", "2");
    let said = walk("0-1", "1");
    let frames = std::fs::read_dir(g.join("walk")).unwrap().count();
    assert_eq!(frames, 2, "{said}");
    assert!(
        said.contains("removed 4 frames of an earlier, longer walk"),
        "{said}"
    );
    // a seed named twice is one image, and the count says so
    let o = gen(&["--seeds", "5,5,6"]);
    let said = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        said.contains("seed 5 more than once") && said.contains("generate: 2 images"),
        "{said}"
    );
    refused(
        gen(&["--seeds", "0-2", "--class", "all", "--grid", "3x1"]),
        &["one row per class", "drop --grid"],
    );
    // dataset: an archive kind fpgan does not write is refused, not made a folder
    let tar = tmp.path().join("set.tar");
    refused(
        dataset(&data, &tar, &[]),
        &["not a .tar", "out/dataset.zip"],
    );
    assert!(!tar.exists());
    // a file of another kind (an image) as --network: said so, without advice about earlier
    // snapshots
    let image = std::fs::read_dir(&data)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let o = fpgan(&["generate", "--network", image.to_str().unwrap()]);
    let err = refused(o, &["is not a safetensors file", "--network takes"]);
    assert!(!err.contains("earlier snapshot"), "{err}");
    // metrics on a dataset of another size: no advice about a --res that metrics lacks
    let ds = tmp.path().join("ds256.zip");
    let o = dataset(&data, &ds, &["--resolution", "256"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let z = ds.to_str().unwrap();
    let (r, n) = (run.to_str().unwrap(), "8");
    let o = fpgan(&["metrics", "--network", r, "--data", z, "--num-gen", n]);
    let err = refused(o, &["the network makes 128x128"]);
    assert!(!err.contains("--res"), "{err}");
    let snap = snapshots_in(&run)[0].clone();
    std::fs::write(&snap, vec![0u8; 4096]).unwrap(); // overwritten: damaged, not another kind
    let o = fpgan(&["generate", "--network", snap.to_str().unwrap()]);
    let err = refused(o, &["truncated or corrupt", "--network"]);
    assert!(
        !err.contains("--resume"),
        "training advice for generate: {err}"
    );
}

/// Re-running the same command continues the newest of several matching runs (one started
/// with --resume none, say), and says which; an option changed on the way is named and
/// recorded in training_options.json.
#[test]
fn auto_resume_continues_the_newest_matching_run_and_names_changed_options() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = trained(tmp.path(), "0.002");
    let (d, o_) = (data.to_str().unwrap(), out.to_str().unwrap());
    let mut args = train_args(d, o_, "0.002");
    args.extend(["--resume", "none"]);
    let o = fpgan(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // a newer matching run that died before its first snapshot is passed over
    let second = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("00001-"))
        .unwrap();
    std::fs::create_dir(out.join(second.replacen("00001", "00002", 1))).unwrap();
    let mut args = train_args(d, o_, "0.004");
    args.extend(["--lr", "0.0003"]);
    let o = fpgan(&args);
    let (so, se) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "{se}");
    assert!(so.contains("note: 3 runs in"), "{so}");
    let resumed = so.lines().find(|l| l.starts_with("Resuming")).unwrap_or("");
    assert!(resumed.contains("/00001-"), "{so}");
    assert!(
        so.contains("other options than the snapshot's run: --lr 0.0003 (was 0.0002)"),
        "{so}"
    );
    let runs: Vec<PathBuf> = (std::fs::read_dir(&out).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 3, "no new run directory: {runs:?}");
    let newest = runs
        .iter()
        .find(|p| p.to_string_lossy().contains("/00001-"))
        .unwrap();
    let opts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(newest.join("training_options.json")).unwrap())
            .unwrap();
    assert_eq!(opts["lr"], 0.0003);
}
