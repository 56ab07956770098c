// fpgan: TF32 for float32 convolutions (cuDNN) and matrix products (cuBLAS). libtorch allows
// TF32 in cuDNN by default; the official training loop turns both off, so fpgan does too unless
// --tf32 is given. Also cuDNN's deterministic algorithms, which `fpgan check` uses to compare two
// runs on one GPU. tch exposes none of these switches.
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

// cuDNN restricted to deterministic algorithms (1) or free to pick (0, libtorch's default);
// returns the previous setting, or -1 on error.
extern "C" int fpgan_set_deterministic_cudnn(int on) {
  try {
    const int was = at::globalContext().deterministicCuDNN() ? 1 : 0;
    at::globalContext().setDeterministicCuDNN(on != 0);
    return was;
  } catch (...) {
    return -1;
  }
}
