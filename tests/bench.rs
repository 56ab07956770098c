//! `fpgan bench` with tiny settings: a well-formed table, ratios against the first config, JSON.
mod common;

use fpgan::util::profiler::PHASES;
use std::process::Command;

/// `fpgan bench` on the CPU of `cfgs` at 128 px, ngf 8, batch `batch`, `iters` iterations after
/// one warm-up, writing JSON to `json`, with `extra` arguments.
fn tiny_bench(
    cfgs: &str,
    batch: &str,
    iters: &str,
    json: &std::path::Path,
    extra: &[&str],
) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fpgan"))
        .arg("bench")
        .args([
            "--cfgs", cfgs, "--res", "128", "--ngf", "8", "--batch", batch,
        ])
        .args([
            "--iters", iters, "--warmup", "1", "--device", "cpu", "--json",
        ])
        .arg(json)
        .args(extra)
        .output()
        .unwrap()
}

/// The standard output of a command that must have succeeded.
fn succeeded(o: std::process::Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

#[test]
fn bench_prints_a_table_with_ratios_and_writes_json() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("bench.json");
    let out = succeeded(tiny_bench(
        "fastgan_lite,faster_lite",
        "4",
        "2",
        &json,
        &["--batch-gpu", "2"],
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("fpgan bench: 128x128, batch 4 (batch-gpu 2)"),
        "{out}"
    );
    assert!(
        lines[1].contains("sec/iter") && lines[1].contains("G phase"),
        "{out}"
    );
    let row = |name: &str, from: usize| {
        lines[from..]
            .iter()
            .find(|l| l.starts_with(name))
            .copied()
            .unwrap()
    };
    let cols: Vec<&str> = row("faster_lite", 2).split_whitespace().collect();
    assert_eq!(
        cols[1], "1,117,923",
        "G params of faster_lite at ngf 8: {out}"
    );
    assert_eq!(cols[2], "10,331,328");
    let ratio_at = lines
        .iter()
        .position(|l| l.starts_with("ratio to fastgan_lite"))
        .unwrap();
    assert!(
        row("fastgan_lite", ratio_at)
            .split_whitespace()
            .skip(1)
            .all(|c| c == "1.000x"),
        "{out}"
    );
    assert!(
        row("faster_lite", ratio_at).contains("0.864x"),
        "G params ratio: {out}"
    );

    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let runs = v.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for r in runs {
        assert_eq!(r["sec_per_iter"].as_array().unwrap().len(), 2);
        let med = r["median"].as_f64().unwrap();
        assert!(
            med > 0.0 && r["min"].as_f64().unwrap() <= med && med <= r["max"].as_f64().unwrap()
        );
        assert!((r["images_per_sec"].as_f64().unwrap() - 4.0 / med).abs() < 1e-9);
        assert!(r["peak_rss_gb"].as_f64().unwrap() > 0.1);
        let p = &r["phases"];
        assert!(p["g_phase"].as_f64().unwrap() > 0.0 && p["d_phase"].as_f64().unwrap() > 0.0);
        assert!(
            p["g_phase"].as_f64().unwrap() + p["d_phase"].as_f64().unwrap()
                <= r["max"].as_f64().unwrap()
        );
    }
}

#[test]
fn bench_rejects_bad_options() {
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_fpgan"))
            .args(args)
            .output()
            .unwrap();
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    assert!(
        run(&["bench", "--cfgs", "stylegan2", "--device", "cpu"]).contains("unknown --cfgs entry")
    );
    assert!(run(&["bench", "--res", "100", "--device", "cpu"]).contains("128, 256, 512 or 1024"));
    assert!(run(&[
        "bench",
        "--batch",
        "6",
        "--batch-gpu",
        "4",
        "--device",
        "cpu"
    ])
    .contains("multiple"));
    let e = run(&["bench", "--cuda-graphs", "--device", "cpu"]);
    assert!(e.contains("--cuda-graphs needs a CUDA device"), "{e}");
    assert_eq!(e.lines().count(), 1, "one line: {e}");
}

#[test]
fn cuda_memory_statistics_are_absent_without_a_gpu_and_the_shim_does_not_crash() {
    use fpgan::fastpath::cuda_memory::stats;
    use tch::Device;
    assert_eq!(stats(Device::Cpu, false), None);
    if !tch::Cuda::is_available() {
        // the C++ shim runs, finds no initialised CUDA allocator, and says so
        assert_eq!(stats(Device::Cuda(0), true), None);
    } else {
        let _keep = tch::Tensor::zeros([1 << 20], (tch::Kind::Float, Device::Cuda(0)));
        let m = stats(Device::Cuda(0), false).expect("CUDA statistics");
        assert!(
            m.allocated >= 4 << 20 && m.peak_allocated >= m.allocated && m.reserved >= m.allocated
        );
    }
}

/// `bench --classes C` times the conditional iteration: the header says so and the parameter
/// counts are those of the conditional networks.
#[test]
fn bench_cond_measures_the_conditional_networks() {
    use fpgan::nets::discriminator::Discriminator;
    use fpgan::nets::generator::{GenCfg, Generator, GeneratorConfig};
    use fpgan::nets::layers::trainable_params;
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("new/bench.json"); // its missing folder is created
    let out = succeeded(tiny_bench("faster", "2", "1", &json, &["--classes", "3"]));
    assert!(
        out.starts_with("fpgan bench: 128x128, class-conditional (3 classes), batch 2"),
        "{out}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let (gvs, dvs) = (
        tch::nn::VarStore::new(tch::Device::Cpu),
        tch::nn::VarStore::new(tch::Device::Cpu),
    );
    let config = GeneratorConfig {
        ngf: 8,
        classes: 3,
        ..GeneratorConfig::new(GenCfg::Faster, 128)
    };
    Generator::new(&gvs.root(), &config).unwrap();
    Discriminator::new(&dvs.root(), 3);
    assert_eq!(v[0]["spec"]["classes"], 3);
    assert_eq!(v[0]["params_g"], trainable_params(&gvs));
    assert_eq!(v[0]["params_d"], trainable_params(&dvs));
}

#[test]
fn bench_profile_writes_a_chrome_trace_and_says_where_the_time_goes() {
    let tmp = tempfile::tempdir().unwrap();
    let (json, dir) = (tmp.path().join("b.json"), tmp.path().join("prof"));
    let out = succeeded(tiny_bench(
        "faster_lite",
        "2",
        "1",
        &json,
        &["--profile", dir.to_str().unwrap()],
    ));
    assert!(
        out.contains("profile of faster_lite") && out.contains("libtorch operator calls"),
        "{out}"
    );
    let trace: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("faster_lite-fp32.trace.json")).unwrap())
            .unwrap();
    let events = trace["traceEvents"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["name"] == "aten::convolution_backward"),
        "the trace holds the backward pass (autograd's operators)"
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let p = &r[0]["profile"];
    assert_eq!(p["iterations"], 2);
    assert!(
        p["ops"].as_f64().unwrap() > 1000.0 && p["kernels"] == 0.0,
        "{p}"
    );
    let top = p["top"].as_array().unwrap();
    let ms: Vec<f64> = top
        .iter()
        .map(|e| e["ms_per_iter"].as_f64().unwrap())
        .collect();
    assert!(
        ms.windows(2).all(|w| w[0] >= w[1]),
        "heaviest first: {ms:?}"
    );
    let own: f64 = ms.iter().sum();
    assert!(
        own <= p["wall_ms"].as_f64().unwrap() * 1.01,
        "own times are not double-counted: {p}"
    );
    assert!(
        top[..3]
            .iter()
            .any(|e| e["name"].as_str().unwrap().contains("convolution")),
        "on a CPU convolutions lead: {p}"
    );
    // the phases are labelled with the official loop's names, once per iteration each (batch =
    // batch-gpu), in the order they run, and fill most of the iteration
    let phases = p["phases"].as_array().unwrap();
    let names: Vec<&str> = phases.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, PHASES, "{p}");
    assert!(phases.iter().all(|e| e["calls_per_iter"] == 1.0), "{p}");
    let phase_ms: f64 = phases
        .iter()
        .map(|e| e["ms_per_iter"].as_f64().unwrap())
        .sum();
    let wall = p["wall_ms"].as_f64().unwrap();
    assert!(
        phase_ms <= wall && phase_ms > 0.8 * wall,
        "{phase_ms} of {wall} ms: {p}"
    );
    assert!(
        out.contains("phases, wall ms/iter: Gmain_forward "),
        "{out}"
    );
    // `fpgan phases` reads the trace: every phase has operators of its own
    let table = run_phases(&[&format!(
        "fpgan={}",
        dir.join("faster_lite-fp32.trace.json").display()
    )]);
    for phase in PHASES {
        let row = table_row(&table, phase);
        let op_ms: f64 = row[3].parse().unwrap();
        let ops: f64 = row[4].parse().unwrap();
        assert!(op_ms > 0.0 && ops >= 1.0, "{phase}: {row:?}\n{table}");
    }
}

