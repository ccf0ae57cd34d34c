// The XDP data plane (bpf/xgw_dp.bpf.c) through BPF_PROG_TEST_RUN, loaded
// and programmed by loader/ exactly as xgwd does it (nothing pinned, nothing
// attached): every drop and pass reason, parsing edge cases, SPD matching
// semantics and swaps, the flow cache, active-tunnel flips, tier policing
// (locked bucket and per-CPU shares) and acquire events. Each case asserts
// the verdict and the exact deltas of every gateway/tunnel counter.
//
// Frames run with an xdp_md ctx_in {data 0, data_end = frame length,
// ingress_ifindex = 1 (lo), rx_queue_index 0}; lo's ifindex is what
// set_interface() registers, so the programs find "their" interface. The
// kernel insists on data_meta = 0, data_end = data_size_in, egress_ifindex 0,
// an existing device and one of its registered rx queues, and frames of at
// least 14 bytes (ETH_HLEN); test_run returns the program's verdict without
// acting on it (a redirect is reported as XDP_REDIRECT, not performed).
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "loader/xdp_dataplane.h"
#include "packet_builder.h"
#include "privileged.h"

namespace {

using xgw::loader::AcquireEvent;
using xgw::loader::Backend;
using xgw::loader::ConnectionEntry;
using xgw::loader::GatewayConfig;
using xgw::loader::IfRole;
using xgw::loader::LoadOptions;
using xgw::loader::Reasons;
using xgw::loader::SpdRelation;
using xgw::loader::Traffic;
using xgw::loader::TunnelEntry;
using xgw::loader::XdpDataplane;
using xgw::test::Bytes;
using xgw::test::PacketBuilder;

constexpr int kLo = 1;  // loopback's ifindex in every network namespace
constexpr uint32_t kGw = 0;
constexpr uint32_t kOtherGw = 1;
constexpr int kNone = -1;  // "no reason counter moves"

// Every reason in xgw_dp_abi.h has cases below; a new one needs its own.
static_assert(XGW_DROP__MAX == 7, "new drop reason: add its cases to xgw_dp_test.cpp");
static_assert(XGW_PASS__MAX == 10, "new pass reason: add its cases to xgw_dp_test.cpp");

// Asserts a loader call succeeded (evaluates `expr` once).
#define XGW_ASSERT_OK(expr)                                                       \
  do {                                                                            \
    const auto xgw_r_ = (expr);                                                   \
    ASSERT_TRUE(xgw_r_.has_value()) << #expr << ": " << xgw_r_.error().message(); \
  } while (0)

std::string verdict_name(uint32_t v) {
  switch (v) {
    case XDP_ABORTED:
      return "XDP_ABORTED";
    case XDP_DROP:
      return "XDP_DROP";
    case XDP_PASS:
      return "XDP_PASS";
    case XDP_TX:
      return "XDP_TX";
    case XDP_REDIRECT:
      return "XDP_REDIRECT";
    default:
      return "verdict " + std::to_string(v);
  }
}

SpdRelation rel(std::string_view local, std::string_view remote, uint32_t conn) {
  auto l = xgw::net::Cidr::parse(local);
  auto r = xgw::net::Cidr::parse(remote);
  EXPECT_TRUE(l.has_value()) << local;
  EXPECT_TRUE(r.has_value()) << remote;
  return SpdRelation{l ? *l : xgw::net::Cidr{}, r ? *r : xgw::net::Cidr{}, conn};
}

xgw::net::IpAddr addr(std::string_view s) {
  auto a = xgw::net::IpAddr::parse(s);
  EXPECT_TRUE(a.has_value()) << s;
  return a.value_or(xgw::net::IpAddr{});
}

bool is_v6(std::string_view a) {
  return a.find(':') != std::string_view::npos;
}

// A plaintext UDP datagram src -> dst of `l3_len` bytes in all.
Bytes plain(std::string_view src, std::string_view dst, size_t l3_len = 100) {
  PacketBuilder b;
  const size_t hdr = (is_v6(src) ? xgw::test::kIpv6HeaderLen : xgw::test::kIpv4HeaderLen) +
                     xgw::test::kUdpHeaderLen;
  if (is_v6(src)) {
    b.ipv6(src, dst);
  } else {
    b.ipv4(src, dst);
  }
  b.udp(40000, 5201, l3_len - hdr);
  return b.build();
}

Traffic tx(uint64_t bytes, uint64_t packets = 1) {
  return Traffic{packets, bytes, 0, 0};
}
Traffic rx(uint64_t bytes, uint64_t packets = 1) {
  return Traffic{0, 0, packets, bytes};
}

// What one frame must do: the verdict, the single reason counter that moves
// by one (or none), and the traffic deltas of the gateway and of every
// tunnel the test programmed (tunnels not listed must not move).
struct Want {
  uint32_t verdict = XDP_PASS;
  int drop = kNone;  // XGW_DROP_*
  int pass = kNone;  // XGW_PASS_*
  Traffic gw{};
  std::map<uint32_t, Traffic> tunnels{};
  uint32_t gw_idx = kGw;
};

Want dropped(int reason, uint32_t gw = kGw) {
  Want w;
  w.verdict = XDP_DROP;
  w.drop = reason;
  w.gw_idx = gw;
  return w;
}
Want passed(int reason, uint32_t gw = kGw) {
  Want w;
  w.verdict = XDP_PASS;
  w.pass = reason;
  w.gw_idx = gw;
  return w;
}
// Plaintext carried out through a tunnel: tx counted on gateway and tunnel.
Want carried(int reason, uint32_t tunnel, uint64_t l3_len, uint32_t gw = kGw) {
  Want w = passed(reason, gw);
  w.gw = tx(l3_len);
  w.tunnels[tunnel] = tx(l3_len);
  return w;
}
Want xfrm(uint32_t tunnel, uint64_t l3_len, uint32_t gw = kGw) {
  return carried(XGW_PASS_XFRM, tunnel, l3_len, gw);
}
// ESP for a known SPI: rx counted on gateway and tunnel.
Want esp_in(uint32_t tunnel, uint64_t l3_len, uint32_t gw = kGw) {
  Want w = passed(XGW_PASS_ESP_IN, gw);
  w.gw = rx(l3_len);
  w.tunnels[tunnel] = rx(l3_len);
  return w;
}
// Nothing counted at all (not our interface, inactive gateway).
Want untouched(uint32_t gw = kGw) {
  Want w;
  w.verdict = XDP_PASS;
  w.gw_idx = gw;
  return w;
}

struct RunResult {
  int err = 0;  // negative errno from bpf_prog_test_run_opts
  uint32_t retval = 0;
};

// BPF_PROG_TEST_RUN one frame. XDP takes struct xdp_md as ctx_in: data and
// data_meta must be 0, data_end the frame length; ingress_ifindex must name
// a device of this netns and rx_queue_index one of its registered queues.
RunResult run_frame(int prog_fd, const Bytes& frame, uint32_t ifindex = kLo, uint32_t rxq = 0,
                    uint32_t repeat = 1) {
  xdp_md ctx{};
  ctx.data = 0;
  ctx.data_end = static_cast<uint32_t>(frame.size());
  ctx.ingress_ifindex = ifindex;
  ctx.rx_queue_index = rxq;
  Bytes out(frame.size() + 512);
  bpf_test_run_opts opts{};
  opts.sz = sizeof(opts);
  opts.data_in = frame.data();
  opts.data_size_in = static_cast<uint32_t>(frame.size());
  opts.data_out = out.data();
  opts.data_size_out = static_cast<uint32_t>(out.size());
  opts.ctx_in = &ctx;
  opts.ctx_size_in = sizeof(ctx);
  opts.repeat = repeat;
  RunResult r;
  r.err = bpf_prog_test_run_opts(prog_fd, &opts);
  r.retval = opts.retval;
  return r;
}

// Restricts the calling thread to one CPU (test_run executes the program on
// the caller's CPU) and restores the old mask on destruction.
class CpuPin {
 public:
  explicit CpuPin(int cpu) {
    ok_ = sched_getaffinity(0, sizeof(old_), &old_) == 0;
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    ok_ = ok_ && sched_setaffinity(0, sizeof(s), &s) == 0 && sched_getcpu() == cpu;
  }
  ~CpuPin() { sched_setaffinity(0, sizeof(old_), &old_); }
  CpuPin(const CpuPin&) = delete;
  CpuPin& operator=(const CpuPin&) = delete;
  bool ok() const { return ok_; }

 private:
  cpu_set_t old_{};
  bool ok_ = false;
};

class XgwDp : public ::testing::Test {
 protected:
  void SetUp() override {
    XGW_REQUIRE_ROOT();
    open_dp(LoadOptions{.pin_dir = ""});
  }

  // (Re)loads the data plane and registers lo as gateway kGw's LAN side.
  void open_dp(const LoadOptions& opts) {
    dp_.reset();
    tunnels_.clear();
    conns_.clear();
    auto r = XdpDataplane::open(opts);
    ASSERT_TRUE(r.has_value()) << "XdpDataplane::open: " << r.error().message();
    dp_.emplace(std::move(r).value());
    ASSERT_GE(dp_->lan_prog_fd(), 0);
    ASSERT_GE(dp_->wan_prog_fd(), 0);
    XGW_ASSERT_OK(dp_->set_gateway(kGw, GatewayConfig{}));
    XGW_ASSERT_OK(dp_->set_interface(kLo, kGw, IfRole::Lan));
    if_gw_ = kGw;
    if_role_ = IfRole::Lan;
  }

  XdpDataplane& dp() { return *dp_; }

  // --- Programming ----------------------------------------------------
  void tunnel(uint32_t idx, uint32_t conn, bool sa_ready = true, Backend b = Backend::Xfrm) {
    XGW_ASSERT_OK(dp().set_tunnel(idx, TunnelEntry{conn, b, sa_ready}));
    tunnels_.insert(idx);
  }
  // A connection of `gw` over tunnels (master, optional standby), each
  // with an SA, XFRM backend.
  void conn(uint32_t idx, uint32_t master, std::optional<uint32_t> standby = std::nullopt,
            uint32_t gw = kGw) {
    tunnel(master, idx);
    if (standby) tunnel(*standby, idx);
    ConnectionEntry c;
    c.gw_idx = gw;
    c.active = 0;
    c.tunnels = {master, standby.value_or(0)};
    c.ntunnels = standby ? 2 : 1;
    XGW_ASSERT_OK(dp().set_connection(idx, c));
    conns_[idx] = c;
  }
  uint32_t spd(const std::vector<SpdRelation>& rels, uint32_t gw = kGw) {
    auto r = dp().replace_spd(gw, rels);
    EXPECT_TRUE(r.has_value()) << "replace_spd: " << r.error().message();
    return r ? *r : 0;
  }
  void flip(uint32_t conn_idx, uint32_t active) {
    XGW_ASSERT_OK(dp().set_active_tunnel(conn_idx, active));
    conns_[conn_idx].active = active;
  }
  uint32_t active_tunnel(uint32_t conn_idx) {
    const auto& c = conns_.at(conn_idx);
    return c.tunnels[c.active & 1];
  }
  void interface(uint32_t gw, IfRole role) {
    if (gw == if_gw_ && role == if_role_) return;
    XGW_ASSERT_OK(dp().set_interface(kLo, gw, role));
    if_gw_ = gw;
    if_role_ = role;
  }

