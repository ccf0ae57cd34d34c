// The data-plane interface's spec validation and the in-memory mock the
// IKE daemons are tested against.
#include "dataplane/dataplane.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "mock_dataplane.h"

namespace xgw::dp {
namespace {

net::IpAddr ip(const char* s) {
  auto a = net::IpAddr::parse(s);
  EXPECT_TRUE(a) << s;
  return a.value_or(net::IpAddr{});
}

net::Cidr cidr(const char* s) {
  auto c = net::Cidr::parse(s);
  EXPECT_TRUE(c) << s;
  return c ? *c : net::Cidr{};
}

SaSpec gcm_sa(uint32_t spi, Direction dir, uint32_t tunnel) {
  SaSpec sa;
  sa.name = "t" + std::to_string(tunnel) + (dir == Direction::In ? "-in" : "-out");
  sa.spi = spi;
  sa.dir = dir;
  sa.tunnel_id = tunnel;
  sa.local = ip("192.0.2.1");
  sa.remote = ip("198.51.100.7");
  sa.encr = esp::Encr::AesGcm16_128;
  sa.integ = esp::Integ::None;
  sa.encr_key.assign(20, 0x5a);
  return sa;
}

PolicySpec policy(uint32_t id, uint32_t tunnel) {
  PolicySpec p;
  p.id = id;
  p.src = cidr("10.1.0.0/16");
  p.dst = cidr("10.2.0.0/16");
  p.tunnel_id = tunnel;
  return p;
}

bool contains(const std::string& s, const char* what) {
  return s.find(what) != std::string::npos;
}

// ---------------------------------------------------------------------------

TEST(Validate, AcceptsAGoodSa) {
  EXPECT_TRUE(validate(gcm_sa(0x1000, Direction::Out, 1)));
  SaSpec cbc = gcm_sa(256, Direction::In, 1);  // 256 is the lowest allowed SPI
  cbc.encr = esp::Encr::AesCbc256;
  cbc.encr_key.assign(32, 1);
  cbc.integ = esp::Integ::HmacSha256_128;
  cbc.integ_key.assign(32, 2);
  cbc.encap = Encap::None;
  cbc.local_port = cbc.remote_port = 0;  // ports do not matter without UDP
  cbc.esn = true;
  cbc.replay_window = 65536;
  EXPECT_TRUE(validate(cbc));
  SaSpec v6 = gcm_sa(0x1000, Direction::Out, 1);
  v6.local = ip("2001:db8::1");
  v6.remote = ip("2001:db8::2");
  EXPECT_TRUE(validate(v6));
}

TEST(Validate, ReservedSpi) {
  // RFC 4303 §2.1: 1–255 are reserved, 0 is local-only.
  for (uint32_t spi : {0u, 1u, 255u}) {
    auto v = validate(gcm_sa(spi, Direction::In, 1));
    ASSERT_FALSE(v) << spi;
    EXPECT_TRUE(contains(v.error(), "SPI must be at least 256")) << v.error();
  }
}

TEST(Validate, KeyLengths) {
  SaSpec sa = gcm_sa(0x1000, Direction::Out, 1);
  sa.encr_key.assign(16, 1);  // the salt is missing
  auto v = validate(sa);
  ASSERT_FALSE(v);
  EXPECT_TRUE(contains(v.error(), "20-byte encryption key (salt included), got 16")) << v.error();
  EXPECT_TRUE(contains(v.error(), sa.name.c_str())) << "names the SA: " << v.error();

  SaSpec cbc = gcm_sa(0x1000, Direction::Out, 1);
  cbc.encr = esp::Encr::AesCbc128;
  cbc.encr_key.assign(16, 1);
  cbc.integ = esp::Integ::HmacSha1_96;
  cbc.integ_key.assign(32, 1);
  v = validate(cbc);
  ASSERT_FALSE(v);
  EXPECT_TRUE(contains(v.error(), "20-byte key, got 32")) << v.error();
}

TEST(Validate, TransformCombinations) {
  SaSpec aead = gcm_sa(0x1000, Direction::Out, 1);
  aead.integ = esp::Integ::HmacSha256_128;
  aead.integ_key.assign(32, 1);
  auto v = validate(aead);
  ASSERT_FALSE(v);
  EXPECT_TRUE(contains(v.error(), "AEAD")) << v.error();

  SaSpec null = gcm_sa(0x1000, Direction::Out, 1);
  null.encr = esp::Encr::Null;
  null.encr_key.clear();
  v = validate(null);
  ASSERT_FALSE(v);
  EXPECT_TRUE(contains(v.error(), "integrity")) << v.error();
}

TEST(Validate, AddressesPortsWindowLifetimes) {
  SaSpec mixed = gcm_sa(0x1000, Direction::Out, 1);
  mixed.remote = ip("2001:db8::2");
  auto v = validate(mixed);
  ASSERT_FALSE(v);
  EXPECT_TRUE(contains(v.error(), "families")) << v.error();

  SaSpec port = gcm_sa(0x1000, Direction::Out, 1);
  port.remote_port = 0;
  v = validate(port);
  ASSERT_FALSE(v);
  EXPECT_TRUE(contains(v.error(), "ports")) << v.error();

  SaSpec win = gcm_sa(0x1000, Direction::In, 1);
  win.replay_window = 65537;
  v = validate(win);
  ASSERT_FALSE(v);
  EXPECT_TRUE(contains(v.error(), "65536")) << v.error();

  for (int which = 0; which < 3; ++which) {
    SaSpec lt = gcm_sa(0x1000, Direction::Out, 1);
    if (which == 0) lt.lifetime.soft_bytes = 2, lt.lifetime.hard_bytes = 1;
    if (which == 1) lt.lifetime.soft_packets = 2, lt.lifetime.hard_packets = 1;
    if (which == 2) lt.lifetime.soft_seconds = 2, lt.lifetime.hard_seconds = 1;
    v = validate(lt);
    ASSERT_FALSE(v) << which;
    EXPECT_TRUE(contains(v.error(), "soft lifetime")) << v.error();
  }
  // A soft limit with no hard limit (0 = none) is fine.
  SaSpec soft_only = gcm_sa(0x1000, Direction::Out, 1);
  soft_only.lifetime.soft_bytes = 1000;
  EXPECT_TRUE(validate(soft_only));
}

TEST(Validate, Policies) {
  EXPECT_TRUE(validate(policy(1, 7)));
  auto v = validate(policy(1, 0));
  ASSERT_FALSE(v);
  EXPECT_TRUE(contains(v.error(), "tunnel id")) << v.error();
  PolicySpec mixed = policy(2, 7);
  mixed.dst = cidr("2001:db8::/32");
  v = validate(mixed);
  ASSERT_FALSE(v);
  EXPECT_TRUE(contains(v.error(), "families")) << v.error();
}

TEST(Names, EventKindsAndLimits) {
  EXPECT_STREQ(to_string(Event::Kind::Acquire), "acquire");
  EXPECT_STREQ(to_string(Event::Kind::HardExpire), "hard_expire");
  EXPECT_STREQ(to_string(Event::Limit::Packets), "packets");
}

// ---------------------------------------------------------------------------

TEST(Mock, AddUpdateDeleteSa) {
  MockDataplane dp;
  ASSERT_TRUE(dp.add_sa(gcm_sa(0x1000, Direction::Out, 1)));
  ASSERT_TRUE(dp.add_sa(gcm_sa(0x2000, Direction::In, 1)));
  EXPECT_EQ(dp.sas().size(), 2u);
  auto c = dp.sa_counters(Direction::Out, 0x1000);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->packets, 0u);
  EXPECT_FALSE(dp.sa_counters(Direction::In, 0x1000)) << "direction is part of the key";