/// libtorch operators whose CUDA kernels add with atomics, so that two runs of the same step
/// differ in the last bits (and training makes that grow): the list of
/// `torch.use_deterministic_algorithms` (torch 2.11.0) as the operators the profiler names, the
/// backward ones where the docstring speaks of differentiating. The second group has
/// deterministic variants only under that mode, which training does not set. Left out, as
/// deterministic on CUDA here: `_index_put_impl_` (DiffAugment: translation's backward
/// accumulates through a sort; cutout's mask writes one value, 0, wherever indices repeat) and
/// `embedding_dense_backward`.
const CUDA_NONDETERMINISTIC: &[&str] = &[
    "aten::avg_pool3d_backward",
    "aten::_adaptive_avg_pool2d_backward",
    "aten::_adaptive_avg_pool3d_backward",
    "aten::max_pool3d_with_indices_backward",
    "aten::adaptive_max_pool2d_backward",
    "aten::fractional_max_pool2d_backward",
    "aten::fractional_max_pool3d_backward",
    "aten::max_unpool2d",
    "aten::max_unpool3d",
    "aten::upsample_linear1d_backward",
    "aten::upsample_bilinear2d_backward",
    "aten::_upsample_bilinear2d_aa_backward",
    "aten::upsample_bicubic2d_backward",
    "aten::_upsample_bicubic2d_aa_backward",
    "aten::upsample_trilinear3d_backward",
    "aten::reflection_pad1d_backward",
    "aten::reflection_pad2d_backward",
    "aten::reflection_pad3d_backward",
    "aten::nll_loss_forward",
    "aten::nll_loss2d_forward",
    "aten::_ctc_loss_backward",
    "aten::_embedding_bag",
    "aten::put_",
    "aten::histc",
    "aten::bincount",
    "aten::median",
    "aten::grid_sampler_2d_backward",
    "aten::grid_sampler_3d_backward",
    "aten::cumsum",
    // deterministic only under torch.use_deterministic_algorithms
    "aten::index_add_",
    "aten::index_add",
    "aten::index_copy_",
    "aten::scatter_add_",
    "aten::scatter_add",
    "aten::scatter_reduce",
    "aten::scatter_reduce_",
    "aten::index_select_backward",
    "aten::gather_backward",
];

