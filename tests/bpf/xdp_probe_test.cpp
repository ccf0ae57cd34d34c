// Runs bpf/xdp_probe.bpf.c through BPF_PROG_TEST_RUN: no NIC or netns needed,
// only CAP_BPF/CAP_SYS_ADMIN.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "privileged.h"
#include "xdp_probe.skel.h"
#include "xdp_probe_abi.h"

namespace {

struct SkelDeleter {
  void operator()(xdp_probe* s) const { xdp_probe__destroy(s); }
};
using SkelPtr = std::unique_ptr<xdp_probe, SkelDeleter>;

// RFC 1071 checksum; the probe ignores it, but a valid frame keeps the test
// honest if the program ever starts parsing headers.
uint16_t ip_checksum(const void* data, size_t len) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (len & 1) sum += static_cast<uint32_t>(p[len - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons(static_cast<uint16_t>(~sum));
}

// Ethernet/IPv4/UDP, 10.1.0.10:4000 -> 10.2.0.10:5000, 18-byte payload.
std::vector<uint8_t> make_udp_frame() {
  constexpr size_t kPayload = 18;
  std::vector<uint8_t> f(sizeof(ethhdr) + sizeof(iphdr) + sizeof(udphdr) + kPayload);

  ethhdr eth{};
  const uint8_t dst[ETH_ALEN] = {0x02, 0, 0, 0, 0, 0x02};
  const uint8_t src[ETH_ALEN] = {0x02, 0, 0, 0, 0, 0x01};
  std::memcpy(eth.h_dest, dst, ETH_ALEN);
  std::memcpy(eth.h_source, src, ETH_ALEN);
  eth.h_proto = htons(ETH_P_IP);

  iphdr ip{};
  ip.version = 4;
  ip.ihl = 5;
  ip.tot_len = htons(static_cast<uint16_t>(f.size() - sizeof(ethhdr)));
  ip.ttl = 64;
  ip.protocol = IPPROTO_UDP;
  ip.saddr = htonl(0x0a01000a);
  ip.daddr = htonl(0x0a02000a);
  ip.check = ip_checksum(&ip, sizeof(ip));

  udphdr udp{};
  udp.source = htons(4000);
  udp.dest = htons(5000);
  udp.len = htons(static_cast<uint16_t>(sizeof(udphdr) + kPayload));
  udp.check = 0;  // optional for IPv4

  uint8_t* p = f.data();
  std::memcpy(p, &eth, sizeof(eth));
  std::memcpy(p + sizeof(eth), &ip, sizeof(ip));
  std::memcpy(p + sizeof(eth) + sizeof(ip), &udp, sizeof(udp));
  for (size_t i = 0; i < kPayload; ++i) p[f.size() - kPayload + i] = static_cast<uint8_t>('a' + i);
  return f;
}

// Runs the program once on `frame`; returns the XDP verdict.
uint32_t run_once(const xdp_probe& skel, const std::vector<uint8_t>& frame) {
  std::vector<uint8_t> out(frame.size() + 256);
  // LIBBPF_OPTS relies on C compound literals; zero-init + sz is the C++ way.
  bpf_test_run_opts opts{};
  opts.sz = sizeof(opts);
  opts.data_in = frame.data();
  opts.data_size_in = static_cast<uint32_t>(frame.size());
  opts.data_out = out.data();
  opts.data_size_out = static_cast<uint32_t>(out.size());
  opts.repeat = 1;
  const int err = bpf_prog_test_run_opts(bpf_program__fd(skel.progs.xgw_xdp_probe), &opts);
  EXPECT_EQ(err, 0) << "bpf_prog_test_run_opts: " << std::strerror(-err);
  EXPECT_EQ(opts.data_size_out, frame.size()) << "probe must not resize the frame";
  return opts.retval;
}

// Sums the per-CPU slots of xgw_probe_cnt.
xgw_probe_counters read_counters(const xdp_probe& skel) {
  const int ncpu = libbpf_num_possible_cpus();
  EXPECT_GT(ncpu, 0);
  std::vector<xgw_probe_counters> per_cpu(ncpu > 0 ? static_cast<size_t>(ncpu) : 1);
  const uint32_t key = XGW_PROBE_CNT_KEY;
  const int err = bpf_map__lookup_elem(skel.maps.xgw_probe_cnt, &key, sizeof(key), per_cpu.data(),
                                       per_cpu.size() * sizeof(xgw_probe_counters), 0);
  EXPECT_EQ(err, 0) << "lookup " XGW_PROBE_CNT_MAP ": " << std::strerror(-err);
  xgw_probe_counters sum{};
  for (const auto& c : per_cpu) {
    sum.packets += c.packets;
    sum.bytes += c.bytes;
  }
  return sum;
}

SkelPtr open_and_load(uint32_t verdict) {
  SkelPtr skel(xdp_probe__open());
  if (!skel) {
    ADD_FAILURE() << "xdp_probe__open: " << std::strerror(errno);
    return nullptr;
  }
  skel->rodata->verdict = verdict;  // only writable between open and load
  if (const int err = xdp_probe__load(skel.get()); err != 0) {
    ADD_FAILURE() << "xdp_probe__load: " << std::strerror(-err);
    return nullptr;
  }
  return skel;
}

TEST(XdpProbe, PassesAndCountsPacketsAndBytes) {
  XGW_REQUIRE_ROOT();
  SkelPtr skel = open_and_load(XDP_PASS);
  ASSERT_TRUE(skel);

  const auto frame = make_udp_frame();
  constexpr int kRuns = 5;
  for (int i = 0; i < kRuns; ++i) EXPECT_EQ(run_once(*skel, frame), XDP_PASS) << "run " << i;

  const xgw_probe_counters sum = read_counters(*skel);
  EXPECT_EQ(sum.packets, uint64_t{kRuns});
  EXPECT_EQ(sum.bytes, uint64_t{kRuns} * frame.size());
}

TEST(XdpProbe, RodataVerdictDrop) {
  XGW_REQUIRE_ROOT();
  SkelPtr skel = open_and_load(XDP_DROP);
  ASSERT_TRUE(skel);

  const auto frame = make_udp_frame();
  EXPECT_EQ(run_once(*skel, frame), XDP_DROP);
  // Dropped frames are still counted: the counter runs before the verdict.
  EXPECT_EQ(read_counters(*skel).packets, 1u);
}

}  // namespace