  // Update: new NAT mapping and lifetime; counters and keys stay.
  SaCounters counted;
  counted.packets = 10;
  counted.bytes = 1000;
  dp.set_counters(Direction::Out, 0x1000, counted);
  SaSpec moved = gcm_sa(0x1000, Direction::Out, 1);
  moved.remote = ip("203.0.113.9");
  moved.remote_port = 61000;
  moved.lifetime.hard_seconds = 3600;
  ASSERT_TRUE(dp.update_sa(moved));
  const auto sas = dp.sas();
  const SaSpec& stored = sas.at({Direction::Out, 0x1000});
  EXPECT_EQ(stored.remote, ip("203.0.113.9"));
  EXPECT_EQ(stored.remote_port, 61000);
  EXPECT_EQ(stored.lifetime.hard_seconds, 3600u);
  EXPECT_EQ(stored.encr_key, std::vector<uint8_t>(20, 0x5a));
  EXPECT_EQ(dp.sa_counters(Direction::Out, 0x1000)->packets, 10u);

  auto missing = dp.update_sa(gcm_sa(0x3000, Direction::Out, 1));
  ASSERT_FALSE(missing);
  EXPECT_TRUE(contains(missing.error(), "no SA")) << missing.error();
  SaSpec invalid = moved;
  invalid.remote_port = 0;
  EXPECT_FALSE(dp.update_sa(invalid));

