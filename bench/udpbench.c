/*
 * udpbench: UDP load generator, sink, echo server and ping-pong client for measuring a UDP proxy
 * on loopback (127.0.0.1 or ::1). C11 + POSIX/Linux libc only; prints one JSON line per run.
 *
 *   udpbench tput -d DSTPORT -s SINKPORT -m SIZE -t SECONDS [-r PPS] [-f FLOWS] [-P PID] [-a ADDR] [-n MAXPKTS] [-e] [-K]
 *   udpbench echo -p PORT [-a ADDR] [-x PREFIX]
 *   udpbench ping -d PORT -m SIZE -t SECONDS [-w WARMUP_COUNT] [-a ADDR]
 *   udpbench tcp  -d DSTPORT -s SINKPORT -t SECONDS [-m WRITE_SIZE] [-P PID] [-a ADDR]
 *   udpbench ws   -d DSTPORT -s SINKPORT -t SECONDS [-m PAYLOAD] [-P PID] [-a ADDR]
 *   udpbench sess -d DSTPORT -s SINKPORT -n SESSIONS [-w WINDOW] [-t MAXSECONDS] [-m SIZE]
 *   udpbench flood -d DSTPORT -n SOURCES [-r NEW_PER_S] [-k DGRAMS] [-m SIZE] [-L LEGIT_PPS] [-W WARMUP_S] [-A AFTER_S]
 *
 * tput: the main thread sends SIZE-byte datagrams with sendmmsg (batches of 32) to ADDR:DSTPORT from
 *   FLOWS sockets (one source port, hence one proxy session, each), unpaced or paced to PPS; a sink
 *   thread bound to ADDR:SINKPORT (SO_RCVBUFFORCE 4 MiB) receives with recvmmsg. Every datagram starts
 *   with a 16-byte tag: magic (warm-up or measured), flow id, per-flow sequence number. The first
 *   0.2 s is warm-up and is not counted. The measured phase lasts SECONDS (or MAXPKTS datagrams); then
 *   the sink drains until 50 ms pass without a datagram (at most 1 s). A per-flow bitmap of sequence
 *   numbers gives unique, duplicated and reordered (arrived below the highest sequence seen) counts;
 *   lost = sent - unique. With -e the sink answers the first 16 warm-up datagrams (16-byte tag) to their
 *   source, for proxies that only offload a flow once a reply came back (l7mp-ts -o init).
 *   With -K, the CPU time of every kworker* and ksoftirqd* kernel thread is sampled over the same window
 *   (kthread_cpu_pct, kthread_cpu_us_per_pkt): where the kernel sends datagrams that an eBPF verdict
 *   redirected, i.e. an offloaded proxy's work done outside its process), minus their background rate
 *   measured over 0.25 s just before the trial (kthread_bg_cpu_pct). Other jobs' kernel work that
 *   varies during the trial still counts, so it is an estimate.
 *   With -P, the CPU time of PID and all its descendants (every thread: the sum of the first field of
 *   /proc/<pid>/task/<tid>/schedstat, ns of run time, falling back to utime+stime of .../stat) is
 *   sampled when the measured phase starts (the process set is taken then, after the warm-up, so that a
 *   child forked for this flow counts) and after the drain. cpu_pct = that time over the busy window
 *   (measure start to the last measured datagram), in % of one core; cpu_us_per_pkt = that time over the
 *   datagrams delivered to the sink. A thread that exits
 *   during the trial takes its time with it.
 *   Also reported: kernel drop counters (/proc/net/udp{,6}) of the sockets bound to DSTPORT (the
 *   proxy's listener) and SINKPORT, and host CPU use over the window split into proxy, this tool, and
 *   other (everything else on the machine), all in % of one core.
 * echo: recvmmsg/sendmmsg echo server; each reply is PREFIX + the datagram. Runs until SIGTERM/SIGINT,
 *   then prints its counters.
 * ping: one datagram in flight: send, blocking recv with a 200 ms timeout (a missing reply is counted
 *   as lost, late replies are recognised by sequence number and skipped). WARMUP_COUNT round trips are
 *   not recorded. The tag is read at the end of the reply, so a prefixing echo server works.
 * tcp: one TCP connection to DSTPORT; a sink thread listening on SINKPORT accepts the proxy's upstream
 *   connection and counts bytes. The client writes WRITE_SIZE (default 128 KiB) blocks for a warm-up
 *   (0.2 s and until the sink has seen a byte, at most 5 s) plus SECONDS; gbps = bytes the sink read in the measured window / its length. With -P, the
 *   proxy tree's CPU time over that window (process set taken when it starts).
 * ws: as tcp, over WebSocket (RFC 6455): the client sends an upgrade request, then masked binary
 *   PAYLOAD-byte messages (default 64) back to back; the sink answers the upgrade (Sec-WebSocket-Accept
 *   from SHA-1), parses frames and counts the payload of complete data frames: msgs_per_s counts
 *   frames, payload_msgs_per_s = payload bytes / PAYLOAD (the same unless a proxy re-frames).
 * sess: new UDP sessions per second. Session i is one datagram from source 127.1.0.0+i (chosen per
 *   datagram with IP_PKTINFO; every 127/8 address is local on lo), so each is a new 4-tuple for the
 *   proxy. Closed loop: at most WINDOW (default 32) sessions in flight, i.e. sent but not yet at the
 *   sink on SINKPORT, so that no proxy socket buffer overflows; if nothing arrives for 0.1 s the ones
 *   in flight are written off. sessions_per_s = sessions arrived / (last arrival - start). Then the
 *   missing ones are resent (up to 3 rounds, 2 s) so the proxy holds `established` sessions. Nothing
 *   is sent back. Bounded by MAXSECONDS (default 10) and SESSIONS (<= 1000000). IPv4 only.
 * flood: a session-creation flood beside one legitimate flow (docs/threat-model.md). SOURCES new
 *   sources 127.1.0.0+i (IP_PKTINFO, as sess) at NEW_PER_S (default 1000) per second, each sending
 *   DGRAMS (default 1) SIZE-byte datagrams back to back; their replies come back to the sending socket
 *   and are counted. With -L, a legitimate flow from its own socket on 127.0.0.1 sends LEGIT_PPS tagged
 *   datagrams, paced, from WARMUP_S (default 2) before the flood to AFTER_S (default 2) after it, and
 *   expects each back (an echo server upstream): loss and RTT percentiles before, during and after
 *   the flood, by send time. A reply that never comes is lost. Bounded: flood <= 60 s.
 *
 * Exit codes: 0 measured; 1 system error (socket, bind, /proc); 2 usage error; 3 nothing came back
 * (no measured datagram at the sink, or no ping reply): the JSON line is still printed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define MAGIC_WARM 0x57424455u /* "UDBW" little-endian */
#define MAGIC_MEAS 0x4d424455u /* "UDBM" */
#define MAGIC_PING 0x50424455u /* "UDBP" */
#define TAG_LEN 16
#define BATCH 32
#define RX_BATCH 64
#define MAX_FLOWS 64
#define MAX_SIZE 65507
#define MAX_SECONDS 60.0
#define DEFAULT_MAX_PKTS 50000000ULL
#define WARMUP_S 0.2
#define DRAIN_IDLE_S 0.05
#define DRAIN_MAX_S 1.0
#define SINK_RCVBUF (4 << 20)
#define PING_TIMEOUT_S 0.2
#define PING_WARMUP_MAX_S 2.0
#define MAX_PING_SAMPLES 10000000ULL
#define MAX_TREE 256
#define MAX_KTHREADS 1024
#define MAX_PREFIX 1024

enum { EXIT_OK = 0, EXIT_SYS = 1, EXIT_USAGE = 2, EXIT_NOTHING = 3 };

static const char usage_text[] =
  "usage:\n"
  "  udpbench tput -d DSTPORT -s SINKPORT -m SIZE -t SECONDS [-r PPS] [-f FLOWS] [-P PID] [-a ADDR] [-n MAXPKTS] [-e] [-K]\n"
  "  udpbench echo -p PORT [-a ADDR] [-x PREFIX]\n"
  "  udpbench ping -d PORT -m SIZE -t SECONDS [-w WARMUP_COUNT] [-a ADDR]\n"
  "  udpbench tcp  -d DSTPORT -s SINKPORT -t SECONDS [-m WRITE_SIZE] [-P PID] [-a ADDR]\n"
  "  udpbench ws   -d DSTPORT -s SINKPORT -t SECONDS [-m PAYLOAD] [-P PID] [-a ADDR]\n"
  "  udpbench sess -d DSTPORT -s SINKPORT -n SESSIONS [-w WINDOW] [-t MAXSECONDS] [-m SIZE]\n"
  "  udpbench flood -d DSTPORT -n SOURCES [-r NEW_PER_S] [-k DGRAMS] [-m SIZE] [-L LEGIT_PPS] [-W WARMUP_S] [-A AFTER_S]\n"
  "ADDR defaults to 127.0.0.1 (use ::1 for IPv6); SIZE 16..65507 bytes; SECONDS <= 60;\n"
  "PPS 0 = unpaced (default); FLOWS 1..64 (default 1); MAXPKTS default 50000000.\n"
  "exit: 0 ok, 1 system error, 2 usage, 3 nothing received.\n";

_Noreturn static void usage(const char *why) {
  if (why) fprintf(stderr, "udpbench: %s\n", why);
  fputs(usage_text, stderr);
  exit(EXIT_USAGE);
}

_Noreturn static void die_errno(const char *what) {
  fprintf(stderr, "udpbench: %s: %s\n", what, strerror(errno));
  exit(EXIT_SYS);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void sleep_until(double t) {
  struct timespec ts;
  ts.tv_sec = (time_t)t;
  ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
}

static long parse_long(const char *s, long lo, long hi, const char *name) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) {
    fprintf(stderr, "udpbench: -%s: '%s' is not an integer in [%ld, %ld]\n", name, s, lo, hi);
    usage(NULL);
  }
  return v;
}

