// fpgan: CUDA events that time the training phases without waiting for the GPU (what the
// reference's torch.cuda.Event(enable_timing=True) does). Uses c10's device-generic Event and
// stream interfaces, so no CUDA header is needed; called only when CUDA is available.
#include <c10/core/Event.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

extern "C" void *fpgan_cuda_event_new() {
  try {
    // libtorch without CUDA, or no GPU: the event would only fail when recorded
    if (!c10::impl::hasDeviceGuardImpl(c10::DeviceType::CUDA) ||
        c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->deviceCount() == 0) {
      return nullptr;
    }
    return new c10::Event(c10::DeviceType::CUDA, c10::EventFlag::BACKEND_DEFAULT);
  } catch (...) {
    return nullptr;
  }
}

// Record on the current stream of `device`; 0 on success.
extern "C" int fpgan_cuda_event_record(void *event, int device) {
  try {
    const auto *impl = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA);
    const auto dev = c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(device));
    static_cast<c10::Event *>(event)->record(impl->getStream(dev));
    return 0;
  } catch (...) {
    return -1;
  }
}

// Milliseconds from `start` to `end` once `end` has completed (waits for it); -1 on error.
extern "C" double fpgan_cuda_event_elapsed_ms(void *start, void *end) {
  try {
    auto *e = static_cast<c10::Event *>(end);
    e->synchronize();
    return static_cast<c10::Event *>(start)->elapsedTime(*e);
  } catch (...) {
    return -1.0;
  }
}

extern "C" void fpgan_cuda_event_free(void *event) {
  delete static_cast<c10::Event *>(event);
}