  // --- Reading --------------------------------------------------------
  struct Snapshot {
    Reasons reasons;
    Traffic gw;
    std::map<uint32_t, Traffic> tunnels;
  };
  Snapshot snapshot(uint32_t gw) {
    Snapshot s;
    auto r = dp().reasons(gw);
    EXPECT_TRUE(r.has_value()) << "reasons: " << r.error().message();
    if (r) s.reasons = *r;
    auto g = dp().gateway_traffic(gw);
    EXPECT_TRUE(g.has_value()) << "gateway_traffic: " << g.error().message();
    if (g) s.gw = *g;
    for (uint32_t t : tunnels_) {
      auto tt = dp().tunnel_traffic(t);
      EXPECT_TRUE(tt.has_value()) << "tunnel_traffic: " << tt.error().message();
      if (tt) s.tunnels[t] = *tt;
    }
    return s;
  }
  std::vector<AcquireEvent> events(int timeout_ms) {
    std::vector<AcquireEvent> out;
    auto r = dp().poll_events(timeout_ms, [&](const AcquireEvent& e) { out.push_back(e); });
    EXPECT_TRUE(r.has_value()) << "poll_events: " << r.error().message();
    if (r) {
      EXPECT_EQ(*r, out.size()) << "poll_events count vs callbacks";
    }
    return out;
  }

  static void expect_traffic(const Traffic& before, const Traffic& after, const Traffic& want,
                             const std::string& what) {
    EXPECT_EQ(after.tx_packets - before.tx_packets, want.tx_packets) << what << " tx_packets";
    EXPECT_EQ(after.tx_bytes - before.tx_bytes, want.tx_bytes) << what << " tx_bytes";
    EXPECT_EQ(after.rx_packets - before.rx_packets, want.rx_packets) << what << " rx_packets";
    EXPECT_EQ(after.rx_bytes - before.rx_bytes, want.rx_bytes) << what << " rx_bytes";
  }

  void expect_deltas(const Snapshot& before, const Snapshot& after, const Want& w) {
    for (size_t i = 0; i < XGW_DROP__MAX; ++i) {
      const uint64_t want = static_cast<int>(i) == w.drop ? 1 : 0;
      EXPECT_EQ(after.reasons.drop[i] - before.reasons.drop[i], want)
          << "drop[" << xgw::loader::drop_reason_name(i) << "]";
    }
    for (size_t i = 0; i < XGW_PASS__MAX; ++i) {
      const uint64_t want = static_cast<int>(i) == w.pass ? 1 : 0;
      EXPECT_EQ(after.reasons.pass[i] - before.reasons.pass[i], want)
          << "pass[" << xgw::loader::pass_reason_name(i) << "]";
    }
    expect_traffic(before.gw, after.gw, w.gw, "gateway " + std::to_string(w.gw_idx));
    for (const auto& [t, a] : after.tunnels) {
      const auto it = w.tunnels.find(t);
      expect_traffic(before.tunnels.at(t), a, it == w.tunnels.end() ? Traffic{} : it->second,
                     "tunnel " + std::to_string(t));
    }
    for (const auto& [t, unused] : w.tunnels) {
      EXPECT_TRUE(after.tunnels.count(t)) << "tunnel " << t << " was never programmed";
    }
  }

  // Runs one frame through the LAN or WAN program with lo registered as
  // gateway w.gw_idx's side, and checks verdict and counter deltas.
  void send(IfRole side, const Bytes& frame, const Want& w) {
    interface(w.gw_idx, side);
    const Snapshot before = snapshot(w.gw_idx);
    const int fd = side == IfRole::Lan ? dp().lan_prog_fd() : dp().wan_prog_fd();
    const RunResult r = run_frame(fd, frame);
    ASSERT_EQ(r.err, 0) << "bpf_prog_test_run_opts: " << std::strerror(-r.err);
    EXPECT_EQ(verdict_name(r.retval), verdict_name(w.verdict));
    const Snapshot after = snapshot(w.gw_idx);
    expect_deltas(before, after, w);
  }
  void lan(const Bytes& frame, const Want& w) { send(IfRole::Lan, frame, w); }
  void wan(const Bytes& frame, const Want& w) { send(IfRole::Wan, frame, w); }

  // A LAN packet that must be carried by connection `c` (XFRM, counted on
  // the gateway and c's active tunnel), or by none (NO_MATCH pass).
  void expect_class(std::string_view src, std::string_view dst, std::optional<uint32_t> c,
                    uint32_t gw = kGw) {
    SCOPED_TRACE(std::string(src) + " -> " + std::string(dst) + " expects " +
                 (c ? "conn " + std::to_string(*c) : std::string("no match")));
    constexpr size_t kLen = 100;
    const Bytes f = plain(src, dst, kLen);
    lan(f, c ? xfrm(active_tunnel(*c), kLen, gw) : passed(XGW_PASS_NO_MATCH, gw));
  }

