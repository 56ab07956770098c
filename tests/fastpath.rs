//! TF32 and deterministic kernels (process-wide libtorch switches, so in a test binary of its
//! own): TF32 off by default as the reference's training loop, on with `--tf32`; phase timing
//! and lazy loss read-back of the step; `fpgan check`; the step as `--cuda-graphs` runs it.
mod common;

use fpgan::train::options::TrainOptions;
use fpgan::train::trainer::Trainer;
use tch::{Device, Kind, Tensor};

#[test]
fn kernel_settings_follow_the_options_and_phases_are_timed_on_a_cpu() {
    let _rng = common::torch_rng();
    use fpgan::fastpath::{set_deterministic, set_tf32, tf32_state};
    assert!(
        !set_deterministic(true),
        "libtorch lets cuDNN pick and runs nondeterministic kernels by default"
    );
    assert!(set_deterministic(false), "and says what it was");
    assert!(!set_deterministic(false), "off again");
    // without libtorch's NaN filling of new tensors (a kernel per allocation): freed values show
    set_deterministic(true);
    let _ = Tensor::full([4096], 7.0, (Kind::Float, Device::Cpu));
    let fresh = Tensor::empty([4096], (Kind::Float, Device::Cpu));
    let nans = fresh.isnan().sum(Kind::Int64).int64_value(&[]);
    set_deterministic(false);
    assert!(
        nans < 4096,
        "deterministic mode filled a new tensor with NaN"
    );
    let tmp = tempfile::tempdir().unwrap();
    set_tf32(true); // libtorch's own default allows TF32 in cuDNN
    let mut t = Trainer::new(&common::tiny_options(tmp.path()), Device::Cpu).unwrap();
    assert_eq!(
        tf32_state(),
        (false, false),
        "fp32 means true fp32 by default"
    );
    assert!(t.time_phases, "timing is free on a CPU");
    let reals = Tensor::randint(256, [4, 3, 128, 128], (Kind::Uint8, Device::Cpu));
    let l = t.step(&reals, None).unwrap();
    assert!(l.phase_sec.is_some_and(|p| p.iter().all(|s| *s > 0.0)));
    assert_eq!(l.g.size(), Vec::<i64>::new(), "losses stay 0-d tensors");
    let opts = TrainOptions {
        fast: fpgan::fastpath::FastPath {
            tf32: true,
            deterministic: true,
            ..Default::default()
        },
        ..common::tiny_options(tmp.path())
    };
    Trainer::new(&opts, Device::Cpu).unwrap();
    assert_eq!(tf32_state(), (true, true), "--tf32 allows both");
    assert!(
        set_deterministic(true),
        "--deterministic sets deterministic kernels"
    );
    Trainer::new(&common::tiny_options(tmp.path()), Device::Cpu).unwrap();
    assert!(
        !set_deterministic(false),
        "and a run without it unsets them"
    );
    assert_eq!(tf32_state(), (false, false));
    assert_eq!(opts.fast.tag(), "fp32-tf32-det");
}

