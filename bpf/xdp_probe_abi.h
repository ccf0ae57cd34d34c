/* ABI shared by bpf/xdp_probe.bpf.c and userspace/tests: plain C, fixed-width
 * types only, so both sides agree on layout without BTF. */
#ifndef XGW_BPF_XDP_PROBE_ABI_H
#define XGW_BPF_XDP_PROBE_ABI_H

#include <linux/types.h>

#define XGW_PROBE_CNT_MAP "xgw_probe_cnt"
#define XGW_PROBE_PROG "xgw_xdp_probe"
/* xgw_probe_cnt is a one-slot per-CPU array; this is its only key. */
#define XGW_PROBE_CNT_KEY 0u

/* Per-CPU value of xgw_probe_cnt; userspace sums it over possible CPUs. */
struct xgw_probe_counters {
  __u64 packets;
  __u64 bytes; /* linear frame length as seen at XDP (data_end - data) */
};

#ifdef __cplusplus
static_assert(sizeof(struct xgw_probe_counters) == 16, "xgw_probe_counters ABI changed");
#else
_Static_assert(sizeof(struct xgw_probe_counters) == 16, "xgw_probe_counters ABI changed");
#endif

#endif /* XGW_BPF_XDP_PROBE_ABI_H */
