// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* The xgw XDP data plane. Two programs:
 *  - xgw_lan on the protected network's interface: classify plaintext
 *    against the gateway's SPD (flow cache in front of LPM tries), police
 *    the bandwidth tier, count, and hand matched flows to their tunnel's
 *    backend (XFRM: pass; userspace: AF_XDP redirect).
 *  - xgw_wan on the public interface: IKE passes, ESP (raw or in UDP 4500)
 *    is looked up by SPI; unknown SPIs die here, counted; known ones are
 *    counted per tunnel, policed and passed to their owner.
 * Maps and structs: xgw_dp_abi.h. */
#include "xgw_parse.h"
// clang-format off
#include "xgw_dp_abi.h"
// clang-format on
#include <linux/udp.h>

/* Runtime knobs, fixed at load time (the verifier sees constants). */
const volatile __u32 tier_percpu = 0; /* 1: per-CPU token shares, no lock */
const volatile __u32 ncpus = 1;       /* possible CPUs, for tier shares */
const volatile __u32 flow_cache = 1;  /* 0: classify every packet (bench) */
/* Shown by `bpftool prog show` as metadata. */
const volatile char bpf_metadata_xgw_version[] SEC(".rodata") = "xgw-dp 1";

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* BTF only describes types reachable from globals; the SPD key and value
 * are otherwise named only through pointers in the inner-map templates,
 * which libbpf cannot size and bpftool cannot print. These anchors put
 * their full definitions in the object's BTF. */
const volatile struct xgw_spd4_key xgw_btf_spd4_key = {};
const volatile struct xgw_spd6_key xgw_btf_spd6_key = {};
const volatile struct xgw_spd_val xgw_btf_spd_val = {};

/* Which gateway and side each interface serves, by ifindex. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, XGW_MAX_IFINDEX);
  __type(key, __u32);
  __type(value, struct xgw_ifcfg);
} xgw_ifcfg SEC(".maps");

/* Per-gateway settings: flags, SPD generation, tier. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, XGW_MAX_GATEWAYS);
  __type(key, __u32);
  __type(value, struct xgw_gw_cfg);
} xgw_gw SEC(".maps");

/* Token buckets, one per gateway and direction, shared by all CPUs. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 2 * XGW_MAX_GATEWAYS);
  __type(key, __u32);
  __type(value, struct xgw_tier_state);
} xgw_tier SEC(".maps");

/* Per-CPU credit drawn from xgw_tier. */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 2 * XGW_MAX_GATEWAYS);
  __type(key, __u32);
  __type(value, struct xgw_tier_credit);
} xgw_tier_cr SEC(".maps");

/* The per-CPU-shares tier variant. */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 2 * XGW_MAX_GATEWAYS);
  __type(key, __u32);
  __type(value, struct xgw_tier_share);
} xgw_tier_pc SEC(".maps");

/* SPD of one gateway for one family; swapped whole by the loader. */
struct spd4_trie {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, XGW_MAX_RELATIONS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct xgw_spd4_key);
  __type(value, struct xgw_spd_val);
};
struct spd6_trie {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, XGW_MAX_RELATIONS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct xgw_spd6_key);
  __type(value, struct xgw_spd_val);
};

/* SPD tries by gateway index. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
  __uint(max_entries, XGW_MAX_GATEWAYS);
  __type(key, __u32);
  __array(values, struct spd4_trie);
} xgw_spd4 SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
  __uint(max_entries, XGW_MAX_GATEWAYS);
  __type(key, __u32);
  __array(values, struct spd6_trie);
} xgw_spd6 SEC(".maps");

/* Exact-match flow caches in front of the tries, per CPU. */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, XGW_FLOW_SLOTS);
  __type(key, __u32);
  __type(value, struct xgw_flow4);
} xgw_flow4 SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, XGW_FLOW_SLOTS);
  __type(key, __u32);
  __type(value, struct xgw_flow6);
} xgw_flow6 SEC(".maps");

