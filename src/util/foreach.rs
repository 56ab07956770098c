//! Multi-tensor ("foreach") updates over lists of tensors (csrc/foreach.cpp): gradients gathered
//! into one flat tensor, Adam's step and the EMA in a few kernel launches for all parameters.
use super::shim::check;
use anyhow::Result;
use tch::Tensor;
use torch_sys::C_tensor;

type Handles = *const *const C_tensor;

extern "C" {
    fn fpgan_grads_to_none(params: Handles, n: i32) -> i32;
    fn fpgan_flatten_grads(params: Handles, n: i32, out: *mut *mut C_tensor) -> i32;
    fn fpgan_foreach_adam(
        params: Handles,
        exp_avgs: Handles,
        exp_avg_sqs: Handles,
        n: i32,
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        bc1: f64,
        bc2_sqrt: f64,
    ) -> i32;
    fn fpgan_foreach_adam_capturable(
        params: Handles,
        exp_avgs: Handles,
        exp_avg_sqs: Handles,
        n: i32,
        beta1: f64,
        beta2: f64,
        eps: f64,
        bc2_sqrt: *const C_tensor,
        step_size: *const C_tensor,
    ) -> i32;
    fn fpgan_foreach_lerp_into(src: Handles, dst: Handles, n: i32, weight: f64) -> i32;
    fn fpgan_foreach_copy(src: Handles, dst: Handles, n: i32) -> i32;
}

/// The handles of `ts`, valid while `ts` lives.
fn handles(ts: &[&Tensor]) -> Vec<*const C_tensor> {
    ts.iter().map(|t| t.as_ptr()).collect()
}

/// Drop the gradients of `params` (PyTorch's `zero_grad(set_to_none=True)`, as the reference).
pub fn grads_to_none(params: &[&Tensor]) -> Result<()> {
    let h = handles(params);
    // SAFETY: `h` holds live handles for the call; the shim catches C++ exceptions.
    check("dropping gradients", unsafe {
        fpgan_grads_to_none(h.as_ptr(), h.len() as i32)
    })
}

/// Gather the gradients of `params` (those that have one) into one new flat tensor and make each
/// of them a view of it, as the reference's loop before its all-reduce: what is done to the flat
/// tensor is done to the gradients. None when no parameter has a gradient.
pub fn flatten_grads(params: &[&Tensor]) -> Result<Option<Tensor>> {
    let h = handles(params);
    let mut out: *mut C_tensor = std::ptr::null_mut();
    // SAFETY: as above; on success `out` is a new heap tensor handle or null.
    check("gathering gradients", unsafe {
        fpgan_flatten_grads(h.as_ptr(), h.len() as i32, &mut out)
    })?;
    // SAFETY: a non-null `out` is a new handle, owned by the result.
    Ok((!out.is_null()).then(|| unsafe { Tensor::from_ptr(out) }))
}

/// One step of torch.optim.Adam (its multi-tensor form; no weight decay, no amsgrad): the
/// hyper-parameters and, for step t, `bc1` = 1 - beta1^t and `bc2_sqrt` = (1 - beta2^t)^0.5.
#[derive(Clone, Copy, Debug)]
pub struct AdamStep {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub bc1: f64,
    pub bc2_sqrt: f64,
}

/// Adam's update of `params` (each with a gradient) and their moments, in place.
pub fn adam(
    params: &[&Tensor],
    exp_avgs: &[&Tensor],
    exp_avg_sqs: &[&Tensor],
    s: AdamStep,
) -> Result<()> {
    assert!(params.len() == exp_avgs.len() && params.len() == exp_avg_sqs.len());
    let (p, m, v) = (handles(params), handles(exp_avgs), handles(exp_avg_sqs));
    // SAFETY: as above.
    check("Adam step", unsafe {
        fpgan_foreach_adam(
            p.as_ptr(),
            m.as_ptr(),
            v.as_ptr(),
            p.len() as i32,
            s.lr,
            s.beta1,
            s.beta2,
            s.eps,
            s.bc1,
            s.bc2_sqrt,
        )
    })
}

/// [`adam`] with the bias corrections read from 0-d float tensors on the parameters' device,
/// written before each step t: `bc2_sqrt` = (1 - beta2^t)^0.5 and `step_size` = -lr / (1 -
/// beta1^t) (torch.optim.Adam's `capturable` form, which a CUDA graph replays with each step's
/// values; on a CPU it rounds as [`adam`]).
pub fn adam_capturable(
    params: &[&Tensor],
    exp_avgs: &[&Tensor],
    exp_avg_sqs: &[&Tensor],
    s: AdamStep,
    bc2_sqrt: &Tensor,
    step_size: &Tensor,
) -> Result<()> {
    assert!(params.len() == exp_avgs.len() && params.len() == exp_avg_sqs.len());
    let (p, m, v) = (handles(params), handles(exp_avgs), handles(exp_avg_sqs));
    // SAFETY: as above; the two scalars are live tensors for the call.
    check("Adam step", unsafe {
        fpgan_foreach_adam_capturable(
            p.as_ptr(),
            m.as_ptr(),
            v.as_ptr(),
            p.len() as i32,
            s.beta1,
            s.beta2,
            s.eps,
            bc2_sqrt.as_ptr(),
            step_size.as_ptr(),
        )
    })
}

/// `dst[i] = src[i].lerp(dst[i], weight)` for every pair (the reference's EMA of parameters).
pub fn lerp_into(src: &[&Tensor], dst: &[&Tensor], weight: f64) -> Result<()> {
    assert_eq!(src.len(), dst.len());
    let (s, d) = (handles(src), handles(dst));
    // SAFETY: as above.
    check("EMA update", unsafe {
        fpgan_foreach_lerp_into(s.as_ptr(), d.as_ptr(), s.len() as i32, weight)
    })
}

/// `dst[i].copy_(src[i])` for every pair.
pub fn copy(src: &[&Tensor], dst: &[&Tensor]) -> Result<()> {
    assert_eq!(src.len(), dst.len());
    let (s, d) = (handles(src), handles(dst));
    // SAFETY: as above.
    check("copy", unsafe {
        fpgan_foreach_copy(s.as_ptr(), d.as_ptr(), s.len() as i32)
    })
}
