/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* The ABI of the xgw XDP data plane (bpf/xgw_dp.bpf.c): every map's key and
 * value, shared by the BPF programs and loader/ (which static_asserts the
 * sizes). Plain C, fixed-width types, no padding holes.
 *
 * Contract with the userspace ESP path (backend XGW_BACKEND_USERSPACE):
 * plaintext that matches a tunnel using the userspace backend is redirected
 * into the XSKMAP `xgw_xsks`, keyed by the receive queue index, so one
 * AF_XDP socket per queue of the LAN interface receives it; when no socket
 * is registered for that queue the packet is passed to the stack (the
 * redirect's fallback action). When the gateway has the userspace ESP
 * path's TAP device in `xgw_us_tun` (devmap by gateway index) and the frame
 * fits its MTU (`xgw_us_cfg`), the program redirects the frame as it is
 * into that device instead, skipping the kernel's forwarding (the ESP path
 * reads past the Ethernet header and one VLAN tag and ignores padding);
 * bigger frames go to the stack, which routes them into the same device or
 * answers with ICMP. (A TUN device cannot be a redirect target: Linux's tun
 * driver offers ndo_xdp_xmit only in TAP mode.) ESP from the WAN (raw or UDP 4500) is always
 * passed to the stack, where the owner of the matching socket (kernel XFRM
 * or the userspace ESP path's UDP socket) takes it. */
#ifndef XGW_DP_ABI_H
#define XGW_DP_ABI_H

#include <linux/bpf.h> /* struct bpf_spin_lock */
#include <linux/types.h>

/* Capacities; the loader may lower them before load, never raise them. */
#define XGW_MAX_GATEWAYS 64
#define XGW_MAX_CONNS 4096
#define XGW_MAX_TUNNELS 8192
#define XGW_MAX_SAS 16384
/* Match relations per gateway and address family (SPD table). */
#define XGW_MAX_RELATIONS 131072
/* Interface indexes the data plane can serve (xgw_ifcfg is an array). */
#define XGW_MAX_IFINDEX 65536
/* Flow-cache slots per CPU and family; a power of two. */
#define XGW_FLOW_SLOTS 16384

#define XGW_NO_CONN 0xffffffffu

/* Drop reasons, declared once: X(ENUM_SUFFIX, "metric label"). BPF counts
 * them, the loader and metrics/ name them from the same list. */
#define XGW_DROP_REASONS(X)                                                  \
  X(MALFORMED, "malformed")     /* impossible header lengths */              \
  X(TRUNCATED, "truncated")     /* header runs past the frame */             \
  X(NO_POLICY, "no_policy")     /* no SPD match; gateway drops unmatched */  \
  X(OVER_TIER, "over_tier")     /* bandwidth tier exceeded */                \
  X(UNKNOWN_SPI, "unknown_spi") /* ESP for an SPI we do not hold */          \
  X(NO_SA, "no_sa")             /* matched tunnel has no SA; policy drops */ \
  X(NO_CONN, "no_conn")         /* SPD names a connection not programmed */

enum xgw_drop_reason {
#define XGW_X_ENUM(name, label) XGW_DROP_##name,
  XGW_DROP_REASONS(XGW_X_ENUM)
#undef XGW_X_ENUM
      XGW_DROP__MAX
};

/* Non-drop outcomes worth counting (same X-macro shape). */
#define XGW_PASS_REASONS(X)                                        \
  X(NOT_IP, "not_ip")     /* ARP, LLDP, ...: ordinary stack */     \
  X(NO_MATCH, "no_match") /* plaintext outside every SPD rule */   \
  X(IKE, "ike")           /* UDP 500, or 4500 with the marker */   \
  X(NATT_KEEPALIVE, "natt_keepalive")                              \
  X(FRAGMENT, "fragment")     /* non-first ESP fragment: no SPI */ \
  X(XFRM, "xfrm")             /* matched, handed to kernel XFRM */ \
  X(USERSPACE, "userspace")   /* matched, redirected to AF_XDP */  \
  X(ESP_IN, "esp_in")         /* known SPI, passed to its owner */ \
  X(NO_SA_PASS, "no_sa_pass") /* matched, no SA yet, passed */     \
  X(OTHER, "other")           /* WAN traffic that is not IPsec */

enum xgw_pass_reason {
#define XGW_X_ENUM(name, label) XGW_PASS_##name,
  XGW_PASS_REASONS(XGW_X_ENUM)
#undef XGW_X_ENUM
      XGW_PASS__MAX
};

/* xgw_ifcfg: ifindex -> which gateway an interface serves, and its side
 * (role 0: not ours). netns_ino names the network namespace the ifindex
 * belongs to, so detaching never touches another namespace's interface. */
enum xgw_if_role { XGW_IF_LAN = 1, XGW_IF_WAN = 2 };
struct xgw_ifcfg {
  __u32 gw_idx;
  __u32 role; /* enum xgw_if_role */
  __u64 netns_ino;
};

/* xgw_gw: per-gateway settings, indexed by gateway index. */
#define XGW_GW_F_ACTIVE (1u << 0)
#define XGW_GW_F_DROP_UNMATCHED (1u << 1) /* else: pass to ordinary routing */
#define XGW_GW_F_DROP_NO_SA (1u << 2)     /* else: pass while IKE negotiates */
/* xgw_us_cfg: by gateway index, next to the devmap xgw_us_tun. */
struct xgw_us_cfg {
  __u32 mtu; /* the TUN device's MTU; 0 = no redirect */
  __u32 pad;
};

struct xgw_gw_cfg {
  __u32 flags;
  __u32 spd_gen;     /* bumped after each SPD swap; tags flow-cache entries */
  __u64 tier_bps;    /* bits per second each direction; 0 = unlimited */
  __u64 burst_bytes; /* token bucket depth */
};

/* xgw_tier: token bucket per (gateway, direction): index gw_idx * 2 + dir. */
enum xgw_dir { XGW_DIR_OUT = 0 /* LAN -> WAN */, XGW_DIR_IN = 1 /* WAN -> LAN */ };
struct xgw_tier_state {
  struct bpf_spin_lock lock;
  __u32 pad;
  __u64 tokens; /* bytes */
  __u64 last_ns;
};
/* xgw_tier_cr: each CPU's credit drawn from the shared bucket in chunks,
 * so the lock is taken about once per chunk rather than per packet, and
 * while the bucket is dry (until dry_until_ns) drops need no lock at all. */
struct xgw_tier_credit {
  __u64 credit; /* nano-bytes */
  __u64 dry_until_ns;
  __u64 dry_cost; /* the packet that found the bucket dry; smaller ones still ask */
};
/* xgw_tier_pc: the per-CPU-shares variant (rodata tier_percpu = 1): each
 * CPU owns rate / ncpus, lock-free. */
struct xgw_tier_share {
  __u64 tokens;
  __u64 last_ns;
};

/* SPD tables: xgw_spd4 / xgw_spd6 are arrays (by gateway index) of LPM
 * tries. A relation (local L/sl, remote R/rl) is stored under the key
 * {srclen = sl, src = L, dst = R} with prefixlen 32 + 32 + rl (v4); a
 * lookup masks the packet's source to each source length present and asks
 * for the longest destination match. SPEC §3 forbids relations that overlap
 * on both sides, so at most one relation matches a packet. The lengths
 * present are kept in the same trie under srclen = XGW_SPD_META, so one
 * map swap replaces rules and lengths together. */
#define XGW_SPD_META 0xffffffffu
struct xgw_spd4_key {
  __u32 prefixlen;
  __u32 srclen; /* network order */
  __u32 src;    /* network order */
  __u32 dst;    /* network order */
};
struct xgw_spd6_key {
  __u32 prefixlen;
  __u32 srclen; /* network order */
  __u8 src[16];
  __u8 dst[16];
};
struct xgw_spd_val {
  __u32 conn_idx;
  __u32 pad;
  __u64 lenmask[3]; /* meta entry only: bit n set = source length n present */
};

/* xgw_flow4 / xgw_flow6: exact-match flow cache in front of the SPD tries,
 * direct-mapped and per CPU (no locks, no sharing, a colliding flow simply
 * evicts). Entries remember their gateway's spd_gen and are ignored once it
 * moves on. Negative results (no match) are cached too (XGW_NO_CONN). */
struct xgw_flow4 {
  __u32 gw_idx;
  __u32 src; /* network order */
  __u32 dst;
  __u32 conn_idx;
  __u32 spd_gen;
  __u32 valid;
};
struct xgw_flow6 {
  __u32 gw_idx;
  __u32 conn_idx;
  __u32 spd_gen;
  __u32 valid;
  __u8 src[16];
  __u8 dst[16];
};

/* The slot of a flow; shared so tests and tools can find an entry. */
static inline __u32 xgw_flow_mix(__u32 h) {
  h ^= h >> 16;
  h *= 0x7feb352dU;
  h ^= h >> 15;
  return h;
}
static inline __u32 xgw_flow4_slot(__u32 gw, __u32 src, __u32 dst) {
  return xgw_flow_mix(src * 0x9e3779b1U ^ dst * 0x85ebca77U ^ gw) & (XGW_FLOW_SLOTS - 1);
}
static inline __u32 xgw_flow6_slot(__u32 gw, const __u32 src[4], const __u32 dst[4]) {
  const __u32 a = src[0] ^ src[1] ^ src[2] ^ src[3];
  const __u32 b = dst[0] ^ dst[1] ^ dst[2] ^ dst[3];
  return xgw_flow_mix(a * 0x9e3779b1U ^ b * 0x85ebca77U ^ gw) & (XGW_FLOW_SLOTS - 1);
}

/* xgw_conn: per connection, indexed by connection index. */
#define XGW_CONN_F_VALID (1u << 0)
struct xgw_conn {
  __u32 gw_idx;
  __u32 flags;
  __u32 active;    /* 0 = master, 1 = standby: the tunnel carrying traffic */
  __u32 tunnel[2]; /* tunnel indexes for master and standby */
  __u32 ntunnels;
};

/* xgw_tun: per tunnel, indexed by tunnel index. */
enum xgw_backend { XGW_BACKEND_XFRM = 1, XGW_BACKEND_USERSPACE = 2 };
#define XGW_TUN_F_SA_READY (1u << 0) /* an outbound SA is installed */
struct xgw_tunnel {
  __u32 conn_idx;
  __u32 backend; /* enum xgw_backend */
  __u32 flags;
  __u32 out_spi; /* host order: the outbound SA traffic leaves on (0: none);
                  * for operators (bpftool), not read by the programs */
  __u64 last_acquire_ns; /* rate-limits acquire events */
};

/* xgw_sa: inbound SPI (network order) -> tunnel. */
struct xgw_sa_key {
  __u32 spi;
};
struct xgw_sa_val {
  __u32 tunnel_idx;
  __u32 gw_idx;
};

/* xgw_tun_cnt: traffic per tunnel, per CPU. tx is LAN -> WAN (before
 * encryption), rx is WAN -> LAN (ESP as received); bytes are IP bytes. */
struct xgw_traffic {
  __u64 tx_packets;
  __u64 tx_bytes;
  __u64 rx_packets;
  __u64 rx_bytes;
};

/* xgw_gw_stats: per gateway and CPU, its traffic and how many packets met
 * each outcome: one lookup serves every counter a packet moves. */
struct xgw_gw_stats {
  struct xgw_traffic traffic;
  __u64 drop[XGW_DROP__MAX];
  __u64 pass[XGW_PASS__MAX];
};

/* xgw_events (ring buffer): traffic matched a tunnel that has no SA, so IKE
 * should negotiate ("start on traffic"); at most one per tunnel and
 * XGW_ACQUIRE_INTERVAL_NS. */
#define XGW_ACQUIRE_INTERVAL_NS 1000000000ull
enum xgw_event_type { XGW_EV_ACQUIRE = 1 };
struct xgw_event {
  __u32 type;
  __u32 gw_idx;
  __u32 conn_idx;
  __u32 tunnel_idx;
  __u32 family;
  __u32 pad;
  __u8 src[16];
  __u8 dst[16];
};

#endif /* XGW_DP_ABI_H */