/* Connections: active tunnel and its two tunnels. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, XGW_MAX_CONNS);
  __type(key, __u32);
  __type(value, struct xgw_conn);
} xgw_conn SEC(".maps");

/* Tunnels: backend and SA readiness. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, XGW_MAX_TUNNELS);
  __type(key, __u32);
  __type(value, struct xgw_tunnel);
} xgw_tun SEC(".maps");

/* Inbound SAs by SPI. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, XGW_MAX_SAS);
  __type(key, struct xgw_sa_key);
  __type(value, struct xgw_sa_val);
} xgw_sa SEC(".maps");

/* Traffic and outcomes per gateway, per CPU. */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, XGW_MAX_GATEWAYS);
  __type(key, __u32);
  __type(value, struct xgw_gw_stats);
} xgw_gw_stats SEC(".maps");

/* Traffic per tunnel, per CPU. */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, XGW_MAX_TUNNELS);
  __type(key, __u32);
  __type(value, struct xgw_traffic);
} xgw_tun_cnt SEC(".maps");

/* Acquire events for the control plane. */
struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 256 * 1024);
} xgw_events SEC(".maps");

/* AF_XDP sockets of the userspace ESP path, by receive queue. */
struct {
  __uint(type, BPF_MAP_TYPE_XSKMAP);
  __uint(max_entries, 64);
  __type(key, __u32);
  __type(value, __u32);
} xgw_xsks SEC(".maps");

/* The userspace ESP path's TUN device per gateway (see xgw_dp_abi.h). */
struct {
  __uint(type, BPF_MAP_TYPE_DEVMAP);
  __uint(max_entries, XGW_MAX_GATEWAYS);
  __type(key, __u32);
  __type(value, __u32);
} xgw_us_tun SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, XGW_MAX_GATEWAYS);
  __type(key, __u32);
  __type(value, struct xgw_us_cfg);
} xgw_us_cfg SEC(".maps");

static __always_inline int drop(struct xgw_gw_stats* st, enum xgw_drop_reason r) {
  if (r < XGW_DROP__MAX) st->drop[r]++;
  return XDP_DROP;
}

static __always_inline void note(struct xgw_gw_stats* st, enum xgw_pass_reason r) {
  if (r < XGW_PASS__MAX) st->pass[r]++;
}

static __always_inline void count(struct xgw_traffic* t, __u32 bytes, int out) {
  if (out) {
    t->tx_packets++;
    t->tx_bytes += bytes;
  } else {
    t->rx_packets++;
    t->rx_bytes += bytes;
  }
}

/* Token bucket in nano-bytes (bytes * 1e9), so refills of a few
 * nanoseconds are not lost to integer division. */
#define NSEC 1000000000ull

/* Tokens after `elapsed` ns at `rate`, never above `burst`; a bucket that
 * would fill up is simply full, so elapsed * rate cannot overflow. */
static __always_inline __u64 refill(__u64 tokens, __u64 elapsed, __u64 rate, __u64 burst,
                                    int fresh) {
  if (tokens > burst) tokens = burst;
  if (fresh || (rate && elapsed >= (burst - tokens) / rate)) return burst;
  return tokens + elapsed * rate;
}

