//! TF32 (process-wide libtorch switches, so in a test binary of its own): off by default as the
//! reference's training loop, on with `--tf32`; phase timing and lazy loss read-back of the step.
mod common;

use fpgan::train::options::TrainOptions;
use fpgan::train::trainer::Trainer;
use tch::{Device, Kind, Tensor};

#[test]
fn tf32_is_off_unless_asked_for_and_phases_are_timed_on_a_cpu() {
    let _rng = common::torch_rng();
    use fpgan::fastpath::{set_tf32, tf32_state};
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
            ..Default::default()
        },
        ..common::tiny_options(tmp.path())
    };
    Trainer::new(&opts, Device::Cpu).unwrap();
    assert_eq!(tf32_state(), (true, true), "--tf32 allows both");
    set_tf32(false);
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
    assert_eq!(r["grad"], 0.0, "{r}");
    // every gradient of G and D except the noise weights and G's unused 256-px blocks
    assert!(r["parameters"].as_u64().unwrap() > 80, "{r}");
    let o = common::fpgan(&["check", "--device", "cpu", "--res", "100"]);
    assert!(!o.status.success());
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
