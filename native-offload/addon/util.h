// Helpers of the offload addon shared by its files: the kernel's values (cgroup, rmem_default,
// socket cookies), libbpf's log capture and errno reasons, and the BPF maps' value layouts.
#pragma once
#include <cstdarg>
#include <string>

#include <bpf/libbpf.h>
#include <linux/types.h>

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif
#ifndef SO_ATTACH_REUSEPORT_EBPF
#define SO_ATTACH_REUSEPORT_EBPF 52
#endif

namespace l7mp {

// Value of the splice skeleton's peers map (bpf/offload.bpf.c).
struct Peer {
  __u64 peer_cookie;
  __u64 pkts;
  __u64 bytes;
  __u64 last_ns;
  __u64 drops;
};

// Value of the splice skeleton's queues map.
struct Queue {
  __u64 queued;
  __u64 sent;
};

// The cgroup v2 directory of this process (for the egress program), or "" with the reason in why.
std::string own_cgroup2(std::string* why);
// net.core.rmem_default (bytes): the default receive buffer, used as the bound of a spliced
// socket's send queue; 212992 if unreadable.
__u64 rmem_default();
// The last lines libbpf printed on this thread (the verifier's complaint, for probe()'s reason).
extern thread_local std::string last_log;
int libbpf_print(enum libbpf_print_level level, const char* fmt, va_list args);
// SO_COOKIE of fd into *cookie: 0 or -errno.
int cookie_of(int fd, __u64* cookie);
// A sentence for a BPF errno at `step`, or nullptr.
const char* reason_of(int err, const char* step);
double u64_to_double(__u64 v);

}  // namespace l7mp
