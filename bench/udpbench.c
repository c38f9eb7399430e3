/*
 * udpbench: UDP load generator, sink, echo server and ping-pong client for measuring a UDP proxy
 * on loopback (127.0.0.1 or ::1). C11 + POSIX/Linux libc only; prints one JSON line per run.
 *
 *   udpbench tput -d DSTPORT -s SINKPORT -m SIZE -t SECONDS [-r PPS] [-f FLOWS] [-P PID] [-a ADDR] [-n MAXPKTS]
 *   udpbench echo -p PORT [-a ADDR] [-x PREFIX]
 *   udpbench ping -d PORT -m SIZE -t SECONDS [-w WARMUP_COUNT] [-a ADDR]
 *
 * tput: the main thread sends SIZE-byte datagrams with sendmmsg (batches of 32) to ADDR:DSTPORT from
 *   FLOWS sockets (one source port, hence one proxy session, each), unpaced or paced to PPS; a sink
 *   thread bound to ADDR:SINKPORT (SO_RCVBUFFORCE 4 MiB) receives with recvmmsg. Every datagram starts
 *   with a 16-byte tag: magic (warm-up or measured), flow id, per-flow sequence number. The first
 *   0.2 s is warm-up and is not counted. The measured phase lasts SECONDS (or MAXPKTS datagrams); then
 *   the sink drains until 50 ms pass without a datagram (at most 1 s). A per-flow bitmap of sequence
 *   numbers gives unique, duplicated and reordered (arrived below the highest sequence seen) counts;
 *   lost = sent - unique.
 *   With -P, the CPU time of PID and all its descendants (every thread: the sum of the first field of
 *   /proc/<pid>/task/<tid>/schedstat, ns of run time, falling back to utime+stime of .../stat) is
 *   sampled when the measured phase starts and after the drain. cpu_pct = that time over the busy window
 *   (measure start to the last measured datagram), in % of one core; cpu_us_per_pkt = that time over the
 *   datagrams delivered to the sink. The process set is taken once at the start: a thread that exits
 *   during the trial takes its time with it.
 *   Also reported: kernel drop counters (/proc/net/udp{,6}) of the sockets bound to DSTPORT (the
 *   proxy's listener) and SINKPORT, and host CPU use over the window split into proxy, this tool, and
 *   other (everything else on the machine), all in % of one core.
 * echo: recvmmsg/sendmmsg echo server; each reply is PREFIX + the datagram. Runs until SIGTERM/SIGINT,
 *   then prints its counters.
 * ping: one datagram in flight: send, blocking recv with a 200 ms timeout (a missing reply is counted
 *   as lost, late replies are recognised by sequence number and skipped). WARMUP_COUNT round trips are
 *   not recorded. The tag is read at the end of the reply, so a prefixing echo server works.
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
#define MAX_PREFIX 1024

enum { EXIT_OK = 0, EXIT_SYS = 1, EXIT_USAGE = 2, EXIT_NOTHING = 3 };

static const char usage_text[] =
  "usage:\n"
  "  udpbench tput -d DSTPORT -s SINKPORT -m SIZE -t SECONDS [-r PPS] [-f FLOWS] [-P PID] [-a ADDR] [-n MAXPKTS]\n"
  "  udpbench echo -p PORT [-a ADDR] [-x PREFIX]\n"
  "  udpbench ping -d PORT -m SIZE -t SECONDS [-w WARMUP_COUNT] [-a ADDR]\n"
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
  if (!bufs) die_errno("malloc");
  memset(msgs, 0, sizeof msgs);
  for (int i = 0; i < RX_BATCH; i++) {
    iov[i].iov_base = bufs + bufsz * (size_t)i;
    iov[i].iov_len = bufsz;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  double last_any = now_s();
  double hard_stop = last_any + WARMUP_S + t->seconds + DRAIN_MAX_S + 1.0;
  for (;;) {
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
  if (t->pid > 0) t->cpu0 = tree_cpu_ns(t->tree, t->tree_n);
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
  while ((c = getopt(argc, argv, "d:s:m:t:r:f:P:a:n:")) != -1) {
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

int main(int argc, char **argv) {
  if (argc < 2) usage(NULL);
  const char *mode = argv[1];
  /* getopt starts at argv[1] of the shifted vector: the mode word plays argv[0]. */
  if (!strcmp(mode, "tput")) return run_tput(argc - 1, argv + 1);
  if (!strcmp(mode, "echo")) return run_echo(argc - 1, argv + 1);
  if (!strcmp(mode, "ping")) return run_ping(argc - 1, argv + 1);
  if (!strcmp(mode, "-h") || !strcmp(mode, "--help")) {
    fputs(usage_text, stdout);
    return EXIT_OK;
  }
  fprintf(stderr, "udpbench: unknown mode '%s'\n", mode);
  usage(NULL);
}
