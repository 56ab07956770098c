#pragma once
// fpgan: the declarations of gloo that torch's ProcessGroupGloo.hpp needs, standing in for the
// gloo headers the torch wheel does not ship. They mirror gloo 3135b0b (the commit torch 2.11.0
// builds in): the rendezvous Store's virtual functions in gloo's order (GlooStore in the header
// derives from it) and Context::setTimeout (defined in libtorch_cpu). Every other gloo type is
// used through pointers only. The shim never builds a GlooStore nor sizes a gloo type, so it
// depends on no gloo layout; it calls only functions libtorch_cpu exports.
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace gloo {

class Context {
 public:
  void setTimeout(std::chrono::milliseconds timeout);
};

namespace transport {
class Device;
class UnboundBuffer;
}  // namespace transport

class IStore {
 public:
  virtual ~IStore() = default;
  virtual void set(const std::string& key, const std::vector<char>& data) = 0;
  virtual std::vector<char> get(const std::string& key) = 0;
  virtual std::vector<char> wait_get(const std::string& key,
                                     const std::chrono::milliseconds& timeout) {
    wait({key}, timeout);
    return get(key);
  }
  virtual void wait(const std::vector<std::string>& keys,
                    const std::chrono::milliseconds& timeout) = 0;
  virtual bool has_v2_support() = 0;
  virtual std::vector<std::vector<char>> multi_get(const std::vector<std::string>& keys) = 0;
  virtual void multi_set(const std::vector<std::string>& keys,
                         const std::vector<std::vector<char>>& values) = 0;
  virtual void append(const std::string& key, const std::vector<char>& value) = 0;
  virtual int64_t add(const std::string& key, int64_t value) = 0;
};

namespace rendezvous {

#define GLOO_STORE_HAS_STORE_V2 1

class Store : public IStore {
 public:
  static constexpr std::chrono::milliseconds kDefaultTimeout = std::chrono::seconds(30);
  virtual ~Store() = default;
  void set(const std::string& key, const std::vector<char>& data) override = 0;
  std::vector<char> get(const std::string& key) override = 0;
  virtual void wait(const std::vector<std::string>& keys) = 0;
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds&) override {
    wait(keys);
  }
  bool has_v2_support() override { return false; }
};

}  // namespace rendezvous
}  // namespace gloo
