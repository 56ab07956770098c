//! `fpgan bench`: the real training iteration of `fpgan train` on synthetic images, timed for
//! each configuration, as a table with ratios to the first configuration.
use super::options::TrainOptions;
use super::trainer::Trainer;
use crate::fastpath::cuda_memory::{self, CudaMemory};
use crate::fastpath::FastPath;
use crate::nets::generator::GenCfg;
use crate::nets::info::thousands;
use crate::nets::layers::trainable_params;
use crate::util::atomic::atomic_write;
use crate::util::device::{device_name, parse_device};
use crate::util::files::FileKind;
use crate::util::profiler::{self, TraceSummary};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Kind, Tensor};

/// One configuration to measure.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchSpec {
    pub cfg: GenCfg,
    pub res: i64,
    pub batch: i64,
    pub batch_gpu: i64,
    pub ngf: i64,
    /// Classes of a class-conditional model (0: unconditional).
    #[serde(default)]
    pub classes: i64,
    pub iters: usize,
    pub warmup: usize,
    pub device: String,
    #[serde(flatten)]
    pub fast: FastPath,
    /// Folder for a Chrome trace of a few more iterations under libtorch's profiler.
    #[serde(default)]
    pub profile: Option<PathBuf>,
}

/// Median of the phases of the measured iterations, in seconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Phases {
    pub data: f64,
    pub g_phase: f64,
    pub d_phase: f64,
    pub ema: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchResult {
    pub spec: BenchSpec,
    pub params_g: i64,
    pub params_d: i64,
    pub sec_per_iter: Vec<f64>,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub images_per_sec: f64,
    pub sec_per_kimg: f64,
    /// Peak resident memory of the process (CPU), GB.
    pub peak_rss_gb: f64,
    /// CUDA: peak allocated and peak reserved memory of the measured iterations, GB (2^30).
    pub peak_gpu_allocated_gb: Option<f64>,
    pub peak_gpu_reserved_gb: Option<f64>,
    /// CUDA: the same peaks from the end of set-up, warm-up included (cuDNN's algorithm search
    /// allocates its workspaces then), as the official harness pg_bench.py reports them, GB.
    #[serde(default)]
    pub peak_gpu_allocated_with_warmup_gb: Option<f64>,
    #[serde(default)]
    pub peak_gpu_reserved_with_warmup_gb: Option<f64>,
    pub phases: Phases,
    pub device: String,
    pub threads: i64,
    /// What the profiled iterations' trace says (`--profile`).
    #[serde(default)]
    pub profile: Option<TraceSummary>,
}