static __always_inline int tier_admit(__u32 gw, __u32 dir, const struct xgw_gw_cfg* cfg,
                                      __u64 bytes) {
  if (cfg->tier_bps == 0) return 1;
  __u64 rate = cfg->tier_bps / 8; /* bytes per second == nano-bytes per ns */
  __u64 burst = cfg->burst_bytes * NSEC;
  const __u64 cost = bytes * NSEC;
  const __u32 k = gw * 2 + dir;
  if (tier_percpu) {
    /* The coarse clock costs ~3 ns against ~28 ns; its jiffy steps are far
     * below the bucket depth (>= 50 ms of rate). */
    const __u64 now = bpf_ktime_get_coarse_ns();
    struct xgw_tier_share* s = bpf_map_lookup_elem(&xgw_tier_pc, &k);
    if (!s) return 1;
    const __u32 n = ncpus ? ncpus : 1;
    rate /= n;
    burst /= n;
    const __u64 tokens =
        refill(s->tokens, now > s->last_ns ? now - s->last_ns : 0, rate, burst, s->last_ns == 0);
    s->last_ns = now;
    int ok = tokens >= cost;
    s->tokens = ok ? tokens - cost : tokens;
    return ok;
  }
  /* Shared bucket, spent through per-CPU credit. */
  struct xgw_tier_credit* c = bpf_map_lookup_elem(&xgw_tier_cr, &k);
  struct xgw_tier_state* t = bpf_map_lookup_elem(&xgw_tier, &k);
  if (!c || !t) return 1;
  if (c->credit >= cost) {
    c->credit -= cost;
    return 1;
  }
  /* The slow path (about once per chunk, and drops) reads the precise
   * clock: with the coarse one, the bucket refilled only at jiffy ticks and
   * a dry bucket dropped everything until the next tick, bursts of loss
   * that cost TCP more than half of the tier. */
  const __u64 now = bpf_ktime_get_ns();
  if (now < c->dry_until_ns && cost >= c->dry_cost) return 0;
  /* A chunk is a quarter of the depth split over the CPUs: credit left
   * idle on other CPUs never exceeds a quarter of the bucket. */
  const __u32 n = ncpus ? ncpus : 1;
  const __u64 chunk = burst / (4 * n);
  const __u64 need = cost - c->credit;
  __u64 got = 0, short_by = 0;
  bpf_spin_lock(&t->lock);
  {
    __u64 tokens =
        refill(t->tokens, now > t->last_ns ? now - t->last_ns : 0, rate, burst, t->last_ns == 0);
    if (now > t->last_ns) t->last_ns = now;
    if (tokens >= need + chunk) {
      got = need + chunk;
    } else if (tokens >= need) {
      got = tokens;
    } else {
      short_by = need - tokens;
    }
    t->tokens = tokens - got;
  }
  bpf_spin_unlock(&t->lock);
  if (!got) {
    /* Dry: no packet of this size or larger fits on this CPU before the
     * bucket has refilled what this one lacks; drop those without the lock. */
    c->dry_until_ns = now + (rate ? short_by / rate : NSEC);
    c->dry_cost = cost;
    return 0;
  }
  c->credit += got - cost;
  return 1;
}

/* Keeps the first `len` bits of a 32-bit network-order word. */
static __always_inline __u32 mask32(__u32 word_be, __s32 len) {
  if (len <= 0) return 0;
  if (len >= 32) return word_be;
  return word_be & bpf_htonl(~0u << (32 - len));
}

static __always_inline __u32 spd4_lookup(void* trie, const struct xgw_pkt* p) {
  struct xgw_spd4_key k = {.prefixlen = 32, .srclen = XGW_SPD_META};
  const struct xgw_spd_val* meta = bpf_map_lookup_elem(trie, &k);
  if (!meta) return XGW_NO_CONN;
  const __u64 lens = meta->lenmask[0];
  __u32 src, dst;
  __builtin_memcpy(&src, p->src, 4);
  __builtin_memcpy(&dst, p->dst, 4);
  /* Longest source prefix first; relations cannot overlap on both sides,
   * so the first hit is the only one. */
  for (__s32 sl = 32; sl >= 0; sl--) {
    if (!(lens & (1ull << sl))) continue;
    k.prefixlen = 96;
    k.srclen = bpf_htonl(sl);
    k.src = mask32(src, sl);
    k.dst = dst;
    const struct xgw_spd_val* v = bpf_map_lookup_elem(trie, &k);
    if (v) return v->conn_idx;
  }
  return XGW_NO_CONN;
}

static __always_inline __u32 spd6_lookup(void* trie, const struct xgw_pkt* p) {
  struct xgw_spd6_key k = {};
  k.prefixlen = 32;
  k.srclen = XGW_SPD_META;
  const struct xgw_spd_val* meta = bpf_map_lookup_elem(trie, &k);
  if (!meta) return XGW_NO_CONN;
  __u64 lens[3] = {meta->lenmask[0], meta->lenmask[1], meta->lenmask[2]};
  __u32 src[4];
  __builtin_memcpy(src, p->src, 16);
  __builtin_memcpy(k.dst, p->dst, 16);
  k.prefixlen = 32 + 128 + 128;
  for (__s32 sl = 128; sl >= 0; sl--) {
    if (!(lens[sl >> 6] & (1ull << (sl & 63)))) continue;
    k.srclen = bpf_htonl(sl);
    __u32 m[4] = {mask32(src[0], sl), mask32(src[1], sl - 32), mask32(src[2], sl - 64),
                  mask32(src[3], sl - 96)};
    __builtin_memcpy(k.src, m, 16);
    const struct xgw_spd_val* v = bpf_map_lookup_elem(trie, &k);
    if (v) return v->conn_idx;
  }
  return XGW_NO_CONN;
}

