// See util.h.
#include "util.h"

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include <sys/socket.h>

namespace l7mp {

// The cgroup v2 directory of this process (for the egress program), or "" with the reason in why.
std::string own_cgroup2(std::string* why) {
  std::string rel;
  if (FILE* f = fopen("/proc/self/cgroup", "r")) {
    char line[4096];
    while (fgets(line, sizeof line, f) != nullptr) {
      if (std::strncmp(line, "0::", 3) == 0) {
        rel = line + 3;
        while (!rel.empty() && (rel.back() == '\n' || rel.back() == '\r')) rel.pop_back();
      }
    }
    fclose(f);
  }
  if (rel.empty()) {
    *why = "no cgroup v2 membership in /proc/self/cgroup";
    return "";
  }
  std::string mnt;
  if (FILE* f = fopen("/proc/self/mountinfo", "r")) {
    char line[4096];
    while (fgets(line, sizeof line, f) != nullptr) {
      // id parent major:minor root mount-point options ... - fstype source super-options
      if (std::strstr(line, " - cgroup2 ") == nullptr) continue;
      char point[1024];
      if (std::sscanf(line, "%*s %*s %*s %*s %1023s", point) == 1) {
        mnt = point;
        break;
      }
    }
    fclose(f);
  }
  if (mnt.empty()) {
    *why = "no cgroup2 file system mounted";
    return "";
  }
  return rel == "/" ? mnt : mnt + rel;
}

// net.core.rmem_default (bytes): the default receive buffer, used as the bound of a spliced
// socket's send queue; 212992 if unreadable.
__u64 rmem_default() {
  __u64 v = 212992;
  if (FILE* f = fopen("/proc/sys/net/core/rmem_default", "r")) {
    unsigned long long x = 0;
    if (std::fscanf(f, "%llu", &x) == 1 && x > 0) v = x;
    fclose(f);
  }
  return v;
}

// The last lines libbpf printed on this thread (the verifier's complaint, for probe()'s reason).
thread_local std::string last_log;

int libbpf_print(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char buf[512];
  int n = vsnprintf(buf, sizeof buf, fmt, args);
  if (n > 0) {
    last_log += buf;
    if (last_log.size() > 2048) last_log.erase(0, last_log.size() - 2048);
  }
  return 0;
}

int cookie_of(int fd, __u64* cookie) {
  socklen_t len = sizeof *cookie;
  if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, cookie, &len) != 0) return -errno;
  return 0;
}

const char* reason_of(int err, const char* step) {
  switch (err) {
    case EPERM:
      return "EPERM: needs CAP_BPF and CAP_NET_ADMIN (or root), or bpf() is blocked by seccomp";
    case EACCES:
      return "EACCES: the verifier refused the program";
    case ENOSYS:
      return "ENOSYS: the kernel has no bpf() syscall";
    case EINVAL:
      return std::strcmp(step, "attach") == 0 ? "EINVAL at attach: kernel older than 5.13 (no UDP sockmap verdicts)" : "EINVAL: the kernel refused the program or a map";
    default:
      return nullptr;
  }
}

double u64_to_double(__u64 v) { return static_cast<double>(v); }

}  // namespace l7mp
