// fpgan: the CUDA caching allocator's memory statistics (what torch.cuda.max_memory_allocated and
// max_memory_reserved report), which tch does not expose. Uses only c10's device-generic
// allocator interface, so no CUDA header is needed; called only when CUDA is available.
#include <c10/core/CachingDeviceAllocator.h>
#include <cstdint>

extern "C" int fpgan_cuda_memory(int device, int64_t *out, int reset_peaks) {
  try {
    auto *alloc = c10::getDeviceAllocator(c10::DeviceType::CUDA);
    if (alloc == nullptr || !alloc->initialized()) {
      return -1;
    }
    const auto index = static_cast<c10::DeviceIndex>(device);
    const auto stats = alloc->getDeviceStats(index);
    const auto all = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
    out[0] = stats.allocated_bytes[all].current;
    out[1] = stats.allocated_bytes[all].peak;
    out[2] = stats.reserved_bytes[all].current;
    out[3] = stats.reserved_bytes[all].peak;
    if (reset_peaks != 0) {
      alloc->resetPeakStats(index);
    }
    return 0;
  } catch (...) {
    return -2;
  }
}