  ASSERT_TRUE(dp.delete_sa(Direction::Out, 0x1000));
  EXPECT_FALSE(dp.sa_counters(Direction::Out, 0x1000));
  EXPECT_EQ(dp.sas().size(), 1u);
  auto again = dp.delete_sa(Direction::Out, 0x1000);
  ASSERT_FALSE(again);
  EXPECT_TRUE(contains(again.error(), "no SA")) << again.error();
}

TEST(Mock, DuplicateAndInvalidSas) {
  MockDataplane dp;
  ASSERT_TRUE(dp.add_sa(gcm_sa(0x1000, Direction::In, 1)));
  auto dup = dp.add_sa(gcm_sa(0x1000, Direction::In, 2));
  ASSERT_FALSE(dup);
  EXPECT_TRUE(contains(dup.error(), "exists")) << dup.error();
  EXPECT_TRUE(dp.add_sa(gcm_sa(0x1000, Direction::Out, 1))) << "same SPI, other direction";
  auto bad = dp.add_sa(gcm_sa(7, Direction::In, 1));
  ASSERT_FALSE(bad);
  EXPECT_TRUE(contains(bad.error(), "SPI must be at least 256")) << bad.error();
  EXPECT_EQ(dp.sas().size(), 2u);
}

TEST(Mock, Policies) {
  MockDataplane dp;
  ASSERT_TRUE(dp.add_policy(policy(1, 7)));
  PolicySpec replaced = policy(1, 8);
  replaced.priority = 5;
  ASSERT_TRUE(dp.add_policy(replaced)) << "same id replaces";
  ASSERT_EQ(dp.policies().size(), 1u);
  EXPECT_EQ(dp.policies().at(1).tunnel_id, 8u);
  EXPECT_EQ(dp.policies().at(1).priority, 5u);
  EXPECT_FALSE(dp.add_policy(policy(2, 0)));
  EXPECT_EQ(dp.policies().size(), 1u);
  ASSERT_TRUE(dp.delete_policy(1));
  EXPECT_TRUE(dp.policies().empty());
  EXPECT_FALSE(dp.delete_policy(1));
}

TEST(Mock, AllocateSpiIsUniqueAndNotReserved) {
  MockDataplane dp;
  std::set<uint32_t> seen;
  for (int i = 0; i < 2000; ++i) {
    auto spi = dp.allocate_spi();
    ASSERT_TRUE(spi) << spi.error();
    EXPECT_GE(*spi, 256u);
    EXPECT_TRUE(seen.insert(*spi).second) << "handed out twice: " << *spi;
  }
}

TEST(Mock, AllocateSpiSkipsSpisInUse) {
  // dataplane.h: "A fresh inbound SPI ... no SA uses or was handed out".
  MockDataplane dp;
  auto first = dp.allocate_spi();
  ASSERT_TRUE(first);
  // An inbound SA installed with SPIs the allocator would pick next.
  for (uint32_t k = 1; k <= 3; ++k) ASSERT_TRUE(dp.add_sa(gcm_sa(*first + k, Direction::In, 1)));
  for (int i = 0; i < 10; ++i) {
    auto spi = dp.allocate_spi();
    ASSERT_TRUE(spi);
    EXPECT_FALSE(dp.sa_counters(Direction::In, *spi)) << "SPI " << *spi << " is in use";
  }
}

TEST(Mock, EventsAreDeliveredOnce) {
  MockDataplane dp;
  EXPECT_TRUE(dp.poll_events().empty());
  EXPECT_EQ(dp.event_fd(), -1);
  Event acquire;
  acquire.kind = Event::Kind::Acquire;
  acquire.policy_id = 3;
  acquire.tunnel_id = 7;
  acquire.src = ip("10.1.0.5");
  acquire.dst = ip("10.2.0.9");
  Event soft;
  soft.kind = Event::Kind::SoftExpire;
  soft.limit = Event::Limit::Bytes;
  soft.spi = 0x1000;
  Event nat;
  nat.kind = Event::Kind::NatMapping;
  nat.new_addr = ip("203.0.113.1");
  nat.new_port = 4501;
  dp.inject_event(acquire);
  dp.inject_event(soft);
  dp.inject_event(nat);
  const auto ev = dp.poll_events();
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[0].kind, Event::Kind::Acquire);
  EXPECT_EQ(ev[0].policy_id, 3u);
  EXPECT_EQ(ev[0].src, ip("10.1.0.5"));
  EXPECT_EQ(ev[1].kind, Event::Kind::SoftExpire);
  EXPECT_EQ(ev[1].limit, Event::Limit::Bytes);
  EXPECT_EQ(ev[2].new_port, 4501);
  EXPECT_TRUE(dp.poll_events().empty()) << "drained";
  dp.inject_event(soft);
  EXPECT_EQ(dp.poll_events().size(), 1u);
}