/* 16-byte equality without a memcmp call (BPF has no libc). */
static __always_inline int same16(const __u8* a, const __u32 b[4]) {
  __u32 w[4];
  __builtin_memcpy(w, a, 16);
  return ((w[0] ^ b[0]) | (w[1] ^ b[1]) | (w[2] ^ b[2]) | (w[3] ^ b[3])) == 0;
}

static __always_inline __u32 classify(__u32 gw, const struct xgw_gw_cfg* cfg,
                                      const struct xgw_pkt* p) {
  /* Read the generation before the trie: an entry is never tagged newer
   * than the table it came from. */
  const __u32 gen = cfg->spd_gen;
  __u32 src[4], dst[4];
  __builtin_memcpy(src, p->src, 16);
  __builtin_memcpy(dst, p->dst, 16);
  struct xgw_flow4* f4 = 0;
  struct xgw_flow6* f6 = 0;
  if (flow_cache) {
    if (p->family == 4) {
      __u32 slot = xgw_flow4_slot(gw, src[0], dst[0]);
      f4 = bpf_map_lookup_elem(&xgw_flow4, &slot);
      if (f4 && f4->valid && f4->spd_gen == gen && f4->gw_idx == gw && f4->src == src[0] &&
          f4->dst == dst[0])
        return f4->conn_idx;
    } else {
      __u32 slot = xgw_flow6_slot(gw, src, dst);
      f6 = bpf_map_lookup_elem(&xgw_flow6, &slot);
      if (f6 && f6->valid && f6->spd_gen == gen && f6->gw_idx == gw && same16(f6->src, src) &&
          same16(f6->dst, dst))
        return f6->conn_idx;
    }
  }
  __u32 conn = XGW_NO_CONN;
  void* trie = bpf_map_lookup_elem(p->family == 4 ? (void*)&xgw_spd4 : (void*)&xgw_spd6, &gw);
  if (trie) conn = p->family == 4 ? spd4_lookup(trie, p) : spd6_lookup(trie, p);
  /* This CPU's slot: nobody else writes it, so plain stores suffice. */
  if (f4) {
    f4->gw_idx = gw;
    f4->src = src[0];
    f4->dst = dst[0];
    f4->conn_idx = conn;
    f4->spd_gen = gen;
    f4->valid = 1;
  } else if (f6) {
    f6->gw_idx = gw;
    __builtin_memcpy(f6->src, p->src, 16);
    __builtin_memcpy(f6->dst, p->dst, 16);
    f6->conn_idx = conn;
    f6->spd_gen = gen;
    f6->valid = 1;
  }
  return conn;
}

static __always_inline void acquire(__u32 gw, __u32 conn, __u32 tun_idx, struct xgw_tunnel* t,
                                    const struct xgw_pkt* p) {
  const __u64 now = bpf_ktime_get_ns();
  const __u64 last = t->last_acquire_ns;
  if (last && now - last < XGW_ACQUIRE_INTERVAL_NS) return;
  /* Racy by design: at worst two CPUs both report within one interval. */
  t->last_acquire_ns = now;
  struct xgw_event* e = bpf_ringbuf_reserve(&xgw_events, sizeof(*e), 0);
  if (!e) return;
  e->type = XGW_EV_ACQUIRE;
  e->gw_idx = gw;
  e->conn_idx = conn;
  e->tunnel_idx = tun_idx;
  e->family = p->family;
  e->pad = 0;
  __builtin_memcpy(e->src, p->src, 16);
  __builtin_memcpy(e->dst, p->dst, 16);
  bpf_ringbuf_submit(e, 0);
}

