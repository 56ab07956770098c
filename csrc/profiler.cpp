// fpgan: libtorch's (Kineto) profiler, which tch does not expose: record the operators of a
// stretch of work (and on CUDA its kernels, copies and launches) and save it as a Chrome trace
// (`fpgan bench --profile`), with labelled spans (the phases). Functions return 0, or -1 with the
// message in fpgan_last_error().
#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/csrc/autograd/record_function_ops.h>

#include "guarded.h"

#include <set>
#include <string>

namespace {

namespace impl = torch::profiler::impl;

impl::ProfilerConfig config() {
  return impl::ProfilerConfig(impl::ProfilerState::KINETO, /*report_input_shapes=*/false,
                              /*profile_memory=*/false, /*with_stack=*/false,
                              /*with_flops=*/false, /*with_modules=*/false);
}

std::set<impl::ActivityType> activities(int cuda) {
  std::set<impl::ActivityType> a{impl::ActivityType::CPU};
  if (cuda) a.insert(impl::ActivityType::CUDA);
  return a;
}

}  // namespace

// Start recording operators (and CUDA activity when `cuda` is non-zero) on this thread and the
// threads it hands work to (autograd's).
extern "C" int fpgan_profiler_start(int cuda) {
  return fpgan::guarded([&] {
    torch::autograd::profiler::prepareProfiler(config(), activities(cuda));
    torch::autograd::profiler::enableProfiler(config(), activities(cuda));
  });
}

// Stop recording and write the Chrome trace to `path`.
extern "C" int fpgan_profiler_stop(const char* path) {
  return fpgan::guarded([&] {
    auto result = torch::autograd::profiler::disableProfiler();
    if (!result) throw std::runtime_error("the profiler was not running");
    result->save(path);
  });
}

// Open a labelled span (a record_function range, as Python's `record_function(name)`) in the
// trace being recorded; `name` must outlive the span. Returns a handle for
// fpgan_profiler_range_exit, or null when nothing records or on failure (the work goes on
// unlabelled).
extern "C" void* fpgan_profiler_range_enter(const char* name) {
  if (!at::hasCallbacks()) return nullptr;  // no profiler running: nothing to label
  void* handle = nullptr;
  fpgan::guarded([&] {
    handle = torch::autograd::profiler::record_function_enter_new(name).release();
  });
  return handle;
}

// Close the span opened by fpgan_profiler_range_enter (null: nothing to close).
extern "C" void fpgan_profiler_range_exit(void* handle) {
  if (handle == nullptr) return;
  using Range = torch::autograd::profiler::PythonRecordFunction;
  fpgan::guarded([&] { c10::intrusive_ptr<Range>::reclaim(static_cast<Range*>(handle)); });
}
