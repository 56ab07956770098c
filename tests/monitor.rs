//! What a run shows: TensorBoard event files that TensorBoard's own reader (the set-up's
//! `tensorboard` package) reads back with the tags, steps and values written, and the plots
//! (`progress.png`, `fpgan plot`).
mod common;

use common::{fpgan, shapes, text, train_args, venv_python};
use fpgan::monitor::tfevents::EventWriter;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// Every scalar and image of the event files in `dir`, as TensorBoard's EventAccumulator (with
/// its default purge of orphaned data) sees them: {"scalars": {tag: [[step, value]]},
/// "images": {tag: [[step, width, height, png_ok]]}}.
fn read_back(dir: &Path) -> Value {
    const PY: &str = r#"
import io, json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0, "images": 0})
acc.Reload()
tags = acc.Tags()
out = {"scalars": {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags["scalars"]},
       "images": {t: [[e.step, e.width, e.height, e.encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n"]
                      for e in acc.Images(t)] for t in tags["images"]}}
print(json.dumps(out))
"#;
    let o = Command::new(venv_python())
        .args(["-c", PY, dir.to_str().unwrap()])
        .output()
        .expect("the project venv's python (make setup)");
    assert!(o.status.success(), "{}", text(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn tensorboard_reads_the_scalars_images_and_restarts_written() {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = EventWriter::create(tmp.path()).unwrap();
    for (step, v) in [(0, 1.5), (1, -2.25), (2, 1e-3), (3, 7.0)] {
        w.scalar("Loss/G/loss", step, 1000.0 + step as f64, v)
            .unwrap();
    }
    // a resumed run: what the dead one wrote at steps 2 and later is dropped, then rewritten
    w.restart(2).unwrap();
    w.scalar("Loss/G/loss", 2, 2000.0, 0.5).unwrap();
    let img = image::RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8 * 40, y as u8 * 80, 7]));
    let png = fpgan::util::images::png_bytes(&img).unwrap();
    w.png("fakes", 4, 2001.0, png, 5, 3).unwrap();
    drop(w);
    let got = read_back(tmp.path());
    let want = serde_json::json!([[0, 1.5], [1, -2.25], [2, 0.5]]);
    assert_eq!(got["scalars"]["Loss/G/loss"], want, "{got}");
    assert_eq!(got["images"]["fakes"], serde_json::json!([[4, 5, 3, true]]));
}