static double parse_double(const char *s, double lo, double hi, const char *name) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= lo && v <= hi)) {
    fprintf(stderr, "udpbench: -%s: '%s' is not a number in [%g, %g]\n", name, s, lo, hi);
    usage(NULL);
  }
  return v;
}

/* ---- addresses and sockets ---- */

struct addr {
  struct sockaddr_storage ss;
  socklen_t len;
  int family;
};

static void make_addr(const char *host, int port, struct addr *a) {
  memset(a, 0, sizeof *a);
  struct sockaddr_in *v4 = (struct sockaddr_in *)&a->ss;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&a->ss;
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    a->len = sizeof *v4;
    a->family = AF_INET;
  } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)port);
    a->len = sizeof *v6;
    a->family = AF_INET6;
  } else {
    fprintf(stderr, "udpbench: -a: '%s' is not an IPv4 or IPv6 address\n", host);
    usage(NULL);
  }
}

static int udp_socket(int family) {
  int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die_errno("socket");
  return fd;
}

static int bound_socket(const struct addr *a, const char *what) {
  int fd = udp_socket(a->family);
  if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0) die_errno(what);
  return fd;
}

static void big_rcvbuf(int fd) {
  int v = SINK_RCVBUF;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v) < 0)
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v); /* capped at rmem_max */
}

static void rcv_timeout(int fd, double seconds) {
  struct timeval tv = { .tv_sec = (time_t)seconds,
                        .tv_usec = (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6) };
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) die_errno("SO_RCVTIMEO");
}

/* The 16-byte tag at the start of every datagram (memcpy: buffers need no alignment). */
struct tag {
  uint32_t magic;
  uint32_t flow;
  uint64_t seq;
};

/* ---- /proc sampling ---- */

static ssize_t read_small(const char *path, char *buf, size_t cap) {
  FILE *f = fopen(path, "re");
  if (!f) return -1;
  size_t n = fread(buf, 1, cap - 1, f);
  fclose(f);
  buf[n] = 0;
  return (ssize_t)n;
}

/* Fields after "pid (comm) ": index 0 is field 3 (state) of proc(5). */
static const char *stat_fields(const char *stat) {
  const char *p = strrchr(stat, ')');
  return p ? p + 2 : NULL;
}

static long stat_field(const char *fields, int index) {
  const char *p = fields;
  for (int i = 0; i < index && p; i++) {
    p = strchr(p, ' ');
    if (p) p++;
  }
  return p ? strtol(p, NULL, 10) : -1;
}

/* root and all its descendants (by ppid), breadth first; returns the count. */
static int collect_tree(pid_t root, pid_t *out, int max) {
  size_t cap = 1024, n = 0;
  pid_t(*pairs)[2] = malloc(cap * sizeof *pairs);
  DIR *d = opendir("/proc");
  if (!pairs || !d) die_errno("scan /proc");
  struct dirent *e;
  char path[64], buf[1024];
  while ((e = readdir(d))) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    snprintf(path, sizeof path, "/proc/%d/stat", atoi(e->d_name));
    if (read_small(path, buf, sizeof buf) < 0) continue;
    const char *f = stat_fields(buf);
    if (!f) continue;
    if (n == cap) {
      cap *= 2;
      pairs = realloc(pairs, cap * sizeof *pairs);
      if (!pairs) die_errno("realloc");
    }
    pairs[n][0] = (pid_t)atoi(e->d_name);
    pairs[n][1] = (pid_t)stat_field(f, 1);
    n++;
  }
  closedir(d);
  int count = 0;
  out[count++] = root;
  for (int i = 0; i < count; i++)
    for (size_t j = 0; j < n && count < max; j++)
      if (pairs[j][1] == out[i]) out[count++] = pairs[j][0];
  free(pairs);
  return count;
}

/* The kernel threads that may do a proxy's sending for it (kworker*, ksoftirqd*: where the kernel
 * sends datagrams an eBPF sk_skb verdict redirected); returns the count. */
static int collect_kthreads(pid_t *out, int max) {
  DIR *d = opendir("/proc");
  if (!d) die_errno("scan /proc");
  struct dirent *e;
  char path[64], buf[1024];
  int count = 0;
  while ((e = readdir(d)) && count < max) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    snprintf(path, sizeof path, "/proc/%d/stat", atoi(e->d_name));
    if (read_small(path, buf, sizeof buf) < 0) continue;
    const char *comm = strchr(buf, '(');
    if (comm && (!strncmp(comm + 1, "kworker", 7) || !strncmp(comm + 1, "ksoftirqd", 9)))
      out[count++] = (pid_t)atoi(e->d_name);
  }
  closedir(d);
  return count;
}

/* Run time of every thread of the given processes, ns. */
static uint64_t tree_cpu_ns(const pid_t *pids, int n) {
  static long tck;
  if (!tck) tck = sysconf(_SC_CLK_TCK);
  uint64_t total = 0;
  char path[128], buf[1024];
  for (int i = 0; i < n; i++) {
    snprintf(path, sizeof path, "/proc/%d/task", (int)pids[i]);
    DIR *d = opendir(path);
    if (!d) continue;
    struct dirent *e;
    while ((e = readdir(d))) {
      if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
      int tid = atoi(e->d_name);
      snprintf(path, sizeof path, "/proc/%d/task/%d/schedstat", (int)pids[i], tid);
      if (read_small(path, buf, sizeof buf) > 0) {
        total += strtoull(buf, NULL, 10);
        continue;
      }
      snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)pids[i], tid);
      const char *f = read_small(path, buf, sizeof buf) > 0 ? stat_fields(buf) : NULL;
      if (f) total += (uint64_t)(stat_field(f, 11) + stat_field(f, 12)) * (1000000000ULL / (uint64_t)tck);
    }
    closedir(d);
  }
  return total;
}

/* This process, threads that exited included (the sink thread is joined before the last sample). */
static uint64_t self_cpu_ns(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000ULL +
         ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000ULL;
}

/* Busy and total jiffies summed over all CPUs, from the first line of /proc/stat. */
static void host_jiffies(uint64_t *busy, uint64_t *total) {
  char buf[512];
  unsigned long long v[8] = { 0 };
  *busy = *total = 0;
  if (read_small("/proc/stat", buf, sizeof buf) < 0) return;
  if (sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
             &v[5], &v[6], &v[7]) != 8)
    return;
  for (int i = 0; i < 8; i++) *total += v[i];
  *busy = *total - v[3] - v[4]; /* minus idle and iowait */
}

/* Sum of the drop counters of all UDP sockets bound to port (any address). */
static uint64_t udp_port_drops(int port) {
  static const char *files[] = { "/proc/net/udp", "/proc/net/udp6" };
  uint64_t drops = 0;
  char line[512];
  for (int i = 0; i < 2; i++) {
    FILE *f = fopen(files[i], "re");
    if (!f) continue;
    if (!fgets(line, sizeof line, f)) { /* header */
      fclose(f);
      continue;
    }
    while (fgets(line, sizeof line, f)) {
      char *save = NULL, *tok = strtok_r(line, " \n", &save), *local = NULL, *last = NULL;
      for (int k = 0; tok; k++, tok = strtok_r(NULL, " \n", &save)) {
        if (k == 1) local = tok;
        last = tok;
      }
      const char *colon = local ? strrchr(local, ':') : NULL;
      if (colon && strtol(colon + 1, NULL, 16) == port && last) drops += strtoull(last, NULL, 10);
    }
    fclose(f);
  }
  return drops;
}

/* ---- tput ---- */

struct flow_state {
  uint64_t highest; /* highest sequence seen + 1 */
  uint8_t *seen;    /* bitmap of sequence numbers */
  uint64_t seen_bits;
};

struct tput {
  int size, flows;
  bool echo_warm; /* -e: the sink answers warm-up datagrams (a proxy that waits for a reply, e.g. to offload) */
  bool kthreads;  /* -K: also sample the CPU time of kworker and ksoftirqd threads */
  pid_t kt[MAX_KTHREADS];
  int kt_n;
  uint64_t kcpu0;
  double kbg_rate; /* ns of kernel-thread CPU per second before the trial (background) */
  int echoed;
  double seconds, pps;
  uint64_t max_pkts;
  pid_t pid;
  int dst_port, sink_port;
  int sink_fd, flow_fd[MAX_FLOWS];
  pid_t tree[MAX_TREE];
  int tree_n;

  /* Written by the sender before it stores phase (release), read by the sink after loading it. */
  atomic_int phase; /* 0 warm-up, 1 measuring, 2 sender done */
  double t0, t1;
  uint64_t sent, send_errors;
  uint64_t cpu0, self0, host_busy0, host_total0, dst_drops0, sink_drops0;

  /* Owned by the sink thread until it is joined. */
  uint64_t received, unique, duplicated, reordered, warm_received, stray;
  double t_last_rx;
  int sink_errno;
  struct flow_state fs[MAX_FLOWS];
};

static void sink_account(struct tput *t, const struct tag *g) {
  if (g->flow >= (uint32_t)t->flows || g->seq >= t->max_pkts) {
    t->stray++;
    return;
  }
  struct flow_state *s = &t->fs[g->flow];
  if (g->seq >= s->seen_bits) {
    uint64_t bits = s->seen_bits ? s->seen_bits : 1 << 16;
    while (bits <= g->seq) bits *= 2;
    uint8_t *p = realloc(s->seen, bits / 8);
    if (!p) die_errno("realloc");
    memset(p + s->seen_bits / 8, 0, (bits - s->seen_bits) / 8);
    s->seen = p;
    s->seen_bits = bits;
  }
  uint8_t bit = (uint8_t)(1u << (g->seq & 7));
  t->received++;
  if (s->seen[g->seq >> 3] & bit) {
    t->duplicated++;
    return;
  }
  s->seen[g->seq >> 3] |= bit;
  t->unique++;
  if (g->seq + 1 < s->highest) t->reordered++;
  else s->highest = g->seq + 1;
}