TEST(Mock, TunnelCountersSumTheTunnelsSas) {
  MockDataplane dp;
  EXPECT_FALSE(dp.tunnel_counters(1)) << "no SA, no tunnel";
  ASSERT_TRUE(dp.add_sa(gcm_sa(0x1001, Direction::Out, 1)));
  ASSERT_TRUE(dp.add_sa(gcm_sa(0x2001, Direction::In, 1)));
  ASSERT_TRUE(dp.add_sa(gcm_sa(0x1002, Direction::Out, 1)));  // rekeyed, both live
  ASSERT_TRUE(dp.add_sa(gcm_sa(0x3001, Direction::Out, 2)));
  auto set = [&](Direction d, uint32_t spi, uint64_t packets, uint64_t bytes) {
    SaCounters c;
    c.packets = packets;
    c.bytes = bytes;
    dp.set_counters(d, spi, c);
  };
  set(Direction::Out, 0x1001, 10, 1000);
  set(Direction::Out, 0x1002, 5, 500);
  set(Direction::In, 0x2001, 7, 700);
  set(Direction::Out, 0x3001, 100, 10000);
  auto t1 = dp.tunnel_counters(1);
  ASSERT_TRUE(t1);
  EXPECT_EQ(t1->tx_packets, 15u);
  EXPECT_EQ(t1->tx_bytes, 1500u);
  EXPECT_EQ(t1->rx_packets, 7u);
  EXPECT_EQ(t1->rx_bytes, 700u);
  auto t2 = dp.tunnel_counters(2);
  ASSERT_TRUE(t2);
  EXPECT_EQ(t2->tx_packets, 100u);
  EXPECT_EQ(t2->rx_packets, 0u);
  EXPECT_FALSE(dp.tunnel_counters(3));
}

TEST(Mock, TunnelCountersAreMonotonicAcrossRekeys) {
  // dataplane.h: "the tunnel's are monotonic across rekeys" — deleting the
  // old SA after a rekey must not take its traffic out of the tunnel total.
  MockDataplane dp;
  ASSERT_TRUE(dp.add_sa(gcm_sa(0x1001, Direction::Out, 1)));
  SaCounters c;
  c.packets = 10;
  c.bytes = 1000;
  dp.set_counters(Direction::Out, 0x1001, c);
  ASSERT_TRUE(dp.add_sa(gcm_sa(0x1002, Direction::Out, 1)));
  ASSERT_TRUE(dp.delete_sa(Direction::Out, 0x1001));
  auto t = dp.tunnel_counters(1);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->tx_packets, 10u);
  EXPECT_EQ(t->tx_bytes, 1000u);
  c.packets = 3;
  c.bytes = 300;
  dp.set_counters(Direction::Out, 0x1002, c);
  EXPECT_EQ(dp.tunnel_counters(1)->tx_packets, 13u);
  ASSERT_TRUE(dp.delete_sa(Direction::Out, 0x1002));
  t = dp.tunnel_counters(1);
  ASSERT_TRUE(t) << "the tunnel's history outlives its last SA";
  EXPECT_EQ(t->tx_packets, 13u);
  EXPECT_EQ(t->tx_bytes, 1300u);
  EXPECT_EQ(t->rx_packets, 0u);
}

TEST(Mock, IkeMessages) {
  MockDataplane dp;
  const Endpoint a{ip("192.0.2.1"), 4500}, b{ip("198.51.100.7"), 4500};
  const uint8_t msg[] = {1, 2, 3};
  ASSERT_TRUE(dp.send_ike(a, b, msg));
  ASSERT_EQ(dp.sent_ike().size(), 1u);
  EXPECT_EQ(dp.sent_ike()[0].msg, std::vector<uint8_t>({1, 2, 3}));
  EXPECT_EQ(dp.sent_ike()[0].to.addr, b.addr);
  dp.deliver_ike(msg, b, a);  // no receiver yet: dropped, no crash
  std::vector<uint8_t> got;
  uint16_t from_port = 0;
  dp.set_ike_receiver([&](std::span<const uint8_t> m, const Endpoint& from, const Endpoint&) {
    got.assign(m.begin(), m.end());
    from_port = from.port;
  });
  dp.deliver_ike(msg, b, a);
  EXPECT_EQ(got, std::vector<uint8_t>({1, 2, 3}));
  EXPECT_EQ(from_port, 4500);
}

TEST(Mock, Capabilities) {
  MockDataplane dp;
  const auto caps = dp.capabilities();
  EXPECT_EQ(caps.backend, "mock");
  EXPECT_EQ(caps.encr.size(), 9u);
  EXPECT_EQ(caps.integ.size(), 7u);
  EXPECT_TRUE(caps.esn);
  EXPECT_EQ(caps.max_replay_window, 65536u);
}

}  // namespace
}  // namespace xgw::dp