  std::optional<XdpDataplane> dp_;
  std::set<uint32_t> tunnels_;
  std::map<uint32_t, ConnectionEntry> conns_;
  uint32_t if_gw_ = kGw;
  IfRole if_role_ = IfRole::Lan;
};

// --- The packet builder itself (no privileges needed) -------------------

TEST(PacketBuilder, Ipv4HeaderFieldsAndChecksum) {
  const PacketBuilder b =
      PacketBuilder().ipv4("10.0.0.1", "10.0.0.2").ip_options({0x94, 0x04, 0, 0, 1}).udp(1, 2, 10);
  const Bytes f = b.build();
  ASSERT_EQ(f.size(), 14u + 28 + 8 + 10);
  EXPECT_EQ(b.l3_len(), 28u + 8 + 10);
  EXPECT_EQ(f[12], 0x08);
  EXPECT_EQ(f[13], 0x00);
  EXPECT_EQ(f[14], 0x47);  // version 4, IHL 7
  EXPECT_EQ(f[16] << 8 | f[17], 46);
  // A correct header sums to 0xffff (RFC 1071).
  uint32_t sum = 0;
  for (size_t i = 14; i < 14 + 28; i += 2) sum += static_cast<uint32_t>(f[i] << 8 | f[i + 1]);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  EXPECT_EQ(sum, 0xffffu);
}

TEST(PacketBuilder, VlanFragmentsAndTruncation) {
  const Bytes v =
      PacketBuilder().vlan(42).ipv6("fd00::1", "fd00::2").fragment(185, false).esp(1, 1, 0).build();
  ASSERT_EQ(v.size(), 18u + 40 + 8 + 8);
  EXPECT_EQ(v[12] << 8 | v[13], 0x8100);
  EXPECT_EQ(v[14] << 8 | v[15], 42);
  EXPECT_EQ(v[16] << 8 | v[17], 0x86dd);
  EXPECT_EQ(v[18 + 6], 44);                   // next header: fragment
  EXPECT_EQ(v[18 + 4] << 8 | v[18 + 5], 16);  // payload_len
  EXPECT_EQ(v[18 + 40], 50);                  // fragment header's next: ESP
  EXPECT_EQ(v[18 + 42] << 8 | v[18 + 43], 185 << 3);
  EXPECT_EQ(xgw::test::truncate_frame(v, 16).size(), 16u);

  const Bytes k = PacketBuilder().ipv4("1.2.3.4", "5.6.7.8").natt_keepalive().build();
  ASSERT_EQ(k.size(), 14u + 20 + 8 + 1);
  EXPECT_EQ(k.back(), 0xff);
  const Bytes ike = PacketBuilder().ipv4("1.2.3.4", "5.6.7.8").ike(4500).build();
  EXPECT_EQ(ike[14 + 20 + 2] << 8 | ike[14 + 20 + 3], 4500);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(ike[14 + 28 + i], 0) << "non-ESP marker";
}

// The metric labels of the reasons: present, distinct, Prometheus-safe.
TEST(ReasonNames, DistinctLabels) {
  std::set<std::string> seen;
  auto check = [&](std::string_view n) {
    EXPECT_FALSE(n.empty());
    EXPECT_EQ(n.find_first_not_of("abcdefghijklmnopqrstuvwxyz_"), std::string_view::npos) << n;
    EXPECT_TRUE(seen.insert(std::string(n)).second) << "duplicate label " << n;
  };
  for (size_t i = 0; i < XGW_DROP__MAX; ++i) check(xgw::loader::drop_reason_name(i));
  seen.clear();
  for (size_t i = 0; i < XGW_PASS__MAX; ++i) check(xgw::loader::pass_reason_name(i));
  EXPECT_EQ(xgw::loader::drop_reason_name(XGW_DROP_UNKNOWN_SPI), "unknown_spi");
  EXPECT_EQ(xgw::loader::pass_reason_name(XGW_PASS_NATT_KEEPALIVE), "natt_keepalive");
  EXPECT_EQ(xgw::loader::drop_reason_name(XGW_DROP__MAX), "?");
}

// --- Test-run plumbing ----------------------------------------------------

// Another device of this netns (not registered with the data plane).
std::optional<uint32_t> other_ifindex() {
  std::optional<uint32_t> found;
  if (struct if_nameindex* all = if_nameindex()) {
    for (struct if_nameindex* i = all; i->if_index != 0; ++i) {
      if (static_cast<int>(i->if_index) != kLo) {
        found = i->if_index;
        break;
      }
    }
    if_freenameindex(all);
  }
  return found;
}

TEST_F(XgwDp, TestRunContextAndFrameLimits) {
  XGW_REQUIRE_ROOT();
  conn(1, 10);
  spd({rel("10.0.0.0/24", "192.168.0.0/24", 1)});
  const Bytes f = plain("10.0.0.5", "192.168.0.9", 100);
  lan(f, xfrm(10, 100));

  const Snapshot before = snapshot(kGw);
  // Shorter than an Ethernet header: the kernel refuses the run itself, so
  // a cut inside the 14-byte Ethernet header never reaches XDP (cuts inside
  // a VLAN tag do: see DropTruncated).
  EXPECT_EQ(run_frame(dp().lan_prog_fd(), xgw::test::truncate_frame(f, 13)).err, -EINVAL);
  EXPECT_EQ(run_frame(dp().wan_prog_fd(), xgw::test::truncate_frame(f, 0)).err, -EINVAL);
  // lo has one receive queue; an rx_queue_index past it is refused.
  EXPECT_EQ(run_frame(dp().lan_prog_fd(), f, kLo, 1).err, -EINVAL);
  expect_deltas(before, snapshot(kGw), untouched());

  // Without ctx_in the kernel runs the frame as received on queue 0 of
  // the netns' loopback: ingress_ifindex is lo's, so it is counted too.
  {
    Bytes out(f.size() + 512);
    bpf_test_run_opts opts{};
    opts.sz = sizeof(opts);
    opts.data_in = f.data();
    opts.data_size_in = static_cast<uint32_t>(f.size());
    opts.data_out = out.data();
    opts.data_size_out = static_cast<uint32_t>(out.size());
    opts.repeat = 1;
    const Snapshot b = snapshot(kGw);
    ASSERT_EQ(bpf_prog_test_run_opts(dp().lan_prog_fd(), &opts), 0);
    EXPECT_EQ(verdict_name(opts.retval), verdict_name(XDP_PASS));
    expect_deltas(b, snapshot(kGw), xfrm(10, 100));
  }

  // An interface the data plane was not told about: passed, not counted.
  if (const auto other = other_ifindex()) {
    for (const int fd : {dp().lan_prog_fd(), dp().wan_prog_fd()}) {
      const Snapshot b = snapshot(kGw);
      const RunResult r = run_frame(fd, f, *other);
      ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
      EXPECT_EQ(verdict_name(r.retval), verdict_name(XDP_PASS));
      expect_deltas(b, snapshot(kGw), untouched());
    }
  }
}

// --- Drop reasons -----------------------------------------------------------

TEST_F(XgwDp, DropMalformed) {
  XGW_REQUIRE_ROOT();
  // A relation the packets would otherwise match.
  conn(1, 10);
  spd({rel("10.0.0.0/24", "192.168.0.0/24", 1), rel("fd00::/64", "fd01::/64", 1)});
  const Bytes opts12(12, 1);  // 12 NOPs: IHL 8
  struct Case {
    const char* name;
    Bytes frame;
  };
  const std::vector<Case> both = {
      {"IPv4 ihl 4", PacketBuilder().ipv4("10.0.0.5", "192.168.0.9").ihl(4).udp(1, 2, 32).build()},
      {"IPv4 ihl 0", PacketBuilder().ipv4("10.0.0.5", "192.168.0.9").ihl(0).udp(1, 2, 32).build()},
      {"IPv4 EtherType, version 6",
       PacketBuilder().ipv4("10.0.0.5", "192.168.0.9").ip_version(6).udp(1, 2, 32).build()},
      {"IPv4 EtherType, version 0",
       PacketBuilder().ipv4("10.0.0.5", "192.168.0.9").ip_version(0).udp(1, 2, 32).build()},
      {"IPv6 EtherType, version 4",
       PacketBuilder().ipv6("fd00::5", "fd01::9").ip_version(4).udp(1, 2, 32).build()},
      {"IPv4 tot_len 19 < 20",
       PacketBuilder().ipv4("10.0.0.5", "192.168.0.9").length_field(19).udp(1, 2, 32).build()},
      {"IPv4 tot_len 0",
       PacketBuilder().ipv4("10.0.0.5", "192.168.0.9").length_field(0).udp(1, 2, 32).build()},
      {"IPv4 tot_len 30 < ihl*4 32", PacketBuilder()
                                         .ipv4("10.0.0.5", "192.168.0.9")
                                         .ip_options(opts12)
                                         .length_field(30)
                                         .udp(1, 2, 32)
                                         .build()},
  };
  for (const auto& c : both) {
    SCOPED_TRACE(c.name);
    lan(c.frame, dropped(XGW_DROP_MALFORMED));
    wan(c.frame, dropped(XGW_DROP_MALFORMED));
  }
  // WAN only: UDP 4500 too short to hold an ESP header (SPI + sequence)
  // and not a keepalive.
  const std::vector<Case> wan_only = {
      {"UDP 4500, 4-byte payload", PacketBuilder()
                                       .ipv4("198.51.100.2", "203.0.113.1")
                                       .udp(4500, 4500, Bytes{0, 0, 0, 0})
                                       .build()},
      {"UDP 4500, one byte 0x00",
       PacketBuilder().ipv4("198.51.100.2", "203.0.113.1").udp(4500, 4500, Bytes{0}).build()},
      {"UDP 4500, empty",
       PacketBuilder().ipv4("198.51.100.2", "203.0.113.1").udp(4500, 4500, 0).build()},
      {"UDP 4500, two bytes 0xff", PacketBuilder()
                                       .ipv6("2001:db8::2", "2001:db8::1")
                                       .udp(4500, 4500, Bytes{0xff, 0xff})
                                       .build()},
  };
  for (const auto& c : wan_only) {
    SCOPED_TRACE(c.name);
    wan(c.frame, dropped(XGW_DROP_MALFORMED));
  }
}

TEST_F(XgwDp, DropTruncated) {
  XGW_REQUIRE_ROOT();
  conn(1, 10);
  spd({rel("10.0.0.0/24", "192.168.0.0/24", 1), rel("fd00::/64", "fd01::/64", 1)});
  const Bytes v4 = plain("10.0.0.5", "192.168.0.9", 100);
  const Bytes v6 = plain("fd00::5", "fd01::9", 100);
  const Bytes v4vlan =
      PacketBuilder().vlan(7).ipv4("10.0.0.5", "192.168.0.9").udp(1, 2, 72).build();
  const Bytes opts = PacketBuilder()
                         .ipv4("10.0.0.5", "192.168.0.9")
                         .ip_options(Bytes(12, 1))
                         .udp(1, 2, 60)
                         .build();
  const Bytes v6frag =
      PacketBuilder().ipv6("fd00::5", "fd01::9").fragment(0, true).udp(1, 2, 40).build();
  using xgw::test::truncate_frame;
  struct Case {
    const char* name;
    Bytes frame;
  };
  const std::vector<Case> both = {
      {"Ethernet header only (IPv4 EtherType)", truncate_frame(v4, 14)},
      {"Ethernet header only (IPv6 EtherType)", truncate_frame(v6, 14)},
      {"cut inside the VLAN tag (16 bytes)", truncate_frame(v4vlan, 16)},
      {"cut inside the VLAN tag (17 bytes)", truncate_frame(v4vlan, 17)},
      {"VLAN tag, IPv4 header cut", truncate_frame(v4vlan, 18 + 19)},
      {"IPv4 header cut at 10 bytes", truncate_frame(v4, 14 + 10)},
      {"IPv4 header cut at 19 bytes", truncate_frame(v4, 14 + 19)},
      {"IPv4 options cut (ihl 8, 24 bytes present)", truncate_frame(opts, 14 + 24)},
      {"IPv4 tot_len one byte past the frame", truncate_frame(v4, v4.size() - 1)},
      {"IPv4 tot_len lies long",
       PacketBuilder().ipv4("10.0.0.5", "192.168.0.9").length_field(1500).udp(1, 2, 72).build()},
      {"IPv6 header cut at 39 bytes", truncate_frame(v6, 14 + 39)},
      {"IPv6 payload_len one byte past the frame", truncate_frame(v6, v6.size() - 1)},
      {"IPv6 payload_len lies long",
       PacketBuilder().ipv6("fd00::5", "fd01::9").length_field(1400).udp(1, 2, 52).build()},
      {"IPv6 fragment header past payload_len", PacketBuilder()
                                                    .ipv6("fd00::5", "fd01::9")
                                                    .fragment(0, true)
                                                    .raw(xgw::test::kProtoUdp, {})
                                                    .length_field(4)
                                                    .build()},
      {"IPv6 fragment header cut by the frame", truncate_frame(v6frag, 14 + 40 + 4)},
  };
  for (const auto& c : both) {
    SCOPED_TRACE(c.name);
    lan(c.frame, dropped(XGW_DROP_TRUNCATED));
    wan(c.frame, dropped(XGW_DROP_TRUNCATED));
  }
  const Bytes esp = PacketBuilder().ipv4("198.51.100.2", "203.0.113.1").esp(0x1000, 1, 64).build();
  const Bytes nat =
      PacketBuilder().ipv4("198.51.100.2", "203.0.113.1").esp_in_udp(0x1000, 1, 64).build();
  const std::vector<Case> wan_only = {
      {"raw ESP, 4-byte ESP header (tot_len agrees)",
       PacketBuilder()
           .ipv4("198.51.100.2", "203.0.113.1")
           .raw(xgw::test::kProtoEsp, {0, 0, 0x10, 0})
           .build()},
      {"raw ESP over IPv6, 7-byte ESP header", PacketBuilder()
                                                   .ipv6("2001:db8::2", "2001:db8::1")
                                                   .raw(xgw::test::kProtoEsp, Bytes(7, 1))
                                                   .build()},
      {"raw ESP, frame cut inside the ESP header", truncate_frame(esp, 14 + 20 + 6)},
      {"raw ESP, frame cut after the ESP header", truncate_frame(esp, 14 + 20 + 8)},
      {"UDP header cut (4 bytes, tot_len agrees)",
       PacketBuilder()
           .ipv4("198.51.100.2", "203.0.113.1")
           .raw(xgw::test::kProtoUdp, {0x11, 0x94, 0x11, 0x94})
           .build()},
      {"ESP-in-UDP, frame cut inside the ESP header", truncate_frame(nat, 14 + 20 + 8 + 5)},
  };
  for (const auto& c : wan_only) {
    SCOPED_TRACE(c.name);
    wan(c.frame, dropped(XGW_DROP_TRUNCATED));
  }
}

TEST_F(XgwDp, DropNoPolicy) {
  XGW_REQUIRE_ROOT();
  GatewayConfig g;
  g.drop_unmatched = true;
  XGW_ASSERT_OK(dp().set_gateway(kGw, g));
  conn(1, 10);
  spd({rel("10.0.0.0/24", "192.168.0.0/24", 1), rel("fd00::/64", "fd01::/64", 1)});
  lan(plain("10.0.0.5", "192.168.1.9"), dropped(XGW_DROP_NO_POLICY));
  lan(plain("10.0.9.5", "192.168.0.9"), dropped(XGW_DROP_NO_POLICY));
  lan(plain("fd00::5", "fd02::9"), dropped(XGW_DROP_NO_POLICY));
  // Matching traffic still flows; the WAN side is not policed by the SPD.
  lan(plain("10.0.0.5", "192.168.0.9", 100), xfrm(10, 100));
  wan(PacketBuilder().ipv4("198.51.100.2", "203.0.113.1").udp(1000, 53, 30).build(),
      passed(XGW_PASS_OTHER));
  // Without the flag, the same packet passes to ordinary routing.
  XGW_ASSERT_OK(dp().set_gateway(kGw, GatewayConfig{}));
  lan(plain("10.0.0.5", "192.168.1.9"), passed(XGW_PASS_NO_MATCH));
}

TEST_F(XgwDp, DropUnknownSpi) {
  XGW_REQUIRE_ROOT();
  conn(1, 10);
  XGW_ASSERT_OK(dp().add_sa(0x1000, 10, kGw));
  XGW_ASSERT_OK(dp().set_gateway(kOtherGw, GatewayConfig{}));
  conn(2, 20, std::nullopt, kOtherGw);
  XGW_ASSERT_OK(dp().add_sa(0x3000, 20, kOtherGw));

  auto esp4 = [](uint32_t spi) {
    return PacketBuilder().ipv4("198.51.100.2", "203.0.113.1").esp(spi, 7, 64).build();
  };
  auto nat4 = [](uint32_t spi) {
    return PacketBuilder().ipv4("198.51.100.2", "203.0.113.1").esp_in_udp(spi, 7, 64).build();
  };
  auto esp6 = [](uint32_t spi) {
    return PacketBuilder().ipv6("2001:db8::2", "2001:db8::1").esp(spi, 7, 64).build();
  };
  wan(esp4(0x2000), dropped(XGW_DROP_UNKNOWN_SPI));
  wan(nat4(0x2000), dropped(XGW_DROP_UNKNOWN_SPI));
  wan(esp6(0x2000), dropped(XGW_DROP_UNKNOWN_SPI));
  // SPI byte order: 0x00100000 is not 0x1000.
  wan(esp4(0x00100000), dropped(XGW_DROP_UNKNOWN_SPI));
  // The known SPI for comparison.
  wan(esp4(0x1000), esp_in(10, 20 + 8 + 64));

  // An SPI held by another gateway is unknown here, and counted here only.
  const Snapshot other_before = snapshot(kOtherGw);
  wan(esp4(0x3000), dropped(XGW_DROP_UNKNOWN_SPI));
  wan(nat4(0x3000), dropped(XGW_DROP_UNKNOWN_SPI));
  expect_deltas(other_before, snapshot(kOtherGw), untouched(kOtherGw));
  // ... while on that gateway's own interface it is accepted.
  wan(esp4(0x3000), esp_in(20, 20 + 8 + 64, kOtherGw));

  // A removed SA is unknown again.
  XGW_ASSERT_OK(dp().remove_sa(0x1000));
  wan(esp4(0x1000), dropped(XGW_DROP_UNKNOWN_SPI));
}

TEST_F(XgwDp, DropNoSaSendsAcquire) {
  XGW_REQUIRE_ROOT();
  GatewayConfig g;
  g.drop_no_sa = true;
  XGW_ASSERT_OK(dp().set_gateway(kGw, g));
  conn(1, 10);
  tunnel(10, 1, /*sa_ready=*/false);
  spd({rel("10.0.0.0/24", "192.168.0.0/24", 1)});
  lan(plain("10.0.0.5", "192.168.0.9"), dropped(XGW_DROP_NO_SA));
  const auto ev = events(500);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].gw_idx, kGw);
  EXPECT_EQ(ev[0].conn_idx, 1u);
  EXPECT_EQ(ev[0].tunnel_idx, 10u);
  EXPECT_EQ(ev[0].src.str(), "10.0.0.5");
  EXPECT_EQ(ev[0].dst.str(), "192.168.0.9");
  // Once the SA is installed the traffic flows.
  tunnel(10, 1, true);
  lan(plain("10.0.0.5", "192.168.0.9", 120), xfrm(10, 120));
}

