//! TensorBoard logs: event files that TensorBoard's own reader (the set-up's `tensorboard`
//! package) reads back with the tags, steps and values written.
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
}