/// The training step runs no operator whose CUDA kernel is nondeterministic (the profiler names
/// the same operators on a CPU): neither G's SE pooling, nor the bilinear resizing of the
/// feature network (CSM, and under 224 px its input) in G's backward pass, nor the class
/// embeddings of conditional networks. With cuDNN's deterministic algorithms a CUDA step then
/// gives the same bits on every run, which `fpgan check` needs to compare `--cuda-graphs` with
/// the eager step.
#[test]
fn the_step_runs_no_operator_that_is_nondeterministic_on_cuda() {
    let tmp = tempfile::tempdir().unwrap();
    let (json, dir) = (tmp.path().join("b.json"), tmp.path().join("prof"));
    let prof = ["--profile", dir.to_str().unwrap(), "--classes", "3"];
    succeeded(tiny_bench("faster,fastgan", "2", "1", &json, &prof));
    for cfg in ["faster", "fastgan"] {
        let path = dir.join(format!("{cfg}-fp32.trace.json"));
        let trace: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let names: std::collections::BTreeSet<&str> = (trace["traceEvents"].as_array().unwrap())
            .iter()
            .filter_map(|e| e["name"].as_str())
            .collect();
        assert!(
            names.contains("aten::convolution_backward") && names.contains("aten::embedding"),
            "{cfg}: the trace holds the conditional step's backward pass"
        );
        let found: Vec<&&str> = CUDA_NONDETERMINISTIC
            .iter()
            .filter(|n| names.contains(**n))
            .collect();
        assert!(found.is_empty(), "{cfg}: {found:?}");
    }
}

