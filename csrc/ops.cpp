// fpgan: libtorch operators that tch exposes without the argument fpgan needs: LeakyReLU with a
// slope (tch's is fixed at 0.01), and bilinear resizing with a backward pass that gives the same
// bits on every run of a CUDA device. Take and return tch's tensor handles (at::Tensor*); null
// with the message in fpgan_last_error() on failure.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "guarded.h"

// leaky_relu(x, slope): x where x > 0, else slope * x; one kernel, and its backward one more.
extern "C" at::Tensor* fpgan_leaky_relu(const at::Tensor* x, double slope) {
  at::Tensor* out = nullptr;
  fpgan::guarded([&] { out = new at::Tensor(at::leaky_relu(*x, slope)); });
  return out;
}

namespace fpgan {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The (out x in) matrix of upsample_bilinear2d's weights along one axis (its source index and
// lambdas by its formulas, in `opts`' kind: float for float, bf16 and half; a kernel that fuses
// a multiply-add may round a lambda one ulp apart), built with element-wise kernels on `opts`'
// device: nothing that a CUDA graph capture could not record.
static at::Tensor bilinear_weights(int64_t in, int64_t out, bool align_corners,
                                   const at::TensorOptions& opts) {
  const auto dst = at::arange(out, opts);
  at::Tensor src;
  if (align_corners) {
    src = dst * (out > 1 ? static_cast<double>(in - 1) / static_cast<double>(out - 1) : 0.0);
  } else {
    src = ((dst + 0.5) * (static_cast<double>(in) / static_cast<double>(out)) - 0.5).clamp_min(0);
  }
  const auto i0 = src.floor().clamp_max(static_cast<double>(in - 1));
  const auto l1 = src - i0;
  const auto i1 = (i0 + 1).clamp_max(static_cast<double>(in - 1));
  const auto cols = at::arange(in, opts).unsqueeze(0);
  const auto pick = [&](const at::Tensor& i) { return cols.eq(i.unsqueeze(1)).to(opts.dtype()); };
  return pick(i0) * (1 - l1).unsqueeze(1) + pick(i1) * l1.unsqueeze(1);
}

// upsample_bilinear2d forward; backward as two matrix products, grad_x = A_h^T grad A_w (in
// float, or double for double; in TF32 under --tf32, as the convolutions around it). The
// native CUDA backward scatters with atomic adds, whose order (and so the last bits of the
// sums) changes from run to run; matrix products sum in a fixed order. They cost O(in) per
// gradient element instead of 2 taps: by operation count, about 0.2 GFLOP an image for the
// CSM's largest up-sampling at 256 px (64 channels, 64 to 128), about 13 at 1024 px.
struct BilinearResize : public torch::autograd::Function<BilinearResize> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t out_h,
                            int64_t out_w, bool align_corners) {
    ctx->saved_data["h"] = x.size(2);
    ctx->saved_data["w"] = x.size(3);
    ctx->saved_data["align"] = align_corners;
    ctx->saved_data["cl"] = x.suggest_memory_format() == at::MemoryFormat::ChannelsLast;
    return at::upsample_bilinear2d(x, {out_h, out_w}, align_corners, std::nullopt, std::nullopt);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto& g = grads[0];
    const bool align = ctx->saved_data["align"].toBool();
    const auto acc = g.options().dtype(at::promote_types(g.scalar_type(), at::kFloat));
    const auto a_h = bilinear_weights(ctx->saved_data["h"].toInt(), g.size(2), align, acc);
    const auto a_w = bilinear_weights(ctx->saved_data["w"].toInt(), g.size(3), align, acc);
    const auto along_w = at::matmul(g.to(acc.dtype()), a_w);           // (B, C, OH, W)
    const auto along_h = at::matmul(along_w.transpose(-1, -2), a_h);  // (B, C, W, H)
    const auto format = ctx->saved_data["cl"].toBool() ? at::MemoryFormat::ChannelsLast
                                                       : at::MemoryFormat::Contiguous;
    auto gx = along_h.transpose(-1, -2).to(g.scalar_type()).contiguous(format);
    return {gx, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace fpgan

// Bilinear resize of an NCHW tensor to out_h x out_w, as upsample_bilinear2d (its forward
// kernel), recorded by autograd with the deterministic backward above.
extern "C" at::Tensor* fpgan_bilinear_resize(const at::Tensor* x, int64_t out_h, int64_t out_w,
                                             int align_corners) {
  at::Tensor* out = nullptr;
  fpgan::guarded([&] {
    out = new at::Tensor(fpgan::BilinearResize::apply(*x, out_h, out_w, align_corners != 0));
  });
  return out;
}
