//! What a run reports: the live progress line, and at every tick the reference's tick line in
//! log.txt and the tick's statistics (losses, timing, memory) as one line of stats.jsonl.
use super::trainer::Trainer;
use crate::fastpath::cuda_memory;
use crate::util::clock::{format_time, unix_time};
use crate::util::early_log;
use crate::util::files::keep_lines;
use crate::util::progress;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;
use tch::Device;

/// Appends lines to log.txt and prints them without tearing the progress bar.
pub struct Log {
    /// None for a worker that is not rank 0: it writes and prints nothing.
    file: Option<std::fs::File>,
    pub pb: indicatif::ProgressBar,
}

impl Log {
    /// Open `<run_dir>/log.txt` for appending; lines are printed above `pb`.
    pub fn open(run_dir: &Path, pb: indicatif::ProgressBar) -> Result<Self> {
        let path = run_dir.join("log.txt");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let mut log = Log {
            file: Some(file),
            pb,
        };
        // what was printed before the run directory existed (preparation, skipped files)
        for line in early_log::take() {
            log.write(&line);
        }
        Ok(log)
    }

    /// A log that writes and shows nothing (the ranks after 0 of a data-parallel run).
    pub fn silent() -> Self {
        Log {
            file: None,
            pb: indicatif::ProgressBar::hidden(),
        }
    }

    /// Print `s` and append it to log.txt.
    pub fn line(&mut self, s: &str) {
        if self.file.is_some() {
            self.pb.suspend(|| println!("{s}"));
            self.write(s);
        }
    }

    /// Append `s` to log.txt only (it was printed already).
    fn write(&mut self, s: &str) {
        if let Some(f) = &mut self.file {
            let _ = writeln!(f, "{s}");
        }
    }
}

fn cpu_mem_gb() -> f64 {
    progress::proc_memory_gb("VmRSS")
}

/// The live line under the bar: kimg, rate, ETA, losses, memory (`rate` in images/s).
pub fn live_line(cur_nimg: i64, kimg: f64, total_nimg: i64, rate: f64, g: f64, d: f64) -> String {
    format!(
        "kimg {:.2}/{} | {:.1} img/s | {:.1} s/kimg | ETA {} | G {:.3} D {:.3} | cpu {:.1} GB",
        cur_nimg as f64 / 1e3,
        kimg,
        rate,
        1000.0 / rate.max(1e-9),
        format_time((total_nimg - cur_nimg) as f64 / rate.max(1e-9)),
        g,
        d,
        cpu_mem_gb()
    )
}

/// Timing of the tick that just ended, in seconds.
pub struct TickTiming {
    /// Training seconds of the whole run so far, earlier processes included.
    pub total_sec: f64,
    pub tick_sec: f64,
    pub tick_nimg: i64,
    /// Seconds of the previous tick's maintenance (snapshot, grids, metrics).
    pub maintenance_sec: f64,
}

/// End the tick: the tick line in log.txt and the tick's statistics appended to stats.jsonl
/// (the line is returned).
pub fn report(
    trainer: &mut Trainer,
    t: &TickTiming,
    device: Device,
    run_dir: &Path,
    log: &mut Log,
) -> Result<serde_json::Value> {
    trainer.report_phase_events();
    let tick = trainer.progress.cur_tick;
    let kimg = trainer.progress.cur_nimg as f64 / 1e3;
    let sec_per_kimg = t.tick_sec / (t.tick_nimg.max(1) as f64 / 1e3);
    let cpu = cpu_mem_gb();
    let (gpu_alloc, gpu_reserved) = match cuda_memory::stats(device, true) {
        Some(m) => (
            cuda_memory::gb(m.peak_allocated),
            cuda_memory::gb(m.peak_reserved),
        ),
        None => (0.0, 0.0),
    };
    log.line(&format!(
        "tick {tick:<5} kimg {kimg:<8.1} time {:<12} sec/tick {:<7.1} sec/kimg {sec_per_kimg:<7.2} maintenance {:<6.1} cpumem {cpu:<6.2} gpumem {gpu_alloc:<6.2} reserved {gpu_reserved:<6.2}",
        format_time(t.total_sec),
        t.tick_sec,
        t.maintenance_sec
    ));
    for (name, v) in [
        ("Progress/tick", tick as f64),
        ("Progress/kimg", kimg),
        ("Timing/total_sec", t.total_sec),
        ("Timing/sec_per_tick", t.tick_sec),
        ("Timing/sec_per_kimg", sec_per_kimg),
        ("Timing/maintenance_sec", t.maintenance_sec),
        ("Timing/total_hours", t.total_sec / 3600.0),
        ("Timing/total_days", t.total_sec / 86400.0),
        ("Resources/cpu_mem_gb", cpu),
        ("Resources/peak_gpu_mem_gb", gpu_alloc),
        ("Resources/peak_gpu_mem_reserved_gb", gpu_reserved),
    ] {
        trainer.stats.report_scalar(name, v);
    }
    let line = trainer.stats.tick(unix_time());
    let path = run_dir.join("stats.jsonl");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(f, "{line}").context("cannot append to stats.jsonl (disk full?)")?;
    Ok(line)
}

/// On resume at tick `next_tick`: drop the lines of stats.jsonl written after the snapshot (ticks
/// >= `next_tick`), so that the resumed run continues the file exactly.
pub fn truncate_stats(run_dir: &Path, next_tick: i64) -> Result<()> {
    keep_lines(&run_dir.join("stats.jsonl"), |v| {
        v["Progress/tick"]["mean"]
            .as_f64()
            .is_some_and(|t| t < next_tick as f64)
    })
}