static __always_inline int parse_verdict(struct xgw_gw_stats* st, int r) {
  if (r == XGW_PARSE_NOT_IP) {
    note(st, XGW_PASS_NOT_IP);
    return XDP_PASS;
  }
  return drop(st, r == XGW_PARSE_TRUNCATED ? XGW_DROP_TRUNCATED : XGW_DROP_MALFORMED);
}

/* Userspace-backend plaintext: into the gateway's TAP device when one is set
 * and the frame fits its MTU, else to an AF_XDP socket of this queue, else
 * to the stack (which routes it into the same device, or answers ICMP). A
 * global function, so the verifier checks it once rather than on every path
 * of xgw_lan. */
__attribute__((noinline)) int xgw_us_redirect(struct xdp_md* ctx, __u32 gw) {
  if (!ctx) return XDP_PASS;
  /* Read before any branch: clang may otherwise fold the field offset into
   * the ctx pointer, which the verifier rejects. */
  const __u32 queue = ctx->rx_queue_index;
  const __u32 frame = ctx->data_end - ctx->data;
  const struct xgw_us_cfg* uc = bpf_map_lookup_elem(&xgw_us_cfg, &gw);
  if (uc && uc->mtu && bpf_map_lookup_elem(&xgw_us_tun, &gw)) {
    /* The device takes frames of up to MTU + its 14-byte Ethernet header
     * (a VLAN tag counts against the MTU). */
    if (frame > uc->mtu + 14) return XDP_PASS;
    return bpf_redirect_map(&xgw_us_tun, gw, XDP_PASS);
  }
  return bpf_redirect_map(&xgw_xsks, queue, XDP_PASS);
}

SEC("xdp")
int xgw_lan(struct xdp_md* ctx) {
  const __u32 ifindex = ctx->ingress_ifindex;
  const struct xgw_ifcfg* ifc = bpf_map_lookup_elem(&xgw_ifcfg, &ifindex);
  if (!ifc || !ifc->role) return XDP_PASS; /* not an interface of ours */
  const __u32 gw = ifc->gw_idx;
  const struct xgw_gw_cfg* cfg = bpf_map_lookup_elem(&xgw_gw, &gw);
  if (!cfg || !(cfg->flags & XGW_GW_F_ACTIVE)) return XDP_PASS;
  struct xgw_gw_stats* st = bpf_map_lookup_elem(&xgw_gw_stats, &gw);
  if (!st) return XDP_PASS;

  struct xgw_pkt p;
  const int r = xgw_parse(ctx, &p);
  if (r != XGW_PARSE_OK) return parse_verdict(st, r);

  const __u32 conn_idx = classify(gw, cfg, &p);
  if (conn_idx == XGW_NO_CONN) {
    if (cfg->flags & XGW_GW_F_DROP_UNMATCHED) return drop(st, XGW_DROP_NO_POLICY);
    note(st, XGW_PASS_NO_MATCH);
    return XDP_PASS;
  }
  const struct xgw_conn* conn = bpf_map_lookup_elem(&xgw_conn, &conn_idx);
  if (!conn || !(conn->flags & XGW_CONN_F_VALID) || conn->gw_idx != gw)
    return drop(st, XGW_DROP_NO_CONN);
  __u32 tun_idx = conn->tunnel[conn->active & 1];
  struct xgw_tunnel* tun = bpf_map_lookup_elem(&xgw_tun, &tun_idx);
  if (!tun) return drop(st, XGW_DROP_NO_CONN);

  if (!(tun->flags & XGW_TUN_F_SA_READY)) {
    acquire(gw, conn_idx, tun_idx, tun, &p);
    if (cfg->flags & XGW_GW_F_DROP_NO_SA) return drop(st, XGW_DROP_NO_SA);
    note(st, XGW_PASS_NO_SA_PASS);
    return XDP_PASS;
  }
  if (!tier_admit(gw, XGW_DIR_OUT, cfg, p.l3_len)) return drop(st, XGW_DROP_OVER_TIER);
  count(&st->traffic, p.l3_len, 1);
  struct xgw_traffic* tc = bpf_map_lookup_elem(&xgw_tun_cnt, &tun_idx);
  if (tc) count(tc, p.l3_len, 1);
  if (tun->backend == XGW_BACKEND_USERSPACE) {
    note(st, XGW_PASS_USERSPACE);
    return xgw_us_redirect(ctx, gw);
  }
  note(st, XGW_PASS_XFRM);
  return XDP_PASS;
}