TEST_F(XgwDp, DropNoConn) {
  XGW_REQUIRE_ROOT();
  // 7: never programmed; 8: belongs to another gateway; 9: removed.
  XGW_ASSERT_OK(dp().set_gateway(kOtherGw, GatewayConfig{}));
  conn(8, 80, std::nullopt, kOtherGw);
  conn(9, 90);
  spd({rel("10.0.0.0/24", "192.168.7.0/24", 7), rel("10.0.0.0/24", "192.168.8.0/24", 8),
       rel("10.0.0.0/24", "192.168.9.0/24", 9)});
  lan(plain("10.0.0.5", "192.168.9.1", 100), xfrm(90, 100));
  XGW_ASSERT_OK(dp().remove_connection(9));
  lan(plain("10.0.0.5", "192.168.7.1"), dropped(XGW_DROP_NO_CONN));
  lan(plain("10.0.0.5", "192.168.8.1"), dropped(XGW_DROP_NO_CONN));
  lan(plain("10.0.0.5", "192.168.9.1"), dropped(XGW_DROP_NO_CONN));
}

// --- Pass reasons -----------------------------------------------------------

TEST_F(XgwDp, PassNotIp) {
  XGW_REQUIRE_ROOT();
  const Bytes arp = PacketBuilder().arp().build();
  const Bytes arp_vlan = PacketBuilder().vlan(100).arp().build();
  const Bytes lldp = PacketBuilder().ethertype(0x88cc).trailer(46).build();
  // Two tags: the data plane reads one, so the inner TPID is "not IP".
  const Bytes qinq = PacketBuilder()
                         .vlan(10, xgw::test::kEthTypeQinQ)
                         .ethertype(xgw::test::kEthTypeVlan)
                         .trailer(50)
                         .build();
  for (const Bytes* f : {&arp, &arp_vlan, &lldp, &qinq}) {
    lan(*f, passed(XGW_PASS_NOT_IP));
    wan(*f, passed(XGW_PASS_NOT_IP));
  }
}

TEST_F(XgwDp, PassNoMatch) {
  XGW_REQUIRE_ROOT();
  // No SPD at all yet.
  lan(plain("10.0.0.5", "192.168.0.9"), passed(XGW_PASS_NO_MATCH));
  lan(plain("fd00::5", "fd01::9"), passed(XGW_PASS_NO_MATCH));
  conn(1, 10);
  spd({rel("10.0.0.0/24", "192.168.0.0/24", 1), rel("fd00::/64", "fd01::/64", 1)});
  lan(plain("10.0.0.5", "192.168.1.9"), passed(XGW_PASS_NO_MATCH));
  lan(plain("10.0.1.5", "192.168.0.9"), passed(XGW_PASS_NO_MATCH));
  lan(plain("fd00:0:0:1::5", "fd01::9"), passed(XGW_PASS_NO_MATCH));
  lan(plain("fd00::5", "fd01:0:0:1::9"), passed(XGW_PASS_NO_MATCH));
}

TEST_F(XgwDp, PassIke) {
  XGW_REQUIRE_ROOT();
  conn(1, 10);
  XGW_ASSERT_OK(dp().add_sa(0x1000, 10, kGw));
  wan(PacketBuilder().ipv4("198.51.100.2", "203.0.113.1").ike(500).build(), passed(XGW_PASS_IKE));
  wan(PacketBuilder().ipv6("2001:db8::2", "2001:db8::1").ike(500).build(), passed(XGW_PASS_IKE));
  // From a NATed source port to 500 is still IKE.
  wan(PacketBuilder().ipv4("198.51.100.2", "203.0.113.1").udp(61000, 500, 80).build(),
      passed(XGW_PASS_IKE));
  // 4500 with the non-ESP marker.
  wan(PacketBuilder().ipv4("198.51.100.2", "203.0.113.1").ike(4500).build(), passed(XGW_PASS_IKE));
  wan(PacketBuilder().ipv6("2001:db8::2", "2001:db8::1").ike(4500).build(), passed(XGW_PASS_IKE));
  wan(PacketBuilder().vlan(5).ipv4("198.51.100.2", "203.0.113.1").ike(4500, 200).build(),
      passed(XGW_PASS_IKE));
}

TEST_F(XgwDp, PassNattKeepalive) {
  XGW_REQUIRE_ROOT();
  wan(PacketBuilder().ipv4("198.51.100.2", "203.0.113.1").natt_keepalive().build(),
      passed(XGW_PASS_NATT_KEEPALIVE));
  wan(PacketBuilder().ipv4("198.51.100.2", "203.0.113.1").natt_keepalive(61000).build(),
      passed(XGW_PASS_NATT_KEEPALIVE));
  wan(PacketBuilder().ipv6("2001:db8::2", "2001:db8::1").natt_keepalive().build(),
      passed(XGW_PASS_NATT_KEEPALIVE));
  // Padded to Ethernet's 60-byte minimum: the IP length decides.
  wan(PacketBuilder().ipv4("198.51.100.2", "203.0.113.1").natt_keepalive().trailer(17).build(),
      passed(XGW_PASS_NATT_KEEPALIVE));
}

TEST_F(XgwDp, PassFragment) {
  XGW_REQUIRE_ROOT();
  conn(1, 10);
  XGW_ASSERT_OK(dp().add_sa(0x1000, 10, kGw));
  const Bytes body = xgw::test::pattern(200);
  // Later fragments: no transport header, whatever the protocol says.
  wan(PacketBuilder()
          .ipv4("198.51.100.2", "203.0.113.1")
          .fragment(185, false)
          .raw(50, body)
          .build(),
      passed(XGW_PASS_FRAGMENT));
  wan(PacketBuilder().ipv4("198.51.100.2", "203.0.113.1").fragment(185, true).raw(50, body).build(),
      passed(XGW_PASS_FRAGMENT));
  wan(PacketBuilder().ipv4("198.51.100.2", "203.0.113.1").fragment(1, false).raw(17, body).build(),
      passed(XGW_PASS_FRAGMENT));
  wan(PacketBuilder().ipv6("2001:db8::2", "2001:db8::1").fragment(185, false).raw(50, body).build(),
      passed(XGW_PASS_FRAGMENT));
  wan(PacketBuilder().ipv6("2001:db8::2", "2001:db8::1").fragment(1, true).raw(17, body).build(),
      passed(XGW_PASS_FRAGMENT));
  // A later fragment whose body starts like an unknown SPI is not looked up.
  wan(PacketBuilder()
          .ipv4("198.51.100.2", "203.0.113.1")
          .fragment(185, false)
          .esp(0xdead, 1, 64)
          .build(),
      passed(XGW_PASS_FRAGMENT));
  // First fragments carry the ESP header: looked up as usual.
  const auto first4 =
      PacketBuilder().ipv4("198.51.100.2", "203.0.113.1").fragment(0, true).esp(0x1000, 1, 600);
  wan(first4.build(), esp_in(10, first4.l3_len()));
  const auto first6 =
      PacketBuilder().ipv6("2001:db8::2", "2001:db8::1").fragment(0, true).esp(0x1000, 2, 600);
  wan(first6.build(), esp_in(10, first6.l3_len()));
  wan(PacketBuilder()
          .ipv6("2001:db8::2", "2001:db8::1")
          .fragment(0, true)
          .esp(0xdead, 2, 600)
          .build(),
      dropped(XGW_DROP_UNKNOWN_SPI));
}

TEST_F(XgwDp, PassXfrm) {
  XGW_REQUIRE_ROOT();
  conn(1, 10);
  spd({rel("10.0.0.0/24", "192.168.0.0/24", 1)});
  lan(plain("10.0.0.5", "192.168.0.9", 100), xfrm(10, 100));
  lan(plain("10.0.0.6", "192.168.0.10", 1500), xfrm(10, 1500));
}

TEST_F(XgwDp, PassUserspaceFallsBackToPassWithoutSocket) {
  XGW_REQUIRE_ROOT();
  conn(1, 10);
  tunnel(10, 1, true, Backend::Userspace);
  spd({rel("10.0.0.0/24", "192.168.0.0/24", 1)});
  // bpf_redirect_map(xgw_xsks, rx_queue_index, XDP_PASS) with no AF_XDP
  // socket at queue 0 returns its fallback: the program's verdict is
  // XDP_PASS (not XDP_REDIRECT), counted as userspace traffic.
  lan(plain("10.0.0.5", "192.168.0.9", 100), carried(XGW_PASS_USERSPACE, 10, 100));
  lan(plain("10.0.0.5", "192.168.0.9", 300), carried(XGW_PASS_USERSPACE, 10, 300));
}

#ifndef SOL_XDP
#define SOL_XDP 283
#endif

