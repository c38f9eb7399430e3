// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * l7mp-ts worker steering for a UDP listener's SO_REUSEPORT group.
 *
 * Every datagram that reaches the group (not a connected session socket) is hashed on its source
 * address and port into one of 4096 buckets; `buckets` says which worker slot owns the bucket
 * (filled by the runtime from its consistent hash ring), `workers` holds each slot's listening
 * socket. The hash is FNV-1a 32 over the source address bytes (4 for IPv4, 16 for IPv6) then the
 * source port in network byte order, masked to 12 bits; runtime/ring.ts computes the same.
 * If the slot is empty (its worker died), the kernel's own reuseport hash picks a socket.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define BUCKETS 4096
#define MAX_SLOTS 256

struct {
	__uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
	__uint(max_entries, MAX_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} workers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BUCKETS);
	__type(key, __u32);
	__type(value, __u32);
} buckets SEC(".maps");

enum { RS_STEERED, RS_SELECT_FAILED, RS_UNPARSED, RS_MAX };

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RS_MAX);
	__type(key, __u32);
	__type(value, __u64);
} rstats SEC(".maps");

static __always_inline void count(__u32 what)
{
	__u64 *v = bpf_map_lookup_elem(&rstats, &what);
	if (v)
		*v += 1;
}

#define FNV_PRIME 16777619u
#define FNV_BASIS 2166136261u

SEC("sk_reuseport")
int udp_steer(struct sk_reuseport_md *md)
{
	__u8 addr[16] = {};
	__u8 port[2];
	__u32 h = FNV_BASIS;
	int n;

	if (md->eth_protocol == bpf_htons(ETH_P_IP)) {
		if (bpf_skb_load_bytes_relative(md, 12, addr, 4, BPF_HDR_START_NET))
			goto unparsed;
		n = 4;
	} else if (md->eth_protocol == bpf_htons(ETH_P_IPV6)) {
		if (bpf_skb_load_bytes_relative(md, 8, addr, 16, BPF_HDR_START_NET))
			goto unparsed;
		n = 16;
	} else {
		goto unparsed;
	}
	if (bpf_skb_load_bytes(md, 0, port, 2))
		goto unparsed;
#pragma unroll
	for (int i = 0; i < 16; i++) {
		if (i < n) {
			h ^= addr[i];
			h *= FNV_PRIME;
		}
	}
	h ^= port[0];
	h *= FNV_PRIME;
	h ^= port[1];
	h *= FNV_PRIME;

	__u32 b = h & (BUCKETS - 1);
	__u32 *slot = bpf_map_lookup_elem(&buckets, &b);
	if (!slot)
		goto unparsed;
	if (bpf_sk_select_reuseport(md, &workers, slot, 0)) {
		count(RS_SELECT_FAILED);
		return SK_PASS;
	}
	count(RS_STEERED);
	return SK_PASS;
unparsed:
	count(RS_UNPARSED);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