#[test]
fn check_compares_a_device_with_the_cpu() {
    let _rng = common::torch_rng();
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("check.json");
    let o = common::fpgan(&[
        "check",
        "--device",
        "cpu",
        "--res",
        "128",
        "--ngf",
        "8",
        "--batch",
        "2",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", common::text(&o.stderr));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["loss_g"], 0.0, "the CPU agrees with itself: {r}");
    assert_eq!(
        (&r["grad_g"], &r["grad_d"]),
        (&0.0.into(), &0.0.into()),
        "{r}"
    );
    assert_eq!(
        r["graphs"], 0.0,
        "the graph step trains as the eager one: {r}"
    );
    assert_eq!(r["graphs_floor"], 0.0, "the eager step repeats itself: {r}");
    for runs in ["graphs_losses", "graphs_floor_losses"] {
        let per_iteration = r[runs].as_array().unwrap();
        assert_eq!(per_iteration.len(), 6, "{r}");
        assert!(per_iteration.iter().all(|e| e == 0.0), "{r}");
    }
    assert!(
        common::text(&o.stdout).contains("eager vs eager 0.00e0"),
        "{}",
        common::text(&o.stdout)
    );
    // every gradient of G and D except the noise weights and G's unused 256-px blocks
    assert!(r["parameters"].as_u64().unwrap() > 80, "{r}");
    let o = common::fpgan(&["check", "--device", "cpu", "--res", "100"]);
    assert!(!o.status.success());
    // --json is checked before the work: a directory, or a file of another kind, refused
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("image.png");
    std::fs::write(&image, b"\x89PNG\r\n\x1a\n").unwrap();
    for (json, what) in [
        (tmp.path(), "is a directory"),
        (&image, "is not a check JSON"),
    ] {
        let o = common::fpgan(&["check", "--device", "cpu", "--json", json.to_str().unwrap()]);
        let err = common::text(&o.stderr);
        assert!(!o.status.success() && err.contains(what), "{err}");
        assert!(
            !common::text(&o.stdout).contains("check"),
            "the check ran: {err}"
        );
    }
    assert_eq!(std::fs::read(&image).unwrap(), b"\x89PNG\r\n\x1a\n");
    let o = common::fpgan(&["check", "--device", "cpu", "--grad-tol", "NaN"]);
    assert!(!o.status.success());
    assert!(
        common::text(&o.stderr).contains("--grad-tol NaN"),
        "{}",
        common::text(&o.stderr)
    );
}

/// CUDA phase events exist exactly where CUDA does: on a machine without it, making them fails
/// cleanly (None, no exception escaping the C++ shim); on a GPU they time a recorded phase.
#[test]
fn cuda_phase_events_are_made_only_with_cuda() {
    let _rng = common::torch_rng();
    use fpgan::fastpath::cuda_events::PhaseEvents;
    let ev = PhaseEvents::new(0, &["Gboth", "Dmain"]);
    assert_eq!(ev.is_some(), tch::Cuda::is_available());
    if let Some(mut ev) = ev {
        assert!(ev.elapsed_ms().is_empty(), "nothing recorded yet");
        for i in 0..2 {
            ev.record(i, false);
            let x = Tensor::randn([512, 512], (Kind::Float, Device::Cuda(0)));
            let _ = x.matmul(&x).sum(Kind::Float);
            ev.record(i, true);
        }
        let ms = ev.elapsed_ms();
        assert_eq!(ms.len(), 2);
        assert!(ms.iter().all(|(_, t)| *t > 0.0), "{ms:?}");
    }
}

/// The step as `--cuda-graphs` runs it (fixed inputs, Adam's bias corrections on the device,
/// statistics of replays), here on a CPU without the graph itself, trains as the eager step to
/// the bit: the same losses each iteration, statistics and parameters, unconditional and
/// conditional (new images and latents every iteration, so fixed inputs that were not refreshed
/// would show).
#[test]
fn the_graph_step_trains_as_the_eager_step() {
    let _rng = common::torch_rng();
    let tmp = tempfile::tempdir().unwrap();
    for classes in [0, 3] {
        let opts = TrainOptions {
            classes,
            ..common::tiny_options(tmp.path())
        };
        let run = |graphs: bool| {
            let mut t = Trainer::new(&opts, Device::Cpu).unwrap();
            if graphs {
                t.use_graphs().unwrap();
            } else {
                t.opt_g.make_capturable();
                t.opt_d.make_capturable();
            }
            tch::manual_seed(11);
            let mut losses = Vec::new();
            for _ in 0..fpgan::train::graphed::EAGER_ITERATIONS + 3 {
                let reals = Tensor::randint(256, [4, 3, 128, 128], (Kind::Uint8, Device::Cpu));
                let labels = (classes > 0).then(|| Tensor::from_slice(&[0i64, 2, 1, 2]));
                losses.push(t.step(&reals, labels.as_ref()).unwrap().values());
            }
            let stats = t.stats.tick(0.0);
            let params: Vec<Tensor> = (t.opt_g.slots.iter().chain(&t.opt_d.slots))
                .map(|s| s.param.copy())
                .collect();
            (losses, stats, params)
        };
        let (eager, graph) = (run(false), run(true));
        assert_eq!(eager.0, graph.0, "classes {classes}: losses per iteration");
        assert!(
            eager.2.iter().zip(&graph.2).all(|(e, g)| e.equal(g)),
            "classes {classes}: parameters"
        );
        let loss_stats = |s: &serde_json::Value| {
            let m = s.as_object().unwrap().clone();
            m.into_iter()
                .filter(|(n, _)| n.starts_with("Loss/"))
                .collect::<Vec<_>>()
        };
        assert_eq!(loss_stats(&eager.1).len(), 6, "{}", eager.1);
        assert_eq!(loss_stats(&eager.1), loss_stats(&graph.1));
    }
}
