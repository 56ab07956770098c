// fpgan: C++ exceptions stopped at the C boundary of the shims: a failing call returns -1 and
// leaves a message (libtorch's, without its backtrace) for this thread's fpgan_last_error()
// (guarded.cpp).
#pragma once
#include <c10/util/Exception.h>

#include <exception>
#include <string>

namespace fpgan {

inline std::string& last_error() {
  thread_local std::string message;
  return message;
}

template <typename F>
int guarded(F f) {
  try {
    f();
    return 0;
  } catch (const c10::Error& e) {
    last_error() = e.what_without_backtrace();
  } catch (const std::exception& e) {
    last_error() = e.what();
  } catch (...) {
    last_error() = "unknown C++ exception";
  }
  return -1;
}

}  // namespace fpgan