#define IKE_PORT 500
#define NATT_PORT 4500

SEC("xdp")
int xgw_wan(struct xdp_md* ctx) {
  const __u32 ifindex = ctx->ingress_ifindex;
  const struct xgw_ifcfg* ifc = bpf_map_lookup_elem(&xgw_ifcfg, &ifindex);
  if (!ifc || !ifc->role) return XDP_PASS;
  const __u32 gw = ifc->gw_idx;
  const struct xgw_gw_cfg* cfg = bpf_map_lookup_elem(&xgw_gw, &gw);
  if (!cfg || !(cfg->flags & XGW_GW_F_ACTIVE)) return XDP_PASS;
  struct xgw_gw_stats* st = bpf_map_lookup_elem(&xgw_gw_stats, &gw);
  if (!st) return XDP_PASS;

  struct xgw_pkt p;
  const int r = xgw_parse(ctx, &p);
  if (r != XGW_PARSE_OK) return parse_verdict(st, r);
  if (p.later_fragment) {
    /* No transport header to read; the stack reassembles. */
    note(st, XGW_PASS_FRAGMENT);
    return XDP_PASS;
  }
  void* data_end = (void*)(long)ctx->data_end;
  __u32 spi;
  if (p.proto == IPPROTO_UDP) {
    struct udphdr* u = p.l4;
    if ((void*)(u + 1) > p.end || (void*)(u + 1) > data_end) return drop(st, XGW_DROP_TRUNCATED);
    const __u16 dport = bpf_ntohs(u->dest);
    if (dport == IKE_PORT) {
      note(st, XGW_PASS_IKE);
      return XDP_PASS;
    }
    if (dport != NATT_PORT) {
      note(st, XGW_PASS_OTHER);
      return XDP_PASS;
    }
    /* RFC 3948 §2.2: a 1-byte 0xff payload is a NAT keepalive; RFC 3947 /
     * 7296 §2.23: four zero bytes (the non-ESP marker) precede IKE. */
    __u8* pl = (void*)(u + 1);
    if ((void*)(pl + 1) <= p.end && (void*)(pl + 1) <= data_end && (void*)(pl + 1) == p.end &&
        pl[0] == 0xff) {
      note(st, XGW_PASS_NATT_KEEPALIVE);
      return XDP_PASS;
    }
    /* SPI and sequence number: 8 bytes at least. */
    if ((void*)(pl + 8) > p.end || (void*)(pl + 8) > data_end) return drop(st, XGW_DROP_MALFORMED);
    __builtin_memcpy(&spi, pl, 4);
    if (spi == 0) {
      note(st, XGW_PASS_IKE);
      return XDP_PASS;
    }
  } else if (p.proto == IPPROTO_ESP) {
    __u8* esp = p.l4;
    if ((void*)(esp + 8) > p.end || (void*)(esp + 8) > data_end)
      return drop(st, XGW_DROP_TRUNCATED);
    __builtin_memcpy(&spi, esp, 4);
  } else {
    note(st, XGW_PASS_OTHER);
    return XDP_PASS;
  }

  struct xgw_sa_key sk = {.spi = spi};
  const struct xgw_sa_val* sa = bpf_map_lookup_elem(&xgw_sa, &sk);
  if (!sa || sa->gw_idx != gw) return drop(st, XGW_DROP_UNKNOWN_SPI);
  if (!tier_admit(gw, XGW_DIR_IN, cfg, p.l3_len)) return drop(st, XGW_DROP_OVER_TIER);
  count(&st->traffic, p.l3_len, 0);
  const __u32 tun_idx = sa->tunnel_idx;
  struct xgw_traffic* tc = bpf_map_lookup_elem(&xgw_tun_cnt, &tun_idx);
  if (tc) count(tc, p.l3_len, 0);
  note(st, XGW_PASS_ESP_IN);
  return XDP_PASS;
}
