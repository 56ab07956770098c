//! Chrome traces of training iterations set side by side phase by phase (`fpgan phases`): fpgan's
//! from `bench --profile`, the official code's from scripts/gpu/pg_profile.py.
use super::profiler::{read_spans, self_times, Event, GPU_WORK, PHASES};
use anyhow::{bail, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Time and counts of one phase of one trace, summed over its iterations.
#[derive(Default)]
struct Phase {
    wall_ms: f64,
    op_calls: f64,
    kernels: f64,
    /// Operator name -> own time, ms.
    op_ms: BTreeMap<String, f64>,
    /// Kernel, copy or fill name -> GPU time, ms.
    kernel_ms: BTreeMap<String, f64>,
}

/// One trace's time, phase by phase ([`PHASES`], then "other").
pub struct Phases {
    pub iterations: usize,
    phases: Vec<Phase>,
    cuda: bool,
}

impl Phases {
    /// Read the trace at `path`. An operator belongs to the labelled span (of any thread) in
    /// which it starts, a kernel, copy or fill to the span in which it was launched (through
    /// the runtime or the driver API: cuDNN's kernels come through the driver); the rest is
    /// "other". Iterations: the number of `Gboth_opt` spans.
    pub fn read(path: &Path) -> Result<Self> {
        let spans = read_spans(path)?;
        let mut marks: Vec<(f64, f64, usize)> = (spans.iter())
            .filter(|e| e.cat == "user_annotation")
            .filter_map(|e| {
                Some((
                    e.ts,
                    e.ts + e.dur,
                    PHASES.iter().position(|p| *p == e.name)?,
                ))
            })
            .collect();
        marks.sort_by(|a, b| {
            a.0.total_cmp(&b.0)
                .then(a.1.total_cmp(&b.1))
                .then(a.2.cmp(&b.2))
        });
        // few spans per iteration: a scan is enough
        let label = |ts: f64| {
            (marks.iter())
                .find(|(a, b, _)| *a <= ts && ts < *b)
                .map_or(PHASES.len(), |m| m.2)
        };
        let mut phases: Vec<Phase> = (0..=PHASES.len()).map(|_| Phase::default()).collect();
        for (a, b, i) in &marks {
            phases[*i].wall_ms += (b - a) / 1e3;
        }
        let ops: Vec<&Event> = spans.iter().filter(|e| e.cat == "cpu_op").collect();
        for (e, us) in ops.iter().zip(self_times(&ops)) {
            let p = &mut phases[label(e.ts)];
            *p.op_ms.entry(e.name.clone()).or_default() += us / 1e3;
            p.op_calls += 1.0;
        }
        let key = |e: &Event| e.args.correlation.as_ref().map(|c| c.to_string());
        let launches: HashMap<String, f64> = (spans.iter())
            .filter(|e| matches!(e.cat.as_str(), "cuda_runtime" | "cuda_driver"))
            .filter_map(|e| Some((key(e)?, e.ts)))
            .collect();
        for e in spans.iter().filter(|e| GPU_WORK.contains(&e.cat.as_str())) {
            let launched = key(e).and_then(|k| launches.get(&k).copied());
            let p = &mut phases[launched.map_or(PHASES.len(), label)];
            *p.kernel_ms.entry(e.name.clone()).or_default() += e.dur / 1e3;
            p.kernels += f64::from(u8::from(e.cat == "kernel"));
        }
        let gboth = marks.iter().filter(|m| PHASES[m.2] == "Gboth_opt").count();
        if marks.is_empty() {
            bail!(
                "{}: no labelled phases (user_annotation spans named {}, ...): give a trace of `fpgan bench --profile` or scripts/gpu/pg_profile.py",
                path.display(),
                PHASES[0]
            );
        }
        Ok(Phases {
            iterations: gboth.max(1),
            cuda: phases.iter().any(|p| p.kernels > 0.0),
            phases,
        })
    }

    fn per_iter(&self, x: f64) -> f64 {
        x / self.iterations as f64
    }

    /// Operator (on CUDA: kernel, copy or fill) name -> ms per iteration in phase `i`.
    fn heavy(&self, i: usize) -> BTreeMap<&str, f64> {
        let p = &self.phases[i];
        let table = if self.cuda { &p.kernel_ms } else { &p.op_ms };
        (table.iter())
            .map(|(k, v)| (k.as_str(), self.per_iter(*v)))
            .collect()
    }

    /// This trace's cells of phase `i`'s row: wall ms, op ms, ops (and GPU ms, kernels).
    fn cells(&self, i: usize) -> Vec<String> {
        let p = &self.phases[i];
        let wall = if i < PHASES.len() {
            format!("{:.1}", self.per_iter(p.wall_ms))
        } else {
            String::new()
        };
        let mut row = vec![
            wall,
            format!("{:.1}", self.per_iter(total(&p.op_ms))),
            count(self.per_iter(p.op_calls)),
        ];
        if self.cuda {
            row.push(format!("{:.1}", self.per_iter(total(&p.kernel_ms))));
            row.push(count(self.per_iter(p.kernels)));
        }
        row
    }
}

/// The sum of a table's times (0.0, not Rust's -0.0, when empty).
fn total(t: &BTreeMap<String, f64>) -> f64 {
    t.values().fold(0.0, |a, b| a + b)
}

/// A count per iteration: whole where it is, else to one decimal.
fn count(x: f64) -> String {
    if x == x.trunc() {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// The row names: the phases, then "other".
fn row_name(i: usize) -> &'static str {
    PHASES.get(i).copied().unwrap_or("other")
}

/// A Markdown table, a row per phase, the columns of each named trace side by side.
pub fn table(named: &[(String, Phases)]) -> String {
    let mut cols = vec!["phase".to_string()];
    for (n, p) in named {
        let what: &[&str] = if p.cuda {
            &["wall ms", "op ms", "ops", "GPU ms", "kernels"]
        } else {
            &["wall ms", "op ms", "ops"]
        };
        cols.extend(what.iter().map(|w| format!("{n} {w}")));
    }
    let mut lines = vec![
        format!("| {} |", cols.join(" | ")),
        format!("{}|", "|---".repeat(cols.len())),
    ];
    for i in 0..=PHASES.len() {
        let row: Vec<String> = named.iter().flat_map(|(_, p)| p.cells(i)).collect();
        lines.push(format!("| {} | {} |", row_name(i), row.join(" | ")));
    }
    lines.join("\n")
}

/// Per phase, the `top` operators (on CUDA kernels, copies and fills) whose time differs most
/// between trace `a` and trace `b`, ms per iteration.
pub fn differences(a: (&str, &Phases), b: (&str, &Phases), top: usize) -> String {
    let what = if a.1.cuda {
        "kernel"
    } else {
        "operator (own time)"
    };
    let mut out = vec![format!(
        "\nThe {top} largest differences per phase, {} less {}, ms per iteration ({what}):",
        a.0, b.0
    )];
    for i in 0..=PHASES.len() {
        let (ha, hb) = (a.1.heavy(i), b.1.heavy(i));
        let at = |h: &BTreeMap<&str, f64>, k: &str| h.get(k).copied().unwrap_or(0.0);
        let mut names: Vec<&str> = ha.keys().chain(hb.keys()).copied().collect();
        names.sort_unstable();
        names.dedup();
        names.sort_by(|x, y| {
            let d = |k: &str| (at(&ha, k) - at(&hb, k)).abs();
            d(y).total_cmp(&d(x))
        });
        if names.is_empty() {
            continue;
        }
        out.push(format!("\n{}:", row_name(i)));
        for k in names.into_iter().take(top) {
            let (x, y) = (at(&ha, k), at(&hb, k));
            let short: String = k.chars().take(90).collect();
            out.push(format!("  {x:9.2} {y:9.2} {:+9.2}  {short}", x - y));
        }
    }
    out.join("\n")
}