// A minimal AF_XDP socket bound (copy mode) to one queue of a device: just
// enough to be a valid entry of an XSKMAP. Its rings are never mapped.
class XskSocket {
 public:
  XskSocket() = default;
  XskSocket(const XskSocket&) = delete;
  XskSocket& operator=(const XskSocket&) = delete;
  ~XskSocket() {
    if (fd_ >= 0) ::close(fd_);
    if (umem_ != MAP_FAILED) ::munmap(umem_, kUmemSize);
  }
  // Returns an error text, or "" on success.
  std::string open(int ifindex, uint32_t queue) {
    fd_ = ::socket(AF_XDP, SOCK_RAW, 0);
    if (fd_ < 0) return std::string("socket(AF_XDP): ") + std::strerror(errno);
    umem_ = ::mmap(nullptr, kUmemSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (umem_ == MAP_FAILED) return std::string("mmap: ") + std::strerror(errno);
    xdp_umem_reg reg{};
    reg.addr = reinterpret_cast<uintptr_t>(umem_);
    reg.len = kUmemSize;
    reg.chunk_size = kFrameSize;
    if (::setsockopt(fd_, SOL_XDP, XDP_UMEM_REG, &reg, sizeof reg) != 0)
      return std::string("XDP_UMEM_REG: ") + std::strerror(errno);
    const int n = 64;
    for (const int opt : {XDP_UMEM_FILL_RING, XDP_UMEM_COMPLETION_RING, XDP_RX_RING}) {
      if (::setsockopt(fd_, SOL_XDP, opt, &n, sizeof n) != 0)
        return "ring " + std::to_string(opt) + ": " + std::strerror(errno);
    }
    sockaddr_xdp sa{};
    sa.sxdp_family = AF_XDP;
    sa.sxdp_ifindex = static_cast<uint32_t>(ifindex);
    sa.sxdp_queue_id = queue;
    sa.sxdp_flags = XDP_COPY;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
      return std::string("bind: ") + std::strerror(errno);
    return "";
  }
  int fd() const { return fd_; }

 private:
  static constexpr uint32_t kFrameSize = 2048;
  static constexpr size_t kUmemSize = 64 * kFrameSize;
  int fd_ = -1;
  void* umem_ = MAP_FAILED;
};

TEST_F(XgwDp, PassUserspaceRedirectsToRegisteredSocket) {
  XGW_REQUIRE_ROOT();
  conn(1, 10);
  tunnel(10, 1, true, Backend::Userspace);
  conn(2, 20);  // an XFRM tunnel next to it
  spd({rel("10.0.0.0/24", "192.168.0.0/24", 1), rel("10.0.0.0/24", "192.168.2.0/24", 2)});
  XskSocket xsk;
  const std::string err = xsk.open(kLo, 0);
  if (!err.empty()) GTEST_SKIP() << "no AF_XDP socket on lo queue 0: " << err;
  const int xsks = dp().map_fd("xgw_xsks");
  ASSERT_GE(xsks, 0);
  const uint32_t queue = 0;
  const int fd = xsk.fd();
  ASSERT_EQ(bpf_map_update_elem(xsks, &queue, &fd, BPF_ANY), 0) << std::strerror(errno);
  // With a socket at the frame's rx_queue_index the program redirects
  // (test_run reports the verdict; it does not deliver the frame).
  Want w = carried(XGW_PASS_USERSPACE, 10, 100);
  w.verdict = XDP_REDIRECT;
  lan(plain("10.0.0.5", "192.168.0.9", 100), w);
  // XFRM tunnels are unaffected by the socket.
  lan(plain("10.0.0.5", "192.168.2.9", 100), xfrm(20, 100));
  // Socket gone: back to the XDP_PASS fallback.
  ASSERT_EQ(bpf_map_delete_elem(xsks, &queue), 0) << std::strerror(errno);
  lan(plain("10.0.0.5", "192.168.0.9", 100), carried(XGW_PASS_USERSPACE, 10, 100));
}

// The frame test_run hands back after the program (its data_out).
Bytes frame_out(int prog_fd, const Bytes& frame, uint32_t* verdict) {
  xdp_md ctx{};
  ctx.data_end = static_cast<uint32_t>(frame.size());
  ctx.ingress_ifindex = kLo;
  Bytes out(frame.size() + 512);
  bpf_test_run_opts opts{};
  opts.sz = sizeof(opts);
  opts.data_in = frame.data();
  opts.data_size_in = static_cast<uint32_t>(frame.size());
  opts.data_out = out.data();
  opts.data_size_out = static_cast<uint32_t>(out.size());
  opts.ctx_in = &ctx;
  opts.ctx_size_in = sizeof(ctx);
  EXPECT_EQ(bpf_prog_test_run_opts(prog_fd, &opts), 0) << std::strerror(errno);
  *verdict = opts.retval;
  out.resize(opts.data_size_out);
  return out;
}

TEST_F(XgwDp, PassUserspaceRedirectsIntoTapDevice) {
  XGW_REQUIRE_ROOT();
  conn(1, 10);
  tunnel(10, 1, true, Backend::Userspace);
  spd({rel("10.0.0.0/24", "192.168.0.0/24", 1), rel("fd00:1::/64", "fd00:2::/64", 1)});
  // lo stands in for the TAP device (test_run reports the verdict only).
  ASSERT_TRUE(dp().set_userspace_tun(kGw, kLo, 1400));
  Want w = carried(XGW_PASS_USERSPACE, 10, 100);
  w.verdict = XDP_REDIRECT;
  lan(plain("10.0.0.5", "192.168.0.9", 100), w);
  w = carried(XGW_PASS_USERSPACE, 10, 120);
  w.verdict = XDP_REDIRECT;
  lan(plain("fd00:1::5", "fd00:2::9", 120), w);
  // The frame goes as it is (the ESP path reads past the link layer).
  const Bytes v4 = plain("10.0.0.5", "192.168.0.9", 100);
  uint32_t verdict = 0;
  EXPECT_EQ(frame_out(dp().lan_prog_fd(), v4, &verdict), v4);
  EXPECT_EQ(verdict_name(verdict), verdict_name(XDP_REDIRECT));
  // Exactly MTU + 14 fits; one byte more goes to the stack (routing, ICMP).
  w = carried(XGW_PASS_USERSPACE, 10, 1400);
  w.verdict = XDP_REDIRECT;
  lan(plain("10.0.0.5", "192.168.0.9", 1400), w);
  lan(plain("10.0.0.5", "192.168.0.9", 1401), carried(XGW_PASS_USERSPACE, 10, 1401));
  // Device removed: back to the AF_XDP fallback, i.e. XDP_PASS.
  ASSERT_TRUE(dp().set_userspace_tun(kGw, 0, 0));
  lan(plain("10.0.0.5", "192.168.0.9", 100), carried(XGW_PASS_USERSPACE, 10, 100));
  EXPECT_FALSE(dp().set_userspace_tun(kGw, kLo, 20));  // MTU below 68
}

TEST_F(XgwDp, PassEspIn) {
  XGW_REQUIRE_ROOT();
  conn(1, 10, 11);
  XGW_ASSERT_OK(dp().add_sa(0x1000, 10, kGw));
  XGW_ASSERT_OK(dp().add_sa(0xc0010002, 11, kGw));
  const auto raw4 = PacketBuilder().ipv4("198.51.100.2", "203.0.113.1").esp(0x1000, 1, 100);
  wan(raw4.build(), esp_in(10, raw4.l3_len()));
  const auto nat4 =
      PacketBuilder().ipv4("198.51.100.2", "203.0.113.1").esp_in_udp(0x1000, 2, 100, 61000);
  wan(nat4.build(), esp_in(10, nat4.l3_len()));
  const auto raw6 = PacketBuilder().ipv6("2001:db8::2", "2001:db8::1").esp(0xc0010002, 3, 100);
  wan(raw6.build(), esp_in(11, raw6.l3_len()));
  const auto nat6 =
      PacketBuilder().ipv6("2001:db8::2", "2001:db8::1").esp_in_udp(0xc0010002, 4, 100);
  wan(nat6.build(), esp_in(11, nat6.l3_len()));
  // The smallest ESP the data plane accepts: SPI and sequence number only.
  const auto bare = PacketBuilder().ipv4("198.51.100.2", "203.0.113.1").esp(0x1000, 5, 0);
  wan(bare.build(), esp_in(10, 28));
}

TEST_F(XgwDp, PassNoSaWithRateLimitedAcquire) {
  XGW_REQUIRE_ROOT();
  conn(1, 10);
  tunnel(10, 1, false);
  conn(2, 20);
  tunnel(20, 2, false);
  spd({rel("10.0.0.0/24", "192.168.0.0/24", 1), rel("fd00:1::/48", "2001:db8:1::/48", 2)});

  // Passed (IKE negotiates meanwhile), nothing counted as tunnel traffic.
  lan(plain("10.0.0.5", "192.168.0.9"), passed(XGW_PASS_NO_SA_PASS));
  auto ev = events(500);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].gw_idx, kGw);
  EXPECT_EQ(ev[0].conn_idx, 1u);
  EXPECT_EQ(ev[0].tunnel_idx, 10u);
  EXPECT_EQ(ev[0].src.family, xgw::net::Family::V4);
  EXPECT_EQ(ev[0].src.str(), "10.0.0.5");
  EXPECT_EQ(ev[0].dst.str(), "192.168.0.9");

  // Within the interval: passed again, no second event for tunnel 10.
  lan(plain("10.0.0.6", "192.168.0.10"), passed(XGW_PASS_NO_SA_PASS));
  EXPECT_EQ(events(100).size(), 0u);

  // The limit is per tunnel: tunnel 20 reports at once (IPv6 addresses).
  lan(plain("fd00:1::5", "2001:db8:1::9"), passed(XGW_PASS_NO_SA_PASS));
  ev = events(500);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].conn_idx, 2u);
  EXPECT_EQ(ev[0].tunnel_idx, 20u);
  EXPECT_EQ(ev[0].src.family, xgw::net::Family::V6);
  EXPECT_EQ(ev[0].src.str(), "fd00:1::5");
  EXPECT_EQ(ev[0].dst.str(), "2001:db8:1::9");

  // After the interval, tunnel 10 reports again.
  std::this_thread::sleep_for(std::chrono::nanoseconds(XGW_ACQUIRE_INTERVAL_NS) +
                              std::chrono::milliseconds(100));
  lan(plain("10.0.0.7", "192.168.0.11"), passed(XGW_PASS_NO_SA_PASS));
  ev = events(500);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].tunnel_idx, 10u);
  EXPECT_EQ(ev[0].src.str(), "10.0.0.7");

  // SA installed: carried, no more events.
  tunnel(10, 1, true);
  lan(plain("10.0.0.5", "192.168.0.9", 100), xfrm(10, 100));
  EXPECT_EQ(events(100).size(), 0u);
}

TEST_F(XgwDp, PassOther) {
  XGW_REQUIRE_ROOT();
  wan(PacketBuilder().ipv4("198.51.100.2", "203.0.113.1").udp(1000, 53, 30).build(),
      passed(XGW_PASS_OTHER));
  wan(PacketBuilder().ipv4("198.51.100.2", "203.0.113.1").udp(4500, 4501, 30).build(),
      passed(XGW_PASS_OTHER));
  wan(PacketBuilder()
          .ipv4("198.51.100.2", "203.0.113.1")
          .raw(xgw::test::kProtoTcp, xgw::test::pattern(20))
          .build(),
      passed(XGW_PASS_OTHER));
  wan(PacketBuilder()
          .ipv4("198.51.100.2", "203.0.113.1")
          .raw(xgw::test::kProtoIcmp, xgw::test::pattern(16))
          .build(),
      passed(XGW_PASS_OTHER));
  wan(PacketBuilder().ipv6("2001:db8::2", "2001:db8::1").udp(1000, 443, 30).build(),
      passed(XGW_PASS_OTHER));
  wan(PacketBuilder().ipv6("2001:db8::2", "2001:db8::1").raw(58, xgw::test::pattern(16)).build(),
      passed(XGW_PASS_OTHER));
}

// --- Header variants ----------------------------------------------------------

TEST_F(XgwDp, Ipv4Options) {
  XGW_REQUIRE_ROOT();
  conn(1, 10);
  XGW_ASSERT_OK(dp().add_sa(0x1000, 10, kGw));
  spd({rel("10.0.0.0/24", "192.168.0.0/24", 1)});
  const Bytes ra = {0x94, 0x04, 0x00, 0x00};  // Router Alert
  const Bytes max(40, 1);                     // 40 NOPs: IHL 15
  for (const Bytes* o : {&ra, &max}) {
    SCOPED_TRACE("options of " + std::to_string(o->size()) + " bytes");
    const auto p = PacketBuilder().ipv4("10.0.0.5", "192.168.0.9").ip_options(*o).udp(1, 2, 50);
    lan(p.build(), xfrm(10, p.l3_len()));
    const auto e =
        PacketBuilder().ipv4("198.51.100.2", "203.0.113.1").ip_options(*o).esp(0x1000, 1, 50);
    wan(e.build(), esp_in(10, e.l3_len()));
    const auto n = PacketBuilder()
                       .ipv4("198.51.100.2", "203.0.113.1")
                       .ip_options(*o)
                       .esp_in_udp(0x1000, 1, 50);
    wan(n.build(), esp_in(10, n.l3_len()));
    wan(PacketBuilder().ipv4("198.51.100.2", "203.0.113.1").ip_options(*o).ike(4500).build(),
        passed(XGW_PASS_IKE));
    wan(PacketBuilder().ipv4("198.51.100.2", "203.0.113.1").ip_options(*o).natt_keepalive().build(),
        passed(XGW_PASS_NATT_KEEPALIVE));
    wan(PacketBuilder()
            .ipv4("198.51.100.2", "203.0.113.1")
            .ip_options(*o)
            .esp(0x2000, 1, 50)
            .build(),
        dropped(XGW_DROP_UNKNOWN_SPI));
  }
}

TEST_F(XgwDp, Ipv4AndIpv6Classification) {
  XGW_REQUIRE_ROOT();
  conn(4, 40);
  conn(6, 60);
  spd({rel("10.0.0.0/8", "192.168.0.0/16", 4), rel("fd00::/16", "2001:db8::/32", 6)});
  expect_class("10.1.2.3", "192.168.3.4", 4);
  expect_class("fd00:1::3", "2001:db8:5::4", 6);
  // No family confusion: v6 addresses whose first 32 bits spell the v4
  // relation, and the v4-mapped form, match nothing.
  expect_class("a01:203::", "c0a8:304::", std::nullopt);
  expect_class("::ffff:10.1.2.3", "::ffff:192.168.3.4", std::nullopt);
  expect_class("10.1.2.3", "10.1.2.4", std::nullopt);
  // tx bytes: IPv6 counts the fixed header plus payload_len.
  const auto p = PacketBuilder().ipv6("fd00:1::3", "2001:db8:5::4").udp(1, 2, 1000);
  lan(p.build(), xfrm(60, 40 + 8 + 1000));
}