static void *sink_main(void *arg) {
  struct tput *t = arg;
  size_t bufsz = (size_t)t->size + 64;
  uint8_t *bufs = malloc(bufsz * RX_BATCH);
  struct mmsghdr msgs[RX_BATCH];
  struct iovec iov[RX_BATCH];
  struct sockaddr_storage from[RX_BATCH];
  if (!bufs) die_errno("malloc");
  memset(msgs, 0, sizeof msgs);
  for (int i = 0; i < RX_BATCH; i++) {
    iov[i].iov_base = bufs + bufsz * (size_t)i;
    iov[i].iov_len = bufsz;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &from[i];
  }
  double last_any = now_s();
  double hard_stop = last_any + WARMUP_S + t->seconds + DRAIN_MAX_S + 1.0;
  for (;;) {
    for (int i = 0; i < RX_BATCH; i++) msgs[i].msg_hdr.msg_namelen = sizeof from[i];
    int n = recvmmsg(t->sink_fd, msgs, RX_BATCH, MSG_WAITFORONE, NULL);
    double now = now_s();
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      t->sink_errno = errno;
      break;
    }
    bool measured = false;
    for (int i = 0; i < n; i++) {
      struct tag g;
      if (msgs[i].msg_len < TAG_LEN) {
        t->stray++;
        continue;
      }
      memcpy(&g, iov[i].iov_base, sizeof g);
      if (g.magic == MAGIC_MEAS) {
        sink_account(t, &g);
        measured = true;
      } else if (g.magic == MAGIC_WARM) {
        t->warm_received++;
        if (t->echo_warm && t->echoed < 16) {
          /* A few replies back through the proxy (the sender's sockets never read them). */
          if (sendto(t->sink_fd, iov[i].iov_base, TAG_LEN, 0, (const struct sockaddr *)&from[i], msgs[i].msg_hdr.msg_namelen) == TAG_LEN)
            t->echoed++;
        }
      } else {
        t->stray++;
      }
    }
    if (n > 0) last_any = now;
    if (measured) t->t_last_rx = now;
    if (now > hard_stop) break;
    if (atomic_load_explicit(&t->phase, memory_order_acquire) == 2 &&
        (now - last_any > DRAIN_IDLE_S || now - t->t1 > DRAIN_MAX_S))
      break;
  }
  free(bufs);
  return NULL;
}

static void sample_start(struct tput *t) {
  /* The tree is taken after the warm-up, so that a child forked for this flow (socat fork) is in it. */
  if (t->pid > 0) {
    t->tree_n = collect_tree(t->pid, t->tree, MAX_TREE);
    t->cpu0 = tree_cpu_ns(t->tree, t->tree_n);
  }
  if (t->kthreads) {
    t->kt_n = collect_kthreads(t->kt, MAX_KTHREADS);
    t->kcpu0 = tree_cpu_ns(t->kt, t->kt_n);
  }
  t->self0 = self_cpu_ns();
  host_jiffies(&t->host_busy0, &t->host_total0);
  t->dst_drops0 = udp_port_drops(t->dst_port);
  t->sink_drops0 = udp_port_drops(t->sink_port);
}

static void run_sender(struct tput *t) {
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  uint8_t *bufs = calloc(BATCH, (size_t)t->size);
  uint64_t seq[MAX_FLOWS] = { 0 };
  if (!bufs) die_errno("calloc");
  memset(msgs, 0, sizeof msgs);
  for (int i = 0; i < BATCH; i++) {
    uint8_t *b = bufs + (size_t)t->size * (size_t)i;
    for (int k = TAG_LEN; k < t->size; k++) b[k] = (uint8_t)k;
    iov[i].iov_base = b;
    iov[i].iov_len = (size_t)t->size;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  /* Paced: send in small batches so that a batch is due every ~100 us; catch up with up to BATCH. */
  uint64_t pace_batch = t->pps > 0 ? (uint64_t)(t->pps / 10000.0) : BATCH;
  if (pace_batch < 1) pace_batch = 1;
  if (pace_batch > BATCH) pace_batch = BATCH;
  double start = now_s(), warm_end = start + WARMUP_S, end = 0;
  uint64_t paced = 0, warm_sent = 0, batches = 0;
  uint32_t magic = MAGIC_WARM;
  int phase = 0;
  for (;;) {
    double now = now_s();
    if (phase == 0 && (now >= warm_end || warm_sent >= t->max_pkts)) {
      sample_start(t);
      memset(seq, 0, sizeof seq);
      magic = MAGIC_MEAS;
      phase = 1;
      t->t0 = now = now_s();
      end = t->t0 + t->seconds;
      atomic_store_explicit(&t->phase, 1, memory_order_release);
    }
    if (phase == 1 && (now >= end || t->sent >= t->max_pkts)) break;
    uint64_t n = BATCH;
    if (t->pps > 0) {
      uint64_t due = (uint64_t)((now - start) * t->pps);
      due = due > paced ? due - paced : 0;
      if (due < pace_batch) {
        double next = start + (double)(paced + pace_batch) / t->pps;
        double limit = phase == 0 ? warm_end : end;
        sleep_until(next < limit ? next : limit);
        continue;
      }
      if (due < n) n = due;
    }
    if (phase == 1 && t->sent + n > t->max_pkts) n = t->max_pkts - t->sent;
    int flow = (int)(batches++ % (uint64_t)t->flows);
    for (uint64_t i = 0; i < n; i++) {
      struct tag g = { .magic = magic, .flow = (uint32_t)flow, .seq = seq[flow] + i };
      memcpy(iov[i].iov_base, &g, sizeof g);
    }
    int r = sendmmsg(t->flow_fd[flow], msgs, (unsigned)n, 0);
    if (r < 0) {
      if (errno != ECONNREFUSED && errno != EAGAIN && errno != ENOBUFS && errno != EINTR)
        die_errno("sendmmsg");
      t->send_errors++;
      continue;
    }
    seq[flow] += (uint64_t)r;
    paced += (uint64_t)r;
    if (phase == 1) t->sent += (uint64_t)r;
    else warm_sent += (uint64_t)r;
  }
  t->t1 = now_s();
  atomic_store_explicit(&t->phase, 2, memory_order_release);
  free(bufs);
}

static int run_tput(int argc, char **argv) {
  struct tput *t = calloc(1, sizeof *t);
  const char *host = "127.0.0.1";
  if (!t) die_errno("calloc");
  t->dst_port = t->sink_port = -1;
  t->size = -1;
  t->seconds = -1;
  t->flows = 1;
  t->max_pkts = DEFAULT_MAX_PKTS;
  int c;
  while ((c = getopt(argc, argv, "d:s:m:t:r:f:P:a:n:eK")) != -1) {
    switch (c) {
    case 'd': t->dst_port = (int)parse_long(optarg, 1, 65535, "d"); break;
    case 's': t->sink_port = (int)parse_long(optarg, 1, 65535, "s"); break;
    case 'm': t->size = (int)parse_long(optarg, TAG_LEN, MAX_SIZE, "m"); break;
    case 't': t->seconds = parse_double(optarg, 0.01, MAX_SECONDS, "t"); break;
    case 'r': t->pps = parse_double(optarg, 0, 1e8, "r"); break;
    case 'f': t->flows = (int)parse_long(optarg, 1, MAX_FLOWS, "f"); break;
    case 'P': t->pid = (pid_t)parse_long(optarg, 1, 1L << 30, "P"); break;
    case 'a': host = optarg; break;
    case 'n': t->max_pkts = (uint64_t)parse_long(optarg, 1, 1L << 40, "n"); break;
    case 'e': t->echo_warm = true; break;
    case 'K': t->kthreads = true; break;
    default: usage(NULL);
    }
  }
  if (optind != argc) usage("tput: unexpected argument");
  if (t->dst_port < 0 || t->sink_port < 0 || t->size < 0 || t->seconds < 0)
    usage("tput needs -d, -s, -m and -t");

  if (t->pid > 0) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)t->pid);
    if (access(path, R_OK) < 0) {
      fprintf(stderr, "udpbench: -P %d: no such process\n", (int)t->pid);
      return EXIT_SYS;
    }
    t->tree_n = collect_tree(t->pid, t->tree, MAX_TREE);
  }
  struct addr dst, sink, any;
  make_addr(host, t->dst_port, &dst);
  make_addr(host, t->sink_port, &sink);
  make_addr(host, 0, &any);
  t->sink_fd = bound_socket(&sink, "bind sink");
  big_rcvbuf(t->sink_fd);
  rcv_timeout(t->sink_fd, 0.01);
  for (int i = 0; i < t->flows; i++) {
    t->flow_fd[i] = bound_socket(&any, "bind sender");
    if (connect(t->flow_fd[i], (const struct sockaddr *)&dst.ss, dst.len) < 0) die_errno("connect");
  }
  if (t->pps > 0) (void)prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

  if (t->kthreads) {
    /* Their background rate (other jobs' kernel work) over 0.25 s without traffic, subtracted below. */
    t->kt_n = collect_kthreads(t->kt, MAX_KTHREADS);
    uint64_t a = tree_cpu_ns(t->kt, t->kt_n);
    double ta = now_s();
    usleep(250000);
    t->kbg_rate = (double)(tree_cpu_ns(t->kt, t->kt_n) - a) / (now_s() - ta);
  }
  pthread_t sink_thread;
  int err = pthread_create(&sink_thread, NULL, sink_main, t);
  if (err) {
    errno = err;
    die_errno("pthread_create");
  }
  run_sender(t);
  pthread_join(sink_thread, NULL);
  if (t->sink_errno) {
    errno = t->sink_errno;
    die_errno("recvmmsg");
  }

  uint64_t cpu1 = t->pid > 0 ? tree_cpu_ns(t->tree, t->tree_n) : 0;
  uint64_t cpu = cpu1 > t->cpu0 ? cpu1 - t->cpu0 : 0; /* 0 if the process died meanwhile */
  uint64_t self_cpu = self_cpu_ns() - t->self0;
  uint64_t hb, ht;
  host_jiffies(&hb, &ht);
  double window = now_s() - t->t0;
  double busy_window = (t->t_last_rx > t->t1 ? t->t_last_rx : t->t1) - t->t0;
  double dur = t->t1 - t->t0;
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  double host_pct = ht > t->host_total0
    ? 100.0 * (double)ncpu * (double)(hb - t->host_busy0) / (double)(ht - t->host_total0) : 0;
  double proxy_pct = t->pid > 0 ? 100.0 * (double)cpu * 1e-9 / window : 0;
  double self_pct = 100.0 * (double)self_cpu * 1e-9 / window;
  double other_pct = host_pct - proxy_pct - self_pct;
  uint64_t lost = t->sent > t->unique ? t->sent - t->unique : 0;

  printf("{\"mode\":\"tput\",\"addr\":\"%s\",\"size\":%d,\"flows\":%d,\"offered_pps\":%.0f,"
         "\"sent\":%" PRIu64 ",\"received\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"loss_pct\":%.3f,"
         "\"reordered\":%" PRIu64 ",\"duplicated\":%" PRIu64 ",\"stray\":%" PRIu64 ","
         "\"sent_pps\":%.0f,\"recv_pps\":%.0f,",
         host, t->size, t->flows, t->pps, t->sent, t->received, lost,
         t->sent ? 100.0 * (double)lost / (double)t->sent : 0.0, t->reordered, t->duplicated,
         t->stray, (double)t->sent / dur, (double)t->unique / dur);
  if (t->pid > 0 && t->unique > 0)
    printf("\"cpu_pct\":%.1f,\"cpu_us_per_pkt\":%.3f,", 100.0 * (double)cpu * 1e-9 / busy_window,
           (double)cpu * 1e-3 / (double)t->unique);
  else
    printf("\"cpu_pct\":null,\"cpu_us_per_pkt\":null,");
  if (t->kthreads) {
    uint64_t k1 = tree_cpu_ns(t->kt, t->kt_n);
    double kcpu = (double)(k1 > t->kcpu0 ? k1 - t->kcpu0 : 0) - t->kbg_rate * window;
    if (kcpu < 0) kcpu = 0;
    /* The kernel threads' share above their background rate is the proxy's (-K), not other load. */
    other_pct -= 100.0 * kcpu * 1e-9 / window;
    printf("\"kthread_cpu_pct\":%.1f,\"kthread_cpu_us_per_pkt\":%.3f,\"kthread_bg_cpu_pct\":%.1f,\"kthreads\":%d,",
           100.0 * kcpu * 1e-9 / busy_window, t->unique ? kcpu * 1e-3 / (double)t->unique : 0.0,
           100.0 * t->kbg_rate * 1e-9, t->kt_n);
  }
  printf("\"duration_s\":%.3f,\"dst_sock_drops\":%" PRIu64 ",\"sink_sock_drops\":%" PRIu64 ","
         "\"send_errors\":%" PRIu64 ",\"host_cpu_pct\":%.1f,\"tool_cpu_pct\":%.1f,"
         "\"other_cpu_pct\":%.1f,\"pids\":%d}\n",
         dur, udp_port_drops(t->dst_port) - t->dst_drops0,
         udp_port_drops(t->sink_port) - t->sink_drops0, t->send_errors, host_pct, self_pct,
         other_pct > 0 ? other_pct : 0.0, t->tree_n);
  fflush(stdout);
  int rc = t->unique > 0 ? EXIT_OK : EXIT_NOTHING;
  for (int i = 0; i < t->flows; i++) free(t->fs[i].seen);
  free(t);
  return rc;
}

