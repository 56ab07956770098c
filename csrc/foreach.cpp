// fpgan: multi-tensor ("foreach") arithmetic over lists of tensors, which tch does not expose:
// the reference's gradient gathering, Adam's update (torch.optim.Adam's default on CUDA) and the
// EMA in a few kernel launches for all parameters instead of several per parameter. On a CPU the
// same arithmetic runs tensor by tensor. Takes arrays of tch's tensor handles (at::Tensor*);
// empty lists are no-ops; functions return 0, or -1 with the message in fpgan_last_error().
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "guarded.h"

#include <string>
#include <vector>

namespace {

using fpgan::guarded;

std::vector<at::Tensor> list(at::Tensor* const* ts, int n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (int i = 0; i < n; ++i) out.push_back(*ts[i]);
  return out;
}

}  // namespace

// Drop the gradients of `params` (PyTorch's zero_grad(set_to_none=True), as the reference).
extern "C" int fpgan_grads_to_none(at::Tensor* const* params, int n) {
  return guarded([&] {
    for (int i = 0; i < n; ++i) params[i]->mutable_grad().reset();
  });
}

// Whether `p` is a 4-D tensor laid out channels_last (`--channels-last` weights).
static bool nhwc(const at::Tensor& p) {
  return p.dim() == 4 && p.suggest_memory_format() == at::MemoryFormat::ChannelsLast;
}

// Concatenate the gradients of those `params` that have one into one new flat tensor (*out) and
// make each such gradient a view of it, as the reference's training loop does before its
// all-reduce and non-finite clean-up; *out stays null when no parameter has a gradient. A
// channels_last parameter's stretch of it is in that memory order, so that its gradient has the
// parameter's strides (the multi-tensor kernels need matching layouts).
extern "C" int fpgan_flatten_grads(at::Tensor* const* params, int n, at::Tensor** out) {
  *out = nullptr;
  return guarded([&] {
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> owners, flats;
    for (int i = 0; i < n; ++i) {
      const at::Tensor& g = params[i]->grad();
      if (!g.defined()) continue;
      owners.push_back(*params[i]);
      flats.push_back(nhwc(*params[i]) ? g.permute({0, 2, 3, 1}).reshape({-1}) : g.reshape({-1}));
    }
    if (owners.empty()) return;
    at::Tensor flat = at::cat(flats);
    int64_t offset = 0;
    for (auto& p : owners) {
      const int64_t k = p.numel();
      const auto s = p.sizes();
      at::Tensor part = flat.narrow(0, offset, k);
      p.mutable_grad() =
          nhwc(p) ? part.view({s[0], s[2], s[3], s[1]}).permute({0, 3, 1, 2}) : part.view(s);
      offset += k;
    }
    *out = new at::Tensor(flat);
  });
}

// Adam's moments of `p`'s gradients, in place (m = lerp(m, g, 1 - beta1), v = beta2 v +
// (1 - beta2) g^2), and its denominator sqrt(v) / bc2_sqrt + eps; bc2_sqrt is a number or a 0-d
// tensor on the parameters' device.
template <typename S>
std::vector<at::Tensor> adam_denom(const std::vector<at::Tensor>& p, std::vector<at::Tensor>& m,
                                   std::vector<at::Tensor> v, double beta1, double beta2,
                                   double eps, const S& bc2_sqrt) {
  std::vector<at::Tensor> g;
  g.reserve(p.size());
  for (auto& t : p) g.push_back(t.grad());
  at::_foreach_lerp_(m, g, 1 - beta1);
  at::_foreach_mul_(v, beta2);
  at::_foreach_addcmul_(v, g, g, 1 - beta2);
  auto denom = at::_foreach_sqrt(v);
  at::_foreach_div_(denom, bc2_sqrt);
  at::_foreach_add_(denom, eps);
  return denom;
}

// torch.optim.Adam's multi-tensor step (torch 2.11 `_multi_tensor_adam`; no weight decay, no
// amsgrad) for `params`, all with a gradient, and their moments; bc1 = 1 - beta1^t and
// bc2_sqrt = (1 - beta2^t)^0.5 for step t.
extern "C" int fpgan_foreach_adam(at::Tensor* const* params, at::Tensor* const* exp_avgs,
                                  at::Tensor* const* exp_avg_sqs, int n, double lr, double beta1,
                                  double beta2, double eps, double bc1, double bc2_sqrt) {
  return guarded([&] {
    if (n == 0) return;
    at::NoGradGuard no_grad;
    auto p = list(params, n), m = list(exp_avgs, n);
    auto denom = adam_denom(p, m, list(exp_avg_sqs, n), beta1, beta2, eps, bc2_sqrt);
    at::_foreach_addcdiv_(p, m, denom, (lr / bc1) * -1);
  });
}

// The same step with its bias corrections read from 0-d float tensors on the parameters' device
// (torch.optim.Adam's `capturable` form: a host number would be frozen into a CUDA graph),
// written before each step t: bc2_sqrt = (1 - beta2^t)^0.5 and step_size = -lr / (1 - beta1^t).
// p += (m * step_size) / denom rounds as the form above on a CPU (addcdiv multiplies first).
extern "C" int fpgan_foreach_adam_capturable(at::Tensor* const* params,
                                             at::Tensor* const* exp_avgs,
                                             at::Tensor* const* exp_avg_sqs, int n, double beta1,
                                             double beta2, double eps, const at::Tensor* bc2_sqrt,
                                             const at::Tensor* step_size) {
  return guarded([&] {
    if (n == 0) return;
    at::NoGradGuard no_grad;
    auto p = list(params, n), m = list(exp_avgs, n);
    auto denom = adam_denom(p, m, list(exp_avg_sqs, n), beta1, beta2, eps, *bc2_sqrt);
    auto update = at::_foreach_mul(m, *step_size);
    at::_foreach_div_(update, denom);
    at::_foreach_add_(p, update);
  });
}

// dst[i] = src[i].lerp(dst[i], weight) (the reference's EMA: p_ema.copy_(p.lerp(p_ema, beta))).
extern "C" int fpgan_foreach_lerp_into(at::Tensor* const* src, at::Tensor* const* dst, int n,
                                       double weight) {
  return guarded([&] {
    if (n == 0) return;
    at::NoGradGuard no_grad;
    auto d = list(dst, n);
    at::_foreach_copy_(d, at::_foreach_lerp(list(src, n), d, weight));
  });
}

// dst[i].copy_(src[i]).
extern "C" int fpgan_foreach_copy(at::Tensor* const* src, at::Tensor* const* dst, int n) {
  return guarded([&] {
    if (n == 0) return;
    at::NoGradGuard no_grad;
    auto d = list(dst, n);
    at::_foreach_copy_(d, list(src, n));
  });
}
