// fpgan: bf16 autocast regions for CPU or CUDA. tch's autocast is CUDA-only with float16;
// this sets the device type and dtype explicitly, with the nesting and weight-cast cache
// handling that torch.autocast does on entering and leaving a region.
#include <ATen/autocast_mode.h>

extern "C" int fpgan_autocast_enter(int cuda) {
  try {
    const auto dev = cuda != 0 ? at::kCUDA : at::kCPU;
    const bool was = at::autocast::is_autocast_enabled(dev);
    at::autocast::set_autocast_dtype(dev, at::kBFloat16);
    at::autocast::set_autocast_enabled(dev, true);
    at::autocast::increment_nesting();
    return was ? 1 : 0;
  } catch (...) {
    return -1;
  }
}

extern "C" int fpgan_autocast_exit(int cuda, int was_enabled) {
  try {
    const auto dev = cuda != 0 ? at::kCUDA : at::kCPU;
    if (at::autocast::decrement_nesting() == 0) {
      at::autocast::clear_cache();
    }
    at::autocast::set_autocast_enabled(dev, was_enabled != 0);
    return 0;
  } catch (...) {
    return -1;
  }
}