/* ---- echo ---- */

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
}

static int run_echo(int argc, char **argv) {
  const char *host = "127.0.0.1", *prefix = "";
  int port = -1, c;
  while ((c = getopt(argc, argv, "p:a:x:")) != -1) {
    switch (c) {
    case 'p': port = (int)parse_long(optarg, 1, 65535, "p"); break;
    case 'a': host = optarg; break;
    case 'x': prefix = optarg; break;
    default: usage(NULL);
    }
  }
  if (optind != argc) usage("echo: unexpected argument");
  if (port < 0) usage("echo needs -p");
  size_t plen = strlen(prefix);
  if (plen > MAX_PREFIX) usage("echo: -x PREFIX longer than 1024 bytes");

  struct addr a;
  make_addr(host, port, &a);
  int fd = bound_socket(&a, "bind echo");
  big_rcvbuf(fd);
  rcv_timeout(fd, 0.2); /* backstop: a signal between the stop check and recvmmsg */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal; /* no SA_RESTART: recvmmsg returns EINTR */
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  enum { BUFSZ = 65536 };
  uint8_t *bufs = malloc((size_t)BUFSZ * BATCH);
  struct sockaddr_storage names[BATCH];
  struct mmsghdr rx[BATCH], tx[BATCH];
  struct iovec rxiov[BATCH], txiov[BATCH][2];
  if (!bufs) die_errno("malloc");
  memset(rx, 0, sizeof rx);
  memset(tx, 0, sizeof tx);
  for (int i = 0; i < BATCH; i++) {
    rxiov[i].iov_base = bufs + (size_t)BUFSZ * (size_t)i;
    rxiov[i].iov_len = BUFSZ;
    rx[i].msg_hdr.msg_iov = &rxiov[i];
    rx[i].msg_hdr.msg_iovlen = 1;
    rx[i].msg_hdr.msg_name = &names[i];
    txiov[i][0].iov_base = (void *)prefix;
    txiov[i][0].iov_len = plen;
    txiov[i][1].iov_base = rxiov[i].iov_base;
    tx[i].msg_hdr.msg_iov = txiov[i];
    tx[i].msg_hdr.msg_iovlen = 2;
    tx[i].msg_hdr.msg_name = &names[i];
  }
  uint64_t received = 0, sent = 0, errors = 0;
  while (!g_stop) {
    for (int i = 0; i < BATCH; i++) rx[i].msg_hdr.msg_namelen = sizeof names[i];
    int n = recvmmsg(fd, rx, BATCH, MSG_WAITFORONE, NULL);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      die_errno("recvmmsg");
    }
    received += (uint64_t)n;
    for (int i = 0; i < n; i++) {
      txiov[i][1].iov_len = rx[i].msg_len;
      tx[i].msg_hdr.msg_namelen = rx[i].msg_hdr.msg_namelen;
    }
    for (int off = 0; off < n;) {
      int r = sendmmsg(fd, tx + off, (unsigned)(n - off), 0);
      if (r < 0) {
        if (errno == EINTR) continue;
        errors++; /* e.g. EMSGSIZE with a long prefix: skip that one */
        off++;
      } else {
        sent += (uint64_t)r;
        off += r;
      }
    }
  }
  printf("{\"mode\":\"echo\",\"received\":%" PRIu64 ",\"sent\":%" PRIu64 ",\"errors\":%" PRIu64 "}\n",
         received, sent, errors);
  free(bufs);
  return EXIT_OK;
}

/* ---- ping ---- */

/* One round trip; returns true and the RTT if the reply with this seq came back within the timeout. */
static bool ping_once(int fd, uint8_t *tx, int size, uint8_t *rx, size_t rxcap, uint64_t seq,
                      uint64_t *rtt_ns) {
  struct tag g = { .magic = MAGIC_PING, .flow = 0, .seq = seq };
  memcpy(tx, &g, sizeof g);
  uint64_t t = now_ns();
  if (send(fd, tx, (size_t)size, 0) < 0) {
    usleep(1000); /* e.g. ECONNREFUSED: nothing listens; do not spin */
    return false;
  }
  for (;;) {
    ssize_t n = recv(fd, rx, rxcap, 0);
    uint64_t now = now_ns();
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ECONNREFUSED) usleep(1000);
      return false;
    }
    if (n >= size) {
      memcpy(&g, rx + n - size, sizeof g);
      if (g.magic == MAGIC_PING && g.seq == seq) {
        *rtt_ns = now - t;
        return true;
      }
    }
    if ((double)(now - t) * 1e-9 > PING_TIMEOUT_S) return false; /* only stale replies came */
  }
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array, in us. */
static double pct_us(const uint64_t *v, uint64_t n, double p) {
  uint64_t rank = (uint64_t)(p * (double)n + 0.999999);
  if (rank < 1) rank = 1;
  if (rank > n) rank = n;
  return (double)v[rank - 1] * 1e-3;
}

