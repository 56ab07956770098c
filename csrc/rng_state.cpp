// fpgan: save and restore the state of libtorch's default random generator (CPU, or one CUDA
// device), so that work outside the training stream (an estimate of the metrics' cost) draws
// numbers without changing what training draws next. tch exposes neither.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/core/Generator.h>
#include <mutex>

static at::Generator generator(int cuda_index) {
  if (cuda_index < 0) {
    return at::detail::getDefaultCPUGenerator();
  }
  return at::globalContext().defaultGenerator(c10::Device(c10::DeviceType::CUDA, cuda_index));
}

// A new handle to the state of the generator (-1: CPU, else that CUDA device); null on error.
extern "C" void* fpgan_rng_get(int cuda_index) {
  try {
    auto g = generator(cuda_index);
    std::lock_guard<std::mutex> lock(g.mutex());
    return new at::Tensor(g.get_state());
  } catch (...) {
    return nullptr;
  }
}

// Restore a state from fpgan_rng_get and free it; 0 on success.
extern "C" int fpgan_rng_set(int cuda_index, void* state) {
  auto* t = static_cast<at::Tensor*>(state);
  try {
    auto g = generator(cuda_index);
    std::lock_guard<std::mutex> lock(g.mutex());
    g.set_state(*t);
    delete t;
    return 0;
  } catch (...) {
    delete t;
    return -1;
  }
}
