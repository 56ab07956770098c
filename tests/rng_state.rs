//! Work done inside `with_rng_kept` (the metrics' cost estimate at the start of a run) leaves
//! libtorch's random stream as it was, so training draws the same numbers with or without it.
//! In a test binary of its own: the generator is process-wide.
use fpgan::util::rng_state::with_rng_kept;
use tch::{Device, Kind, Tensor};

#[test]
fn kept_work_does_not_change_what_is_drawn_next() {
    let draw = || Tensor::randn([64], (Kind::Float, Device::Cpu));
    tch::manual_seed(7);
    let plain = draw();
    tch::manual_seed(7);
    let inner = with_rng_kept(Device::Cpu, draw);
    let after = draw();
    assert!(
        after.equal(&plain),
        "the stream continues as if nothing was drawn"
    );
    assert!(inner.equal(&plain), "inside, the stream is the same one");
    tch::manual_seed(7);
    let _ = draw();
    assert!(!draw().equal(&plain), "without it, the next draw differs");
}