TEST_F(XgwDp, VlanTagged) {
  XGW_REQUIRE_ROOT();
  conn(1, 10);
  XGW_ASSERT_OK(dp().add_sa(0x1000, 10, kGw));
  spd({rel("10.0.0.0/24", "192.168.0.0/24", 1), rel("fd00::/64", "fd01::/64", 1)});
  for (const uint16_t tpid : {xgw::test::kEthTypeVlan, xgw::test::kEthTypeQinQ}) {
    SCOPED_TRACE("TPID " + std::to_string(tpid));
    const auto v4 = PacketBuilder().vlan(100, tpid).ipv4("10.0.0.5", "192.168.0.9").udp(1, 2, 72);
    lan(v4.build(), xfrm(10, 100));
    const auto v6 = PacketBuilder().vlan(4094, tpid).ipv6("fd00::5", "fd01::9").udp(1, 2, 52);
    lan(v6.build(), xfrm(10, 100));
    lan(PacketBuilder().vlan(100, tpid).ipv4("10.0.0.5", "192.168.1.9").udp(1, 2, 72).build(),
        passed(XGW_PASS_NO_MATCH));
    const auto esp =
        PacketBuilder().vlan(200, tpid).ipv4("198.51.100.2", "203.0.113.1").esp(0x1000, 1, 72);
    wan(esp.build(), esp_in(10, 100));
    const auto nat = PacketBuilder()
                         .vlan(200, tpid)
                         .ipv6("2001:db8::2", "2001:db8::1")
                         .esp_in_udp(0x1000, 1, 52);
    wan(nat.build(), esp_in(10, 40 + 8 + 8 + 52));
    wan(PacketBuilder()
            .vlan(200, tpid)
            .ipv4("198.51.100.2", "203.0.113.1")
            .esp(0x2000, 1, 72)
            .build(),
        dropped(XGW_DROP_UNKNOWN_SPI));
    wan(PacketBuilder().vlan(200, tpid).ipv4("198.51.100.2", "203.0.113.1").ike(500).build(),
        passed(XGW_PASS_IKE));
    lan(PacketBuilder().vlan(100, tpid).arp().build(), passed(XGW_PASS_NOT_IP));
    lan(PacketBuilder()
            .vlan(100, tpid)
            .ipv4("10.0.0.5", "192.168.0.9")
            .ihl(3)
            .udp(1, 2, 72)
            .build(),
        dropped(XGW_DROP_MALFORMED));
  }
}

TEST_F(XgwDp, TrafficBytesAreIpTotalLength) {
  XGW_REQUIRE_ROOT();
  conn(1, 10);
  XGW_ASSERT_OK(dp().add_sa(0x1000, 10, kGw));
  spd({rel("10.0.0.0/24", "192.168.0.0/24", 1), rel("fd00::/64", "fd01::/64", 1)});
  // Ethernet padding / trailing bytes are not part of the IP packet.
  const auto small = PacketBuilder().ipv4("10.0.0.5", "192.168.0.9").udp(1, 2, 4).trailer(14);
  ASSERT_EQ(small.build().size(), 60u);
  lan(small.build(), xfrm(10, 32));
  lan(PacketBuilder().ipv4("10.0.0.5", "192.168.0.9").udp(1, 2, 472).trailer(100).build(),
      xfrm(10, 500));
  lan(PacketBuilder().ipv6("fd00::5", "fd01::9").udp(1, 2, 952).trailer(64).build(),
      xfrm(10, 1000));
  wan(PacketBuilder().ipv4("198.51.100.2", "203.0.113.1").esp(0x1000, 1, 0).trailer(18).build(),
      esp_in(10, 28));
  wan(PacketBuilder().ipv6("2001:db8::2", "2001:db8::1").esp(0x1000, 1, 1392).trailer(33).build(),
      esp_in(10, 1440));
  // Totals over several packets.
  const Traffic gw = dp().gateway_traffic(kGw).value();
  EXPECT_EQ(gw.tx_packets, 3u);
  EXPECT_EQ(gw.tx_bytes, 32u + 500 + 1000);
  EXPECT_EQ(gw.rx_packets, 2u);
  EXPECT_EQ(gw.rx_bytes, 28u + 1440);
  const Traffic t = dp().tunnel_traffic(10).value();
  EXPECT_EQ(t.tx_bytes, gw.tx_bytes);
  EXPECT_EQ(t.rx_bytes, gw.rx_bytes);
}

// --- SPD semantics ------------------------------------------------------------

// SPEC §3's overlap example, as installed relations.
TEST_F(XgwDp, SpdSpecExample) {
  XGW_REQUIRE_ROOT();
  conn(1, 11);  // A
  conn(2, 12);  // B
  conn(3, 13);  // C
  spd({rel("10.0.0.0/24", "192.168.0.0/24", 1), rel("10.0.0.0/24", "192.168.1.0/24", 1),
       rel("10.0.1.0/24", "192.168.2.0/24", 2), rel("10.0.2.0/24", "192.168.2.0/24", 3)});
  expect_class("10.0.0.5", "192.168.0.9", 1);
  expect_class("10.0.0.255", "192.168.1.0", 1);
  expect_class("10.0.1.5", "192.168.2.9", 2);
  expect_class("10.0.2.5", "192.168.2.9", 3);
  expect_class("10.0.1.5", "192.168.0.9", std::nullopt);
  expect_class("10.0.1.5", "192.168.1.9", std::nullopt);
  expect_class("10.0.3.5", "192.168.2.9", std::nullopt);
  expect_class("10.0.0.5", "192.168.3.9", std::nullopt);
  expect_class("192.168.0.9", "10.0.0.5", std::nullopt);  // reverse direction

  // The addition SPEC allows (10.0.1.0/24 -> 192.168.1.0/24), as conn D.
  conn(4, 14);
  spd({rel("10.0.0.0/24", "192.168.0.0/24", 1), rel("10.0.0.0/24", "192.168.1.0/24", 1),
       rel("10.0.1.0/24", "192.168.2.0/24", 2), rel("10.0.2.0/24", "192.168.2.0/24", 3),
       rel("10.0.1.0/24", "192.168.1.0/24", 4)});
  expect_class("10.0.1.5", "192.168.1.9", 4);
  expect_class("10.0.0.5", "192.168.1.9", 1);
  expect_class("10.0.1.5", "192.168.2.9", 2);
  expect_class("10.0.2.5", "192.168.1.9", std::nullopt);
}

// A longer source prefix for another destination must not hide a shorter
// one: the lookup backtracks through every source length present.
TEST_F(XgwDp, SpdBacktracksAcrossSourceLengths) {
  XGW_REQUIRE_ROOT();
  for (uint32_t c = 1; c <= 6; ++c) conn(c, 100 + c);
  spd({rel("10.0.0.0/16", "192.168.1.0/24", 1),      // X
       rel("10.0.1.0/24", "192.168.2.0/24", 2),      // Y
       rel("10.0.1.5/32", "192.168.3.0/24", 3),      // Z
       rel("0.0.0.0/0", "172.16.0.0/12", 4),         // W
       rel("10.0.0.0/8", "192.168.4.0/22", 5),       // V
       rel("10.0.1.128/25", "192.168.9.9/32", 6)});  // host route
  expect_class("10.0.1.5", "192.168.1.7", 1);        // /32 and /24 exist; X at /16
  expect_class("10.0.9.9", "192.168.1.200", 1);
  expect_class("10.0.1.5", "192.168.2.7", 2);
  expect_class("10.0.1.5", "192.168.3.7", 3);
  expect_class("10.0.1.6", "192.168.3.7", std::nullopt);
  expect_class("10.0.1.5", "172.20.0.1", 4);  // down to /0
  expect_class("11.0.0.1", "172.31.255.255", 4);
  expect_class("11.0.0.1", "172.32.0.1", std::nullopt);
  expect_class("10.0.1.5", "192.168.6.1", 5);  // down to /8
  expect_class("10.200.1.5", "192.168.7.255", 5);
  expect_class("10.0.1.200", "192.168.9.9", 6);
  expect_class("10.0.1.5", "192.168.9.9", std::nullopt);
  expect_class("10.0.1.200", "192.168.9.8", std::nullopt);
  expect_class("10.0.2.5", "192.168.2.7", std::nullopt);
  expect_class("11.0.0.1", "192.168.1.7", std::nullopt);

  // A default remote (0.0.0.0/0) next to a longer source prefix.
  spd({rel("10.50.0.0/16", "0.0.0.0/0", 1), rel("10.60.1.0/24", "192.168.2.0/24", 2)});
  expect_class("10.50.3.3", "8.8.8.8", 1);
  expect_class("10.50.3.3", "192.168.2.1", 1);
  expect_class("10.60.1.3", "192.168.2.1", 2);
  expect_class("10.60.1.3", "8.8.8.8", std::nullopt);
}

TEST_F(XgwDp, SpdIpv6) {
  XGW_REQUIRE_ROOT();
  for (uint32_t c = 1; c <= 6; ++c) conn(c, 100 + c);
  spd({rel("fd00:1::/48", "2001:db8:1::/48", 1),                  // A
       rel("fd00:1:0:1::/64", "2001:db8:2::/48", 2),              // B
       rel("fd00::/16", "2001:db8:3::/48", 3),                    // C
       rel("fd00:1:0:1::5/128", "2001:db8:4::/64", 4),            // D
       rel("fd00:1:0:1:8000::/65", "2001:db8:5::1000:0/100", 5),  // E
       rel("::/0", "2001:db8:6::/47", 6),                         // F
       rel("10.0.0.0/24", "192.168.0.0/24", 1)});                 // and a v4 one
  expect_class("fd00:1::9", "2001:db8:1::1", 1);
  expect_class("fd00:1:0:1::9", "2001:db8:1::1", 1);       // backtracks /64 -> /48
  expect_class("fd00:1:0:1::5", "2001:db8:1:ffff::1", 1);  // /128, /65, /64 -> /48
  expect_class("fd00:1:0:1::9", "2001:db8:2::1", 2);
  expect_class("fd00:1:0:2::9", "2001:db8:2::1", std::nullopt);
  expect_class("fd00:9::1", "2001:db8:3::1", 3);
  expect_class("fd00:1:0:1::5", "2001:db8:3::7", 3);  // down to /16
  expect_class("fd00:1:0:1::5", "2001:db8:4::1", 4);
  expect_class("fd00:1:0:1::6", "2001:db8:4::1", std::nullopt);
  expect_class("fd00:1:0:1:8000::1", "2001:db8:5::1000:1", 5);
  expect_class("fd00:1:0:1:ffff::1", "2001:db8:5::1fff:ffff", 5);
  expect_class("fd00:1:0:1:8000::1", "2001:db8:5::2000:1", std::nullopt);
  expect_class("fd00:1:0:1:7fff::1", "2001:db8:5::1000:1", std::nullopt);
  expect_class("2001:db8:ffff::1", "2001:db8:7::1", 6);  // ::/0
  expect_class("fd00:1:0:1::5", "2001:db8:6::1", 6);
  expect_class("fd00:1:0:1::5", "2001:db8:8::1", std::nullopt);
  expect_class("fe80::1", "2001:db8:1::1", std::nullopt);
  expect_class("10.0.0.1", "192.168.0.1", 1);
}

