// fpgan: TF32 for float32 convolutions (cuDNN) and matrix products (cuBLAS). libtorch allows
// TF32 in cuDNN by default; the official training loop turns both off, so fpgan does too unless
// --tf32 is given. Also deterministic kernels, which `fpgan check` uses to compare runs on one
// GPU. tch exposes none of these switches.
#include <ATen/Context.h>

extern "C" int fpgan_set_tf32(int allow) {
  try {
    at::globalContext().setAllowTF32CuDNN(allow != 0);
    at::globalContext().setAllowTF32CuBLAS(allow != 0);
    return 0;
  } catch (...) {
    return -1;
  }
}

// bit 0: cuDNN convolutions may use TF32; bit 1: cuBLAS matmuls may; -1 on error.
extern "C" int fpgan_tf32_state() {
  try {
    return (at::globalContext().allowTF32CuDNN() ? 1 : 0) |
           (at::globalContext().allowTF32CuBLAS() ? 2 : 0);
  } catch (...) {
    return -1;
  }
}

// Deterministic kernels (1) or libtorch's defaults (0): cuDNN restricted to deterministic
// algorithms (torch.backends.cudnn.deterministic), and torch.use_deterministic_algorithms(True,
// warn_only=True), which picks the deterministic variants of the operators that have one and
// warns, naming it, of any operator the process runs that has none; without its filling of
// every new tensor with NaN (torch.utils.deterministic.fill_uninitialized_memory), a debugging
// aid that costs a kernel per allocation. Returns the previous setting (1 only if both were
// on), or -1 on error.
extern "C" int fpgan_set_deterministic(int on) {
  try {
    auto& ctx = at::globalContext();
    const int was = ctx.deterministicCuDNN() && ctx.deterministicAlgorithms() ? 1 : 0;
    ctx.setDeterministicCuDNN(on != 0);
    ctx.setDeterministicAlgorithms(on != 0, /*warn_only=*/true);
    ctx.setDeterministicFillUninitializedMemory(false);
    return was;
  } catch (...) {
    return -1;
  }
}