static int run_ping(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = -1, size = -1, c;
  long warm = 100;
  double seconds = -1;
  while ((c = getopt(argc, argv, "d:m:t:w:a:")) != -1) {
    switch (c) {
    case 'd': port = (int)parse_long(optarg, 1, 65535, "d"); break;
    case 'm': size = (int)parse_long(optarg, TAG_LEN, MAX_SIZE, "m"); break;
    case 't': seconds = parse_double(optarg, 0.01, MAX_SECONDS, "t"); break;
    case 'w': warm = parse_long(optarg, 0, 1000000, "w"); break;
    case 'a': host = optarg; break;
    default: usage(NULL);
    }
  }
  if (optind != argc) usage("ping: unexpected argument");
  if (port < 0 || size < 0 || seconds < 0) usage("ping needs -d, -m and -t");

  struct addr dst;
  make_addr(host, port, &dst);
  int fd = udp_socket(dst.family);
  if (connect(fd, (const struct sockaddr *)&dst.ss, dst.len) < 0) die_errno("connect");
  rcv_timeout(fd, PING_TIMEOUT_S);
  size_t rxcap = 65536;
  uint64_t cap = (uint64_t)(seconds * 200000.0) + 1024; /* > 1 round trip per 5 us */
  if (cap > MAX_PING_SAMPLES) cap = MAX_PING_SAMPLES;
  uint8_t *tx = calloc(1, (size_t)size), *rx = malloc(rxcap);
  uint64_t *rtt = malloc(cap * sizeof *rtt);
  if (!tx || !rx || !rtt) die_errno("malloc");

  uint64_t seq = 0, count = 0, lost = 0, warm_lost = 0, r;
  double warm_end = now_s() + PING_WARMUP_MAX_S;
  for (long i = 0; i < warm && now_s() < warm_end; i++)
    if (!ping_once(fd, tx, size, rx, rxcap, seq++, &r)) warm_lost++;
  double t0 = now_s(), end = t0 + seconds, t1;
  while ((t1 = now_s()) < end && count + lost < cap) {
    if (ping_once(fd, tx, size, rx, rxcap, seq++, &rtt[count])) count++;
    else lost++;
  }
  qsort(rtt, count, sizeof *rtt, cmp_u64);
  printf("{\"mode\":\"ping\",\"addr\":\"%s\",\"size\":%d,\"count\":%" PRIu64 ",\"lost\":%" PRIu64
         ",\"warmup_lost\":%" PRIu64 ",",
         host, size, count, lost, warm_lost);
  if (count) {
    double sum = 0;
    for (uint64_t i = 0; i < count; i++) sum += (double)rtt[i];
    printf("\"p50_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,\"min_us\":%.2f,\"max_us\":%.2f,"
           "\"mean_us\":%.2f,",
           pct_us(rtt, count, 0.5), pct_us(rtt, count, 0.99), pct_us(rtt, count, 0.999),
           (double)rtt[0] * 1e-3, (double)rtt[count - 1] * 1e-3, sum / (double)count * 1e-3);
  } else {
    printf("\"p50_us\":null,\"p99_us\":null,\"p999_us\":null,\"min_us\":null,\"max_us\":null,"
           "\"mean_us\":null,");
  }
  printf("\"duration_s\":%.3f}\n", t1 - t0);
  fflush(stdout);
  free(tx);
  free(rx);
  free(rtt);
  return count ? EXIT_OK : EXIT_NOTHING;
}

/* ---- sha1 (for the WebSocket handshake's Sec-WebSocket-Accept, RFC 6455 section 4.2.2) ---- */

static uint32_t rol32(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

/* SHA-1 of a message shorter than 512 bytes (RFC 3174); out gets 20 bytes. */
static void sha1_small(const uint8_t *msg, size_t len, uint8_t out[20]) {
  uint8_t block[576] = { 0 };
  size_t total = ((len + 8) / 64 + 1) * 64;
  memcpy(block, msg, len);
  block[len] = 0x80;
  uint64_t bits = (uint64_t)len * 8;
  for (int i = 0; i < 8; i++) block[total - 1 - i] = (uint8_t)(bits >> (8 * i));
  uint32_t h[5] = { 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0 };
  for (size_t off = 0; off < total; off += 64) {
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
      w[i] = (uint32_t)block[off + 4 * i] << 24 | (uint32_t)block[off + 4 * i + 1] << 16 |
             (uint32_t)block[off + 4 * i + 2] << 8 | block[off + 4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
      uint32_t f, k;
      if (i < 20) f = (b & c) | (~b & d), k = 0x5A827999;
      else if (i < 40) f = b ^ c ^ d, k = 0x6ED9EBA1;
      else if (i < 60) f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
      else f = b ^ c ^ d, k = 0xCA62C1D6;
      uint32_t t = rol32(a, 5) + f + e + k + w[i];
      e = d, d = c, c = rol32(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
  }
  for (int i = 0; i < 20; i++) out[i] = (uint8_t)(h[i / 4] >> (24 - 8 * (i % 4)));
}

static void base64(const uint8_t *in, size_t len, char *out) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < len ? in[i + 2] : 0);
    out[o++] = tbl[v >> 18 & 63];
    out[o++] = tbl[v >> 12 & 63];
    out[o++] = i + 1 < len ? tbl[v >> 6 & 63] : '=';
    out[o++] = i + 2 < len ? tbl[v & 63] : '=';
  }
  out[o] = 0;
}

/* ---- tcp and ws: one connection, client -> proxy -> sink ---- */

#define STREAM_BUF (256 << 10)
#define CONNECT_WAIT_S 5.0
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct stream {
  bool ws;
  int size; /* tcp: bytes per write; ws: payload bytes per message */
  double seconds;
  int listen_fd;
  atomic_int stop;
  /* Sink counters (relaxed atomics: sampled by the main thread). */
  atomic_uint_fast64_t bytes, msgs;
  atomic_int handshake_done;
  char error[160];
};

/* Case-insensitive search for header NAME in a NUL-terminated request; copies its trimmed value. */
static bool http_header(const char *req, const char *name, char *out, size_t cap) {
  size_t nl = strlen(name);
  for (const char *p = req; (p = strchr(p, '\n')); ) {
    p++;
    if (strncasecmp(p, name, nl) || p[nl] != ':') continue;
    p += nl + 1;
    while (*p == ' ' || *p == '\t') p++;
    size_t n = strcspn(p, "\r\n");
    if (n >= cap) return false;
    memcpy(out, p, n);
    out[n] = 0;
    return true;
  }
  return false;
}

/* Reads until "\r\n\r\n" (bounded by cap and the socket's receive timeout); returns bytes read or -1.
 * Bytes after the header stay in buf at *header_len.. */
static ssize_t read_http_head(int fd, char *buf, size_t cap, size_t *header_len, double deadline) {
  size_t have = 0;
  while (have + 1 < cap) {
    ssize_t n = recv(fd, buf + have, cap - 1 - have, 0);
    if (n == 0) return -1;
    if (n < 0) {
      if ((errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) && now_s() < deadline) continue;
      return -1;
    }
    have += (size_t)n;
    buf[have] = 0;
    char *end = strstr(buf, "\r\n\r\n");
    if (end) {
      *header_len = (size_t)(end + 4 - buf);
      return (ssize_t)have;
    }
  }
  return -1;
}

/* Counts the payload of complete data frames in buf[0..have); keeps a partial header for later. */
struct ws_parser {
  uint64_t skip;   /* payload bytes of the current frame still to come */
  bool in_frame, data;
};

static size_t ws_parse(struct ws_parser *ps, const uint8_t *buf, size_t have, struct stream *s) {
  size_t pos = 0;
  uint64_t payload = 0, msgs = 0;
  for (;;) {
    if (ps->in_frame) {
      uint64_t k = have - pos < ps->skip ? have - pos : ps->skip;
      ps->skip -= k;
      pos += k;
      if (ps->data) payload += k;
      if (ps->skip) break;
      ps->in_frame = false;
      if (ps->data) msgs++;
    }
    if (have - pos < 2) break;
    uint8_t b0 = buf[pos], b1 = buf[pos + 1];
    uint64_t len = b1 & 0x7f;
    size_t hl = len == 126 ? 4 : len == 127 ? 10 : 2;
    if (b1 & 0x80) hl += 4;
    if (have - pos < hl) break;
    if (len == 126) len = (uint64_t)buf[pos + 2] << 8 | buf[pos + 3];
    else if (len == 127) {
      len = 0;
      for (int i = 0; i < 8; i++) len = len << 8 | buf[pos + 2 + i];
    }
    pos += hl;
    int opcode = b0 & 0x0f;
    ps->in_frame = true;
    ps->skip = len;
    ps->data = opcode < 8 && (b0 & 0x80); /* a FIN data frame (fragments are counted at their end) */
  }
  atomic_fetch_add_explicit(&s->bytes, payload, memory_order_relaxed);
  atomic_fetch_add_explicit(&s->msgs, msgs, memory_order_relaxed);
  return pos;
}

static void *stream_sink_main(void *arg) {
  struct stream *s = arg;
  struct pollfd pfd = { .fd = s->listen_fd, .events = POLLIN };
  double deadline = now_s() + CONNECT_WAIT_S + 1.0;
  int fd = -1;
  while (fd < 0 && !atomic_load(&s->stop) && now_s() < deadline) {
    if (poll(&pfd, 1, 50) > 0) fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
  }
  if (fd < 0) {
    snprintf(s->error, sizeof s->error, "sink: no connection came in");
    return NULL;
  }
  rcv_timeout(fd, 0.05);
  uint8_t *buf = malloc(STREAM_BUF + 1);
  if (!buf) die_errno("malloc");
  size_t have = 0;
  if (s->ws) {
    size_t head = 0;
    char key[128], reply[256], accept_b64[32], keyguid[256];
    uint8_t digest[20];
    ssize_t n = read_http_head(fd, (char *)buf, 8192, &head, now_s() + CONNECT_WAIT_S);
    if (n < 0 || !http_header((char *)buf, "Sec-WebSocket-Key", key, sizeof key)) {
      snprintf(s->error, sizeof s->error, "sink: no WebSocket upgrade request with a Sec-WebSocket-Key");
      free(buf);
      close(fd);
      return NULL;
    }
    snprintf(keyguid, sizeof keyguid, "%s%s", key, WS_GUID);
    sha1_small((const uint8_t *)keyguid, strlen(keyguid), digest);
    base64(digest, 20, accept_b64);
    int rl = snprintf(reply, sizeof reply,
                      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: %s\r\n\r\n", accept_b64);
    if (send(fd, reply, (size_t)rl, MSG_NOSIGNAL) != rl) {
      snprintf(s->error, sizeof s->error, "sink: sending the 101 reply: %s", strerror(errno));
      free(buf);
      close(fd);
      return NULL;
    }
    have = (size_t)n - head;
    memmove(buf, buf + head, have);
  }
  atomic_store(&s->handshake_done, 1);
  struct ws_parser ps = { 0 };
  while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
    if (s->ws && have) {
      size_t used = ws_parse(&ps, buf, have, s);
      memmove(buf, buf + used, have - used);
      have -= used;
    }
    ssize_t n = recv(fd, buf + have, STREAM_BUF - have, 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      break;
    }
    if (s->ws) have += (size_t)n;
    else atomic_fetch_add_explicit(&s->bytes, (uint64_t)n, memory_order_relaxed);
  }
  free(buf);
  close(fd);
  return NULL;
}

