//! libtorch's profiler (csrc/profiler.cpp): a Chrome trace of a stretch of work, and its summary
//! (operator calls, kernels, GPU busy time and the heaviest entries) for `fpgan bench --profile`.
use super::shim::check;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::ffi::{c_char, c_void, CStr, CString};
use std::path::Path;

extern "C" {
    fn fpgan_profiler_start(cuda: i32) -> i32;
    fn fpgan_profiler_stop(path: *const c_char) -> i32;
    fn fpgan_profiler_range_enter(name: *const c_char) -> *mut c_void;
    fn fpgan_profiler_range_exit(handle: *mut c_void);
}

/// `f` inside a span labelled `name` in the trace being recorded (as Python's
/// `record_function(name)`; the official loop's names, [`PHASES`], so that `fpgan phases` sets
/// the traces of both side by side). Without a profiler running it costs one check.
pub fn range<T>(name: &'static CStr, f: impl FnOnce() -> T) -> T {
    // SAFETY: `name` is static; the shim catches C++ exceptions and returns null on failure.
    let handle = unsafe { fpgan_profiler_range_enter(name.as_ptr()) };
    let out = f();
    // SAFETY: `handle` came from fpgan_profiler_range_enter and is closed once (null: no-op).
    unsafe { fpgan_profiler_range_exit(handle) };
    out
}

/// The labels of a training iteration's phases, in the order it runs them: the official loop's
/// `record_function` names, which the trainer gives its [`range`]s.
pub const PHASES: [&str; 9] = [
    "Gmain_forward",
    "Gmain_backward",
    "Gboth_opt",
    "Dgen_forward",
    "Dgen_backward",
    "Dreal_forward",
    "Dreal_backward",
    "Dmain_opt",
    "Gema",
];

/// Start recording libtorch's operators, and CUDA kernels, copies and launches when `cuda`.
pub fn start(cuda: bool) -> Result<()> {
    // SAFETY: a plain call; the shim catches C++ exceptions.
    check("cannot start the profiler", unsafe {
        fpgan_profiler_start(i32::from(cuda))
    })
}

/// Stop recording and write the Chrome trace (chrome://tracing, ui.perfetto.dev) to `path`.
pub fn stop(path: &Path) -> Result<()> {
    let c = CString::new(path.to_string_lossy().as_bytes())
        .with_context(|| format!("bad trace path {}", path.display()))?;
    // SAFETY: `c` lives for the call; the shim catches C++ exceptions.
    check(
        &format!("cannot write the trace {}", path.display()),
        unsafe { fpgan_profiler_stop(c.as_ptr()) },
    )
}

/// One row of a trace summary: a kernel (CUDA) or operator (CPU) name, its calls and time.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TraceEntry {
    pub name: String,
    pub calls_per_iter: f64,
    pub ms_per_iter: f64,
}

/// What a trace of `iterations` training iterations says, per iteration.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TraceSummary {
    pub trace: String,
    pub iterations: usize,
    /// libtorch operator calls (nested ones included).
    pub ops: f64,
    /// CUDA kernels launched.
    pub kernels: f64,
    /// Time the GPU spent in kernels, copies and fills, ms.
    pub gpu_ms: f64,
    /// From the first event to the last, ms.
    pub wall_ms: f64,
    /// The heaviest CUDA kernels by total time, or on a CPU the heaviest operators by their own
    /// time (less that of the operators they call).
    pub top: Vec<TraceEntry>,
    /// The labelled spans ([`range`]: the phases), in order of first appearance, with their
    /// wall time (on a GPU: the host's, launches and waits).
    #[serde(default)]
    pub phases: Vec<TraceEntry>,
}

#[derive(Deserialize)]
struct Trace {
    #[serde(rename = "traceEvents")]
    events: Vec<Event>,
}

/// The trace categories of work done on the GPU: kernels, copies and fills.
pub(crate) const GPU_WORK: [&str; 3] = ["kernel", "gpu_memcpy", "gpu_memset"];

/// One event of a Chrome trace (times in microseconds).
#[derive(Deserialize)]
pub(crate) struct Event {
    #[serde(default)]
    pub ph: String,
    #[serde(default)]
    pub cat: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub ts: f64,
    #[serde(default)]
    pub dur: f64,
    #[serde(default)]
    pub tid: serde_json::Value,
    #[serde(default)]
    pub args: EventArgs,
}

/// The part of an event's `args` read here: the id tying a CUDA launch to its kernel.
#[derive(Deserialize, Default)]
pub(crate) struct EventArgs {
    #[serde(default)]
    pub correlation: Option<serde_json::Value>,
}

