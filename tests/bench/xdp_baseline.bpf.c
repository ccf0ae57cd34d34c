// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Baselines for tests/bench/xdp_bench: what BPF_PROG_TEST_RUN costs with an
 * empty program, and with the data plane's parser alone (bpf/xgw_parse.h),
 * so the classifier's cost can be read as a ratio to parsing. */
#include "xgw_parse.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The floor: test-run loop and program call, nothing else. */
SEC("xdp")
int xgw_bench_pass(struct xdp_md* ctx) {
  (void)ctx;
  return XDP_PASS;
}

/* Parse, then consume what the classifier would read (addresses, length,
 * protocol) so the compiler cannot drop the parse as dead code. */
SEC("xdp")
int xgw_bench_parse(struct xdp_md* ctx) {
  struct xgw_pkt p;
  const int r = xgw_parse(ctx, &p);
  if (r != XGW_PARSE_OK) return r == XGW_PARSE_NOT_IP ? XDP_PASS : XDP_DROP;
  __u32 src, dst;
  __builtin_memcpy(&src, p.src, 4);
  __builtin_memcpy(&dst, p.dst, 4);
  __u32 mix = src ^ dst ^ p.l3_len ^ p.proto ^ p.family;
  barrier_var(mix); /* an asm input: computed, never folded away */
  return XDP_PASS;
}

/* Parse plus one clock read: the floor under any token bucket (tier_admit()
 * reads the clock once per packet). */
SEC("xdp")
int xgw_bench_clock(struct xdp_md* ctx) {
  struct xgw_pkt p;
  const int r = xgw_parse(ctx, &p);
  if (r != XGW_PARSE_OK) return r == XGW_PARSE_NOT_IP ? XDP_PASS : XDP_DROP;
  __u64 mix = bpf_ktime_get_ns() ^ p.l3_len;
  barrier_var(mix);
  return XDP_PASS;
}

/* The same with the jiffy-resolution clock: what a tier could cost with a
 * coarse clock (bpf_ktime_get_coarse_ns, 5.11+). */
SEC("xdp")
int xgw_bench_coarse_clock(struct xdp_md* ctx) {
  struct xgw_pkt p;
  const int r = xgw_parse(ctx, &p);
  if (r != XGW_PARSE_OK) return r == XGW_PARSE_NOT_IP ? XDP_PASS : XDP_DROP;
  __u64 mix = bpf_ktime_get_coarse_ns() ^ p.l3_len;
  barrier_var(mix);
  return XDP_PASS;
}
