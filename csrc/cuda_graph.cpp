// fpgan: CUDA graphs for `--cuda-graphs` (what torch.cuda.graph does): a training phase captured
// once on a side stream and replayed as one launch, the graphs sharing one memory pool; libtorch's
// at::cuda::CUDAGraph, whose capture registers the default generator, so that random draws in a
// replay continue torch's random stream as the eager phase would. Needs the CUDA headers of the
// torch wheel's PyPI dependencies (FPGAN_CUDA); without them every call fails with a message.
// Functions return 0, or -1 with the message in fpgan_last_error().
#include "guarded.h"

#include <cstdint>
#include <stdexcept>

#ifdef FPGAN_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>
#endif

using fpgan::guarded;

#ifdef FPGAN_CUDA

// Make a new stream from libtorch's pool the current stream of `device` for this thread (a graph
// is captured on a stream other than the default one; warm-up, capture and replays share it),
// once the work queued so far has finished (the pool's streams do not wait for the default one).
extern "C" int fpgan_cuda_side_stream(int device) {
  return guarded([&] {
    const auto dev = static_cast<c10::DeviceIndex>(device);
    c10::cuda::set_device(dev);
    c10::cuda::device_synchronize();
    c10::cuda::setCurrentCUDAStream(c10::cuda::getStreamFromPool(false, dev));
  });
}

// A new memory pool handle that several graphs may share when replayed in capture order.
extern "C" int fpgan_cuda_graph_pool(uint64_t* a, uint64_t* b) {
  return guarded([&] {
    const auto id = at::cuda::graph_pool_handle();
    *a = id.first;
    *b = id.second;
  });
}

// A new graph (*out); free with fpgan_cuda_graph_free.
extern "C" int fpgan_cuda_graph_new(void** out) {
  *out = nullptr;
  return guarded([&] { *out = new at::cuda::CUDAGraph(); });
}

// Start capturing what this thread launches on the current stream of the current device into
// `graph`, with memory from pool (a, b). First, as torch.cuda.graph does, the device finishes its
// work and the caching allocator hands its unused blocks back: the graph's pool cannot reuse them,
// and the eager iterations' cache plus the pool would otherwise both count against the device.
extern "C" int fpgan_cuda_graph_begin(void* graph, uint64_t a, uint64_t b) {
  return guarded([&] {
    c10::cuda::device_synchronize();
    c10::cuda::CUDACachingAllocator::emptyCache();
    static_cast<at::cuda::CUDAGraph*>(graph)->capture_begin({a, b});
  });
}

// End the capture (the graph is instantiated; nothing captured has run yet).
extern "C" int fpgan_cuda_graph_end(void* graph) {
  return guarded([&] { static_cast<at::cuda::CUDAGraph*>(graph)->capture_end(); });
}

// Launch the captured work on the current stream.
extern "C" int fpgan_cuda_graph_replay(void* graph) {
  return guarded([&] { static_cast<at::cuda::CUDAGraph*>(graph)->replay(); });
}

extern "C" void fpgan_cuda_graph_free(void* graph) {
  guarded([&] { delete static_cast<at::cuda::CUDAGraph*>(graph); });
}

#else

namespace {
[[noreturn]] void unavailable() {
  throw std::runtime_error(
      "fpgan was built without the CUDA headers of the torch wheel (make setup installs them)");
}
}  // namespace

extern "C" int fpgan_cuda_side_stream(int) { return guarded([] { unavailable(); }); }
extern "C" int fpgan_cuda_graph_pool(uint64_t*, uint64_t*) {
  return guarded([] { unavailable(); });
}
extern "C" int fpgan_cuda_graph_new(void** out) {
  *out = nullptr;
  return guarded([] { unavailable(); });
}
extern "C" int fpgan_cuda_graph_begin(void*, uint64_t, uint64_t) {
  return guarded([] { unavailable(); });
}
extern "C" int fpgan_cuda_graph_end(void*) { return guarded([] { unavailable(); }); }
extern "C" int fpgan_cuda_graph_replay(void*) { return guarded([] { unavailable(); }); }
extern "C" void fpgan_cuda_graph_free(void*) {}

#endif