/// The complete spans (`ph` "X") of the Chrome trace at `path`.
pub(crate) fn read_spans(path: &Path) -> Result<Vec<Event>> {
    let text =
        std::fs::read(path).with_context(|| format!("cannot read the trace {}", path.display()))?;
    let trace: Trace = serde_json::from_slice(&text).with_context(|| {
        format!(
            "{} is not a Chrome trace (fpgan bench --profile and pg_profile.py write them)",
            path.display()
        )
    })?;
    Ok(trace.events.into_iter().filter(|e| e.ph == "X").collect())
}

/// Each span's own time: its duration less that of the spans nested in it on its thread.
pub(crate) fn self_times(spans: &[&Event]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (spans[a], spans[b]);
        (x.tid.to_string().cmp(&y.tid.to_string()))
            .then(x.ts.total_cmp(&y.ts))
            .then(y.dur.total_cmp(&x.dur))
    });
    let mut own: Vec<f64> = spans.iter().map(|e| e.dur).collect();
    let mut open: Vec<usize> = Vec::new();
    for &i in &order {
        let e = spans[i];
        while let Some(&top) = open.last() {
            let t = spans[top];
            if t.tid != e.tid || t.ts + t.dur <= e.ts {
                open.pop();
            } else {
                break;
            }
        }
        if let Some(&parent) = open.last() {
            own[parent] -= e.dur;
        }
        open.push(i);
    }
    own
}

/// Summarise the Chrome trace at `path`, recorded over `iterations` iterations, keeping the
/// `top` heaviest kernels (or operators on a CPU).
pub fn summarise(path: &Path, iterations: usize, top: usize) -> Result<TraceSummary> {
    let events = read_spans(path)?;
    let spans: Vec<&Event> = events.iter().collect();
    let n = iterations.max(1) as f64;
    let count = |cat: &str| spans.iter().filter(|e| e.cat == cat).count() as f64 / n;
    let gpu = |e: &&&Event| GPU_WORK.contains(&e.cat.as_str());
    let (first, last) = spans.iter().fold((f64::INFINITY, 0.0f64), |(a, b), e| {
        (a.min(e.ts), b.max(e.ts + e.dur))
    });
    let kernels = count("kernel");
    Ok(TraceSummary {
        trace: path.display().to_string(),
        iterations,
        ops: count("cpu_op"),
        kernels,
        gpu_ms: spans.iter().filter(gpu).map(|e| e.dur).sum::<f64>() / 1e3 / n,
        wall_ms: if last > first {
            (last - first) / 1e3 / n
        } else {
            0.0
        },
        top: heaviest(
            &spans,
            if kernels > 0.0 { "kernel" } else { "cpu_op" },
            n,
            top,
        ),
        phases: phase_totals(&spans, n),
    })
}

/// The `top` names of category `cat` by self time, per iteration (`n` iterations).
fn heaviest(spans: &[&Event], cat: &str, n: f64, top: usize) -> Vec<TraceEntry> {
    let heavy: Vec<&Event> = spans.iter().copied().filter(|e| e.cat == cat).collect();
    let mut by_name: HashMap<&str, (f64, f64)> = HashMap::new();
    for (e, us) in heavy.iter().zip(self_times(&heavy)) {
        let s = by_name.entry(e.name.as_str()).or_default();
        (s.0, s.1) = (s.0 + 1.0, s.1 + us);
    }
    let mut rows: Vec<TraceEntry> = by_name
        .into_iter()
        .map(|(name, (calls, us))| TraceEntry {
            name: name.to_string(),
            calls_per_iter: calls / n,
            ms_per_iter: us / 1e3 / n,
        })
        .collect();
    rows.sort_by(|a, b| b.ms_per_iter.total_cmp(&a.ms_per_iter));
    rows.truncate(top);
    rows
}

/// The labelled phases (user annotations) in the order they first ran, with their calls and
/// wall time per iteration (`n` iterations).
fn phase_totals(spans: &[&Event], n: f64) -> Vec<TraceEntry> {
    let mut marks: Vec<&Event> = (spans.iter().copied())
        .filter(|e| e.cat == "user_annotation")
        .collect();
    marks.sort_by(|a, b| a.ts.total_cmp(&b.ts));
    let mut phases: Vec<TraceEntry> = Vec::new();
    for e in marks {
        match phases.iter_mut().find(|p| p.name == e.name) {
            Some(p) => {
                (p.calls_per_iter, p.ms_per_iter) = (p.calls_per_iter + 1.0, p.ms_per_iter + e.dur)
            }
            None => phases.push(TraceEntry {
                name: e.name.clone(),
                calls_per_iter: 1.0,
                ms_per_iter: e.dur,
            }),
        }
    }
    for p in &mut phases {
        (p.calls_per_iter, p.ms_per_iter) = (p.calls_per_iter / n, p.ms_per_iter / 1e3 / n);
    }
    phases
}
