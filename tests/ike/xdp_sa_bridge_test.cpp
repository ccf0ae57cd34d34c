// xgwd's XDP bridge (xgwd/xdp_sa_bridge.h) under the real IKE daemon: two
// daemons back to back (ike_pair.h), peer A's daemon programming its mock
// ESP backend through the bridge, whose XDP side is a recording sink. The
// XDP view must follow every install, rekey and delete the daemon makes.
#include "xgwd/xdp_sa_bridge.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "ike_pair.h"

namespace xgw::ike::test {
namespace {

using dp::Direction;
using xgwd::XdpTunnelRef;

// The XDP maps as the bridge programs them.
struct RecordingSink : xgwd::XdpSaSink {
  std::map<uint32_t, XdpTunnelRef> admitted;  // xgw_sa
  std::map<uint32_t, uint32_t> out;           // tunnel index -> out SPI
  std::vector<std::string> ops;
  bool fail_admit = false;
  Expected<void, std::string> admit_spi(uint32_t spi, const XdpTunnelRef& t) override {
    if (fail_admit) return unexpected(std::string("map full"));
    admitted[spi] = t;
    ops.push_back("admit");
    return {};
  }
  Expected<void, std::string> revoke_spi(uint32_t spi) override {
    admitted.erase(spi);
    ops.push_back("revoke");
    return {};
  }
  Expected<void, std::string> set_outbound(const XdpTunnelRef& t, uint32_t spi) override {
    if (spi)
      out[t.tunnel_idx] = spi;
    else
      out.erase(t.tunnel_idx);
    ops.push_back("out");
    return {};
  }
};

class XdpBridge : public ::testing::Test {
 protected:
  XdpBridge() {
    a = &net.add_peer("a", "192.0.2.1");
    b = &net.add_peer("b", "198.51.100.1");
    bridge = std::make_unique<xgwd::XdpSaBridge>(
        *a->dp, sink, [this](const std::string& conn) -> std::optional<XdpTunnelRef> {
          if (!resolvable || conn != ca.name) return std::nullopt;
          return ref;
        });
    // A's daemon installs through the bridge.
    a->d = std::make_unique<Daemon>(net.clock, *a->tx, *bridge, SimNet::fast_options());
    ca = basic_conn(*a, *b, true);
    cb = basic_conn(*a, *b, false);
  }
  void connect() {
    ASSERT_TRUE(a->d->upsert(ca).has_value());
    ASSERT_TRUE(b->d->upsert(cb).has_value());
    ASSERT_TRUE(a->d->initiate(ca.name).has_value());
    net.pump();
    ASSERT_TRUE(a->d->status(ca.name)->up);
  }
  // The backend's SAs of one direction.
  std::set<uint32_t> backend(Direction d) const {
    std::set<uint32_t> s;
    for (const auto& [k, sa] : a->dp->sas())
      if (k.first == d) s.insert(k.second);
    return s;
  }
  std::set<uint32_t> admitted() const {
    std::set<uint32_t> s;
    for (const auto& [spi, r] : sink.admitted) s.insert(spi);
    return s;
  }
  // The newest outbound SA the daemon installed (highest install order is
  // not visible in the mock: the one that is not the rekeyed one).
  SimNet net;
  Peer* a;
  Peer* b;
  ConnConfig ca, cb;
  RecordingSink sink;
  bool resolvable = true;
  XdpTunnelRef ref{3, 17};
  std::unique_ptr<xgwd::XdpSaBridge> bridge;
};

TEST_F(XdpBridge, EstablishedChildSaIsAdmittedAndMakesTheTunnelReady) {
  connect();
  EXPECT_EQ(admitted(), backend(Direction::In));
  ASSERT_EQ(sink.admitted.size(), 1u);
  EXPECT_EQ(sink.admitted.begin()->second, ref);
  ASSERT_EQ(backend(Direction::Out).size(), 1u);
  EXPECT_EQ(sink.out.at(ref.tunnel_idx), *backend(Direction::Out).begin());
  const auto v = bridge->view(ca.name);
  EXPECT_EQ(v.out_spi, *backend(Direction::Out).begin());
  ASSERT_TRUE(v.tunnel);
}

TEST_F(XdpBridge, RekeyKeepsTheOldSpiUntilTheBackendDropsIt) {
  ca.child_lifetime_s = 120;
  cb.child_lifetime_s = 3600;
  connect();
  const uint32_t old_in = *backend(Direction::In).begin();
  bool ever_unready = false, admitted_gone_early = false, admitted_stale = false;
  for (int i = 0; i < 1300; ++i) {
    net.run_for(100, 100);
    ever_unready |= !sink.out.count(ref.tunnel_idx);
    // Every SPI the backend decrypts with is admitted, and nothing else.
    const auto in = backend(Direction::In), adm = admitted();
    admitted_gone_early |= !std::includes(adm.begin(), adm.end(), in.begin(), in.end());
    admitted_stale |= !std::includes(in.begin(), in.end(), adm.begin(), adm.end());
    // The tunnel names an outbound SA the backend holds.
    if (sink.out.count(ref.tunnel_idx))
      ever_unready |= !backend(Direction::Out).count(sink.out.at(ref.tunnel_idx));
  }
  EXPECT_GE(a->d->counters().child_rekeyed, 1u);
  EXPECT_FALSE(ever_unready) << "a moment with the tunnel not ready or on a deleted SA";
  EXPECT_FALSE(admitted_gone_early) << "an SPI the backend holds was not admitted";
  EXPECT_FALSE(admitted_stale) << "an SPI the backend dropped stayed admitted";
  EXPECT_EQ(sink.admitted.count(old_in), 0u) << "the rekeyed SA's SPI still admitted";
  EXPECT_EQ(admitted(), backend(Direction::In));
}

TEST_F(XdpBridge, TeardownRevokesEverything) {
  connect();
  a->d->terminate(ca.name);
  net.pump();
  EXPECT_TRUE(backend(Direction::In).empty());
  EXPECT_TRUE(sink.admitted.empty());
  EXPECT_TRUE(sink.out.empty()) << "tunnel still ready after its SAs went";
}

TEST_F(XdpBridge, UnresolvedConnectionIsProgrammedByReconcile) {
  resolvable = false;  // the XDP sync has not seen the connection yet
  connect();
  EXPECT_TRUE(sink.admitted.empty());
  EXPECT_TRUE(sink.out.empty());
  resolvable = true;
  bridge->reconcile();
  EXPECT_EQ(admitted(), backend(Direction::In));
  EXPECT_TRUE(sink.out.count(ref.tunnel_idx));
  // The connection moves to another XDP tunnel: the old one is cleared.
  const XdpTunnelRef old = ref;
  ref = {3, 18};
  bridge->reconcile();
  EXPECT_FALSE(sink.out.count(old.tunnel_idx));
  EXPECT_TRUE(sink.out.count(18));
  for (const auto& [spi, r] : sink.admitted) EXPECT_EQ(r, ref);
  // It leaves the data plane altogether.
  resolvable = false;
  bridge->reconcile();
  EXPECT_TRUE(sink.admitted.empty());
  EXPECT_TRUE(sink.out.empty());
}

TEST_F(XdpBridge, SinkFailureIsCountedAndRetried) {
  sink.fail_admit = true;
  connect();
  EXPECT_TRUE(sink.admitted.empty());
  EXPECT_GE(bridge->stats().sink_errors, 1u);
  sink.fail_admit = false;
  bridge->reconcile();
  EXPECT_EQ(admitted(), backend(Direction::In));
}

TEST_F(XdpBridge, AcquireStartsTheMatchingChildSaRateLimited) {
  ca.start_immediately = false;
  ASSERT_TRUE(a->d->upsert(ca).has_value());
  ASSERT_TRUE(b->d->upsert(cb).has_value());
  const auto src = *net::IpAddr::parse("10.1.0.5");
  const auto dst = *net::IpAddr::parse("10.2.0.9");
  // Outside every relation of the connection: nothing to negotiate.
  EXPECT_FALSE(bridge->acquire(ca.name, dst, src, 5000));
  EXPECT_FALSE(bridge->acquire("other", src, dst, 5000));
  EXPECT_EQ(bridge->stats().acquires_unmatched, 2u);
  auto ev = bridge->acquire(ca.name, src, dst, 5000);
  ASSERT_TRUE(ev);
  EXPECT_EQ(ev->kind, dp::Event::Kind::Acquire);
  // A second packet within the interval: suppressed, counted.
  EXPECT_FALSE(bridge->acquire(ca.name, src, dst, 5500));
  EXPECT_EQ(bridge->stats().acquires_limited, 1u);
  EXPECT_TRUE(bridge->acquire(ca.name, src, dst, 5000 + xgwd::XdpSaBridge::kAcquireIntervalMs));
  a->d->on_event(*ev);
  net.pump();
  EXPECT_TRUE(a->d->status(ca.name)->up) << "the acquire did not bring the tunnel up";
  EXPECT_EQ(admitted(), backend(Direction::In));
  EXPECT_TRUE(sink.out.count(ref.tunnel_idx));
}

}  // namespace
}  // namespace xgw::ike::test