/// `fpgan phases` with `args`: its standard output.
fn run_phases(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_fpgan"))
        .arg("phases")
        .args(args)
        .output()
        .unwrap();
    succeeded(o)
}

/// The cells of the Markdown table row of `phase` in `table`.
fn table_row(table: &str, phase: &str) -> Vec<String> {
    let line = (table.lines())
        .find(|l| l.starts_with(&format!("| {phase} |")))
        .unwrap_or_else(|| panic!("no row {phase}:\n{table}"));
    line.split('|').map(|c| c.trim().to_string()).collect()
}

/// `fpgan phases` gives an operator to the labelled span (of any thread) in which it starts,
/// counts its own time, a kernel or copy to the span in which it was launched through the
/// runtime or the driver API (not where it ran), and sets two traces side by side with the
/// largest differences.
#[test]
fn phases_attributes_operators_and_kernels_to_the_labelled_phases() {
    let tmp = tempfile::tempdir().unwrap();
    let span = |cat: &str, name: &str, tid: i64, ts: f64, dur: f64| serde_json::json!({"ph": "X", "cat": cat, "name": name, "tid": tid, "ts": ts, "dur": dur});
    let with_corr = |mut e: serde_json::Value, id: i64| {
        e["args"] = serde_json::json!({ "correlation": id });
        e
    };
    let write = |name: &str, events: Vec<serde_json::Value>| {
        let path = tmp.path().join(name);
        std::fs::write(
            &path,
            serde_json::json!({ "traceEvents": events }).to_string(),
        )
        .unwrap();
        path.display().to_string()
    };
    // A, one iteration: Dgen_forward [0, 10 ms) on thread 1 holds aten::conv [1, 5) with
    // aten::add [2, 3) nested; the backward's aten::mul starts on thread 2 inside
    // Dgen_backward [10, 20); Gboth_opt [20, 21) counts the iteration; aten::cat after all spans
    let a = write(
        "a.json",
        vec![
            span("user_annotation", "Dgen_forward", 1, 0.0, 10_000.0),
            span("cpu_op", "aten::conv", 1, 1_000.0, 4_000.0),
            span("cpu_op", "aten::add", 1, 2_000.0, 1_000.0),
            span("user_annotation", "Dgen_backward", 1, 10_000.0, 10_000.0),
            span("cpu_op", "aten::mul", 2, 11_000.0, 2_000.0),
            span("user_annotation", "Gboth_opt", 1, 20_000.0, 1_000.0),
            span("cpu_op", "aten::cat", 1, 30_000.0, 500.0),
        ],
    );
    // B: the same phases, aten::conv twice as long
    let b = write(
        "b.json",
        vec![
            span("user_annotation", "Dgen_forward", 1, 0.0, 10_000.0),
            span("cpu_op", "aten::conv", 1, 1_000.0, 8_000.0),
            span("user_annotation", "Gboth_opt", 1, 20_000.0, 1_000.0),
        ],
    );
    let out = run_phases(&[&format!("a={a}"), &format!("b={b}")]);
    let row = table_row(&out, "Dgen_forward");
    // wall, op ms (conv 3 + add 1), ops for a; then for b
    assert_eq!(row[2..8], ["10.0", "4.0", "2", "10.0", "8.0", "1"], "{out}");
    assert_eq!(
        table_row(&out, "Dgen_backward")[3..5],
        ["2.0", "1"],
        "{out}"
    );
    assert_eq!(table_row(&out, "other")[3..5], ["0.5", "1"], "{out}");
    let conv = (out.lines())
        .find(|l| l.ends_with("aten::conv"))
        .unwrap_or_else(|| panic!("{out}"));
    let cells: Vec<&str> = conv.split_whitespace().collect();
    assert_eq!(cells[..3], ["3.00", "8.00", "-5.00"], "{out}");
    // CUDA, two iterations: a kernel launched inside Dreal_forward runs after it ended
    let c = write(
        "c.json",
        vec![
            span("user_annotation", "Dreal_forward", 1, 0.0, 1_000.0),
            with_corr(span("cuda_runtime", "cudaLaunchKernel", 1, 500.0, 10.0), 7),
            with_corr(span("kernel", "conv_kernel", 9, 5_000.0, 4_000.0), 7),
            // cuDNN launches through the driver API; a copy is GPU time but no kernel
            with_corr(span("cuda_driver", "cuLaunchKernelEx", 1, 600.0, 10.0), 8),
            with_corr(span("kernel", "cudnn_kernel", 9, 9_000.0, 2_000.0), 8),
            with_corr(span("cuda_runtime", "cudaMemcpyAsync", 1, 700.0, 10.0), 9),
            with_corr(span("gpu_memcpy", "Memcpy DtoD", 9, 11_000.0, 1_000.0), 9),
            span("user_annotation", "Gboth_opt", 1, 2_000.0, 100.0),
            span("user_annotation", "Gboth_opt", 1, 3_000.0, 100.0),
        ],
    );
    let out = run_phases(&[&format!("c={c}")]);
    let row = table_row(&out, "Dreal_forward");
    // wall, op ms, ops, GPU ms, kernels, per iteration
    assert_eq!(row[2..7], ["0.5", "0.0", "0", "3.5", "1"], "{out}");
    assert!(out.contains("c 2 iterations"), "{out}");
    // bad input: one line naming the argument or the file and what to give
    let no_phases = write("empty.json", vec![span("cpu_op", "aten::mm", 1, 0.0, 1.0)]);
    let not_a_trace = write("bad.json", vec![]).replace("bad.json", "stats.jsonl");
    std::fs::write(&not_a_trace, "{\"kimg\": 1}\n{}").unwrap();
    for (arg, says) in [
        (a.clone(), "NAME=TRACE.json"),
        (format!("x={not_a_trace}"), "is not a Chrome trace"),
        (
            format!("x={}/missing.json", tmp.path().display()),
            "cannot read the trace",
        ),
        (format!("x={no_phases}"), "no labelled phases"),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_fpgan"))
            .args(["phases", &arg])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(says), "{arg}: {err}");
        assert!(err.trim().lines().count() <= 2, "{arg}: {err}");
    }
}