impl BenchResult {
    /// The peak memory compared across configurations: CUDA peak allocated, else peak RSS.
    pub fn peak_memory_gb(&self) -> f64 {
        self.peak_gpu_allocated_gb.unwrap_or(self.peak_rss_gb)
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Measure one configuration in this process: the real iteration (both phases, Adam, EMA,
/// DiffAugment) on synthetic images already in memory.
pub fn run_one(spec: &BenchSpec) -> Result<BenchResult> {
    let device = parse_device(&spec.device)?;
    let mut trainer = bench_trainer(spec, device)?;
    let data = SyntheticData::new(spec);
    let Timed {
        iters,
        phases,
        gpu,
        gpu_with_warmup,
    } = timed_iterations(&mut trainer, &data, spec, device)?;
    let profile = (spec.profile.as_deref())
        .map(|dir| profiled_iterations(&mut trainer, &data, spec, device, dir))
        .transpose()?;
    let col = |k: usize| median(&phases.iter().map(|p| p[k]).collect::<Vec<_>>());
    let med = median(&iters);
    Ok(BenchResult {
        params_g: trainable_params(&trainer.gvs),
        params_d: trainable_params(&trainer.dvs),
        median: med,
        min: iters.iter().copied().fold(f64::INFINITY, f64::min),
        max: iters.iter().copied().fold(0.0, f64::max),
        images_per_sec: spec.batch as f64 / med,
        sec_per_kimg: med * 1000.0 / spec.batch as f64,
        peak_rss_gb: crate::util::progress::proc_memory_gb("VmHWM"),
        peak_gpu_allocated_gb: gpu.map(|m| cuda_memory::gb(m.peak_allocated)),
        peak_gpu_reserved_gb: gpu.map(|m| cuda_memory::gb(m.peak_reserved)),
        peak_gpu_allocated_with_warmup_gb: gpu_with_warmup
            .map(|m| cuda_memory::gb(m.peak_allocated)),
        peak_gpu_reserved_with_warmup_gb: gpu_with_warmup.map(|m| cuda_memory::gb(m.peak_reserved)),
        phases: Phases {
            data: col(0),
            g_phase: col(1),
            d_phase: col(2),
            ema: col(3),
        },
        device: device_name(device),
        threads: tch::get_num_threads() as i64,
        profile,
        sec_per_iter: iters,
        spec: spec.clone(),
    })
}

/// A trainer of `spec` on synthetic data, timing its phases.
fn bench_trainer(spec: &BenchSpec, device: tch::Device) -> Result<Trainer> {
    let opts = TrainOptions {
        ngf: spec.ngf,
        classes: spec.classes,
        batch: spec.batch,
        batch_gpu: spec.batch_gpu,
        device: spec.device.clone(),
        grid: (1, 1),
        fast: spec.fast,
        ..TrainOptions::without_data("synthetic", spec.cfg, spec.res)
    };
    let mut trainer = Trainer::new(&opts, device)?;
    trainer.time_phases = true;
    Ok(trainer)
}

/// A pool of random images in memory, from which batches are gathered as the training data
/// thread gathers them (so that disk and decoding are not measured).
struct SyntheticData {
    pool: Tensor,
}

impl SyntheticData {
    fn new(spec: &BenchSpec) -> Self {
        let n = spec.batch.max(16);
        let shape = [n, 3, spec.res, spec.res];
        SyntheticData {
            pool: Tensor::randint(256, shape, (Kind::Uint8, tch::Device::Cpu)),
        }
    }

    /// A batch of images, and their labels when class-conditional.
    fn batch(&self, spec: &BenchSpec) -> (Tensor, Option<Tensor>) {
        let n = self.pool.size()[0];
        let idx = Tensor::randint(n, [spec.batch], (Kind::Int64, tch::Device::Cpu));
        let labels = (spec.classes > 0).then(|| idx.remainder(spec.classes));
        (self.pool.index_select(0, &idx), labels)
    }
}

/// Wait for `device`'s queued work (nothing on a CPU).
fn synchronize(device: tch::Device) {
    if let tch::Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// What the warm-up and measured iterations of one configuration gave.
struct Timed {
    /// Each measured iteration's seconds.
    iters: Vec<f64>,
    /// Each measured iteration's data, G phase, D phase and EMA seconds.
    phases: Vec<[f64; 4]>,
    /// CUDA memory, peaks over the measured iterations only.
    gpu: Option<CudaMemory>,
    /// CUDA memory, peaks from the end of set-up (warm-up included).
    gpu_with_warmup: Option<CudaMemory>,
}

/// Warm-up then measured iterations, timed, with the GPU memory they took.
fn timed_iterations(
    trainer: &mut Trainer,
    data: &SyntheticData,
    spec: &BenchSpec,
    device: tch::Device,
) -> Result<Timed> {
    let (mut iters, mut phases, mut warm) = (Vec::new(), Vec::new(), None);
    synchronize(device);
    cuda_memory::stats(device, true); // peaks from the end of set-up
    for it in 0..spec.warmup + spec.iters {
        let t0 = Instant::now();
        let (reals, labels) = data.batch(spec);
        let data_sec = t0.elapsed().as_secs_f64();
        let l = trainer.step(&reals, labels.as_ref())?;
        synchronize(device);
        if it + 1 == spec.warmup {
            // the warm-up's peaks; from here on, those of the measured iterations only
            warm = cuda_memory::stats(device, true);
        }
        if it >= spec.warmup {
            iters.push(t0.elapsed().as_secs_f64());
            let [g, d, ema] = l.phase_sec.expect("bench times the phases");
            phases.push([data_sec, g, d, ema]);
        }
    }
    let gpu = cuda_memory::stats(device, false);
    Ok(Timed {
        iters,
        phases,
        gpu,
        gpu_with_warmup: gpu.map(|m| m.max_peaks(warm)),
    })
}

/// Iterations recorded by `--profile`.
pub const PROFILED_ITERS: usize = 2;

/// [`PROFILED_ITERS`] more iterations under libtorch's profiler, as `fpgan train` runs them
/// (phases not synchronised): the Chrome trace `<cfg>-<settings>.trace.json` in `dir`, and what
/// it says.
fn profiled_iterations(
    trainer: &mut Trainer,
    data: &SyntheticData,
    spec: &BenchSpec,
    device: tch::Device,
    dir: &Path,
) -> Result<TraceSummary> {
    let path = dir.join(format!(
        "{}-{}.trace.json",
        spec.cfg.name(),
        spec.fast.tag()
    ));
    let batches: Vec<_> = (0..PROFILED_ITERS).map(|_| data.batch(spec)).collect();
    trainer.time_phases = false;
    synchronize(device);
    profiler::start(device.is_cuda())?;
    for (reals, labels) in &batches {
        trainer.step(reals, labels.as_ref())?;
    }
    synchronize(device);
    profiler::stop(&path)?;
    trainer.time_phases = true;
    profiler::summarise(&path, PROFILED_ITERS, 12)
}

/// What [`run_all`] measured: the results of the configurations whose worker succeeded, and
/// for each of the others its configuration and its error (the worker's error line).
pub struct BenchOutcome {
    pub results: Vec<BenchResult>,
    pub failures: Vec<(GenCfg, String)>,
}

/// Run every spec in its own child process (`fpgan bench-worker`) and collect the results (one
/// configuration per process so that peak memory is per configuration). A configuration that
/// fails (out of memory, say) is reported with the worker's messages and costs only its own
/// figures: the others still run. `measured` is called with the results so far after each
/// success (to save them, so that a run stopped early keeps what it measured).
pub fn run_all(
    specs: &[BenchSpec],
    mut measured: impl FnMut(&[BenchResult]),
) -> Result<BenchOutcome> {
    let exe = std::env::current_exe().context("cannot find the fpgan executable")?;
    let mut out = BenchOutcome {
        results: Vec::new(),
        failures: Vec::new(),
    };
    for spec in specs {
        eprintln!("bench: {} ...", spec.cfg);
        match run_worker(&exe, spec) {
            Ok(r) => {
                out.results.push(r);
                measured(&out.results);
            }
            Err(e) => {
                eprintln!("bench: {} failed (its messages above)", spec.cfg);
                out.failures.push((spec.cfg, format!("{e:#}")));
            }
        }
    }
    Ok(out)
}

/// One `fpgan bench-worker` process for `spec`: its result, or its error (the worker's
/// messages are passed on to standard error).
fn run_worker(exe: &Path, spec: &BenchSpec) -> Result<BenchResult> {
    let o = std::process::Command::new(exe)
        .arg("bench-worker")
        .arg(serde_json::to_string(spec)?)
        .output()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    // passed on whether or not it succeeded: libtorch's warnings (an operator without a
    // deterministic kernel under --deterministic, say) belong to the figures
    let stderr = String::from_utf8_lossy(&o.stderr);
    eprint!("{stderr}");
    if !o.status.success() {
        // its error line (libtorch's messages may follow it with stack frames), else its status
        match stderr.lines().rev().find_map(|l| l.strip_prefix("error: ")) {
            Some(e) => bail!("{}", e.trim()),
            None => bail!("the worker ended with {} and no error line", o.status),
        }
    }
    let stdout = String::from_utf8_lossy(&o.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("bad worker output: {line}"))
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1).map(|m| m.trim().to_string()))
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The table: parameters, sec/iter, images/s, sec/kimg, peak memory and a per-phase breakdown,
/// each figure also as a ratio to the first result.
pub fn render(results: &[BenchResult]) -> String {
    let Some(base) = results.first() else {
        return String::new();
    };
    let mut s = header_line(base);
    s += &absolute_table(results);
    s += &ratio_table(results, base);
    if base.device == "cpu" {
        s += "(CPU: peak memory is the process's peak RSS, which includes libtorch itself.)\n";
    }
    for r in results {
        if let Some(p) = &r.profile {
            s += &profile_table(r.spec.cfg.name(), p);
        }
    }
    s
}

/// What the trace of one configuration's profiled iterations says, per iteration.
fn profile_table(cfg: &str, p: &TraceSummary) -> String {
    use std::fmt::Write;
    let gpu = p.kernels > 0.0;
    let mut s = format!(
        "\nprofile of {cfg}, per iteration ({} iterations; trace {}):\n{:.0} libtorch operator calls",
        p.iterations, p.trace, p.ops
    );
    if gpu {
        let busy = 100.0 * p.gpu_ms / p.wall_ms.max(1e-9);
        let _ = write!(
            s,
            ", {:.0} CUDA kernels; GPU busy {:.1} of {:.1} ms ({busy:.0} %)",
            p.kernels, p.gpu_ms, p.wall_ms
        );
    } else {
        let _ = write!(s, " in {:.1} ms", p.wall_ms);
    }
    let what = if gpu {
        "kernel"
    } else {
        "operator (own time, less the operators it calls)"
    };
    let _ = writeln!(s, "\n{:>10} {:>8}  {what}", "ms/iter", "calls");
    for e in &p.top {
        let name: String = e.name.chars().take(100).collect();
        let _ = writeln!(
            s,
            "{:>10.3} {:>8.1}  {name}",
            e.ms_per_iter, e.calls_per_iter
        );
    }
    if !p.phases.is_empty() {
        let phases: Vec<String> = (p.phases.iter())
            .map(|e| format!("{} {:.1}", e.name, e.ms_per_iter))
            .collect();
        let _ = writeln!(s, "phases, wall ms/iter: {}", phases.join(", "));
    }
    s
}

/// The settings shared by every row.
fn header_line(base: &BenchResult) -> String {
    let sp = &base.spec;
    format!(
        "fpgan bench: {r}x{r}{}, batch {} (batch-gpu {}), ngf {}, {} iterations after {} warm-up, device {} ({}; {} threads), {}\n",
        match sp.classes {
            0 => String::new(),
            c => format!(", class-conditional ({c} classes)"),
        },
        sp.batch,
        sp.batch_gpu,
        sp.ngf,
        sp.iters,
        sp.warmup,
        base.device,
        if base.device == "cpu" { cpu_name() } else { "CUDA".into() },
        base.threads,
        sp.fast.describe(),
        r = sp.res
    )
}

/// One row of measured figures per configuration.
fn absolute_table(results: &[BenchResult]) -> String {
    use std::fmt::Write;
    let mut s = format!(
        "{:<13} {:>12} {:>11} {:>24} {:>9} {:>9} {:>9} | {:>8} {:>8} {:>8} {:>8}\n",
        "cfg",
        "G params",
        "D params",
        "sec/iter med [min, max]",
        "img/s",
        "sec/kimg",
        "peak GB",
        "data",
        "G phase",
        "D phase",
        "EMA"
    );
    for r in results {
        let _ = writeln!(
            s,
            "{:<13} {:>12} {:>11} {:>24} {:>9.2} {:>9.1} {:>9.2} | {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
            r.spec.cfg.name(),
            thousands(r.params_g),
            thousands(r.params_d),
            format!("{:.3} [{:.3}, {:.3}]", r.median, r.min, r.max),
            r.images_per_sec,
            r.sec_per_kimg,
            r.peak_memory_gb(),
            r.phases.data,
            r.phases.g_phase,
            r.phases.d_phase,
            r.phases.ema
        );
    }
    s
}

/// Every configuration as a ratio to the first.
fn ratio_table(results: &[BenchResult], base: &BenchResult) -> String {
    use std::fmt::Write;
    let mut s = format!(
        "\nratio to {} (images/s higher is better; the others lower):\n{:<13} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        base.spec.cfg, "cfg", "G params", "img/s", "sec/iter", "peak mem", "G phase"
    );
    for r in results {
        let _ = writeln!(
            s,
            "{:<13} {:>8.3}x {:>8.3}x {:>8.3}x {:>8.3}x {:>8.3}x",
            r.spec.cfg.name(),
            r.params_g as f64 / base.params_g as f64,
            r.images_per_sec / base.images_per_sec,
            r.median / base.median,
            r.peak_memory_gb() / base.peak_memory_gb(),
            r.phases.g_phase / base.phases.g_phase
        );
    }
    s
}

/// What `bench --json` writes: a JSON array (of results); not a run's stats.jsonl or a
/// dataset.json, which are objects.
pub const BENCH_JSON_FILE: FileKind = FileKind {
    what: "a bench JSON file (an array)",
    is: |p| {
        std::fs::read(p).is_ok_and(|b| b.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'['))
    },
};

/// Write the results as JSON (atomically).
pub fn write_json(results: &[BenchResult], path: &std::path::Path) -> Result<()> {
    let json = serde_json::to_string_pretty(results)?;
    atomic_write(path, |w| {
        use std::io::Write;
        Ok(w.write_all(json.as_bytes())?)
    })
}
