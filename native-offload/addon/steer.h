// Worker steering (the reuseport skeleton): one SK_REUSEPORT program per UDP listener group,
// loaded on the main thread; runtime/main/steering.ts drives it through the Offload addon's
// steer* methods, which forward here.
#pragma once
#include <vector>

#include <napi.h>

struct reuseport_bpf;

namespace l7mp {

class Steering {
 public:
  Steering() = default;
  Steering(const Steering&) = delete;
  Steering& operator=(const Steering&) = delete;
  ~Steering();
  Napi::Value Open(const Napi::CallbackInfo& info);
  Napi::Value Slot(const Napi::CallbackInfo& info);
  Napi::Value Buckets(const Napi::CallbackInfo& info);
  Napi::Value Attach(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

 private:
  reuseport_bpf* get(const Napi::CallbackInfo& info);
  std::vector<reuseport_bpf*> steer_;
};

}  // namespace l7mp