TEST_F(XgwDp, ActiveTunnelFlip) {
  XGW_REQUIRE_ROOT();
  conn(1, 10, 11);
  spd({rel("10.0.0.0/24", "192.168.0.0/24", 1)});
  const Bytes f = plain("10.0.0.5", "192.168.0.9", 100);
  lan(f, xfrm(10, 100));
  lan(f, xfrm(10, 100));
  flip(1, 1);
  lan(f, xfrm(11, 100));  // same (cached) flow, counters move to the standby
  lan(plain("10.0.0.6", "192.168.0.9", 200), xfrm(11, 200));
  flip(1, 0);
  lan(f, xfrm(10, 100));
  EXPECT_EQ(dp().tunnel_traffic(10).value().tx_packets, 3u);
  EXPECT_EQ(dp().tunnel_traffic(11).value().tx_packets, 2u);
  // Flips the loader refuses: a single-tunnel connection, an unset one.
  conn(2, 20);
  EXPECT_FALSE(dp().set_active_tunnel(2, 1).has_value());
  EXPECT_FALSE(dp().set_active_tunnel(77, 0).has_value());
  lan(plain("10.0.0.5", "192.168.0.9", 100), xfrm(10, 100));
  // A standby without an SA: passed, and an acquire names the standby.
  tunnel(11, 1, false);
  flip(1, 1);
  lan(f, passed(XGW_PASS_NO_SA_PASS));
  const auto ev = events(500);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].conn_idx, 1u);
  EXPECT_EQ(ev[0].tunnel_idx, 11u);
}

TEST_F(XgwDp, SpdSwapInvalidatesFlowCache) {
  XGW_REQUIRE_ROOT();
  conn(1, 10);
  conn(2, 20);
  const uint32_t g1 = spd({rel("10.0.0.0/24", "192.168.0.0/24", 1)});
  expect_class("10.0.0.5", "192.168.0.9", 1);
  expect_class("10.0.0.5", "192.168.5.5", std::nullopt);  // a cached negative
  expect_class("10.0.0.5", "192.168.0.9", 1);             // from the cache

  const uint32_t g2 =
      spd({rel("10.0.0.0/24", "192.168.0.0/24", 2), rel("10.0.0.0/24", "192.168.5.0/24", 1)});
  EXPECT_GT(g2, g1);
  expect_class("10.0.0.5", "192.168.0.9", 2);
  expect_class("10.0.0.5", "192.168.5.5", 1);

  const uint32_t g3 = spd({});
  EXPECT_GT(g3, g2);
  expect_class("10.0.0.5", "192.168.0.9", std::nullopt);
  expect_class("10.0.0.5", "192.168.5.5", std::nullopt);

  const uint32_t g4 = spd({rel("10.0.0.0/24", "192.168.0.0/24", 1)});
  EXPECT_GT(g4, g3);
  expect_class("10.0.0.5", "192.168.0.9", 1);
  expect_class("10.0.0.5", "192.168.5.5", std::nullopt);

  // The generation the loader returns is the one the programs see.
  const int gfd = dp().map_fd("xgw_gw");
  ASSERT_GE(gfd, 0);
  xgw_gw_cfg cfg{};
  const uint32_t key = kGw;
  ASSERT_EQ(bpf_map_lookup_elem(gfd, &key, &cfg), 0) << std::strerror(errno);
  EXPECT_EQ(cfg.spd_gen, g4);
}

// A replace that fails (a relation listed twice, mixed families) changes
// nothing: the old table keeps classifying and the generation stays.
TEST_F(XgwDp, SpdReplaceFailureKeepsOldTable) {
  XGW_REQUIRE_ROOT();
  conn(1, 10);
  conn(2, 20);
  const uint32_t g1 =
      spd({rel("10.0.0.0/24", "192.168.0.0/24", 1), rel("fd00::/64", "fd01::/64", 1)});
  expect_class("10.0.0.5", "192.168.0.9", 1);
  expect_class("fd00::5", "fd01::9", 1);
  const std::vector<SpdRelation> dup = {rel("10.0.0.0/24", "192.168.0.0/24", 2),
                                        rel("fd00::/64", "fd01::/64", 2),
                                        rel("fd00::/64", "fd01::/64", 2)};
  EXPECT_FALSE(dp().replace_spd(kGw, dup).has_value());
  SpdRelation mixed = rel("10.0.0.0/24", "192.168.0.0/24", 2);
  mixed.remote = xgw::net::Cidr::parse("fd01::/64").value();
  EXPECT_FALSE(dp().replace_spd(kGw, std::vector<SpdRelation>{mixed}).has_value());
  expect_class("10.0.0.5", "192.168.0.9", 1);
  expect_class("fd00::5", "fd01::9", 1);
  expect_class("10.0.0.6", "192.168.0.9", 1);  // uncached: the old trie
  const uint32_t g2 = spd({rel("10.0.0.0/24", "192.168.0.0/24", 2)});
  EXPECT_EQ(g2, g1 + 1);
  expect_class("10.0.0.5", "192.168.0.9", 2);
}

// Changing a gateway's flags or tier must not move its SPD generation
// backwards, or flows cached under an old table could come back to life.
TEST_F(XgwDp, SpdGenerationSurvivesSetGateway) {
  XGW_REQUIRE_ROOT();
  conn(1, 10);
  conn(2, 20);
  conn(3, 30);
  const uint32_t g1 = spd({rel("10.0.0.0/24", "192.168.0.0/24", 1)});
  expect_class("10.0.0.5", "192.168.0.9", 1);  // cached under g1
  const uint32_t g2 = spd({rel("10.0.0.0/24", "192.168.0.0/24", 2)});
  EXPECT_GT(g2, g1);
  GatewayConfig g;
  g.tier_bps = 1000000000;
  g.burst_bytes = 1 << 20;
  XGW_ASSERT_OK(dp().set_gateway(kGw, g));
  expect_class("10.0.0.6", "192.168.0.9", 2);
  const uint32_t g3 = spd({rel("10.0.0.0/24", "192.168.0.0/24", 3)});
  EXPECT_GT(g3, g2);
  expect_class("10.0.0.5", "192.168.0.9", 3);
  XGW_ASSERT_OK(dp().set_gateway(kGw, GatewayConfig{}));
  expect_class("10.0.0.5", "192.168.0.9", 3);
  expect_class("10.0.0.6", "192.168.0.9", 3);
}

TEST_F(XgwDp, GatewaysHaveSeparateSpds) {
  XGW_REQUIRE_ROOT();
  XGW_ASSERT_OK(dp().set_gateway(kOtherGw, GatewayConfig{}));
  conn(1, 10);
  conn(2, 20, std::nullopt, kOtherGw);
  spd({rel("10.0.0.0/24", "192.168.0.0/24", 1)}, kGw);
  spd({rel("10.0.0.0/24", "192.168.0.0/24", 2), rel("10.0.0.0/24", "192.168.1.0/24", 2)}, kOtherGw);
  expect_class("10.0.0.5", "192.168.0.9", 1, kGw);
  expect_class("10.0.0.5", "192.168.0.9", 2, kOtherGw);
  expect_class("10.0.0.5", "192.168.1.9", 2, kOtherGw);
  expect_class("10.0.0.5", "192.168.1.9", std::nullopt, kGw);
}

// --- Tier policing --------------------------------------------------------------

// 8 bit/s refills one byte per second: negligible during a test.
constexpr uint64_t kSlowBps = 8;
constexpr uint64_t kNsec = 1000000000ull;

class XgwDpTier : public XgwDp {
 protected:
  void set_tier(uint64_t burst, uint64_t bps = kSlowBps) {
    GatewayConfig g;
    g.tier_bps = bps;
    g.burst_bytes = burst;
    XGW_ASSERT_OK(dp().set_gateway(kGw, g));
    conn(1, 10);
    XGW_ASSERT_OK(dp().add_sa(0x1000, 10, kGw));
    spd({rel("10.0.0.0/24", "192.168.0.0/24", 1)});
  }
  // Sends n LAN packets of l3 bytes; the first `admit` must be carried,
  // the rest dropped over tier.
  void burst_lan(size_t n, size_t l3, size_t admit) {
    const Bytes f = plain("10.0.0.5", "192.168.0.9", l3);
    for (size_t i = 0; i < n; ++i) {
      SCOPED_TRACE("LAN packet " + std::to_string(i));
      lan(f, i < admit ? xfrm(10, l3) : dropped(XGW_DROP_OVER_TIER));
    }
  }
  void burst_wan(size_t n, size_t l3, size_t admit) {
    const auto b = PacketBuilder().ipv4("198.51.100.2", "203.0.113.1").esp(0x1000, 1, l3 - 28);
    ASSERT_EQ(b.l3_len(), l3);
    const Bytes f = b.build();
    for (size_t i = 0; i < n; ++i) {
      SCOPED_TRACE("WAN packet " + std::to_string(i));
      wan(f, i < admit ? esp_in(10, l3) : dropped(XGW_DROP_OVER_TIER));
    }
  }
};

TEST_F(XgwDpTier, LockedBucketAdmitsBurstThenDrops) {
  XGW_REQUIRE_ROOT();
  set_tier(1000);
  burst_lan(14, 100, 10);
  // The inbound direction has its own bucket.
  burst_wan(14, 100, 10);
  // A packet that does not fit what is left is dropped even if a smaller
  // one would fit: nothing is left here, so even 28 bytes are refused.
  lan(plain("10.0.0.5", "192.168.0.9", 28), dropped(XGW_DROP_OVER_TIER));
}

TEST_F(XgwDpTier, LockedBucketRemainder) {
  XGW_REQUIRE_ROOT();
  set_tier(1050);  // floor(1050 / 100) = 10, 50 bytes left
  burst_lan(12, 100, 10);
  lan(plain("10.0.0.5", "192.168.0.9", 50), xfrm(10, 50));  // the remainder fits exactly
  lan(plain("10.0.0.5", "192.168.0.9", 28), dropped(XGW_DROP_OVER_TIER));
}

// Below 8 bit/s the rate is 0 bytes/s: no refill at all, so the boundary
// is exact: the packet that takes the bucket to exactly zero is admitted.
TEST_F(XgwDpTier, LockedBucketExactFit) {
  XGW_REQUIRE_ROOT();
  set_tier(1000, 4);
  burst_lan(12, 100, 10);
  burst_wan(12, 100, 10);
}

// Token-bucket semantics: an idle bucket refills at the tier rate up to its
// depth. Here the depth (1000 B) is 10 s of rate (800 bit/s = 100 B/s), so
// after 3.5 s idle at least 350 bytes (3 packets of 100) must be available.
TEST_F(XgwDpTier, DeepBucketRefillsAtRateAfterIdle) {
  XGW_REQUIRE_ROOT();
  set_tier(1000, 800);
  const Bytes f = plain("10.0.0.5", "192.168.0.9", 100);
  auto admitted = [&](int n) {
    int ok = 0;
    for (int i = 0; i < n; ++i) {
      const RunResult r = run_frame(dp().lan_prog_fd(), f);
      EXPECT_EQ(r.err, 0);
      ok += r.retval == XDP_PASS;
    }
    return ok;
  };
  const int first = admitted(15);
  EXPECT_GE(first, 10);
  EXPECT_LE(first, 11);  // 10 from the depth, at most one more refilled
  EXPECT_EQ(admitted(1), 0) << "drained";
  std::this_thread::sleep_for(std::chrono::milliseconds(3500));
  EXPECT_GE(admitted(5), 3) << "3.5 s at 100 B/s refills >= 350 bytes";
}

TEST_F(XgwDpTier, LockedBucketWithRepeat) {
  XGW_REQUIRE_ROOT();
  set_tier(1000);
  const Snapshot before = snapshot(kGw);
  const RunResult r =
      run_frame(dp().lan_prog_fd(), plain("10.0.0.5", "192.168.0.9", 100), kLo, 0, 25);
  ASSERT_EQ(r.err, 0) << std::strerror(-r.err);
  EXPECT_EQ(verdict_name(r.retval), verdict_name(XDP_DROP));  // the last run's verdict
  const Snapshot after = snapshot(kGw);
  EXPECT_EQ(after.reasons.pass[XGW_PASS_XFRM] - before.reasons.pass[XGW_PASS_XFRM], 10u);
  EXPECT_EQ(after.reasons.drop[XGW_DROP_OVER_TIER] - before.reasons.drop[XGW_DROP_OVER_TIER], 15u);
  EXPECT_EQ(after.gw.tx_packets - before.gw.tx_packets, 10u);
  EXPECT_EQ(after.gw.tx_bytes - before.gw.tx_bytes, 1000u);
}

