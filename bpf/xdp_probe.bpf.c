// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Minimal XDP program: proves the toolchain (clang -> BTF -> skeleton ->
 * libbpf load) and gives tests a known-good program to attach. */
/* bpf_helpers.h needs the types from linux/bpf.h first; keep the order. */
// clang-format off
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
// clang-format on

#include "xdp_probe_abi.h"

/* rodata knob: set by the loader between open and load; the verifier then
 * sees a constant, so it costs nothing at run time. */
const volatile __u32 verdict = XDP_PASS;

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct xgw_probe_counters);
} xgw_probe_cnt SEC(".maps");

SEC("xdp")
int xgw_xdp_probe(struct xdp_md* ctx) {
  __u32 key = XGW_PROBE_CNT_KEY;
  struct xgw_probe_counters* c = bpf_map_lookup_elem(&xgw_probe_cnt, &key);

  /* Per-CPU slot: no other CPU writes it, so plain increments suffice. */
  if (c) {
    c->packets++;
    c->bytes += (__u64)(ctx->data_end - ctx->data);
  }
  return (int)verdict;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
