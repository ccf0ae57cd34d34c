// xdp_bench: nanoseconds per packet of the xgw XDP programs, measured with
// BPF_PROG_TEST_RUN (`repeat` runs of one frame in the kernel, no NIC), next
// to a parse-only baseline (xdp_baseline.bpf.c). Prints a table and checks
// the targets (PASS/MISS); exits 0 either way, non-zero only when
// it cannot measure (not root, load failure, a program taking the wrong
// path). Needs root (CAP_BPF + CAP_NET_ADMIN).
//
//   xdp_bench [--repeat N] [--runs K] [--max-relations N] [--no-parallel]
//
// The machine is noisy and shared, so every case runs K times, in rounds
// (each round runs every case once, in a fresh order); the table shows the
// median (and the minimum) of ns/packet, the targets the median of the
// per-round ratios. ns/packet is this thread's CPU time around the test run
// divided by N. The packet matches one relation of a generated SPD whose
// sources mix /16, /24 and /32 prefixes (so a trie lookup first tries
// source lengths /32 and /24 and misses before /16 hits: the realistic
// worst case) and whose destinations are disjoint /24../32 blocks. "warm"
// keeps the flow cache (the default); "cold" loads with flow_cache=false:
// the SPD trie on every packet.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "loader/xdp_dataplane.h"
#include "xdp_baseline.skel.h"

namespace {

using xgw::loader::XdpDataplane;
namespace net = xgw::net;

constexpr uint32_t kGw = 1;
// BPF_PROG_TEST_RUN resolves ingress_ifindex to a real device of the
// caller's namespace; loopback (1) always exists.
constexpr int kIfindex = 1;
constexpr uint32_t kConns = 16;  // relations spread over these connections
constexpr uint32_t kKnownSpi = 0x1000;
constexpr uint32_t kUnknownSpi = 0xdead;
// "High" tier for the tier-cost rows: far above what one or two CPUs push
// through BPF_PROG_TEST_RUN (a few Gbit/s of 46-byte packets), far below
// where the nano-byte arithmetic in tier_admit() overflows (~147 Gbit/s).
constexpr uint64_t kHighTierBps = 100'000'000'000ull;

struct Options {
  uint32_t repeat = 1'000'000;
  int runs = 7;
  size_t max_relations = 100'000;
  bool parallel = true;
};

[[noreturn]] void fail(const std::string& msg) {
  throw std::runtime_error(msg);
}

template <typename T>
T take(xgw::loader::Result<T> r, const std::string& what) {
  if (!r) fail(what + ": " + r.error().message());
  return std::move(r).value();
}
void take(const xgw::loader::Result<void>& r, const std::string& what) {
  if (!r) fail(what + ": " + r.error().message());
}

// --- frames -----------------------------------------------------------------

uint16_t ip_checksum(const void* data, size_t len) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons(static_cast<uint16_t>(~sum));
}

// Ethernet + IPv4 (protocol `proto`) + `l4` bytes.
std::vector<uint8_t> ipv4_frame(uint32_t src, uint32_t dst, uint8_t proto,
                                const std::vector<uint8_t>& l4) {
  std::vector<uint8_t> f(sizeof(ethhdr) + sizeof(iphdr) + l4.size());
  ethhdr eth{};
  const uint8_t mac_dst[ETH_ALEN] = {0x02, 0, 0, 0, 0, 0x02};
  const uint8_t mac_src[ETH_ALEN] = {0x02, 0, 0, 0, 0, 0x01};
  std::memcpy(eth.h_dest, mac_dst, ETH_ALEN);
  std::memcpy(eth.h_source, mac_src, ETH_ALEN);
  eth.h_proto = htons(ETH_P_IP);
  iphdr ip{};
  ip.version = 4;
  ip.ihl = 5;
  ip.tot_len = htons(static_cast<uint16_t>(sizeof(iphdr) + l4.size()));
  ip.ttl = 64;
  ip.protocol = proto;
  ip.saddr = htonl(src);
  ip.daddr = htonl(dst);
  ip.check = ip_checksum(&ip, sizeof(ip));
  std::memcpy(f.data(), &eth, sizeof(eth));
  std::memcpy(f.data() + sizeof(eth), &ip, sizeof(ip));
  std::memcpy(f.data() + sizeof(eth) + sizeof(ip), l4.data(), l4.size());
  return f;
}

