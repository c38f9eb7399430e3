// See steer.h.
#include "steer.h"

#include <cerrno>

#include <sys/socket.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "reuseport.skel.h"
#include "util.h"

namespace l7mp {

Steering::~Steering() {
  for (auto* s : steer_)
    if (s != nullptr) reuseport_bpf__destroy(s);
}

// steerOpen(): a handle (>= 0) to a loaded steering skeleton for one reuseport group, or -errno.
Napi::Value Steering::Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  reuseport_bpf* s = reuseport_bpf__open_and_load();
  if (s == nullptr) return Napi::Number::New(env, -(errno ? errno : EINVAL));
  for (size_t i = 0; i < steer_.size(); i++)
    if (steer_[i] == nullptr) {
      steer_[i] = s;
      return Napi::Number::New(env, static_cast<double>(i));
    }
  steer_.push_back(s);
  return Napi::Number::New(env, static_cast<double>(steer_.size() - 1));
}

reuseport_bpf* Steering::get(const Napi::CallbackInfo& info) {
  int h = info[0].As<Napi::Number>().Int32Value();
  if (h < 0 || static_cast<size_t>(h) >= steer_.size()) return nullptr;
  return steer_[h];
}

// steerSlot(h, slot, fd): put worker `slot`'s listening socket in the group's socket array
// (fd < 0: remove it). 0 or -errno.
Napi::Value Steering::Slot(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  reuseport_bpf* s = get(info);
  if (s == nullptr) return Napi::Number::New(env, -EBADF);
  __u32 slot = info[1].As<Napi::Number>().Uint32Value();
  int fd = info[2].As<Napi::Number>().Int32Value();
  int mfd = bpf_map__fd(s->maps.workers);
  if (fd < 0) {
    if (bpf_map_delete_elem(mfd, &slot) != 0 && errno != ENOENT) return Napi::Number::New(env, -errno);
    return Napi::Number::New(env, 0);
  }
  __u64 fdv = static_cast<__u64>(fd);
  if (bpf_map_update_elem(mfd, &slot, &fdv, BPF_ANY) != 0) return Napi::Number::New(env, -errno);
  return Napi::Number::New(env, 0);
}

// steerBuckets(h, table: Uint32Array(4096)): bucket -> slot. 0 or -errno.
Napi::Value Steering::Buckets(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  reuseport_bpf* s = get(info);
  if (s == nullptr) return Napi::Number::New(env, -EBADF);
  auto t = info[1].As<Napi::Uint32Array>();
  int mfd = bpf_map__fd(s->maps.buckets);
  for (__u32 b = 0; b < t.ElementLength(); b++) {
    __u32 v = t[b];
    if (bpf_map_update_elem(mfd, &b, &v, BPF_ANY) != 0) return Napi::Number::New(env, -errno);
  }
  return Napi::Number::New(env, 0);
}

// steerAttach(h, fd): attach the steering program to the reuseport group of socket fd. 0 or -errno.
Napi::Value Steering::Attach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  reuseport_bpf* s = get(info);
  if (s == nullptr) return Napi::Number::New(env, -EBADF);
  int fd = info[1].As<Napi::Number>().Int32Value();
  int pfd = bpf_program__fd(s->progs.udp_steer);
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &pfd, sizeof pfd) != 0) return Napi::Number::New(env, -errno);
  return Napi::Number::New(env, 0);
}

// steerStats(h): [steered, select_failed, unparsed], summed over CPUs.
Napi::Value Steering::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array r = Napi::Array::New(env, 3);
  for (uint32_t k = 0; k < 3; k++) r.Set(k, Napi::Number::New(env, 0));
  reuseport_bpf* s = get(info);
  int ncpu = libbpf_num_possible_cpus();
  if (s == nullptr || ncpu <= 0) return r;
  std::vector<__u64> v(ncpu);
  for (uint32_t k = 0; k < 3; k++) {
    if (bpf_map_lookup_elem(bpf_map__fd(s->maps.rstats), &k, v.data()) != 0) continue;
    double sum = 0;
    for (int i = 0; i < ncpu; i++) sum += static_cast<double>(v[i]);
    r.Set(k, Napi::Number::New(env, sum));
  }
  return r;
}

// steerClose(h): unload (the program stays attached to groups until they close).
Napi::Value Steering::Close(const Napi::CallbackInfo& info) {
  reuseport_bpf* s = get(info);
  if (s != nullptr) {
    reuseport_bpf__destroy(s);
    steer_[info[0].As<Napi::Number>().Int32Value()] = nullptr;
  }
  return info.Env().Undefined();
}

}  // namespace l7mp