#[test]
fn trace_summary_counts_own_time_per_thread_and_prefers_kernels() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("t.json");
    let span = |cat: &str, name: &str, tid: i64, ts: f64, dur: f64| serde_json::json!({"ph": "X", "cat": cat, "name": name, "tid": tid, "ts": ts, "dur": dur});
    let summary = |events: Vec<serde_json::Value>, iterations: usize| {
        std::fs::write(
            &path,
            serde_json::json!({ "traceEvents": events }).to_string(),
        )
        .unwrap();
        let s = fpgan::util::profiler::summarise(&path, iterations, 5).unwrap();
        let top: Vec<(String, f64, f64)> = (s.top.iter())
            .map(|e| (e.name.clone(), e.calls_per_iter, e.ms_per_iter))
            .collect();
        (s, top)
    };
    // CPU, 2 iterations: thread 1's outer [0, 10 ms) holds inner [2, 5); thread 2's inner [0, 2)
    let (s, top) = summary(
        vec![
            span("cpu_op", "outer", 1, 0.0, 10_000.0),
            span("cpu_op", "inner", 1, 2_000.0, 3_000.0),
            span("cpu_op", "inner", 2, 0.0, 2_000.0),
        ],
        2,
    );
    assert_eq!(
        (s.ops, s.kernels, s.gpu_ms, s.wall_ms),
        (1.5, 0.0, 0.0, 5.0)
    );
    assert_eq!(
        top,
        [("outer".into(), 0.5, 3.5), ("inner".into(), 1.0, 2.5)]
    );
    // CUDA, 1 iteration: kernels rank, copies count as GPU time
    let (s, top) = summary(
        vec![
            span("cpu_op", "aten::add", 1, 0.0, 10_000.0),
            span("kernel", "k1", 7, 1_000.0, 3_000.0),
            span("kernel", "k1", 7, 5_000.0, 1_000.0),
            span("gpu_memcpy", "Memcpy HtoD", 7, 6_000.0, 2_000.0),
        ],
        1,
    );
    assert_eq!(
        (s.ops, s.kernels, s.gpu_ms, s.wall_ms),
        (1.0, 2.0, 6.0, 10.0)
    );
    assert_eq!(top, [("k1".into(), 2.0, 4.0)]);
}