// A minimum-size (60-byte) UDP frame: 18 bytes of payload.
std::vector<uint8_t> udp_frame(uint32_t src, uint32_t dst) {
  std::vector<uint8_t> l4(sizeof(udphdr) + 18, 'x');
  udphdr u{};
  u.source = htons(4000);
  u.dest = htons(5000);
  u.len = htons(static_cast<uint16_t>(l4.size()));
  std::memcpy(l4.data(), &u, sizeof(u));
  return ipv4_frame(src, dst, IPPROTO_UDP, l4);
}

// ESP: SPI, sequence number, then 64 bytes standing for IV + ciphertext.
std::vector<uint8_t> esp_frame(uint32_t src, uint32_t dst, uint32_t spi) {
  std::vector<uint8_t> l4(8 + 64, 0xab);
  const uint32_t spi_be = htonl(spi), seq_be = htonl(1);
  std::memcpy(l4.data(), &spi_be, 4);
  std::memcpy(l4.data() + 4, &seq_be, 4);
  return ipv4_frame(src, dst, IPPROTO_ESP, l4);
}

// --- measurement ------------------------------------------------------------

// One BPF_PROG_TEST_RUN of `repeat` runs. ns/packet comes from this
// thread's CPU time around the call: sub-nanosecond resolution (the
// kernel's own `duration` is an integer) and, like it, blind to the time
// the thread was preempted. The syscall's fixed cost (~1 us) is < 0.01 ns
// per packet at the default repeat.
double test_run(int prog_fd, const std::vector<uint8_t>& frame, uint32_t repeat, uint32_t want) {
  xdp_md ctx{};
  ctx.data_end = static_cast<uint32_t>(frame.size());
  ctx.ingress_ifindex = kIfindex;
  bpf_test_run_opts o{};
  o.sz = sizeof(o);
  o.data_in = frame.data();
  o.data_size_in = static_cast<uint32_t>(frame.size());
  o.ctx_in = &ctx;
  o.ctx_size_in = sizeof(ctx);
  o.repeat = repeat;
  timespec t0{}, t1{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
  const int err = bpf_prog_test_run_opts(prog_fd, &o);
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
  if (err != 0) fail(std::string("BPF_PROG_TEST_RUN: ") + std::strerror(-err));
  if (o.retval != want)
    fail("verdict " + std::to_string(o.retval) + ", want " + std::to_string(want));
  const double ns = static_cast<double>(t1.tv_sec - t0.tv_sec) * 1e9 +
                    static_cast<double>(t1.tv_nsec - t0.tv_nsec);
  return ns / repeat;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

// --- SPD --------------------------------------------------------------------

net::Cidr v4(uint32_t addr, uint8_t len) {
  net::Cidr c;
  c.addr.family = net::Family::V4;
  const uint32_t mask = len == 0 ? 0 : ~0u << (32 - len);
  const uint32_t be = htonl(addr & mask);
  std::memcpy(c.addr.bytes.data(), &be, 4);
  c.len = len;
  return c;
}

constexpr uint32_t ip4(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  return a << 24 | b << 16 | c << 8 | d;
}

struct Spd {
  std::vector<xgw::loader::SpdRelation> relations;
  uint32_t pkt_src = 0, pkt_dst = 0;  // a packet matching relation n / 2
};

// n relations that cannot overlap: destinations are disjoint blocks (every
// relation's remote is its own), sources mix /16 (30 %), /24 (60 %) and /32
// (10 %) prefixes, many relations per source. Destination sizes: /32 40 %,
// /28 30 %, /26 20 %, /24 10 %, each size class in its own region of
// 100.0.0.0/8 with its blocks shuffled, so the trie is not one dense run.
Spd make_spd(size_t n) {
  struct Class {
    uint8_t len;
    uint32_t base;
  };
  const Class classes[] = {{32, ip4(100, 192, 0, 0)},
                           {28, ip4(100, 128, 0, 0)},
                           {26, ip4(100, 64, 0, 0)},
                           {24, ip4(100, 0, 0, 0)}};
  auto class_of = [](size_t i) -> size_t {
    const size_t m = i % 10;
    return m < 4 ? 0 : m < 7 ? 1 : m < 9 ? 2 : 3;
  };
  std::mt19937 rng(12345);
  std::vector<std::vector<uint32_t>> slots(4);
  for (size_t i = 0; i < n; ++i) slots[class_of(i)].push_back(0);
  for (size_t c = 0; c < 4; ++c) {
    std::iota(slots[c].begin(), slots[c].end(), 0u);
    std::shuffle(slots[c].begin(), slots[c].end(), rng);
  }
  std::vector<size_t> next(4, 0);
  Spd spd;
  spd.relations.reserve(n);
  const size_t target = n / 2;
  for (size_t i = 0; i < n; ++i) {
    const size_t c = class_of(i);
    const uint32_t block = 1u << (32 - classes[c].len);
    const uint32_t dst = classes[c].base + slots[c][next[c]++] * block;
    net::Cidr local;
    const size_t s = (i * 7) % 10;  // decorrelated from the destination class
    if (i == target) {
      local = v4(ip4(10, 200, 0, 0), 16);
      spd.pkt_src = ip4(10, 200, 7, 9);
      spd.pkt_dst = dst + (block > 1 ? 1 : 0);
    } else if (s < 6) {
      const uint32_t k = rng() % 4096;  // 172.16.0.0/12 in /24s
      local = v4(ip4(172, 16 + k / 256, k % 256, 0), 24);
    } else if (s < 9) {
      local = v4(ip4(10, rng() % 256, 0, 0), 16);
    } else {
      const uint32_t k = rng() % 65536;
      local = v4(ip4(192, 168, k / 256, k % 256), 32);
    }
    const auto conn = static_cast<uint32_t>(i % kConns);
    spd.relations.push_back({local, v4(dst, classes[c].len), conn});
  }
  return spd;
}

// --- data plane set-ups -------------------------------------------------------

struct Lan {
  XdpDataplane dp;
  std::vector<uint8_t> frame;
};

Lan make_lan(size_t relations, bool flow_cache, bool tier_percpu, uint64_t tier_bps) {
  xgw::loader::LoadOptions lo;
  lo.pin_dir = "";
  lo.flow_cache = flow_cache;
  lo.tier_percpu = tier_percpu;
  XdpDataplane dp = take(XdpDataplane::open(lo), "open data plane");
  take(dp.set_interface(kIfindex, kGw, xgw::loader::IfRole::Lan), "set_interface");
  xgw::loader::GatewayConfig g;
  g.tier_bps = tier_bps;
  take(dp.set_gateway(kGw, g), "set_gateway");
  const Spd spd = make_spd(relations);
  take(dp.replace_spd(kGw, spd.relations), "replace_spd");
  for (uint32_t c = 0; c < kConns; ++c) {
    xgw::loader::ConnectionEntry ce;
    ce.gw_idx = kGw;
    ce.tunnels = {c, 0};
    take(dp.set_connection(c, ce), "set_connection");
    xgw::loader::TunnelEntry te;
    te.conn_idx = c;
    te.backend = xgw::loader::Backend::Xfrm;
    te.sa_ready = true;
    take(dp.set_tunnel(c, te), "set_tunnel");
  }
  return {std::move(dp), udp_frame(spd.pkt_src, spd.pkt_dst)};
}

// --- cases -------------------------------------------------------------------

// One row of the table. Cases of a group are measured in interleaved
// rounds (round r runs every case once), so a burst of load from other
// users of the machine spreads over all rows instead of skewing one.
struct Case {
  std::string name;
  std::string relations;
  int prog_fd = -1;
  std::vector<uint8_t> frame;
  uint32_t want = XDP_PASS;
  // Proof of path: the data plane's reason counter `reason` must move by
  // exactly the number of runs (none for the baselines).
  const XdpDataplane* dp = nullptr;
  bool is_drop = false;
  size_t reason = 0;
  uint64_t reason_before = 0;
  uint64_t over_tier_before = 0;
  uint64_t executions = 0;
  std::vector<double> samples;  // one per round
  double ns = 0;                // median
  double min = 0;
};

uint64_t reason_now(const XdpDataplane& dp, bool is_drop, size_t reason) {
  const auto r = take(dp.reasons(kGw), "reasons");
  return is_drop ? r.drop[reason] : r.pass[reason];
}

void expect_path(Case& c) {
  c.ns = median(c.samples);
  c.min = *std::min_element(c.samples.begin(), c.samples.end());
  if (!c.dp) return;
  const uint64_t moved = reason_now(*c.dp, c.is_drop, c.reason) - c.reason_before;
  const std::string label = std::string(c.is_drop ? "drop." : "pass.") +
                            std::string(c.is_drop ? xgw::loader::drop_reason_name(c.reason)
                                                  : xgw::loader::pass_reason_name(c.reason));
  if (moved != c.executions)
    fail(c.name + ": " + label + " moved by " + std::to_string(moved) + ", expected " +
         std::to_string(c.executions) + " (the packet took another path)");
  if (reason_now(*c.dp, true, XGW_DROP_OVER_TIER) != c.over_tier_before)
    fail(c.name + ": the tier dropped packets; raise kHighTierBps");
}

void arm(Case& c) {
  if (!c.dp) return;
  c.reason_before = reason_now(*c.dp, c.is_drop, c.reason);
  c.over_tier_before = reason_now(*c.dp, true, XGW_DROP_OVER_TIER);
}

constexpr uint32_t kWarmup = 10'000;

// Every case on this thread, interleaved rounds.
void measure_serial(std::vector<Case*>& cases, const Options& o) {
  for (Case* c : cases) {
    arm(*c);
    test_run(c->prog_fd, c->frame, kWarmup, c->want);  // caches, flow cache
    c->executions += kWarmup;
  }
  // A fresh order each round: no row always follows the same neighbour.
  std::mt19937 rng(7);
  std::vector<Case*> order = cases;
  for (int r = 0; r < o.runs; ++r) {
    std::shuffle(order.begin(), order.end(), rng);
    for (Case* c : order) {
      c->samples.push_back(test_run(c->prog_fd, c->frame, o.repeat, c->want));
      c->executions += o.repeat;
    }
  }
  for (Case* c : cases) expect_path(*c);
}

// Every case on all `ncpus` CPUs at once (one pinned thread each, released
// together): a sample is the mean over CPUs of their ns/packet.
void measure_parallel(std::vector<Case*>& cases, const Options& o, int ncpus) {
  auto on_all_cpus = [&](Case& c, uint32_t repeat) {
    std::atomic<int> ready{0};
    std::vector<double> ns(static_cast<size_t>(ncpus));
    std::vector<std::string> err(static_cast<size_t>(ncpus));
    std::vector<std::thread> threads;
    for (int cpu = 0; cpu < ncpus; ++cpu) {
      threads.emplace_back([&, cpu] {
        pin_to_cpu(cpu);
        ready.fetch_add(1);
        while (ready.load() < ncpus) std::this_thread::yield();
        try {
          ns[static_cast<size_t>(cpu)] = test_run(c.prog_fd, c.frame, repeat, c.want);
        } catch (const std::exception& e) {
          err[static_cast<size_t>(cpu)] = e.what();
        }
      });
    }
    for (auto& t : threads) t.join();
    for (const auto& e : err)
      if (!e.empty()) fail(c.name + ": " + e);
    c.executions += uint64_t{repeat} * static_cast<uint64_t>(ncpus);
    return std::accumulate(ns.begin(), ns.end(), 0.0) / ncpus;
  };
  for (Case* c : cases) {
    arm(*c);
    on_all_cpus(*c, kWarmup);
  }
  for (int r = 0; r < o.runs; ++r)
    for (Case* c : cases) c->samples.push_back(on_all_cpus(*c, o.repeat));
  for (Case* c : cases) expect_path(*c);
}

std::string thousands(size_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

int bench(const Options& o) {
  const int ncpus = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  utsname u{};
  uname(&u);
  std::printf(
      "xdp_bench: kernel %s, %d online CPUs, BPF_PROG_TEST_RUN repeat %u, median of %d runs\n",
      u.release, ncpus, o.repeat, o.runs);
  std::fflush(stdout);

  // Everything is set up first (all data planes alive at once, a few tens
  // of MB each), then measured.
  std::unique_ptr<xdp_baseline, decltype(&xdp_baseline__destroy)> base(
      xdp_baseline__open_and_load(), &xdp_baseline__destroy);
  if (!base) fail(std::string("load xdp_baseline: ") + std::strerror(errno));
  std::vector<std::unique_ptr<Lan>> planes;
  auto lan = [&](size_t n, bool cache, bool percpu, uint64_t tier) -> Lan& {
    planes.push_back(std::make_unique<Lan>(make_lan(n, cache, percpu, tier)));
    return *planes.back();
  };
  auto lan_case = [](Lan& l, std::string name, size_t n) {
    Case c;
    c.name = std::move(name);
    c.relations = thousands(n);
    c.prog_fd = l.dp.lan_prog_fd();
    c.frame = l.frame;
    c.dp = &l.dp;
    c.reason = XGW_PASS_XFRM;  // matched, SA ready, handed to XFRM
    return c;
  };

  std::vector<size_t> sizes;
  for (size_t n : {size_t{10}, size_t{1'000}, size_t{10'000}, size_t{100'000}})
    if (n <= o.max_relations) sizes.push_back(n);
  const size_t tier_rel = std::min<size_t>(10'000, o.max_relations);

  std::vector<Case> cases;
  cases.reserve(32);
  const auto frame = lan(10, true, false, 0).frame;  // any matching UDP frame
  {
    Case c;
    c.name = "baseline: empty program (test-run floor)";
    c.relations = "-";
    c.prog_fd = bpf_program__fd(base->progs.xgw_bench_pass);
    c.frame = frame;
    cases.push_back(c);
    c.name = "baseline: parse only (xgw_parse.h)";
    c.prog_fd = bpf_program__fd(base->progs.xgw_bench_parse);
    cases.push_back(c);
    c.name = "baseline: parse + bpf_ktime_get_ns()";
    c.prog_fd = bpf_program__fd(base->progs.xgw_bench_clock);
    cases.push_back(c);
    c.name = "baseline: parse + bpf_ktime_get_coarse_ns()";
    c.prog_fd = bpf_program__fd(base->progs.xgw_bench_coarse_clock);
    cases.push_back(c);
  }
  const size_t first_warm = cases.size();
  for (size_t n : sizes)
    cases.push_back(lan_case(lan(n, true, false, 0), "lan classifier, flow cache warm", n));
  const size_t first_cold = cases.size();
  for (size_t n : sizes)
    cases.push_back(
        lan_case(lan(n, false, false, 0), "lan classifier, cold (flow_cache=false)", n));
  {
    Lan& w = lan(10, true, false, 0);
    take(w.dp.set_interface(kIfindex, kGw, xgw::loader::IfRole::Wan), "set_interface wan");
    take(w.dp.add_sa(kKnownSpi, 0, kGw), "add_sa");
    const uint32_t peer = ip4(203, 0, 113, 20), self = ip4(198, 51, 100, 10);
    Case c;
    c.relations = "-";
    c.prog_fd = w.dp.wan_prog_fd();
    c.dp = &w.dp;
    c.name = "wan ESP, known SPI (counted, passed)";
    c.frame = esp_frame(peer, self, kKnownSpi);
    c.reason = XGW_PASS_ESP_IN;
    cases.push_back(c);
    c.name = "wan ESP, unknown SPI (dropped)";
    c.frame = esp_frame(peer, self, kUnknownSpi);
    c.want = XDP_DROP;
    c.is_drop = true;
    c.reason = XGW_DROP_UNKNOWN_SPI;
    cases.push_back(c);
  }
  struct Variant {
    const char* name;
    uint64_t tier;
    bool percpu;
  };
  const Variant variants[] = {{"lan warm, no tier", 0, false},
                              {"lan warm, tier: shared bucket + credit", kHighTierBps, false},
                              {"lan warm, tier: per-CPU shares", kHighTierBps, true}};
  const size_t first_tier = cases.size();
  for (const auto& v : variants)
    cases.push_back(lan_case(lan(tier_rel, true, v.percpu, v.tier), v.name, tier_rel));
  const size_t first_par = cases.size();
  const bool parallel = o.parallel && ncpus > 1;
  if (parallel) {
    for (size_t i = first_tier; i < first_par; ++i) {
      Case c = cases[i];
      c.name += ", " + std::to_string(ncpus) + " CPUs at once";
      cases.push_back(c);
    }
  }

  std::vector<Case*> serial, par;
  for (size_t i = 0; i < cases.size(); ++i) (i < first_par ? serial : par).push_back(&cases[i]);
  std::fprintf(stderr, "xdp_bench: measuring %zu cases...\n", cases.size());
  pin_to_cpu(0);  // one CPU for every serial row: no migrations between rows
  measure_serial(serial, o);
  if (parallel) measure_parallel(par, o, ncpus);

  const Case& base_row = cases[1];
  const double baseline = base_row.ns;
  std::printf("\n%-52s %9s %8s %7s %11s\n", "case", "relations", "ns/pkt", "(min)", "x baseline");
  std::printf("%s\n", std::string(91, '-').c_str());
  for (const auto& c : cases)
    std::printf("%-52s %9s %8.1f %7.1f %10.2fx\n", c.name.c_str(), c.relations.c_str(), c.ns, c.min,
                c.ns / baseline);

  // Targets compare two rows round by round (measured moments apart, so a
  // burst of load from elsewhere tends to hit both), then take the median.
  auto paired = [&](const Case& a, const Case& b) {
    std::vector<double> r;
    for (size_t i = 0; i < a.samples.size() && i < b.samples.size(); ++i)
      r.push_back(a.samples[i] / b.samples[i]);
    const auto [lo, hi] = std::minmax_element(r.begin(), r.end());
    return std::array<double, 3>{median(r), *lo, *hi};
  };
  std::printf("\ntargets (baseline = parse only; median of per-round ratios [range]):\n");
  auto row = [&](size_t first, size_t n) -> const Case* {
    for (size_t i = 0; i < sizes.size(); ++i)
      if (sizes[i] == n) return &cases[first + i];
    return nullptr;
  };
  if (const Case* c = row(first_warm, 10'000)) {
    const auto r = paired(*c, base_row);
    std::printf(
        "  classifier (warm) at 10,000 relations <= 1.5x baseline: %.2fx [%.2f..%.2f]"
        " (by min %.2fx)  %s\n",
        r[0], r[1], r[2], c->min / base_row.min, r[0] <= 1.5 ? "PASS" : "MISS");
  }
  if (const Case* a = row(first_warm, 10), *b = row(first_warm, 100'000); a && b) {
    const auto r = paired(*b, *a);
    std::printf(
        "  classifier (warm) from 10 to 100,000 relations <= +10 %%: %+.1f %% [%+.0f..%+.0f]"
        " (by min %+.1f %%)  %s\n",
        (r[0] - 1) * 100, (r[1] - 1) * 100, (r[2] - 1) * 100, (b->min / a->min - 1) * 100,
        r[0] <= 1.1 ? "PASS" : "MISS");
  }
  if (const Case* a = row(first_cold, 10), *b = row(first_cold, 100'000); a && b) {
    const auto r = paired(*b, *a);
    std::printf(
        "  (info) cold classifier from 10 to 100,000 relations: %+.1f %% [%+.0f..%+.0f]"
        " (by min %+.1f %%)\n",
        (r[0] - 1) * 100, (r[1] - 1) * 100, (r[2] - 1) * 100, (b->min / a->min - 1) * 100);
  }
  const Case& lock = cases[first_tier + 1];
  const Case& pc = cases[first_tier + 2];
  std::printf("  (info) tier cost over no tier, 1 CPU: shared %+.1f ns, per-CPU %+.1f ns\n",
              lock.ns - cases[first_tier].ns, pc.ns - cases[first_tier].ns);
  if (parallel)
    std::printf("  (info) tier cost over no tier, %d CPUs: shared %+.1f ns, per-CPU %+.1f ns\n",
                ncpus, cases[first_par + 1].ns - cases[first_par].ns,
                cases[first_par + 2].ns - cases[first_par].ns);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](uint64_t lo, uint64_t hi) -> uint64_t {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "xdp_bench: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      const uint64_t v = std::strtoull(argv[++i], nullptr, 10);
      if (v < lo || v > hi) {
        std::fprintf(stderr, "xdp_bench: %s must be in [%llu, %llu]\n", a.c_str(),
                     static_cast<unsigned long long>(lo), static_cast<unsigned long long>(hi));
        std::exit(2);
      }
      return v;
    };
    if (a == "--repeat")
      o.repeat = static_cast<uint32_t>(value(1'000, 10'000'000));
    else if (a == "--runs")
      o.runs = static_cast<int>(value(1, 50));
    else if (a == "--max-relations")
      o.max_relations = value(10, 100'000);
    else if (a == "--no-parallel")
      o.parallel = false;
    else {
      std::fprintf(
          stderr, "usage: xdp_bench [--repeat N] [--runs K] [--max-relations N] [--no-parallel]\n");
      return 2;
    }
  }
  if (geteuid() != 0) {
    std::fprintf(stderr, "xdp_bench: needs root (BPF_PROG_TEST_RUN, map creation)\n");
    return 1;
  }
  try {
    return bench(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "xdp_bench: %s\n", e.what());
    return 1;
  }
}