static int connect_retry(const struct addr *dst) {
  double deadline = now_s() + CONNECT_WAIT_S;
  for (;;) {
    int fd = socket(dst->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die_errno("socket");
    if (connect(fd, (const struct sockaddr *)&dst->ss, dst->len) == 0) return fd;
    int e = errno;
    close(fd);
    if (e != ECONNREFUSED || now_s() > deadline) {
      errno = e;
      return -1;
    }
    usleep(20000);
  }
}

static int run_stream(int argc, char **argv, bool ws) {
  const char *host = "127.0.0.1", *mode = ws ? "ws" : "tcp";
  int dst_port = -1, sink_port = -1, c;
  pid_t pid = 0;
  struct stream *s = calloc(1, sizeof *s);
  if (!s) die_errno("calloc");
  s->ws = ws;
  s->size = ws ? 64 : 128 << 10;
  s->seconds = -1;
  while ((c = getopt(argc, argv, "d:s:m:t:P:a:")) != -1) {
    switch (c) {
    case 'd': dst_port = (int)parse_long(optarg, 1, 65535, "d"); break;
    case 's': sink_port = (int)parse_long(optarg, 1, 65535, "s"); break;
    case 'm': s->size = (int)parse_long(optarg, 1, ws ? 65535 : STREAM_BUF, "m"); break;
    case 't': s->seconds = parse_double(optarg, 0.01, MAX_SECONDS, "t"); break;
    case 'P': pid = (pid_t)parse_long(optarg, 1, 1L << 30, "P"); break;
    case 'a': host = optarg; break;
    default: usage(NULL);
    }
  }
  if (optind != argc) usage("tcp/ws: unexpected argument");
  if (dst_port < 0 || sink_port < 0 || s->seconds < 0) usage("tcp and ws need -d, -s and -t");
  pid_t tree[MAX_TREE];
  int tree_n = pid > 0 ? collect_tree(pid, tree, MAX_TREE) : 0;

  struct addr dst, sink;
  make_addr(host, dst_port, &dst);
  make_addr(host, sink_port, &sink);
  s->listen_fd = socket(sink.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (s->listen_fd < 0) die_errno("socket");
  setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(s->listen_fd, (const struct sockaddr *)&sink.ss, sink.len) < 0) die_errno("bind sink");
  if (listen(s->listen_fd, 16) < 0) die_errno("listen");
  pthread_t th;
  int err = pthread_create(&th, NULL, stream_sink_main, s);
  if (err) {
    errno = err;
    die_errno("pthread_create");
  }

  /* The client's writes: ws frames are binary, FIN, masked (client to server, RFC 6455 5.3). */
  size_t frame_len = 0, chunk = (size_t)s->size;
  uint8_t *out = NULL;
  if (ws) {
    size_t hl = s->size < 126 ? 6 : 8;
    frame_len = hl + (size_t)s->size;
    size_t frames = (64 << 10) / frame_len + 1;
    chunk = frames * frame_len;
    out = malloc(chunk);
    if (!out) die_errno("malloc");
    static const uint8_t mask[4] = { 0x12, 0x34, 0x56, 0x78 };
    for (size_t f = 0; f < frames; f++) {
      uint8_t *p = out + f * frame_len;
      p[0] = 0x82;
      if (s->size < 126) p[1] = (uint8_t)(0x80 | s->size);
      else p[1] = 0x80 | 126, p[2] = (uint8_t)(s->size >> 8), p[3] = (uint8_t)s->size;
      memcpy(p + hl - 4, mask, 4);
      for (int k = 0; k < s->size; k++) p[hl + (size_t)k] = (uint8_t)k ^ mask[k & 3];
    }
  } else {
    out = calloc(1, chunk);
    if (!out) die_errno("calloc");
  }

  int rc = EXIT_OK;
  uint64_t sent = 0, b0 = 0, m0 = 0, b1 = 0, m1 = 0, cpu0 = 0, cpu1 = 0;
  double t0 = 0, t1 = 0;
  int fd = connect_retry(&dst);
  const char *fail = NULL;
  char why[200] = "";
  if (fd < 0) {
    snprintf(why, sizeof why, "connect: %s", strerror(errno));
    fail = why;
  }
  if (!fail && ws) {
    char req[512], resp[8192];
    size_t head = 0;
    int rl = snprintf(req, sizeof req,
                      "GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                      host, dst_port);
    rcv_timeout(fd, 0.1);
    if (send(fd, req, (size_t)rl, MSG_NOSIGNAL) != rl) fail = "sending the upgrade request failed";
    else if (read_http_head(fd, resp, sizeof resp, &head, now_s() + CONNECT_WAIT_S) < 0) fail = "no reply to the upgrade request";
    else if (strncmp(resp, "HTTP/1.1 101", 12)) {
      snprintf(why, sizeof why, "upgrade refused: %.*s", (int)strcspn(resp, "\r\n"), resp);
      fail = why;
    }
  }
  if (!fail) {
    struct timeval tv = { .tv_sec = 0, .tv_usec = 100000 };
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    /* Warm-up: at least WARMUP_S and until the sink has seen data (a proxy may connect upstream
     * lazily), at most CONNECT_WAIT_S; then SECONDS measured. */
    double start = now_s(), end = start + CONNECT_WAIT_S + s->seconds;
    bool measuring = false;
    size_t off = 0;
    for (;;) {
      double now = now_s();
      if (!measuring && now >= start + WARMUP_S && (atomic_load(&s->bytes) > 0 || now >= start + CONNECT_WAIT_S)) {
        measuring = true;
        end = now + s->seconds;
        if (pid > 0) tree_n = collect_tree(pid, tree, MAX_TREE); /* with a child forked for this connection */
        cpu0 = tree_n ? tree_cpu_ns(tree, tree_n) : 0;
        b0 = atomic_load(&s->bytes);
        m0 = atomic_load(&s->msgs);
        t0 = now_s();
      }
      if (now >= end) break;
      /* Continue where a partial send stopped, so that ws frames stay whole on the wire. */
      ssize_t n = send(fd, out + off, chunk - off, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
        snprintf(why, sizeof why, "send: %s", strerror(errno));
        fail = why;
        break;
      }
      sent += (uint64_t)n;
      off = (off + (size_t)n) % chunk;
    }
    t1 = now_s();
    b1 = atomic_load(&s->bytes);
    m1 = atomic_load(&s->msgs);
    cpu1 = tree_n ? tree_cpu_ns(tree, tree_n) : 0;
  }
  atomic_store(&s->stop, 1);
  if (fd >= 0) close(fd);
  pthread_join(th, NULL);
  double dur = t1 - t0;
  uint64_t bytes = b1 - b0, msgs = m1 - m0, cpu = cpu1 > cpu0 ? cpu1 - cpu0 : 0;
  printf("{\"mode\":\"%s\",\"addr\":\"%s\",\"size\":%d,\"sent_bytes\":%" PRIu64 ",\"bytes\":%" PRIu64
         ",\"duration_s\":%.3f,\"gbps\":%.3f,",
         mode, host, s->size, sent, bytes, dur, dur > 0 ? (double)bytes * 8e-9 / dur : 0.0);
  if (ws)
    printf("\"msgs\":%" PRIu64 ",\"msgs_per_s\":%.0f,\"payload_msgs_per_s\":%.0f,", msgs,
           dur > 0 ? (double)msgs / dur : 0.0, dur > 0 ? (double)bytes / (double)s->size / dur : 0.0);
  if (tree_n && dur > 0)
    printf("\"cpu_pct\":%.1f,", 100.0 * (double)cpu * 1e-9 / dur);
  else
    printf("\"cpu_pct\":null,");
  const char *e = fail ? fail : s->error[0] ? s->error : NULL;
  if (e) printf("\"error\":\"%s\",", e);
  printf("\"pids\":%d}\n", tree_n);
  fflush(stdout);
  if (fail) rc = EXIT_SYS;
  else if (bytes == 0) rc = EXIT_NOTHING;
  free(out);
  close(s->listen_fd);
  free(s);
  return rc;
}

/* ---- sess: new UDP sessions per second ---- */

#define MAGIC_SESS 0x53424455u /* "UDBS" */
#define SESS_STALL_S 0.1
#define SESS_RETRY_S 2.0

struct sess {
  uint32_t n;
  int sink_fd;
  atomic_uint_fast64_t unique;
  atomic_int stop;
  uint8_t *seen;
  double t_last_rx;
  uint64_t stray;
};

/* A recvmmsg batch: RX_BATCH buffers of `sz` bytes wired into msgs/iov; the caller frees the result. */
static uint8_t *rx_batch(struct mmsghdr *msgs, struct iovec *iov, size_t sz) {
  uint8_t *bufs = malloc(sz * RX_BATCH);
  if (!bufs) die_errno("malloc");
  memset(msgs, 0, sizeof *msgs * RX_BATCH);
  for (int i = 0; i < RX_BATCH; i++) {
    iov[i].iov_base = bufs + sz * (size_t)i;
    iov[i].iov_len = sz;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  return bufs;
}

static void *sess_sink_main(void *arg) {
  struct sess *s = arg;
  struct mmsghdr msgs[RX_BATCH];
  struct iovec iov[RX_BATCH];
  uint8_t *bufs = rx_batch(msgs, iov, 2048);
  while (!atomic_load(&s->stop)) {
    int n = recvmmsg(s->sink_fd, msgs, RX_BATCH, MSG_WAITFORONE, NULL);
    if (n <= 0) continue;
    uint64_t fresh = 0;
    for (int i = 0; i < n; i++) {
      struct tag g;
      if (msgs[i].msg_len < TAG_LEN) { s->stray++; continue; }
      memcpy(&g, iov[i].iov_base, sizeof g);
      if (g.magic != MAGIC_SESS || g.flow >= s->n) { s->stray++; continue; }
      uint8_t bit = (uint8_t)(1u << (g.flow & 7));
      if (s->seen[g.flow >> 3] & bit) continue;
      s->seen[g.flow >> 3] |= bit;
      fresh++;
    }
    if (fresh) {
      s->t_last_rx = now_s();
      atomic_fetch_add_explicit(&s->unique, fresh, memory_order_release);
    }
  }
  free(bufs);
  return NULL;
}

/* Source address of session i: 127.1.0.0 + i (every 127/8 address is local on lo). */
static struct in_addr sess_src(uint32_t i) {
  struct in_addr a = { .s_addr = htonl(0x7f010000u + i) };
  return a;
}

/* One datagram per session from 127.1.x.y:PORT, the source chosen per datagram with IP_PKTINFO (ip(7)). */
struct sess_tx {
  int fd;
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  union { char buf[CMSG_SPACE(sizeof(struct in_pktinfo))]; struct cmsghdr align; } ctl[BATCH];
  uint8_t *bufs;
  uint64_t send_errors;
};

static struct sess_tx *sess_tx_new(int fd, struct addr *dst, int size) {
  struct sess_tx *tx = calloc(1, sizeof *tx);
  if (!tx || !(tx->bufs = calloc(BATCH, (size_t)size))) die_errno("calloc");
  tx->fd = fd;
  for (int i = 0; i < BATCH; i++) {
    struct msghdr *h = &tx->msgs[i].msg_hdr;
    tx->iov[i].iov_base = tx->bufs + (size_t)size * (size_t)i;
    tx->iov[i].iov_len = (size_t)size;
    h->msg_iov = &tx->iov[i];
    h->msg_iovlen = 1;
    h->msg_name = &dst->ss;
    h->msg_namelen = dst->len;
    h->msg_control = tx->ctl[i].buf;
    h->msg_controllen = sizeof tx->ctl[i].buf;
    struct cmsghdr *cm = CMSG_FIRSTHDR(h);
    cm->cmsg_level = IPPROTO_IP;
    cm->cmsg_type = IP_PKTINFO;
    cm->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
  }
  return tx;
}

/* Sends one datagram for each of sessions ids[0..k) (k <= BATCH); returns how many went out. */
static int sess_send(struct sess_tx *tx, const uint32_t *ids, int k) {
  for (int i = 0; i < k; i++) {
    struct tag g = { .magic = MAGIC_SESS, .flow = ids[i], .seq = 0 };
    memcpy(tx->iov[i].iov_base, &g, sizeof g);
    struct in_pktinfo pi = { .ipi_ifindex = 0, .ipi_spec_dst = sess_src(ids[i]) };
    memcpy(CMSG_DATA(CMSG_FIRSTHDR(&tx->msgs[i].msg_hdr)), &pi, sizeof pi);
  }
  int r = sendmmsg(tx->fd, tx->msgs, (unsigned)k, 0);
  if (r < 0) {
    if (errno != EAGAIN && errno != ENOBUFS && errno != EINTR && errno != ECONNREFUSED) die_errno("sendmmsg");
    tx->send_errors++;
    return 0;
  }
  return r;
}

static int run_sess(int argc, char **argv) {
  int dst_port = -1, sink_port = -1, size = 64, window = 32, c;
  long n = -1;
  double max_s = 10.0;
  while ((c = getopt(argc, argv, "d:s:n:w:t:m:")) != -1) {
    switch (c) {
    case 'd': dst_port = (int)parse_long(optarg, 1, 65535, "d"); break;
    case 's': sink_port = (int)parse_long(optarg, 1, 65535, "s"); break;
    case 'n': n = parse_long(optarg, 1, 1000000, "n"); break;
    case 'w': window = (int)parse_long(optarg, 1, BATCH * 8, "w"); break;
    case 't': max_s = parse_double(optarg, 0.01, MAX_SECONDS, "t"); break;
    case 'm': size = (int)parse_long(optarg, TAG_LEN, 1400, "m"); break;
    default: usage(NULL);
    }
  }
  if (optind != argc) usage("sess: unexpected argument");
  if (dst_port < 0 || sink_port < 0 || n < 0) usage("sess needs -d, -s and -n");
  struct sess *s = calloc(1, sizeof *s);
  if (!s) die_errno("calloc");
  s->n = (uint32_t)n;
  s->seen = calloc((size_t)n / 8 + 1, 1);
  if (!s->seen) die_errno("calloc");
  struct addr dst, sink, any;
  make_addr("127.0.0.1", dst_port, &dst);
  make_addr("127.0.0.1", sink_port, &sink);
  make_addr("0.0.0.0", 0, &any);
  s->sink_fd = bound_socket(&sink, "bind sink");
  big_rcvbuf(s->sink_fd);
  rcv_timeout(s->sink_fd, 0.01);
  int fd = bound_socket(&any, "bind sender");
  pthread_t th;
  int err = pthread_create(&th, NULL, sess_sink_main, s);
  if (err) {
    errno = err;
    die_errno("pthread_create");
  }

  struct sess_tx *tx = sess_tx_new(fd, &dst, size);
  uint64_t resent = 0;
  /* Phase 1: closed loop, at most WINDOW sessions in flight; in-flight ones that have not arrived
   * after SESS_STALL_S of no progress are written off (lost), so the loop cannot hang. */
  uint32_t ids[BATCH];
  uint64_t next = 0, written_off = 0, last_unique = 0;
  double t_start = now_s(), deadline = t_start + max_s, last_progress = t_start;
  while (next < (uint64_t)n) {
    double now = now_s();
    if (now > deadline) break;
    uint64_t u = atomic_load_explicit(&s->unique, memory_order_acquire);
    if (u != last_unique) last_unique = u, last_progress = now;
    int64_t inflight = (int64_t)next - (int64_t)u - (int64_t)written_off;
    if (inflight < window) {
      int k = (int)(window - inflight);
      if (k > BATCH) k = BATCH;
      if ((uint64_t)k > (uint64_t)n - next) k = (int)((uint64_t)n - next);
      for (int i = 0; i < k; i++) ids[i] = (uint32_t)(next + (uint64_t)i);
      next += (uint64_t)sess_send(tx, ids, k);
      continue;
    }
    if (now - last_progress > SESS_STALL_S) {
      written_off += (uint64_t)inflight;
      last_progress = now;
      continue;
    }
    struct timespec ts = { 0, 10000 };
    nanosleep(&ts, NULL);
  }
  /* Drain: until everything arrived or SESS_STALL_S without a new one. */
  for (double q = now_s(); ; ) {
    uint64_t u = atomic_load(&s->unique);
    if (u >= next) break;
    if (u != last_unique) last_unique = u, q = now_s();
    if (now_s() - q > SESS_STALL_S || now_s() > deadline + 1.0) break;
    usleep(1000);
  }
  uint64_t phase1 = atomic_load(&s->unique);
  double t_phase1 = (s->t_last_rx > t_start ? s->t_last_rx : now_s()) - t_start;

  /* Phase 2: resend the missing ones (paced, WINDOW per ms) so that the proxy holds n sessions. */
  double retry_end = now_s() + SESS_RETRY_S;
  for (int round = 0; round < 3 && atomic_load(&s->unique) < (uint64_t)n && now_s() < retry_end; round++) {
    int k = 0;
    for (uint32_t i = 0; i < (uint32_t)n && now_s() < retry_end; i++) {
      if (s->seen[i >> 3] & (1u << (i & 7))) continue; /* racy read: at worst one extra datagram */
      ids[k++] = i;
      if (k == BATCH || k == window) {
        resent += (uint64_t)sess_send(tx, ids, k);
        k = 0;
        usleep(1000);
      }
    }
    if (k) resent += (uint64_t)sess_send(tx, ids, k);
    double q = now_s();
    uint64_t before = atomic_load(&s->unique);
    while (now_s() - q < 0.2 && atomic_load(&s->unique) < (uint64_t)n) {
      usleep(2000);
      if (atomic_load(&s->unique) != before) before = atomic_load(&s->unique), q = now_s();
    }
  }
  atomic_store(&s->stop, 1);
  pthread_join(th, NULL);
  uint64_t established = atomic_load(&s->unique);
  printf("{\"mode\":\"sess\",\"n\":%ld,\"window\":%d,\"sent\":%" PRIu64 ",\"arrived\":%" PRIu64
         ",\"duration_s\":%.3f,\"sessions_per_s\":%.0f,\"written_off\":%" PRIu64 ",\"resent\":%" PRIu64
         ",\"established\":%" PRIu64 ",\"stray\":%" PRIu64 ",\"send_errors\":%" PRIu64 "}\n",
         n, window, next, phase1, t_phase1, t_phase1 > 0 ? (double)phase1 / t_phase1 : 0.0, written_off,
         resent, established, s->stray, tx->send_errors);
  fflush(stdout);
  free(tx->bufs);
  free(tx);
  free(s->seen);
  int rc = established ? EXIT_OK : EXIT_NOTHING;
  free(s);
  return rc;
}

/* ---- flood: many new sources at a paced rate, beside one legitimate paced flow ---- */

#define MAGIC_FLOOD 0x464c4f44u /* "FLOD" */
#define MAGIC_LEGIT 0x4c454754u /* "LEGT" */
#define FLOOD_MAX_LEGIT (1000000u)

struct legit {
  int fd;
  double pps, t0, flood_start, flood_end, end;
  uint64_t sent;
  uint64_t *sent_ns;   /* per seq: CLOCK_MONOTONIC ns it was sent */
  uint32_t *rtt_us;    /* per seq: RTT in us, 0 = no reply (yet) */
  atomic_int stop;
  uint64_t replies, late_or_dup;
};

struct flood_rx {
  int fd;
  atomic_int stop;
  atomic_uint_fast64_t replies;
};

static void *legit_tx_main(void *arg) {
  struct legit *l = arg;
  uint8_t buf[64];
  memset(buf, 0, sizeof buf);
  double period = 1.0 / l->pps;
  for (uint64_t i = 0; i < FLOOD_MAX_LEGIT && !atomic_load(&l->stop); i++) {
    double due = l->t0 + (double)i * period;
    if (due > l->end) break;
    sleep_until(due);
    struct tag g = { .magic = MAGIC_LEGIT, .flow = 0, .seq = i };
    memcpy(buf + sizeof buf - TAG_LEN, &g, sizeof g); /* at the end: a prefixing echo server keeps it there */
    l->sent_ns[i] = now_ns();
    if (send(l->fd, buf, sizeof buf, 0) < 0) l->sent_ns[i] = 0; /* a failed send is not a loss of the proxy's */
    l->sent = i + 1;
  }
  return NULL;
}

static void *legit_rx_main(void *arg) {
  struct legit *l = arg;
  uint8_t buf[2048];
  while (!atomic_load(&l->stop)) {
    ssize_t n = recv(l->fd, buf, sizeof buf, 0);
    if (n < (ssize_t)TAG_LEN) continue;
    uint64_t t = now_ns();
    struct tag g;
    memcpy(&g, buf + (size_t)n - TAG_LEN, sizeof g); /* a prefixing echo server keeps the tag at the end */
    if (g.magic != MAGIC_LEGIT || g.seq >= FLOOD_MAX_LEGIT || l->sent_ns[g.seq] == 0 || l->rtt_us[g.seq] != 0) {
      l->late_or_dup++;
      continue;
    }
    uint64_t us = (t - l->sent_ns[g.seq]) / 1000;
    l->rtt_us[g.seq] = us == 0 ? 1 : (uint32_t)(us > UINT32_MAX ? UINT32_MAX : us);
    l->replies++;
  }
  return NULL;
}

static void *flood_rx_main(void *arg) {
  struct flood_rx *f = arg;
  struct mmsghdr msgs[RX_BATCH];
  struct iovec iov[RX_BATCH];
  uint8_t *bufs = rx_batch(msgs, iov, 2048);
  while (!atomic_load(&f->stop)) {
    int n = recvmmsg(f->fd, msgs, RX_BATCH, MSG_WAITFORONE, NULL);
    if (n > 0) atomic_fetch_add(&f->replies, (uint64_t)n);
  }
  free(bufs);
  return NULL;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* Legit flow figures over the datagrams sent in [from, to) seconds after t0. */
static void legit_report(const struct legit *l, const char *name, double from, double to, int comma) {
  uint64_t sent = 0, got = 0;
  uint32_t *v = malloc(sizeof(uint32_t) * (l->sent + 1));
  if (!v) die_errno("malloc");
  double period = 1.0 / l->pps;
  for (uint64_t i = 0; i < l->sent; i++) {
    double at = (double)i * period;
    if (at < from || at >= to || l->sent_ns[i] == 0) continue;
    sent++;
    if (l->rtt_us[i]) v[got++] = l->rtt_us[i];
  }
  qsort(v, got, sizeof *v, cmp_u32);
#define PCT(p) (got ? v[(size_t)((double)(got - 1) * (p))] : 0)
  printf("\"%s\":{\"sent\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"loss_pct\":%.3f,\"rtt_p50_us\":%u,\"rtt_p99_us\":%u,\"rtt_p999_us\":%u,\"rtt_max_us\":%u}%s",
         name, sent, sent - got, sent ? 100.0 * (double)(sent - got) / (double)sent : 0.0, PCT(0.5), PCT(0.99), PCT(0.999),
         got ? v[got - 1] : 0, comma ? "," : "");
#undef PCT
  free(v);
}

static int run_flood(int argc, char **argv) {
  int dst_port = -1, size = 64, per_src = 1, c;
  long n = -1;
  double rate = 1000, legit_pps = 0, warm = 2.0, after = 2.0;
  while ((c = getopt(argc, argv, "d:n:r:k:m:L:W:A:")) != -1) {
    switch (c) {
    case 'd': dst_port = (int)parse_long(optarg, 1, 65535, "d"); break;
    case 'n': n = parse_long(optarg, 1, 1000000, "n"); break;
    case 'r': rate = parse_double(optarg, 1, 1000000, "r"); break;
    case 'k': per_src = (int)parse_long(optarg, 1, 16, "k"); break;
    case 'm': size = (int)parse_long(optarg, TAG_LEN, 1400, "m"); break;
    case 'L': legit_pps = parse_double(optarg, 0, 100000, "L"); break;
    case 'W': warm = parse_double(optarg, 0, MAX_SECONDS, "W"); break;
    case 'A': after = parse_double(optarg, 0, MAX_SECONDS, "A"); break;
    default: usage(NULL);
    }
  }
  if (optind != argc) usage("flood: unexpected argument");
  if (dst_port < 0 || n < 0) usage("flood needs -d and -n");
  double flood_s = (double)n / rate;
  if (flood_s > MAX_SECONDS) usage("flood: SOURCES / RATE must be <= 60 s");
  struct addr dst, any, lo;
  make_addr("127.0.0.1", dst_port, &dst);
  make_addr("0.0.0.0", 0, &any);
  make_addr("127.0.0.1", 0, &lo);

  /* The legitimate flow: its own connected socket on 127.0.0.1 (outside the flood's 127.1/16). */
  struct legit *l = calloc(1, sizeof *l);
  if (!l || !(l->sent_ns = calloc(FLOOD_MAX_LEGIT, sizeof *l->sent_ns)) || !(l->rtt_us = calloc(FLOOD_MAX_LEGIT, sizeof *l->rtt_us))) die_errno("calloc");
  l->pps = legit_pps;
  pthread_t ltx, lrx;
  double t0 = now_s();
  l->t0 = t0;
  l->flood_start = warm;
  l->flood_end = warm + flood_s;
  l->end = t0 + warm + flood_s + after;
  if (legit_pps > 0) {
    l->fd = bound_socket(&lo, "bind legit");
    if (connect(l->fd, (struct sockaddr *)&dst.ss, dst.len) < 0) die_errno("connect legit");
    big_rcvbuf(l->fd);
    rcv_timeout(l->fd, 0.05);
    if (pthread_create(&ltx, NULL, legit_tx_main, l) || pthread_create(&lrx, NULL, legit_rx_main, l)) die_errno("pthread_create");
  }

  /* The flood: source i is 127.1.0.0+i (IP_PKTINFO per datagram); replies come back to this socket. */
  struct flood_rx *f = calloc(1, sizeof *f);
  if (!f) die_errno("calloc");
  int fd = bound_socket(&any, "bind flood");
  big_rcvbuf(fd);
  rcv_timeout(fd, 0.05);
  f->fd = fd;
  pthread_t frx;
  if (pthread_create(&frx, NULL, flood_rx_main, f)) die_errno("pthread_create");
  struct sess_tx *tx = sess_tx_new(fd, &dst, size);
  for (int i = 0; i < BATCH; i++) {
    struct tag g = { .magic = MAGIC_FLOOD };
    memcpy(tx->iov[i].iov_base, &g, sizeof g);
  }
  sleep_until(t0 + warm);
  double fs = now_s();
  uint64_t sent = 0, next = 0;
  uint32_t ids[BATCH];
  while (next < (uint64_t)n) {
    /* Sources due by now at RATE per second; each sends PER_SRC datagrams back to back. */
    double now = now_s();
    uint64_t due = (uint64_t)((now - fs) * rate) + 1;
    if (due > (uint64_t)n) due = (uint64_t)n;
    if (next >= due) {
      struct timespec ts = { 0, 200000 };
      nanosleep(&ts, NULL);
      continue;
    }
    int k = 0;
    while (next < due && k + per_src <= BATCH) {
      for (int j = 0; j < per_src; j++) ids[k++] = (uint32_t)next;
      next++;
    }
    sent += (uint64_t)sess_send(tx, ids, k);
  }
  double flood_dur = now_s() - fs;
  sleep_until(l->end);
  /* Drain late replies for 0.5 s. */
  usleep(500000);
  atomic_store(&l->stop, 1);
  atomic_store(&f->stop, 1);
  if (legit_pps > 0) {
    pthread_join(ltx, NULL);
    pthread_join(lrx, NULL);
  }
  pthread_join(frx, NULL);
  printf("{\"mode\":\"flood\",\"sources\":%ld,\"rate\":%.0f,\"per_source\":%d,\"flood_s\":%.3f,\"flood_sent\":%" PRIu64
         ",\"flood_send_errors\":%" PRIu64 ",\"flood_replies\":%" PRIu64 ",\"legit_pps\":%.0f,",
         n, rate, per_src, flood_dur, sent, tx->send_errors, (uint64_t)atomic_load(&f->replies), legit_pps);
  legit_report(l, "legit_before", 0, warm, 1);
  legit_report(l, "legit_during", warm, warm + flood_s, 1);
  legit_report(l, "legit_after", warm + flood_s, warm + flood_s + after, 1);
  printf("\"legit_late_or_dup\":%" PRIu64 "}\n", l->late_or_dup);
  fflush(stdout);
  return EXIT_OK;
}

int main(int argc, char **argv) {
  if (argc < 2) usage(NULL);
  const char *mode = argv[1];
  /* getopt starts at argv[1] of the shifted vector: the mode word plays argv[0]. */
  if (!strcmp(mode, "tput")) return run_tput(argc - 1, argv + 1);
  if (!strcmp(mode, "echo")) return run_echo(argc - 1, argv + 1);
  if (!strcmp(mode, "ping")) return run_ping(argc - 1, argv + 1);
  if (!strcmp(mode, "tcp")) return run_stream(argc - 1, argv + 1, false);
  if (!strcmp(mode, "ws")) return run_stream(argc - 1, argv + 1, true);
  if (!strcmp(mode, "sess")) return run_sess(argc - 1, argv + 1);
  if (!strcmp(mode, "flood")) return run_flood(argc - 1, argv + 1);
  if (!strcmp(mode, "-h") || !strcmp(mode, "--help")) {
    fputs(usage_text, stdout);
    return EXIT_OK;
  }
  fprintf(stderr, "udpbench: unknown mode '%s'\n", mode);
  usage(NULL);
}
