// One backend contract (dataplane.h), the same cases against every
// dp::Dataplane: the in-memory mock, the userspace ESP engine and the
// kernel's XFRM. Add, update of addresses and ports after the caller wiped
// the keys (what the IKE daemon does on a NAT mapping change), delete, the
// replay window, and tunnel counters across a rekey.
//
// Built into two binaries: dataplane_userspace_tests instantiates Mock and
// Userspace (root, a private network namespace); dataplane_xfrm_tests
// instantiates Xfrm, which needs kernel ESP: it skips on this machine and
// runs in the QEMU VM (tests/lab/xfrm_vm_test.sh, XGW_XFRM_REQUIRE_ESP=1).
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "mock_dataplane.h"
#include "privileged.h"
#ifdef XGW_CONFORMANCE_XFRM
#include "dataplane/xfrm_dataplane.h"
#else
#include "dataplane/userspace_dataplane.h"
#endif

namespace xgw::dp {
namespace {

enum class Backend { Mock, Userspace, Xfrm };

std::string name_of(Backend b) {
  switch (b) {
    case Backend::Mock:
      return "Mock";
    case Backend::Userspace:
      return "Userspace";
    case Backend::Xfrm:
      return "Xfrm";
  }
  return "?";
}

net::IpAddr ip(const char* s) {
  return *net::IpAddr::parse(s);
}

// An AES-GCM-128 SA over UDP 4500 between two loopback addresses.
SaSpec gcm(uint32_t spi, Direction dir, uint32_t tunnel) {
  SaSpec s;
  s.name = "c" + std::to_string(spi);
  s.spi = spi;
  s.dir = dir;
  s.tunnel_id = tunnel;
  s.local = ip("127.0.0.1");
  s.remote = ip("127.0.0.2");
  s.encap = Encap::Udp;
  s.local_port = 4500;
  s.remote_port = 4500;
  s.encr = esp::Encr::AesGcm16_128;
  s.encr_key.assign(20, static_cast<uint8_t>(spi));
  s.replay_window = dir == Direction::In ? 128 : 0;
  return s;
}

class Contract : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    switch (GetParam()) {
      case Backend::Mock:
        dp_ = std::make_unique<MockDataplane>();
        mock_ = static_cast<MockDataplane*>(dp_.get());
        return;
      case Backend::Userspace: {
#ifndef XGW_CONFORMANCE_XFRM
        XGW_REQUIRE_ROOT();
        UserspaceOptions o;
        o.tun_name = "xgwct0";
        o.workers = 1;
        o.udp_port = 4500;
        auto u = UserspaceDataplane::create(o);
        ASSERT_TRUE(u) << u.error();
        dp_ = std::move(*u);
#endif
        return;
      }
      case Backend::Xfrm: {
#ifdef XGW_CONFORMANCE_XFRM
        XGW_REQUIRE_ROOT();
        std::string why;
        if (!xfrm_esp_available(&why)) {
          const char* v = std::getenv("XGW_XFRM_REQUIRE_ESP");
          if (v && std::strcmp(v, "1") == 0) FAIL() << "XGW_XFRM_REQUIRE_ESP=1 but " << why;
          GTEST_SKIP() << "no kernel ESP (runs in the VM: tests/lab/xfrm_vm_test.sh)";
        }
        auto x = XfrmDataplane::create();
        ASSERT_TRUE(x) << x.error();
        dp_ = std::move(*x);
#endif
        return;
      }
    }
  }
  void TearDown() override {
    // Kernel state outlives the object: leave none behind.
    if (!dp_) return;
    for (uint32_t spi : added_in_) (void)dp_->delete_sa(Direction::In, spi);
    for (uint32_t spi : added_out_) (void)dp_->delete_sa(Direction::Out, spi);
  }
  Expected<void, std::string> add(const SaSpec& s) {
    auto r = dp_->add_sa(s);
    if (r) (s.dir == Direction::In ? added_in_ : added_out_).push_back(s.spi);
    return r;
  }

  std::unique_ptr<Dataplane> dp_;
  MockDataplane* mock_ = nullptr;
  std::vector<uint32_t> added_in_, added_out_;
};

TEST_P(Contract, AddThenDelete) {
  auto spi = dp_->allocate_spi();
  ASSERT_TRUE(spi) << spi.error();
  EXPECT_GE(*spi, 256u) << "RFC 4303 §2.1 reserves 1-255";
  ASSERT_TRUE(add(gcm(*spi, Direction::In, 41)));
  ASSERT_TRUE(add(gcm(0x4100, Direction::Out, 41)));
  EXPECT_FALSE(dp_->add_sa(gcm(*spi, Direction::In, 41))) << "the same SPI twice";
  auto c = dp_->sa_counters(Direction::In, *spi);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->packets, 0u);
  ASSERT_TRUE(dp_->sa_counters(Direction::Out, 0x4100));
  EXPECT_TRUE(dp_->delete_sa(Direction::In, *spi));
  EXPECT_FALSE(dp_->sa_counters(Direction::In, *spi));
  EXPECT_FALSE(dp_->delete_sa(Direction::In, *spi)) << "deleted twice";
  EXPECT_FALSE(dp_->delete_sa(Direction::In, 0x4100)) << "0x4100 is outbound";
  EXPECT_TRUE(dp_->delete_sa(Direction::Out, 0x4100));
  // Bad input is refused, with a reason.
  SaSpec bad = gcm(0x4101, Direction::Out, 41);
  bad.encr_key.resize(7);
  auto r = dp_->add_sa(bad);
  ASSERT_FALSE(r);
  EXPECT_FALSE(r.error().empty());
}