#[test]
fn a_training_run_logs_every_statistic_metric_and_sample_grid() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shapes(tmp.path());
    let out = tmp.path().join("runs");
    let (d, o) = (data.to_str().unwrap(), out.to_str().unwrap());
    let mut args = train_args(d, o, "0.004");
    let m = args.iter().position(|a| *a == "none").unwrap();
    args[m] = "fid50k_full";
    args.extend(["--num-gen", "8"]);
    let r = fpgan(&args);
    assert!(r.status.success(), "{}", text(&r.stderr));
    let run = std::fs::read_dir(&out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let got = read_back(&run);
    // stats.jsonl and the event files hold the same ticks and means
    let stats: Vec<Value> = std::fs::read_to_string(run.join("stats.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(stats.len(), 2);
    for name in stats[0].as_object().unwrap().keys() {
        if name == "timestamp" {
            continue;
        }
        let events = got["scalars"][name]
            .as_array()
            .unwrap_or_else(|| panic!("no tag {name}"));
        assert_eq!(events.len(), stats.len(), "{name}");
        for (e, line) in events.iter().zip(&stats) {
            let want = line[name]["mean"].as_f64().unwrap() as f32;
            assert_eq!(e[1].as_f64().unwrap() as f32, want, "{name}");
            assert_eq!(e[0], 0, "{name}: the official step, whole kimg");
        }
    }
    let fid = &got["scalars"]["Metrics/fid50k_full"];
    let metric: Value = serde_json::from_str(
        std::fs::read_to_string(run.join("metric-fid50k_full.jsonl"))
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    let want = metric["results"]["fid50k_full"].as_f64().unwrap() as f32;
    assert_eq!(
        fid.as_array().unwrap().last().unwrap()[1].as_f64().unwrap() as f32,
        want
    );
    // fakes_init and one grid per snapshot (two ticks, a snapshot each)
    let fakes = got["images"]["fakes"].as_array().unwrap();
    assert_eq!(fakes.len(), 3, "{got}");
    assert!(
        fakes
            .iter()
            .all(|f| f[3] == true && f[1] == 256 && f[2] == 128),
        "{fakes:?}"
    );
    let plot = image::open(run.join("progress.png")).unwrap();
    assert_eq!((plot.width(), plot.height()), (1200, 800));
}

/// A fabricated run: stats.jsonl with `ticks` ticks whose losses and speed depend on `k`, and
/// an FID at every other tick.
fn fake_run(dir: &Path, k: f64, ticks: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut stats = String::new();
    let mut fid = String::new();
    for t in 0..ticks {
        let kimg = t as f64 * 4.0;
        let line = serde_json::json!({
            "Progress/kimg": {"num": 1, "mean": kimg, "std": 0.0},
            "Loss/G/loss": {"num": 8, "mean": k + (t as f64).sin(), "std": 0.1},
            "Loss/D/loss": {"num": 8, "mean": 2.0 - k * 0.1 * t as f64, "std": 0.1},
            "Timing/sec_per_kimg": {"num": 1, "mean": 30.0 * k + t as f64, "std": 0.0},
            "timestamp": 1.7e9 + t as f64,
        });
        stats += &format!("{line}\n");
        if t % 2 == 1 {
            let snap = fpgan::snapshot::snapshot_name((kimg * 1000.0) as i64);
            let m = serde_json::json!({"results": {"fid50k_full": 100.0 / (t as f64 * k)},
                                       "metric": "fid50k_full", "snapshot_pkl": snap});
            fid += &format!("{m}\n");
        }
    }
    std::fs::write(dir.join("stats.jsonl"), stats).unwrap();
    std::fs::write(dir.join("metric-fid50k_full.jsonl"), fid).unwrap();
}

/// Pixels of `color` in each quadrant (panel) of the plot.
fn color_per_panel(img: &image::RgbImage, color: (u8, u8, u8)) -> [usize; 4] {
    let (w, h) = img.dimensions();
    let mut n = [0; 4];
    for (x, y, p) in img.enumerate_pixels() {
        if (p[0], p[1], p[2]) == color {
            n[(2 * (y >= h / 2) as usize) + (x >= w / 2) as usize] += 1;
        }
    }
    n
}

#[test]
fn fpgan_plot_draws_every_run_in_every_panel() {
    use plotters::style::{Color, Palette, Palette99};
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (
        tmp.path().join("00000-faster"),
        tmp.path().join("00001-fastgan"),
    );
    fake_run(&a, 1.0, 12);
    fake_run(&b, 2.0, 9);
    let out = tmp.path().join("cmp.png");
    let (a, b, o_) = (
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let o = fpgan(&["plot", a, b, "--out", o_]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let img = image::open(&out).unwrap().to_rgb8();
    for i in 0..2 {
        let c = Palette99::pick(i).to_rgba().rgb();
        let n = color_per_panel(&img, c);
        assert!(
            n.iter().all(|&k| k > 50),
            "run {i} is missing from a panel: {n:?}"
        );
    }
    // a folder that is not a run is named, with the fix
    let dir = tmp.path().to_str().unwrap();
    let o = fpgan(&["plot", dir, "--out", o_]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(err.contains("no stats.jsonl") && err.contains(dir), "{err}");
    // a run's stats.jsonl stands for its run; a path that does not exist is said to be missing
    let stats = format!("{a}/stats.jsonl");
    let o = fpgan(&["plot", &stats, "--out", o_]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = fpgan(&["plot", &format!("{a}-typo"), "--out", o_]);
    assert!(
        text(&o.stderr).contains("no such run directory"),
        "{}",
        text(&o.stderr)
    );
}

/// A sample grid cut back into its tiles gives the images it was made of (what the demo's
/// before/after FID reads from fakes_init.png), and a grid of another tile size is refused.
#[test]
fn grid_tiles_undo_grid_image() {
    use fpgan::util::images::{grid_image, grid_tiles};
    let n = 6 * 3 * 8 * 8;
    let x = tch::Tensor::arange(n, (tch::Kind::Int64, tch::Device::Cpu))
        .remainder(251)
        .to_kind(tch::Kind::Uint8)
        .view([6, 3, 8, 8]);
    let img = grid_image(&x, 3).unwrap();
    assert_eq!(img.dimensions(), (24, 16));
    assert!(grid_tiles(&img, 8).unwrap().equal(&x));
    assert!(grid_tiles(&img, 7).is_err());
}
