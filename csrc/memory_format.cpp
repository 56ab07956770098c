// fpgan: channels_last (NHWC) copies of tensors, which tch has no API for. Takes and returns
// tch's tensor handles (heap-allocated at::Tensor).
#include <ATen/core/Tensor.h>

extern "C" void *fpgan_channels_last(void *t) {
  try {
    const auto *src = static_cast<at::Tensor *>(t);
    return new at::Tensor(src->contiguous(at::MemoryFormat::ChannelsLast));
  } catch (...) {
    return nullptr;
  }
}