TEST_F(XgwDpTier, LockedBucketIsSharedByAllCpus) {
  XGW_REQUIRE_ROOT();
  const int ncpu = libbpf_num_possible_cpus();
  ASSERT_GT(ncpu, 0);
  if (ncpu < 2 || sysconf(_SC_NPROCESSORS_ONLN) < 2) GTEST_SKIP() << "needs two online CPUs";
  set_tier(1000);
  {
    CpuPin pin(0);
    if (!pin.ok()) GTEST_SKIP() << "cannot run on CPU 0";
    burst_lan(10, 100, 10);
  }
  CpuPin pin(1);
  if (!pin.ok()) GTEST_SKIP() << "cannot run on CPU 1";
  burst_lan(3, 100, 0);
}

TEST_F(XgwDpTier, PerCpuSharesDivideBurst) {
  XGW_REQUIRE_ROOT();
  LoadOptions o;
  o.pin_dir = "";
  o.tier_percpu = true;
  open_dp(o);
  ASSERT_FALSE(HasFatalFailure());
  const int ncpu = libbpf_num_possible_cpus();
  ASSERT_GT(ncpu, 0);
  const uint64_t n = static_cast<uint64_t>(ncpu);
  const uint64_t burst = 1000 * n;  // each CPU's share: 1000 bytes
  const uint64_t l3 = 100;
  // As the program computes it, in nano-bytes.
  const size_t admit = static_cast<size_t>((burst * kNsec / n) / (l3 * kNsec));
  ASSERT_EQ(admit, 10u);
  set_tier(burst);

  const int first = sched_getcpu();
  ASSERT_GE(first, 0);
  {
    CpuPin pin(first);
    ASSERT_TRUE(pin.ok());
    burst_lan(admit + 4, l3, admit);
    burst_wan(admit + 4, l3, admit);
  }
  // Another CPU has a share of its own.
  for (int cpu = 0; cpu < ncpu; ++cpu) {
    if (cpu == first) continue;
    CpuPin pin(cpu);
    if (!pin.ok()) continue;  // offline or outside our cpuset
    SCOPED_TRACE("CPU " + std::to_string(cpu));
    burst_lan(admit + 2, l3, admit);
    break;
  }
}

TEST_F(XgwDpTier, UnlimitedAndDefaultBurst) {
  XGW_REQUIRE_ROOT();
  conn(1, 10);
  spd({rel("10.0.0.0/24", "192.168.0.0/24", 1)});
  // tier_bps 0: never policed.
  const Bytes big = plain("10.0.0.5", "192.168.0.9", 1500);
  const Snapshot before = snapshot(kGw);
  const RunResult r = run_frame(dp().lan_prog_fd(), big, kLo, 0, 1000);
  ASSERT_EQ(r.err, 0);
  EXPECT_EQ(verdict_name(r.retval), verdict_name(XDP_PASS));
  const Snapshot after = snapshot(kGw);
  EXPECT_EQ(after.reasons.pass[XGW_PASS_XFRM] - before.reasons.pass[XGW_PASS_XFRM], 1000u);
  EXPECT_EQ(after.reasons.drop[XGW_DROP_OVER_TIER], before.reasons.drop[XGW_DROP_OVER_TIER]);
  EXPECT_EQ(after.gw.tx_bytes - before.gw.tx_bytes, 1500000u);
  // burst_bytes 0 at 8 bit/s: the default depth (at least 64 KiB) admits
  // floor(default / 1500) packets.
  GatewayConfig g;
  g.tier_bps = kSlowBps;
  XGW_ASSERT_OK(dp().set_gateway(kGw, g));
  const uint64_t depth = xgw::loader::default_burst_bytes(kSlowBps);
  EXPECT_GE(depth, 65536u);
  const Snapshot b2 = snapshot(kGw);
  const RunResult r2 =
      run_frame(dp().lan_prog_fd(), big, kLo, 0, static_cast<uint32_t>(depth / 1500 + 5));
  ASSERT_EQ(r2.err, 0);
  const Snapshot a2 = snapshot(kGw);
  EXPECT_EQ(a2.reasons.pass[XGW_PASS_XFRM] - b2.reasons.pass[XGW_PASS_XFRM], depth / 1500);
  EXPECT_EQ(a2.reasons.drop[XGW_DROP_OVER_TIER] - b2.reasons.drop[XGW_DROP_OVER_TIER], 5u);
}

// --- Flow cache -----------------------------------------------------------------

TEST_F(XgwDp, FlowCacheRecordsResultsWithGeneration) {
  XGW_REQUIRE_ROOT();
  conn(1, 10);
  const uint32_t gen =
      spd({rel("10.0.0.0/24", "192.168.0.0/24", 1), rel("fd00::/64", "fd01::/64", 1)});
  expect_class("10.0.0.5", "192.168.0.9", 1);
  expect_class("10.0.0.5", "192.168.7.9", std::nullopt);
  expect_class("fd00::5", "fd01::9", 1);
  struct Entry {
    uint32_t conn_idx, spd_gen;
  };
  // The entry for a flow in any CPU's cache (test_run may run on either).
  auto lookup = [&](std::string_view src, std::string_view dst) -> std::optional<Entry> {
    const auto s = addr(src), d = addr(dst);
    const int ncpu = libbpf_num_possible_cpus();
    if (s.family == xgw::net::Family::V4) {
      uint32_t sa, da;
      std::memcpy(&sa, s.bytes.data(), 4);
      std::memcpy(&da, d.bytes.data(), 4);
      uint32_t slot = xgw_flow4_slot(kGw, sa, da);
      std::vector<xgw_flow4> per_cpu(static_cast<size_t>(ncpu));
      if (bpf_map_lookup_elem(dp().map_fd("xgw_flow4"), &slot, per_cpu.data()) != 0)
        return std::nullopt;
      for (const auto& f : per_cpu)
        if (f.valid && f.gw_idx == kGw && f.src == sa && f.dst == da)
          return Entry{f.conn_idx, f.spd_gen};
      return std::nullopt;
    }
    uint32_t sw[4], dw[4];
    std::memcpy(sw, s.bytes.data(), 16);
    std::memcpy(dw, d.bytes.data(), 16);
    uint32_t slot = xgw_flow6_slot(kGw, sw, dw);
    std::vector<xgw_flow6> per_cpu(static_cast<size_t>(ncpu));
    if (bpf_map_lookup_elem(dp().map_fd("xgw_flow6"), &slot, per_cpu.data()) != 0)
      return std::nullopt;
    for (const auto& f : per_cpu)
      if (f.valid && f.gw_idx == kGw && std::memcmp(f.src, sw, 16) == 0 &&
          std::memcmp(f.dst, dw, 16) == 0)
        return Entry{f.conn_idx, f.spd_gen};
    return std::nullopt;
  };
  auto hit = lookup("10.0.0.5", "192.168.0.9");
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->conn_idx, 1u);
  EXPECT_EQ(hit->spd_gen, gen);
  auto miss = lookup("10.0.0.5", "192.168.7.9");
  ASSERT_TRUE(miss.has_value());
  EXPECT_EQ(miss->conn_idx, XGW_NO_CONN);
  EXPECT_EQ(miss->spd_gen, gen);
  auto v6 = lookup("fd00::5", "fd01::9");
  ASSERT_TRUE(v6.has_value());
  EXPECT_EQ(v6->conn_idx, 1u);
}

TEST_F(XgwDp, FlowCacheDisabledClassifiesTheSame) {
  XGW_REQUIRE_ROOT();
  LoadOptions o;
  o.pin_dir = "";
  o.flow_cache = false;
  open_dp(o);
  ASSERT_FALSE(HasFatalFailure());
  for (uint32_t c = 1; c <= 4; ++c) conn(c, 10 + c);
  spd({rel("10.0.0.0/24", "192.168.0.0/24", 1), rel("10.0.0.0/24", "192.168.1.0/24", 1),
       rel("10.0.1.0/24", "192.168.2.0/24", 2), rel("10.0.2.0/24", "192.168.2.0/24", 3),
       rel("fd00:1::/48", "2001:db8:1::/48", 4)});
  for (int round = 0; round < 2; ++round) {  // a second pass would hit a cache
    expect_class("10.0.0.5", "192.168.0.9", 1);
    expect_class("10.0.0.5", "192.168.1.9", 1);
    expect_class("10.0.1.5", "192.168.2.9", 2);
    expect_class("10.0.2.5", "192.168.2.9", 3);
    expect_class("10.0.1.5", "192.168.1.9", std::nullopt);
    expect_class("fd00:1::5", "2001:db8:1::9", 4);
  }
  spd({rel("10.0.0.0/16", "192.168.1.0/24", 2), rel("10.0.1.0/24", "192.168.2.0/24", 3)});
  expect_class("10.0.0.5", "192.168.0.9", std::nullopt);
  expect_class("10.0.1.5", "192.168.1.7", 2);
  expect_class("10.0.1.5", "192.168.2.9", 3);
  expect_class("fd00:1::5", "2001:db8:1::9", std::nullopt);
  // Nothing was cached, on any CPU.
  const size_t ncpu = static_cast<size_t>(libbpf_num_possible_cpus());
  std::vector<xgw_flow4> f4(ncpu);
  std::vector<xgw_flow6> f6(ncpu);
  size_t valid = 0;
  for (uint32_t slot = 0; slot < XGW_FLOW_SLOTS; ++slot) {
    ASSERT_EQ(bpf_map_lookup_elem(dp().map_fd("xgw_flow4"), &slot, f4.data()), 0);
    ASSERT_EQ(bpf_map_lookup_elem(dp().map_fd("xgw_flow6"), &slot, f6.data()), 0);
    for (size_t c = 0; c < ncpu; ++c) valid += f4[c].valid + f6[c].valid;
  }
  EXPECT_EQ(valid, 0u);
}

// --- Gateway lifecycle ------------------------------------------------------------

TEST_F(XgwDp, RemovedGatewayPassesUncounted) {
  XGW_REQUIRE_ROOT();
  GatewayConfig g;
  g.drop_unmatched = true;
  XGW_ASSERT_OK(dp().set_gateway(kGw, g));
  conn(1, 10);
  spd({rel("10.0.0.0/24", "192.168.0.0/24", 1)});
  lan(plain("10.0.0.5", "192.168.1.9"), dropped(XGW_DROP_NO_POLICY));
  expect_class("10.0.0.5", "192.168.0.9", 1);  // now in the flow cache
  XGW_ASSERT_OK(dp().remove_gateway(kGw));
  // Neither policed nor counted once the gateway is gone.
  const Snapshot before = snapshot(kGw);
  for (IfRole side : {IfRole::Lan, IfRole::Wan}) {
    interface(kGw, side);
    for (const Bytes& f :
         {plain("10.0.0.5", "192.168.1.9"), plain("10.0.0.5", "192.168.0.9"),
          PacketBuilder().ipv4("10.0.0.5", "192.168.0.9").ihl(2).udp(1, 2, 9).build(),
          PacketBuilder().ipv4("198.51.100.2", "203.0.113.1").esp(0x9999, 1, 9).build()}) {
      const int fd = side == IfRole::Lan ? dp().lan_prog_fd() : dp().wan_prog_fd();
      const RunResult r = run_frame(fd, f);
      ASSERT_EQ(r.err, 0);
      EXPECT_EQ(verdict_name(r.retval), verdict_name(XDP_PASS));
    }
  }
  expect_deltas(before, snapshot(kGw), untouched());
  // Re-added, the gateway starts without an SPD: flows cached before the
  // removal do not come back.
  XGW_ASSERT_OK(dp().set_gateway(kGw, GatewayConfig{}));
  expect_class("10.0.0.5", "192.168.0.9", std::nullopt);
}

}  // namespace