/// A configuration whose worker fails (here: its trace file cannot be written) costs only its
/// own figures: the others are measured, shown and written, and the command fails naming it.
#[test]
fn a_failing_configuration_costs_only_its_own_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let (json, dir) = (tmp.path().join("b.json"), tmp.path().join("prof"));
    let blocked = dir.join("fastgan_lite-fp32.trace.json");
    // a folder (not empty: libtorch would replace an empty one) where the trace file would go
    std::fs::create_dir_all(&blocked).unwrap();
    std::fs::write(blocked.join("keep"), "").unwrap();
    let o = tiny_bench(
        "fastgan_lite,faster_lite",
        "2",
        "1",
        &json,
        &["--profile", dir.to_str().unwrap()],
    );
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(!o.status.success(), "{out}\n{err}");
    let last = err.trim().lines().last().unwrap();
    assert!(
        last.starts_with("error: 1 of 2 configurations failed")
            && last.contains("fastgan_lite")
            && last.contains(blocked.to_str().unwrap()),
        "{err}"
    );
    let rows: Vec<&str> = out.lines().filter(|l| l.contains("_lite ")).collect();
    assert!(
        rows.iter().any(|l| l.starts_with("faster_lite"))
            && !rows.iter().any(|l| l.starts_with("fastgan_lite")),
        "{out}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let cfgs: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["spec"]["cfg"].as_str().unwrap())
        .collect();
    assert_eq!(cfgs, ["faster_lite"]);
}

