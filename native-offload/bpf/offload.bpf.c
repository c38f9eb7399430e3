// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * l7mp-ts UDP splice: an sk_skb verdict on a SOCKHASH of connected UDP session sockets.
 *
 * A datagram received on socket A (in `socks`) is sent out of A's peer socket B with B's own
 * sendmsg (egress redirect, flags 0), to B's connected remote. `peers` maps A's socket cookie to
 * B's cookie and keeps A's receive counters (packets, bytes, last activity).
 *
 * Facts (shared/reference/offload-facts.md): the pull of the whole datagram is unconditional
 * (G1: a non-linear skb would leave as one datagram per fragment; G2: a length check is pointer
 * arithmetic the verifier refuses without CAP_PERFMON). A datagram that cannot be redirected is
 * dropped and counted, never passed: SK_PASS on a socket in the map has stream semantics (G3).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct peer {
	__u64 peer_cookie; /* where datagrams received on this socket go */
	__u64 pkts;        /* datagrams received on this socket and redirected */
	__u64 bytes;       /* their payload bytes */
	__u64 last_ns;     /* bpf_ktime_get_ns() of the last one (CLOCK_MONOTONIC) */
};

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, __u64);   /* SO_COOKIE */
	__type(value, __u64); /* the fd on update */
} socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct peer);
} peers SEC(".maps");

enum { ST_REDIRECTED, ST_NO_PEER, ST_REDIRECT_FAILED, ST_MAX };

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ST_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline void count(__u32 what)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &what);
	if (v)
		*v += 1;
}

SEC("sk_skb")
int udp_splice(struct __sk_buff *skb)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct peer *p = bpf_map_lookup_elem(&peers, &cookie);
	__u32 len = skb->len;

	if (!p) {
		count(ST_NO_PEER);
		return SK_DROP;
	}
	bpf_skb_pull_data(skb, len);
	__u64 target = p->peer_cookie;
	if (bpf_sk_redirect_hash(skb, &socks, &target, 0) != SK_PASS) {
		count(ST_REDIRECT_FAILED);
		return SK_DROP;
	}
	__sync_fetch_and_add(&p->pkts, 1);
	__sync_fetch_and_add(&p->bytes, len);
	p->last_ns = bpf_ktime_get_ns();
	count(ST_REDIRECTED);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
