// fpgan: c10d process groups from libtorch's own distributed library, which tch does not expose:
// a TCPStore rendezvous and a Gloo backend (CPU tensors) or, when built with the CUDA and NCCL
// headers of the torch wheel's PyPI dependencies (FPGAN_NCCL), an NCCL backend (CUDA tensors);
// in-place all-reduce (sum), broadcast and barrier for data-parallel training; and a client of
// the TCPStore for the launchers of a run on several machines and for each worker's stall
// watch. The gloo declarations come from csrc/gloo_stub (the wheel ships no gloo headers).
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef FPGAN_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "guarded.h"

#include <algorithm>
#include <mutex>
#include <string>
#include <vector>

namespace {

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
};

struct Client {
  c10::intrusive_ptr<c10d::Store> store;
};

using fpgan::guarded;

}  // namespace


namespace {

// libtorch's log quiet while one lives: a client that times out logs its last try as a warning
// with a backtrace, before the exception that says the same in one line. Counted, so that the
// store requests of several threads (a worker's stall watch beside its training) restore the
// level only when the last ends.
std::mutex quiet_mutex;
int quiet_depth = 0;
int quiet_saved = 0;

struct QuietLog {
  QuietLog() {
    std::lock_guard<std::mutex> lock(quiet_mutex);
    if (quiet_depth++ == 0) {
      quiet_saved = FLAGS_caffe2_log_level;
      FLAGS_caffe2_log_level = 3;  // fatal only
    }
  }
  ~QuietLog() {
    std::lock_guard<std::mutex> lock(quiet_mutex);
    if (--quiet_depth == 0) {
      FLAGS_caffe2_log_level = quiet_saved;
    }
  }
};

c10::intrusive_ptr<c10d::Store> tcp_store(const char* host, int port, int rank, int world,
                                          std::chrono::milliseconds timeout) {
  QuietLog quiet;
  c10d::TCPStoreOptions o;
  o.port = static_cast<std::uint16_t>(port);
  o.isServer = rank == 0;
  o.numWorkers = world;
  o.waitWorkers = true;
  o.timeout = timeout;
  return c10::make_intrusive<c10d::TCPStore>(std::string(host), o);
}

}  // namespace

// Join a group of `world` processes as `rank` through the TCPStore at host:port (rank 0 serves
// it) with a Gloo backend, waiting up to join_ms for every rank, then up to collective_ms in each
// collective (and store request); null on failure (see fpgan_last_error).
extern "C" void* fpgan_c10d_gloo_new(const char* host, int port, int rank, int world,
                                     long join_ms, long collective_ms) {
  Group* out = nullptr;
  guarded([&] {
    std::chrono::milliseconds join(join_ms), collective(collective_ms);
    auto store = tcp_store(host, port, rank, world, join);
    auto opts = c10d::ProcessGroupGloo::Options::create_default(collective);
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, opts);
    store->setTimeout(collective);
    out = new Group{store, pg};
  });
  return out;
}

// The same with an NCCL backend for CUDA tensors on `device` (made the current device); null
// with an error when fpgan was built without the NCCL headers.
extern "C" void* fpgan_c10d_nccl_new(const char* host, int port, int rank, int world,
                                     long join_ms, long collective_ms, int device) {
  Group* out = nullptr;
  guarded([&] {
#ifdef FPGAN_NCCL
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(device));
    std::chrono::milliseconds join(join_ms), collective(collective_ms);
    auto store = tcp_store(host, port, rank, world, join);
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = collective;
    auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, opts);
    store->setTimeout(collective);  // NCCL's communicator is made lazily, at the first collective
    out = new Group{store, pg};
#else
    throw std::runtime_error(
        "fpgan was built without the NCCL headers (the torch wheel's nvidia-nccl and CUDA "
        "packages); use FPGAN_DIST_BACKEND=gloo");
#endif
  });
  return out;
}

// Sum `t` over the group, in place, and wait for it.
extern "C" int fpgan_c10d_allreduce_sum(void* g, at::Tensor* t) {
  return guarded([&] {
    std::vector<at::Tensor> v{*t};
    static_cast<Group*>(g)->backend->allreduce(v)->wait();
  });
}

// Copy `t` of rank `root` into `t` of every rank, and wait for it.
extern "C" int fpgan_c10d_broadcast(void* g, at::Tensor* t, int root) {
  return guarded([&] {
    std::vector<at::Tensor> v{*t};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    static_cast<Group*>(g)->backend->broadcast(v, o)->wait();
  });
}

// Wait until every rank reaches the barrier.
extern "C" int fpgan_c10d_barrier(void* g) {
  return guarded([&] { static_cast<Group*>(g)->backend->barrier()->wait(); });
}

extern "C" void fpgan_c10d_free(void* g) { delete static_cast<Group*>(g); }

// A client of a group's TCPStore at host:port that is not a member (a launcher watching its
// run), connecting for up to connect_ms, then waiting up to request_ms in each request (a lost
// store is retried, and libtorch logs each failure with a backtrace: its log is kept quiet);
// null on failure (see fpgan_last_error).
extern "C" void* fpgan_store_client_new(const char* host, int port, long connect_ms,
                                        long request_ms) {
  Client* out = nullptr;
  guarded([&] {
    QuietLog quiet;
    c10d::TCPStoreOptions o;
    o.port = static_cast<std::uint16_t>(port);
    o.isServer = false;
    o.waitWorkers = false;
    o.timeout = std::chrono::milliseconds(connect_ms);
    auto store = c10::make_intrusive<c10d::TCPStore>(std::string(host), o);
    store->setTimeout(std::chrono::milliseconds(request_ms));
    out = new Client{store};
  });
  return out;
}

// Set `key` to `value` in the store.
extern "C" int fpgan_store_set(void* c, const char* key, const char* value) {
  QuietLog quiet;
  return guarded([&] { static_cast<Client*>(c)->store->set(key, std::string(value)); });
}

// Whether `key` is in the store: 1 or 0, or -1 when the store cannot be asked.
extern "C" int fpgan_store_check(void* c, const char* key) {
  QuietLog quiet;
  bool present = false;
  auto ask = [&] { present = static_cast<Client*>(c)->store->check({std::string(key)}); };
  if (guarded(ask) != 0) {
    return -1;
  }
  return present ? 1 : 0;
}

// The value of `key` (present) in `buf` of `cap` bytes, cut there; its length, or -1.
extern "C" long fpgan_store_get(void* c, const char* key, char* buf, long cap) {
  QuietLog quiet;
  long len = -1;
  guarded([&] {
    auto v = static_cast<Client*>(c)->store->get(key);
    len = static_cast<long>(std::min<size_t>(v.size(), static_cast<size_t>(cap)));
    std::copy(v.begin(), v.begin() + len, buf);
  });
  return len;
}

// Add `delta` to the counter `key` (made at 0 when absent) and put its new value in `out`.
extern "C" int fpgan_store_add(void* c, const char* key, long delta, long* out) {
  QuietLog quiet;
  return guarded([&] { *out = static_cast<Client*>(c)->store->add(key, delta); });
}

extern "C" void fpgan_store_free(void* c) { delete static_cast<Client*>(c); }
