/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Packet parsing shared by the xgw XDP programs (and the benchmark's
 * parse-only baseline): Ethernet with at most one VLAN tag, IPv4 (options
 * allowed) and IPv6 (one fragment header understood). Every read is
 * bounds-checked; a packet that lies about its lengths gets a defined
 * outcome, never a guess. */
#ifndef XGW_PARSE_H
#define XGW_PARSE_H

// clang-format off
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
// clang-format on
#include <bpf/bpf_endian.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>

#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif

enum xgw_parse_result {
  XGW_PARSE_OK = 0,
  XGW_PARSE_NOT_IP,    /* not IPv4/IPv6: leave it to the stack */
  XGW_PARSE_TRUNCATED, /* a header runs past the end of the frame */
  XGW_PARSE_MALFORMED, /* lengths or version fields that cannot be */
};

/* A 16-bit length field as a value the verifier knows is 0..65535. Older
 * verifiers (Debian 12's 6.1) lose the bounds of a byte-swapped value and
 * refuse to add it to a packet pointer, so the range is checked explicitly;
 * the empty asm keeps clang from folding that check away. */
static __always_inline __u32 xgw_be16(const __be16* field) {
  __u32 v = bpf_ntohs(*field);
  asm volatile("" : "+r"(v));
  return v;
}

struct xgw_pkt {
  __u32 family; /* 4 or 6 */
  __u8 proto;   /* transport protocol (after a v6 fragment header) */
  __u8 later_fragment; /* not the first fragment: no transport header */
  __u16 pad;
  __u32 l3_len; /* bytes from the IP header to the end of the IP packet */
  __u8 src[16];
  __u8 dst[16];
  void* l4;  /* transport header (valid only if !later_fragment) */
  void* end; /* end of the IP packet (<= data_end) */
  void* data_end; /* the frame's end: what the verifier bounds reads by */
};

static __always_inline int xgw_parse(struct xdp_md* ctx, struct xgw_pkt* p) {
  void* data = (void*)(long)ctx->data;
  void* data_end = (void*)(long)ctx->data_end;
  struct ethhdr* eth = data;
  if ((void*)(eth + 1) > data_end) return XGW_PARSE_TRUNCATED;
  __u16 proto = eth->h_proto;
  void* l3 = eth + 1;
  if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
    /* One tag: TCI then the encapsulated protocol. */
    __be16* vlan = l3;
    if ((void*)(vlan + 2) > data_end) return XGW_PARSE_TRUNCATED;
    proto = vlan[1];
    l3 = vlan + 2;
  }
  __builtin_memset(p, 0, sizeof(*p));
  p->data_end = data_end;
  if (proto == bpf_htons(ETH_P_IP)) {
    struct iphdr* ip = l3;
    if ((void*)(ip + 1) > data_end) return XGW_PARSE_TRUNCATED;
    if (ip->version != 4 || ip->ihl < 5) return XGW_PARSE_MALFORMED;
    const __u32 hlen = ip->ihl * 4;
    const __u32 tot = xgw_be16(&ip->tot_len);
    if (tot > 0xffff || tot < hlen) return XGW_PARSE_MALFORMED;
    if ((void*)ip + hlen > data_end) return XGW_PARSE_TRUNCATED;
    if ((void*)ip + tot > data_end) return XGW_PARSE_TRUNCATED;
    p->family = 4;
    p->proto = ip->protocol;
    p->later_fragment = (bpf_ntohs(ip->frag_off) & 0x1fff) != 0;
    p->l3_len = tot;
    __builtin_memcpy(p->src, &ip->saddr, 4);
    __builtin_memcpy(p->dst, &ip->daddr, 4);
    p->l4 = (void*)ip + hlen;
    p->end = (void*)ip + tot;
    return XGW_PARSE_OK;
  }
  if (proto == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr* ip6 = l3;
    if ((void*)(ip6 + 1) > data_end) return XGW_PARSE_TRUNCATED;
    if (ip6->version != 6) return XGW_PARSE_MALFORMED;
    const __u32 plen = xgw_be16(&ip6->payload_len);
    if (plen > 0xffff) return XGW_PARSE_MALFORMED;
    const __u32 tot = sizeof(*ip6) + plen;
    if ((void*)ip6 + tot > data_end) return XGW_PARSE_TRUNCATED;
    p->family = 6;
    p->proto = ip6->nexthdr;
    p->l3_len = tot;
    __builtin_memcpy(p->src, &ip6->saddr, 16);
    __builtin_memcpy(p->dst, &ip6->daddr, 16);
    p->l4 = ip6 + 1;
    p->end = (void*)ip6 + tot;
    if (p->proto == IPPROTO_FRAGMENT) {
      /* RFC 8200 §4.5: next header, reserved, offset|flags, id. */
      __u8* fh = p->l4;
      if ((void*)(fh + 8) > p->end || (void*)(fh + 8) > data_end) return XGW_PARSE_TRUNCATED;
      p->proto = fh[0];
      p->later_fragment = (bpf_ntohs(*(__be16*)(fh + 2)) & 0xfff8) != 0;
      p->l4 = fh + 8;
    }
    return XGW_PARSE_OK;
  }
  return XGW_PARSE_NOT_IP;
}

#endif /* XGW_PARSE_H */