TEST_P(Contract, UpdateAddressesAfterTheKeysAreWiped) {
  ASSERT_TRUE(add(gcm(0x4200, Direction::Out, 42)));
  ASSERT_TRUE(add(gcm(0x4201, Direction::In, 42)));
  for (auto dir : {Direction::Out, Direction::In}) {
    SaSpec moved = gcm(dir == Direction::Out ? 0x4200 : 0x4201, dir, 42);
    // The IKE daemon wiped its copy of the keys once the SA was installed.
    moved.encr_key.clear();
    moved.integ_key.clear();
    moved.remote = ip("127.0.0.3");  // the peer's NAT mapping changed
    moved.remote_port = 31000;
    moved.lifetime.hard_seconds = 7200;
    auto r = dp_->update_sa(moved);
    EXPECT_TRUE(r) << (dir == Direction::Out ? "out: " : "in: ") << (r ? "" : r.error());
    EXPECT_TRUE(dp_->sa_counters(dir, moved.spi)) << "the SA is gone after its update";
  }
  if (mock_) {
    const auto sas = mock_->sas();
    const SaSpec& s = sas.at({Direction::Out, 0x4200});
    EXPECT_EQ(s.remote, ip("127.0.0.3"));
    EXPECT_EQ(s.remote_port, 31000);
    EXPECT_EQ(s.encr_key.size(), 20u) << "an update must not take the wiped keys";
  }
  // What an update may not change, refused alike by every backend.
  SaSpec other = gcm(0x4200, Direction::Out, 42);
  other.encr = esp::Encr::AesGcm16_256;
  other.encr_key.clear();
  EXPECT_FALSE(dp_->update_sa(other)) << "another transform";
  other = gcm(0x4200, Direction::Out, 43);
  EXPECT_FALSE(dp_->update_sa(other)) << "another tunnel";
  other = gcm(0x4200, Direction::Out, 42);
  other.remote_port = 0;
  EXPECT_FALSE(dp_->update_sa(other)) << "UDP encapsulation without a port";
  other = gcm(0x4202, Direction::Out, 42);
  EXPECT_FALSE(dp_->update_sa(other)) << "no SA with that SPI";
}

TEST_P(Contract, ReplayWindow) {
  SaSpec in = gcm(0x4300, Direction::In, 43);
  in.replay_window = 65537;
  EXPECT_FALSE(dp_->add_sa(in)) << "a window above 65536";
  in.replay_window = 1024;
  ASSERT_TRUE(add(in));
  SaSpec wider = in;
  wider.replay_window = 2048;
  wider.encr_key.clear();
  auto r = dp_->update_sa(wider);
  ASSERT_FALSE(r) << "the replay window of an installed SA changed";
  EXPECT_NE(r.error().find("replay window"), std::string::npos) << r.error();
  SaSpec same = in;
  same.encr_key.clear();
  EXPECT_TRUE(dp_->update_sa(same)) << "an update that keeps the window";
}

TEST_P(Contract, TunnelCountersSurviveARekey) {
  ASSERT_TRUE(add(gcm(0x4400, Direction::Out, 44)));
  ASSERT_TRUE(add(gcm(0x4401, Direction::In, 44)));
  if (mock_) {
    SaCounters c;
    c.packets = 7;
    c.bytes = 700;
    mock_->set_counters(Direction::Out, 0x4400, c);
    mock_->set_counters(Direction::In, 0x4401, c);
  }
  const auto before = dp_->tunnel_counters(44);
  ASSERT_TRUE(before);
  // Make before break: the new pair goes in, then the old one goes.
  ASSERT_TRUE(add(gcm(0x4402, Direction::Out, 44)));
  ASSERT_TRUE(add(gcm(0x4403, Direction::In, 44)));
  ASSERT_TRUE(dp_->delete_sa(Direction::Out, 0x4400));
  ASSERT_TRUE(dp_->delete_sa(Direction::In, 0x4401));
  const auto after = dp_->tunnel_counters(44);
  ASSERT_TRUE(after) << "the tunnel's counters went with its old SAs";
  EXPECT_GE(after->tx_packets, before->tx_packets);
  EXPECT_GE(after->tx_bytes, before->tx_bytes);
  EXPECT_GE(after->rx_packets, before->rx_packets);
  EXPECT_GE(after->rx_bytes, before->rx_bytes);
  if (mock_) {
    EXPECT_EQ(after->tx_packets, 7u) << "the deleted SA's share was lost";
  }
  // (The real backends' shares are counted from real packets in their own
  // traffic suites: Traffic.RekeyAndUpdateSa and XfrmEsp.)
}

#ifdef XGW_CONFORMANCE_XFRM
INSTANTIATE_TEST_SUITE_P(Backends, Contract, ::testing::Values(Backend::Xfrm),
                         [](const auto& info) { return name_of(info.param); });
#else
INSTANTIATE_TEST_SUITE_P(Backends, Contract, ::testing::Values(Backend::Mock, Backend::Userspace),
                         [](const auto& info) { return name_of(info.param); });
#endif

}  // namespace
}  // namespace xgw::dp