/// scripts/gpu/targets.py (the GPU results against the targets) reads `fpgan bench --json` and
/// pg_bench.py's JSON lines, and judges each target by the ratio of the figures it names.
#[test]
fn gpu_targets_script_judges_the_ratios_of_bench_json_and_official_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("bench-gpu-fp32.json");
    succeeded(tiny_bench("fastgan,faster", "2", "1", &json, &[]));
    let rows: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let row = |cfg: &str| {
        let all = rows.as_array().unwrap();
        all.iter()
            .find(|r| r["spec"]["cfg"] == cfg)
            .unwrap()
            .clone()
    };
    let img_s = |cfg: &str| row(cfg)["images_per_sec"].as_f64().unwrap();
    let faster = img_s("faster");
    // a fast path (made up: CUDA graphs, three times as fast) is no fp32 reference row, but it
    // is the best fast path
    let mut graphed = row("faster");
    graphed["spec"]["cuda_graphs"] = true.into();
    graphed["images_per_sec"] = (3.0 * faster).into();
    let write_row = |name: &str, r: serde_json::Value| {
        let rows = serde_json::Value::Array(vec![r]).to_string();
        std::fs::write(tmp.path().join(name), rows).unwrap();
    };
    write_row("bench-gpu-fp32-graphs.json", graphed);
    // deterministic kernels (made up: ten times as fast) are neither the fp32 reference nor a
    // fast path: a row of the table, judged by no target
    let mut det = row("faster");
    det["spec"]["deterministic"] = true.into();
    det["images_per_sec"] = (10.0 * faster).into();
    write_row("bench-gpu-det.json", det);
    // pg_bench.py's keys: the official fastgan at a quarter of fpgan faster's speed, fastgan+DSC
    // at half; a warning line between them is not JSON
    let official = |variant: &str, img: f64| {
        serde_json::json!({"variant": variant, "res": 128, "batch": 2, "images_per_s": img,
            "median_s_per_iter": 2.0 / img, "device": "cpu", "peak_rss_mib": 1536})
        .to_string()
    };
    std::fs::write(
        tmp.path().join("official.jsonl"),
        format!(
            "{}\nwarning: something\n{}\n",
            official("fastgan", faster / 4.0),
            official("fastgan+dsc", faster / 2.0)
        ),
    )
    .unwrap();
    let o = Command::new(common::venv_python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/gpu/targets.py"
        ))
        .arg(tmp.path())
        .output()
        .unwrap();
    let out = succeeded(o);
    let target = |name: &str| {
        let line = out.lines().find(|l| l.contains(name)).unwrap();
        let cells: Vec<String> = line.split('|').map(|c| c.trim().to_string()).collect();
        (cells[2].clone(), cells[3].clone())
    };
    let paper = faster / img_s("fastgan");
    let verdict = if paper >= 1.2 { "yes" } else { "**no**" };
    assert_eq!(
        target("faster / fastgan images/s"),
        (format!("{paper:.3}x"), verdict.into()),
        "{out}"
    );
    assert_eq!(
        target("faster / fastgan peak allocated"),
        ("-".into(), "not measured".into()),
        "no GPU memory on a CPU: {out}"
    );
    let official_dsc = target("fpgan faster fp32 / official fastgan+DSC fp32, images/s");
    assert_eq!(official_dsc, ("2.000x".into(), "yes".into()), "{out}");
    let best_dsc = target("best fast path / official fastgan+DSC");
    assert_eq!(best_dsc, ("6.000x".into(), "yes".into()), "{out}");
    let best_fastgan = target("best fast path / official fastgan fp32");
    assert_eq!(best_fastgan, ("12.000x".into(), "yes".into()), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("| faster | fp32 (TF32 off), deterministic |")),
        "{out}"
    );
    let official_rows: Vec<&str> = out.lines().filter(|l| l.contains("| official |")).collect();
    assert_eq!(official_rows.len(), 2, "{out}");
    assert!(
        official_rows[0].contains("| 1.50 |"),
        "peak RSS in GB: {out}"
    );
}

/// The JSON is written after each configuration, so that a bench stopped early (a time limit,
/// Ctrl-C) keeps the figures it measured: while the second configuration runs, the file holds
/// the first one's result.
#[test]
fn bench_json_holds_each_configuration_as_soon_as_it_is_measured() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("b.json");
    let cfgs = |path: &std::path::Path| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        (v.as_array().unwrap().iter())
            .map(|r| r["spec"]["cfg"].as_str().unwrap().to_string())
            .collect()
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_fpgan"))
        .args([
            "bench",
            "--cfgs",
            "faster_lite,fastgan_lite",
            "--res",
            "128",
        ])
        .args([
            "--ngf", "8", "--batch", "2", "--iters", "1", "--warmup", "1",
        ])
        .args(["--device", "cpu", "--json"])
        .arg(&json)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // the file appears (by a rename: always whole) once the first worker is done
    let first = loop {
        if json.exists() {
            break cfgs(&json);
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("bench ended ({status}) before its JSON appeared");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(child.wait().unwrap().success());
    assert_eq!(first, ["faster_lite"]);
    assert_eq!(cfgs(&json), ["faster_lite", "fastgan_lite"]);
}
