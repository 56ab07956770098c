// fpgan: libtorch operators that tch exposes without the argument fpgan needs: LeakyReLU with a
// slope (tch's is fixed at 0.01). Through the dispatcher, so autograd records them as usual.
// Take and return tch's tensor handles (at::Tensor*); null with the message in
// fpgan_last_error() on failure.
#include <ATen/ATen.h>

#include "guarded.h"

// leaky_relu(x, slope): x where x > 0, else slope * x; one kernel, and its backward one more.
extern "C" at::Tensor* fpgan_leaky_relu(const at::Tensor* x, double slope) {
  at::Tensor* out = nullptr;
  fpgan::guarded([&] { out = new at::Tensor(at::leaky_relu(*x, slope)); });
  return out;
}
