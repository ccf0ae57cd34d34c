// Two IKEv2 daemons back to back on a simulated clock (ike_pair.h). Every
// exchange test runs in both roles: peer A initiates, then peer B does.
#include <gtest/gtest.h>

#include "ike_pair.h"

namespace xgw::ike::test {
namespace {

using dp::Direction;

std::vector<std::pair<Direction, uint32_t>> sa_keys(const dp::MockDataplane& d) {
  std::vector<std::pair<Direction, uint32_t>> v;
  for (const auto& [k, s] : d.sas()) v.push_back(k);
  return v;
}

class IkePair : public ::testing::TestWithParam<bool> {
 protected:
  IkePair() : IkePair(SimNet::fast_options()) {}
  explicit IkePair(DaemonOptions o) : net(o) {
    a = &net.add_peer("a", "192.0.2.1");
    b = &net.add_peer("b", "198.51.100.1");
    ca = basic_conn(*a, *b, true);
    cb = basic_conn(*a, *b, false);
  }

  // The peer that initiates in this run, and the other one.
  Peer& ini() { return GetParam() ? *a : *b; }
  Peer& res() { return GetParam() ? *b : *a; }
  ConnConfig& ini_cfg() { return GetParam() ? ca : cb; }
  ConnConfig& res_cfg() { return GetParam() ? cb : ca; }

  void load() {
    ASSERT_TRUE(a->d->upsert(ca).has_value());
    ASSERT_TRUE(b->d->upsert(cb).has_value());
  }
  void connect() {
    load();
    ASSERT_TRUE(ini().d->initiate(ini_cfg().name).has_value());
    net.pump();
  }
  ConnStatus st(Peer& p) { return *p.d->status(p.name == "a" ? ca.name : cb.name); }

  void expect_twinned(size_t children = 1) { test::expect_twinned(*a, *b, children); }

  SimNet net;
  Peer* a;
  Peer* b;
  ConnConfig ca, cb;
};

INSTANTIATE_TEST_SUITE_P(Roles, IkePair, ::testing::Values(true, false), [](const auto& info) {
  return info.param ? "a_initiates" : "b_initiates";
});

TEST_P(IkePair, EstablishesIkeAndChildSa) {
  connect();
  EXPECT_TRUE(st(*a).up);
  EXPECT_TRUE(st(*b).up);
  EXPECT_EQ(st(*a).state, "established");
  expect_twinned();
  auto sas = ini().d->sas();
  ASSERT_EQ(sas.size(), 1u);
  EXPECT_EQ(sas[0].state, IkeState::Established);
  EXPECT_TRUE(sas[0].initiator);
  EXPECT_EQ(sas[0].algorithms, "aes128gcm16-prfsha256-modp2048");
  ASSERT_EQ(sas[0].children.size(), 1u);
  EXPECT_EQ(sas[0].children[0].algorithms, "aes128gcm16");
  // Traffic selectors as configured; policies (trap) installed on both.
  EXPECT_EQ(a->dp->policies().size(), 1u);
  EXPECT_EQ(b->dp->policies().size(), 1u);
  EXPECT_EQ(ini().d->counters().ike_established, 1u);
  EXPECT_EQ(res().d->counters().child_established, 1u);
  // SA_INIT, AUTH: two requests, two responses.
  EXPECT_EQ(net.log.size(), 4u);
  const auto& ci = ini().d->counters();
  EXPECT_EQ(ci.tx_by_exchange[0], 1u);  // IKE_SA_INIT
  EXPECT_EQ(ci.tx_by_exchange[1], 1u);  // IKE_AUTH
  EXPECT_EQ(ci.rx_by_exchange[0] + ci.rx_by_exchange[1], 2u);
  EXPECT_EQ(res().d->counters().tx_by_exchange[1], 1u);
  EXPECT_EQ(st(ini()).tunnel_ids.size(), 1u);
}

TEST_P(IkePair, CbcProposalsAndSeveralSubnets) {
  for (auto* c : {&ca, &cb}) {
    c->ike = {*parse_ike_proposal("aes256-sha512-ecp384"),
              *parse_ike_proposal("3des-sha1-modp1024")};
    c->esp = {*parse_esp_proposal("aes128-sha256")};
  }
  ca.children[0].remote_ts.push_back(*net::Cidr::parse("10.3.0.0/24"));
  cb.children[0].local_ts.push_back(*net::Cidr::parse("10.3.0.0/24"));
  connect();
  EXPECT_TRUE(st(*a).up);
  expect_twinned();
  auto sas = a->d->sas();
  ASSERT_EQ(sas.size(), 1u);
  EXPECT_EQ(sas[0].algorithms, "aes256-sha512-prfsha512-ecp384");
  EXPECT_EQ(sas[0].children[0].remote_ts.size(), 2u);
  EXPECT_EQ(a->dp->policies().size(), 2u);
}

TEST_P(IkePair, RetransmitsLostRequests) {
  load();
  int n = 0;
  // Lose the first IKE_SA_INIT request, the first IKE_AUTH request and the
  // response to its retransmission (the responder then replays its cache).
  net.filter = [&](Datagram&) { return ++n != 1 && n != 4 && n != 6; };
  ASSERT_TRUE(ini().d->initiate(ini_cfg().name).has_value());
  net.run_for(10000);
  EXPECT_TRUE(st(*a).up);
  EXPECT_TRUE(st(*b).up);
  EXPECT_GE(ini().d->counters().retransmits, 2u);
  // The responder answered the retransmitted AUTH from its cache.
  EXPECT_GE(res().d->counters().retransmits, 1u);
  expect_twinned();
}

TEST_P(IkePair, PeerNotResponding) {
  ini_cfg().start_immediately = true;
  load();
  net.filter = [&](Datagram& d) { return d.to.addr != res().addr; };
  net.run_for(7500);  // 1 + 2 + 4 s
  auto s = st(ini());
  EXPECT_EQ(s.failure, Failure::PeerNotResponding) << to_string(s.failure);
  EXPECT_FALSE(s.up);
  // start_immediately: it tries again later, and succeeds once the peer answers.
  net.filter = nullptr;
  net.run_for(30000);
  EXPECT_TRUE(st(ini()).up);
}

TEST_P(IkePair, InvalidKeRetriesWithTheResponderGroup) {
  ini_cfg().ike = {*parse_ike_proposal("aes128-sha256-modp2048"),
                   *parse_ike_proposal("aes128-sha256-ecp256")};
  res_cfg().ike = {*parse_ike_proposal("aes128-sha256-ecp256")};
  connect();
  EXPECT_TRUE(st(*a).up);
  auto sas = ini().d->sas();
  ASSERT_EQ(sas.size(), 1u);
  EXPECT_EQ(sas[0].algorithms, "aes128-sha256-prfsha256-ecp256");
}

TEST_P(IkePair, CookiesUnderLoad) {
  DaemonOptions o = SimNet::fast_options();
  o.cookie_threshold = 0;  // always demand a cookie
  SimNet n2(o);
  auto& x = n2.add_peer("a", "192.0.2.1");
  auto& y = n2.add_peer("b", "198.51.100.1");
  auto cx = basic_conn(x, y, true), cy = basic_conn(x, y, false);
  ASSERT_TRUE(x.d->upsert(cx).has_value());
  ASSERT_TRUE(y.d->upsert(cy).has_value());
  Peer& i = GetParam() ? x : y;
  Peer& r = GetParam() ? y : x;
  ASSERT_TRUE(i.d->initiate(GetParam() ? cx.name : cy.name).has_value());
  n2.pump();
  EXPECT_EQ(r.d->counters().cookies_sent, 1u);
  EXPECT_TRUE(x.d->status(cx.name)->up);
  EXPECT_TRUE(y.d->status(cy.name)->up);
}

TEST_P(IkePair, ChildRekeyKeepsAnOutboundSaAtAllTimes) {
  ca.child_lifetime_s = cb.child_lifetime_s = 120;
  // Only the initiator's timer fires first: give the other side a long one.
  res_cfg().child_lifetime_s = 3600;
  connect();
  const auto before = ini().dp->sas();
  bool gap = false;
  for (int i = 0; i < 1300; ++i) {
    net.run_for(100, 100);
    for (Peer* p : {a, b}) {
      bool has_out = false;
      for (const auto& [k, s] : p->dp->sas()) has_out |= k.first == Direction::Out;
      gap |= !has_out;
    }
  }
  EXPECT_FALSE(gap) << "a moment without an outbound SA";
  EXPECT_GE(ini().d->counters().child_rekeyed, 1u);
  EXPECT_GE(res().d->counters().child_rekeyed, 1u);
  EXPECT_GE(st(ini()).child_rekeys, 1u);
  expect_twinned();
  // The old SAs are gone: new SPIs only.
  for (const auto& [k, s] : ini().dp->sas()) EXPECT_EQ(before.count(k), 0u) << k.second;
  EXPECT_TRUE(st(*a).up && st(*b).up);
}

TEST_P(IkePair, IkeRekeyMovesChildren) {
  ini_cfg().ike_lifetime_s = 300;
  connect();
  const auto children_before = sa_keys(*ini().dp);
  net.run_for(300000, 500);
  EXPECT_GE(ini().d->counters().ike_rekeyed, 1u);
  EXPECT_GE(res().d->counters().ike_rekeyed, 1u);
  EXPECT_GE(st(ini()).ike_rekeys, 1u);
  EXPECT_GE(st(res()).ike_rekeys, 1u);
  auto si = ini().d->sas();
  auto sr = res().d->sas();
  ASSERT_EQ(si.size(), 1u);  // the old IKE SA was deleted
  ASSERT_EQ(sr.size(), 1u);
  EXPECT_EQ(si[0].spi_i, sr[0].spi_i);
  EXPECT_EQ(si[0].spi_r, sr[0].spi_r);
  EXPECT_EQ(sa_keys(*ini().dp), children_before) << "CHILD_SAs survive an IKE rekey";
  // The new IKE SA works: a CHILD_SA rekey over it.
  ASSERT_EQ(si[0].children.size(), 1u);
  dp::Event ev;
  ev.kind = dp::Event::Kind::SoftExpire;
  ev.dir = Direction::In;
  ev.spi = si[0].children[0].spi_in;
  ini().dp->inject_event(ev);
  for (const auto& e : ini().dp->poll_events()) ini().d->on_event(e);
  net.pump();
  EXPECT_GE(ini().d->counters().child_rekeyed, 1u);
  expect_twinned();
}

// §2.8.1: both peers rekey the same CHILD_SA at once (no jitter, equal
// lifetimes); the SA with the lowest nonce is closed by its creator and
// exactly one new pair survives, with an outbound SA at every moment.
TEST_P(IkePair, ChildRekeyCollision) {
  for (auto* c : {&ca, &cb}) {
    c->child_lifetime_s = 100;
    c->jitter_percent = 0;
  }
  connect();
  net.run_for(89000, 1000);
  bool gap = false;
  for (int i = 0; i < 200; ++i) {
    net.run_for(100, 100);
    for (Peer* p : {a, b}) {
      bool has_out = false;
      for (const auto& [k, s] : p->dp->sas()) has_out |= k.first == Direction::Out;
      gap |= !has_out;
    }
  }
  net.run_for(10000, 500);
  EXPECT_FALSE(gap);
  EXPECT_GE(a->d->counters().child_rekeyed, 1u);
  EXPECT_GE(b->d->counters().child_rekeyed, 1u);
  expect_twinned(1);
  EXPECT_EQ(a->dp->sas().size(), 2u) << "one inbound and one outbound SA left";
  EXPECT_EQ(b->dp->sas().size(), 2u);
  EXPECT_TRUE(st(*a).up && st(*b).up);
}

// Both peers start an IKE_SA rekey at once: each refuses the other's with
// TEMPORARY_FAILURE, retries after a random delay, and one rekey wins.
TEST_P(IkePair, IkeRekeyCollision) {
  for (auto* c : {&ca, &cb}) {
    c->ike_lifetime_s = 200;
    c->jitter_percent = 0;
  }
  connect();
  net.run_for(200000, 500);
  auto sa = a->d->sas();
  auto sb = b->d->sas();
  ASSERT_EQ(sa.size(), 1u);
  ASSERT_EQ(sb.size(), 1u);
  EXPECT_EQ(sa[0].spi_i, sb[0].spi_i);
  EXPECT_EQ(sa[0].spi_r, sb[0].spi_r);
  EXPECT_GE(a->d->counters().ike_rekeyed + b->d->counters().ike_rekeyed, 2u);
  expect_twinned(1);
  EXPECT_TRUE(st(*a).up && st(*b).up);
}

// A NAT in front of the initiator: both sides detect it (§2.23), float to
// 4500 and encapsulate ESP in UDP; when the NAT's mapping changes, the
// responder follows the peer's new port (and so do its CHILD_SAs).
TEST_P(IkePair, NatDetectionAndMappingChange) {
  Peer& behind = ini();
  uint16_t mapped = 40001;
  net.filter = [&](Datagram& d) {
    if (d.from.addr == behind.addr) d.from.port = d.from.port == 500 ? 40000 : mapped;
    if (d.to.addr == behind.addr && d.to.port >= 40000) d.to.port = d.to.port == 40000 ? 500 : 4500;
    return true;
  };
  connect();
  ASSERT_TRUE(st(*a).up && st(*b).up);
  auto si = ini().d->sas();
  auto sr = res().d->sas();
  EXPECT_TRUE(si[0].nat_local);
  EXPECT_TRUE(sr[0].nat_remote);
  EXPECT_EQ(sr[0].remote, behind.addr.str() + ":40001");
  for (Peer* p : {a, b})
    for (const auto& [k, sa] : p->dp->sas()) EXPECT_EQ(sa.encap, dp::Encap::Udp);
  auto out_port = [&] {
    for (const auto& [k, sa] : res().dp->sas())
      if (k.first == Direction::Out) return sa.remote_port;
    return uint16_t{0};
  };
  EXPECT_EQ(out_port(), 40001);
  // The mapping changes; the next message from the peer (a DPD probe once
  // it is idle) comes from the new port.
  mapped = 40777;
  net.run_for(40000, 500);
  EXPECT_EQ(res().d->sas()[0].remote, behind.addr.str() + ":40777");
  EXPECT_EQ(out_port(), 40777);
  EXPECT_TRUE(st(*a).up && st(*b).up);
  // The data plane may see it first (ESP from a new port): its event moves the SA too.
  const uint32_t tunnel = res().d->sas()[0].children[0].tunnel_id;
  dp::Event ev;
  ev.kind = dp::Event::Kind::NatMapping;
  ev.tunnel_id = tunnel;
  ev.new_addr = behind.addr;
  ev.new_port = 40999;
  res().d->on_event(ev);
  EXPECT_EQ(out_port(), 40999);
}

// An initiator whose data plane has no raw ESP claims a NAT (§2.23 allows
// it): both sides then float IKE to 4500 and encapsulate ESP in UDP on
// 4500, even though the responder could do raw ESP.
TEST_P(IkePair, NoRawEspMeansUdpEncapsulation) {
  SimNet n2;  // daemons read the capabilities at construction: rebuild them
  auto& x = n2.add_peer("a", "192.0.2.1");
  auto& y = n2.add_peer("b", "198.51.100.1");
  Peer& i = GetParam() ? x : y;
  i.dp->set_raw_esp(false);
  i.d = std::make_unique<Daemon>(n2.clock, *i.tx, *i.dp, SimNet::fast_options());
  auto cx = basic_conn(x, y, true), cy = basic_conn(x, y, false);
  ASSERT_TRUE(x.d->upsert(cx).has_value());
  ASSERT_TRUE(y.d->upsert(cy).has_value());
  ASSERT_TRUE(i.d->initiate(GetParam() ? cx.name : cy.name).has_value());
  n2.pump();
  ASSERT_TRUE(x.d->status(cx.name)->up);
  ASSERT_TRUE(y.d->status(cy.name)->up);
  for (Peer* p : {&x, &y}) {
    EXPECT_TRUE(p->d->sas()[0].local.ends_with(":4500")) << p->d->sas()[0].local;
    EXPECT_TRUE(p->d->sas()[0].remote.ends_with(":4500")) << p->d->sas()[0].remote;
    for (const auto& [k, sa] : p->dp->sas()) {
      EXPECT_EQ(sa.encap, dp::Encap::Udp);
      EXPECT_EQ(sa.local_port, 4500);
      EXPECT_EQ(sa.remote_port, 4500);
    }
  }
}

TEST_P(IkePair, HalfOpenSharePerSourceAsksForCookies) {
  DaemonOptions o = SimNet::fast_options();
  o.half_open_per_source = 3;
  o.cookie_threshold = 1000;
  SimNet n2(o);
  auto& x = n2.add_peer("a", "192.0.2.1");
  auto& y = n2.add_peer("b", "198.51.100.1");
  ASSERT_TRUE(y.d->upsert(basic_conn(x, y, false)).has_value());
  // Five IKE_SA_INIT requests from one source that never complete.
  auto cx = basic_conn(x, y, true);
  for (int i = 0; i < 5; ++i) {
    cx.name = "c" + std::to_string(i);
    ASSERT_TRUE(x.d->upsert(cx).has_value());
    ASSERT_TRUE(x.d->initiate(cx.name).has_value());
  }
  n2.filter = [&](Datagram& d) {
    auto h = parse_header(d.data);
    return !(h && h->exchange == Exchange::IkeAuth);  // AUTH never arrives
  };
  n2.pump();
  // Beyond its share of three, the source is asked for a cookie; one that
  // returns it (it receives at that address) is admitted.
  EXPECT_EQ(y.d->counters().cookies_sent, 2u);
  EXPECT_EQ(y.d->sas().size(), 5u);
  EXPECT_EQ(y.d->half_open(), 5u);
  EXPECT_EQ(y.d->counters().half_open_refused, 0u);
  // Half-open SAs expire, making room again.
  n2.run_for(31000, 1000);
  EXPECT_EQ(y.d->half_open(), 0u);
}

TEST_P(IkePair, HalfOpenMaxBoundsEverySource) {
  DaemonOptions o = SimNet::fast_options();
  o.half_open_max = 4;
  SimNet n2(o);
  auto& x = n2.add_peer("a", "192.0.2.1");
  auto& y = n2.add_peer("b", "198.51.100.1");
  ASSERT_TRUE(y.d->upsert(basic_conn(x, y, false)).has_value());
  auto cx = basic_conn(x, y, true);
  for (int i = 0; i < 6; ++i) {
    cx.name = "c" + std::to_string(i);
    ASSERT_TRUE(x.d->upsert(cx).has_value());
    ASSERT_TRUE(x.d->initiate(cx.name).has_value());
  }
  n2.filter = [&](Datagram& d) {
    auto h = parse_header(d.data);
    return !(h && h->exchange == Exchange::IkeAuth);
  };
  n2.pump();
  EXPECT_EQ(y.d->half_open(), 4u);
  EXPECT_GE(y.d->counters().half_open_refused, 2u);
}

// Issue 16: IKE_SA_INIT forged from the peer's own address fill its
// half-open share; the peer still gets in, because beyond the share a
// cookie is asked and only the real peer receives it.
TEST_P(IkePair, ForgeriesFromThePeersAddressDoNotLockItOut) {
  load();
  // A valid first message from the peer's address, built by a daemon of
  // its own; replayed with fresh SPIs its responses reach the real peer,
  // which knows none of them.
  SimNet other(SimNet::fast_options());
  auto& fake = other.add_peer("fake", ini().addr.str());
  auto& target = other.add_peer("target", res().addr.str());
  ConnConfig fc = basic_conn(fake, target, true);
  fc.ike = ini_cfg().ike;
  ASSERT_TRUE(fake.d->upsert(fc).has_value());
  ASSERT_TRUE(fake.d->initiate(fc.name).has_value());
  const Datagram forged = other.queue.front();
  for (int i = 0; i < 50; ++i) {
    Bytes m = forged.data;
    m[0] ^= static_cast<uint8_t>(i + 1);
    m[1] ^= static_cast<uint8_t>(i * 7 + 3);
    res().d->receive(m, forged.from, forged.to);
  }
  EXPECT_EQ(res().d->half_open(), 20u);  // the per-source share, then cookies
  EXPECT_EQ(res().d->counters().cookies_sent, 30u);
  net.pump();  // the responses to the forgeries reach the real peer
  ASSERT_TRUE(ini().d->initiate(ini_cfg().name).has_value());
  net.pump();
  EXPECT_TRUE(st(ini()).up);
  EXPECT_TRUE(st(res()).up);
}

TEST_P(IkePair, UnconfiguredSourcesGetNoAnswer) {
  load();
  SimNet other(SimNet::fast_options());
  auto& stranger = other.add_peer("stranger", "203.0.113.77");
  auto& target = other.add_peer("target", res().addr.str());
  ConnConfig sc = basic_conn(stranger, target, true);
  ASSERT_TRUE(stranger.d->upsert(sc).has_value());
  ASSERT_TRUE(stranger.d->initiate(sc.name).has_value());
  const Datagram d = other.queue.front();
  net.queue.clear();
  for (int i = 0; i < 100; ++i) {
    Bytes m = d.data;
    m[0] ^= static_cast<uint8_t>(i + 1);
    res().d->receive(m, d.from, d.to);
  }
  EXPECT_TRUE(net.queue.empty()) << "answered an unconfigured source";
  EXPECT_EQ(res().d->counters().unknown_peer, 100u);
  EXPECT_EQ(res().d->half_open(), 0u);
}

TEST_P(IkePair, DpdDeclaresADeadPeerWithinIntervalPlusTimeout) {
  connect();
  ASSERT_TRUE(st(ini()).up);
  Peer& victim = res();
  net.filter = [&](Datagram& d) { return !(d.from.addr == victim.addr); };
  const uint64_t t0 = net.clock.now_ms();
  uint64_t dead_at = 0;
  for (int i = 0; i < 600 && !dead_at; ++i) {
    net.run_for(100, 100);
    if (st(ini()).failure == Failure::DeadPeer) dead_at = net.clock.now_ms();
  }
  ASSERT_NE(dead_at, 0u);
  const auto& cfg = ini_cfg().dpd;
  EXPECT_LE(dead_at - t0, (cfg.interval_s + cfg.timeout_s) * 1000ull + 1000);
  EXPECT_GE(dead_at - t0, cfg.interval_s * 1000ull);
  EXPECT_TRUE(ini().dp->sas().empty()) << "the dead peer's SAs are removed";
  EXPECT_EQ(ini().d->counters().dead_peers, 1u);
  EXPECT_EQ(st(ini()).dpd_timeouts, 1u);
  EXPECT_GE(st(ini()).failures_total[Failure::DeadPeer], 1u);
}

TEST_P(IkePair, DpdKeepsALivePeer) {
  connect();
  net.run_for(120000, 500);
  EXPECT_TRUE(st(*a).up && st(*b).up);
  EXPECT_EQ(ini().d->counters().dead_peers + res().d->counters().dead_peers, 0u);
}

TEST_P(IkePair, WrongPsk) {
  res_cfg().psk = "another-key";
  connect();
  EXPECT_FALSE(st(*a).up);
  EXPECT_EQ(st(res()).failure, Failure::PskMismatch);
  EXPECT_EQ(st(ini()).failure, Failure::AuthFailed);
  EXPECT_EQ(st(res()).unauthenticated_failures_total[Failure::PskMismatch],
            1u);  // before AUTH verified
  EXPECT_TRUE(a->dp->sas().empty() && b->dp->sas().empty());
}

TEST_P(IkePair, WrongIdExpectedByInitiator) {
  ini_cfg().remote_id = Identity::fqdn("gw.example.net");
  connect();
  EXPECT_EQ(st(ini()).failure, Failure::IdMismatch);
  EXPECT_NE(st(ini()).failure_detail.find("expected gw.example.net"), std::string::npos);
}

TEST_P(IkePair, WrongIdExpectedByResponder) {
  res_cfg().remote_id = Identity::fqdn("branch.example.net");
  connect();
  EXPECT_EQ(st(res()).failure, Failure::IdMismatch);
  EXPECT_EQ(st(ini()).failure, Failure::AuthFailed);
}

TEST_P(IkePair, FqdnIdentities) {
  ca.local_id = cb.remote_id = Identity::fqdn("a.example.org");
  cb.local_id = ca.remote_id = Identity::fqdn("b.example.org");
  connect();
  EXPECT_TRUE(st(*a).up && st(*b).up);
  EXPECT_EQ(ini().d->sas()[0].remote_id, GetParam() ? "b.example.org" : "a.example.org");
}

TEST_P(IkePair, NoCommonIkeProposal) {
  ini_cfg().ike = {*parse_ike_proposal("aes256-sha256-modp2048")};
  res_cfg().ike = {*parse_ike_proposal("3des-md5-modp2048")};
  connect();
  EXPECT_EQ(st(ini()).failure, Failure::ProposalMismatch);
  EXPECT_EQ(st(res()).failure, Failure::ProposalMismatch);
  // The responder says what each side offered.
  EXPECT_NE(st(res()).failure_detail.find("aes256"), std::string::npos) << st(res()).failure_detail;
  EXPECT_NE(st(res()).failure_detail.find("3des"), std::string::npos);
}

TEST_P(IkePair, DhGroupMismatch) {
  ini_cfg().ike = {*parse_ike_proposal("aes128-sha256-modp2048")};
  res_cfg().ike = {*parse_ike_proposal("aes128-sha256-ecp256")};
  connect();
  EXPECT_EQ(st(res()).failure, Failure::DhGroupMismatch);
  EXPECT_FALSE(st(ini()).up);
  // The initiator's probe (every group with our algorithms) names it too.
  EXPECT_EQ(st(ini()).failure, Failure::DhGroupMismatch) << st(ini()).failure_detail;
  EXPECT_NE(st(ini()).failure_detail.find("ecp256"), std::string::npos);
  EXPECT_TRUE(ini().d->sas().empty());
}

TEST_P(IkePair, TrafficSelectorMismatch) {
  res_cfg().children[0].remote_ts = {*net::Cidr::parse("172.16.0.0/16")};
  connect();
  EXPECT_EQ(st(res()).failure, Failure::TsMismatch);
  EXPECT_EQ(st(ini()).failure, Failure::TsMismatch);
  // The IKE SA stands (§1.2); no CHILD_SA.
  EXPECT_EQ(ini().d->sas().size(), 1u);
  EXPECT_EQ(st(ini()).state, "partial");
  EXPECT_TRUE(ini().dp->sas().empty());
}

TEST_P(IkePair, EspProposalMismatch) {
  ini_cfg().esp = {*parse_esp_proposal("aes256-sha256")};
  res_cfg().esp = {*parse_esp_proposal("aes128-sha1")};
  connect();
  EXPECT_EQ(st(ini()).failure, Failure::ChildProposalMismatch);
  EXPECT_EQ(st(res()).failure, Failure::ChildProposalMismatch);
}

TEST_P(IkePair, PfsMismatchShowsAtRekey) {
  ini_cfg().esp = {*parse_esp_proposal("aes128gcm16-modp2048")};
  ini_cfg().child_lifetime_s = 100;
  res_cfg().esp = {*parse_esp_proposal("aes128gcm16")};
  connect();
  EXPECT_TRUE(st(ini()).up) << "IKE_AUTH carries no KE: PFS does not matter yet";
  net.run_for(100000, 500);
  EXPECT_EQ(st(ini()).failure, Failure::PfsMismatch);
  EXPECT_EQ(st(res()).failure, Failure::PfsMismatch);
}

TEST_P(IkePair, PfsRekey) {
  for (auto* c : {&ca, &cb}) c->esp = {*parse_esp_proposal("aes128gcm16-ecp256")};
  ini_cfg().child_lifetime_s = 100;
  connect();
  net.run_for(100000, 500);
  EXPECT_GE(ini().d->counters().child_rekeyed, 1u);
  expect_twinned();
}

TEST_P(IkePair, NarrowedSelectorsSplitIntoOneChildPerRelation) {
  ini_cfg().children[0].remote_ts = {*net::Cidr::parse("10.2.0.0/16"),
                                     *net::Cidr::parse("10.3.0.0/16")};
  // The responder has the two remote subnets as separate rules.
  ChildConfig second = res_cfg().children[0];
  second.name = "rule2";
  second.local_ts = {*net::Cidr::parse("10.3.0.0/16")};
  res_cfg().children[0].local_ts = {*net::Cidr::parse("10.2.0.0/16")};
  res_cfg().children.push_back(second);
  connect();
  net.pump();
  EXPECT_TRUE(st(ini()).up);
  EXPECT_TRUE(st(res()).up);
  auto sas = ini().d->sas();
  ASSERT_EQ(sas.size(), 1u);
  ASSERT_EQ(sas[0].children.size(), 2u);
  EXPECT_EQ(sas[0].children[0].remote_ts, std::vector<std::string>{"10.2.0.0/16"});
  EXPECT_EQ(sas[0].children[1].remote_ts, std::vector<std::string>{"10.3.0.0/16"});
  expect_twinned(2);
}

// Issue 15 item 1: the responder narrows inside the relation (a /17 of our
// /16). Accepted as what the peer allows: one CHILD_SA, policies narrowed,
// never re-proposed (before: a new CHILD_SA per round trip, forever).
TEST_P(IkePair, SubPrefixNarrowingIsAcceptedNotLooped) {
  res_cfg().children[0].local_ts = {*net::Cidr::parse("10.2.0.0/17")};
  res_cfg().children[0].remote_ts = {*net::Cidr::parse("10.1.0.0/17")};
  if (!GetParam()) std::swap(res_cfg().children[0].local_ts, res_cfg().children[0].remote_ts);
  ini_cfg().start_immediately = true;
  connect();
  net.run_for(30000, 500);
  auto sas = ini().d->sas();
  ASSERT_EQ(sas.size(), 1u);
  EXPECT_EQ(sas[0].children.size(), 1u);
  EXPECT_EQ(ini().d->counters().child_established, 1u);
  EXPECT_TRUE(st(ini()).up);
  ASSERT_EQ(st(ini()).narrowed.size(), 1u);
  EXPECT_NE(st(ini()).narrowed[0].find("/17"), std::string::npos) << st(ini()).narrowed[0];
  // Outbound traffic enters the SA only within its selectors.
  for (const auto& [id, p] : ini().dp->policies()) {
    EXPECT_EQ(p.src.len, 17) << p.src.str();
    EXPECT_EQ(p.dst.len, 17) << p.dst.str();
  }
  expect_twinned();
}

// Issue 15 item 2: the initiator proposes a /17 of the responder's /16;
// the responder's SA is the /17 and so are its outbound policies.
TEST_P(IkePair, ResponderPoliciesFollowTheNarrowedSa) {
  ini_cfg().children[0].local_ts = {*net::Cidr::parse(GetParam() ? "10.1.0.0/17" : "10.2.0.0/17")};
  ini_cfg().children[0].remote_ts = {*net::Cidr::parse(GetParam() ? "10.2.0.0/17" : "10.1.0.0/17")};
  connect();
  EXPECT_TRUE(st(res()).up);
  auto sas = res().d->sas();
  ASSERT_EQ(sas.size(), 1u);
  ASSERT_EQ(sas[0].children.size(), 1u);
  EXPECT_EQ(sas[0].children[0].remote_ts[0].substr(sas[0].children[0].remote_ts[0].size() - 3),
            "/17");
  const auto pol = res().dp->policies();
  ASSERT_EQ(pol.size(), 1u);
  EXPECT_EQ(pol.begin()->second.src.len, 17);
  EXPECT_EQ(pol.begin()->second.dst.len, 17);
  EXPECT_EQ(st(res()).narrowed.size(), 1u);
}

// Issue 15 item 3: a responder with a rule the initiator never asks for
// negotiates it itself once the IKE SA is up (here the initiator has no
// such rule and refuses it: the status names the relation without an SA).
TEST_P(IkePair, ResponderNegotiatesRulesTheInitiatorLeftOut) {
  ChildConfig second = res_cfg().children[0];
  second.name = "rule2";
  second.local_ts = {*net::Cidr::parse(GetParam() ? "10.3.0.0/16" : "10.4.0.0/16")};
  res_cfg().children.push_back(second);
  load();
  ASSERT_TRUE(ini().d->initiate(ini_cfg().name).has_value());
  net.pump();
  EXPECT_EQ(res().d->counters().tx_by_exchange[2], 0u);  // not at once
  net.run_for(5000, 100);
  // The responder asked once for rule2 (CREATE_CHILD_SA) and was refused.
  EXPECT_EQ(res().d->counters().tx_by_exchange[2], 1u);
  const auto s = st(res());
  EXPECT_EQ(s.state, "partial");
  ASSERT_EQ(s.without_sa.size(), 1u);
  EXPECT_EQ(s.without_sa[0].rfind("rule2 ", 0), 0u) << s.without_sa[0];
  net.run_for(30000, 500);
  EXPECT_EQ(res().d->counters().tx_by_exchange[2], 1u) << "re-proposed";
}

// Issue 15 item 6: a peer that authenticates a second IKE SA for the same
// connection and identity without INITIAL_CONTACT (here: another of its
// connections to us, which sends none because an IKE SA with us exists)
// replaces the older one, which is deleted with a Delete.
TEST_P(IkePair, ANewIkeSaFromThePeerReplacesItsOlderOne) {
  connect();
  ASSERT_TRUE(st(res()).up);
  ConnConfig again = ini_cfg();
  again.name = "again";
  ASSERT_TRUE(ini().d->upsert(again).has_value());
  ASSERT_TRUE(ini().d->initiate("again").has_value());
  net.pump();
  net.run_for(2000, 100);
  EXPECT_EQ(res().d->counters().duplicates_replaced, 1u);
  EXPECT_EQ(res().d->sas().size(), 1u);
  EXPECT_TRUE(st(res()).up);
  EXPECT_TRUE(ini().d->status("again")->up);
  EXPECT_FALSE(st(ini()).up);  // its IKE SA was deleted by the responder
  // One CHILD_SA pair left on the responder, the new one.
  size_t in = 0;
  for (const auto& [k, sa] : res().dp->sas()) in += k.first == Direction::In;
  EXPECT_EQ(in, 1u);
}

// Issue 15 item 5, RFC 7296 §2.21.4: a request for an IKE SA we do not
// know (we restarted) from a configured peer is answered, unprotected, with
// INVALID_IKE_SPI, and the connection is started; strangers get nothing.
TEST_P(IkePair, RequestForAnUnknownIkeSaStartsTheConnection) {
  connect();
  Bytes req = net.log[2].data;  // an IKE_AUTH request (encrypted)
  const dp::Endpoint from = net.log[2].from, to = net.log[2].to;
  // The responder restarts: a new daemon at its address with the same
  // configuration and no SAs.
  SimNet fresh(SimNet::fast_options());
  auto& peer = fresh.add_peer("peer", ini().addr.str());
  auto& me = fresh.add_peer("me", res().addr.str());
  ConnConfig mine = basic_conn(me, peer, true);
  ASSERT_TRUE(me.d->upsert(mine).has_value());
  fresh.queue.clear();
  me.d->receive(req, from, to);
  ASSERT_EQ(fresh.queue.size(), 2u);  // INVALID_IKE_SPI, then our IKE_SA_INIT
  auto reply = parse_message(fresh.queue.front().data);
  ASSERT_TRUE(reply.has_value());
  EXPECT_TRUE(reply->header.is_response());
  EXPECT_NE(reply->notify(Notify::InvalidIkeSpi), nullptr);
  EXPECT_EQ(reply->header.message_id, 1u);
  auto init = parse_header(fresh.queue.back().data);
  ASSERT_TRUE(init.has_value());
  EXPECT_EQ(init->exchange, Exchange::IkeSaInit);
  EXPECT_EQ(me.d->counters().invalid_ike_spi_sent, 1u);
  // From an address no connection is configured for: nothing.
  fresh.queue.clear();
  me.d->receive(req, dp::Endpoint{*net::IpAddr::parse("203.0.113.5"), 500}, to);
  EXPECT_TRUE(fresh.queue.empty());
}

TEST_P(IkePair, AcquireStartsNegotiation) {
  load();
  EXPECT_TRUE(net.log.empty());
  auto pol = ini().dp->policies();
  ASSERT_EQ(pol.size(), 1u);
  dp::Event ev;
  ev.kind = dp::Event::Kind::Acquire;
  ev.tunnel_id = pol.begin()->second.tunnel_id;
  ev.policy_id = pol.begin()->first;
  ini().d->on_event(ev);
  net.pump();
  EXPECT_TRUE(st(*a).up && st(*b).up);
}

TEST_P(IkePair, TerminateDeletesOnBothSides) {
  connect();
  ini().d->terminate(ini_cfg().name);
  net.pump();
  EXPECT_TRUE(a->dp->sas().empty());
  EXPECT_TRUE(b->dp->sas().empty());
  EXPECT_EQ(st(res()).failure, Failure::PeerDeleted);
  EXPECT_TRUE(res().d->sas().empty());
}

TEST_P(IkePair, ReconfiguringAConnectionRenegotiates) {
  ini_cfg().start_immediately = true;
  connect();
  const auto old = sa_keys(*ini().dp);
  // A lifetime change applies in place.
  ini_cfg().child_lifetime_s = 1800;
  ASSERT_TRUE(ini().d->upsert(ini_cfg()).has_value());
  net.pump();
  EXPECT_EQ(sa_keys(*ini().dp), old);
  // A proposal change renegotiates.
  for (auto* c : {&ca, &cb}) c->esp = {*parse_esp_proposal("aes256gcm16")};
  ASSERT_TRUE(res().d->upsert(res_cfg()).has_value());
  ASSERT_TRUE(ini().d->upsert(ini_cfg()).has_value());
  net.pump();
  net.run_for(2000);
  EXPECT_TRUE(st(ini()).up);
  EXPECT_EQ(ini().d->sas()[0].children[0].algorithms, "aes256gcm16");
  // Removal takes the SAs and the policies away.
  ini().d->remove(ini_cfg().name);
  net.pump();
  EXPECT_TRUE(ini().dp->sas().empty());
  EXPECT_TRUE(ini().dp->policies().empty());
}

// Issue 15 item 8: IKE_SA_INIT requests spoofed from the peer's address
// with a DH group the responder refuses are counted as unauthenticated
// failures; they do not turn an established connection's status failed.
TEST_P(IkePair, SpoofedFirstMessagesDoNotMarkAnUpTunnelFailed) {
  connect();
  ASSERT_TRUE(st(res()).up);
  // Build the spoofed request with a daemon of its own at the peer's address.
  SimNet other(SimNet::fast_options());
  auto& fake = other.add_peer("fake", ini().addr.str());
  auto& target = other.add_peer("target", res().addr.str());
  ConnConfig fc = basic_conn(fake, target, true);
  fc.ike = {*parse_ike_proposal("aes128gcm16-prfsha256-ecp256")};
  ASSERT_TRUE(fake.d->upsert(fc).has_value());
  ASSERT_TRUE(fake.d->initiate(fc.name).has_value());
  ASSERT_FALSE(other.queue.empty());
  const Datagram spoof = other.queue.front();
  for (int i = 0; i < 6; ++i) {
    Bytes m = spoof.data;
    m[0] ^= static_cast<uint8_t>(i + 1);  // a new SPIi each time: six requests
    res().d->receive(m, spoof.from, spoof.to);
  }
  net.pump();
  const auto s = st(res());
  EXPECT_TRUE(s.up);
  EXPECT_EQ(s.failure, Failure::None) << s.failure_detail;
  EXPECT_EQ(s.unauthenticated_failures_total.at(Failure::DhGroupMismatch), 6u);
  EXPECT_EQ(s.failures_total.count(Failure::DhGroupMismatch), 0u);
  // While the connection is down, the same input still names the reason.
  ini().d->terminate(ini_cfg().name);
  net.pump();
  ASSERT_FALSE(st(res()).up);
  res().d->receive(spoof.data, spoof.from, spoof.to);
  EXPECT_EQ(st(res()).failure, Failure::DhGroupMismatch);
}

TEST_P(IkePair, MalformedMessagesAreCountedNotFatal) {
  connect();
  Peer& r = res();
  const dp::Endpoint from{ini().addr, 500}, to{r.addr, 500};
  const auto before = r.d->counters();
  // Garbage, a header with a bad length, a truncated copy of the AUTH.
  r.d->receive(Bytes(7, 0xab), from, to);
  Bytes hdr(28, 0);
  hdr[17] = 0x20;
  hdr[18] = 34;
  hdr[19] = 0x08;
  hdr[27] = 200;
  r.d->receive(hdr, from, to);
  Bytes auth = net.log[2].data;
  r.d->receive(std::span(auth).first(auth.size() - 5), from, to);
  // A valid header followed by garbage: an IKE_SA_INIT with junk payloads.
  Bytes junk = net.log[0].data;
  junk.resize(40, 0xee);
  junk[27] = 40;
  r.d->receive(junk, from, to);
  // An unknown critical payload in IKE_SA_INIT gets UNSUPPORTED_CRITICAL_PAYLOAD.
  Bytes crit = net.log[0].data;
  crit[8] = 0;
  crit[0] ^= 0x55;  // another SPIi: a new request
  Bytes extra = {0, 0x80, 0, 8, 1, 2, 3, 4};
  // Chain it first: header next = 99 (unknown), its next = the old first.
  extra[0] = crit[16];
  crit[16] = 99;
  crit.insert(crit.begin() + 28, extra.begin(), extra.end());
  crit[24] = 0;
  crit[25] = 0;
  crit[26] = static_cast<uint8_t>(crit.size() >> 8);
  crit[27] = static_cast<uint8_t>(crit.size());
  net.queue.clear();
  r.d->receive(crit, from, to);
  ASSERT_EQ(net.queue.size(), 1u);
  auto reply = parse_message(net.queue.front().data);
  ASSERT_TRUE(reply.has_value());
  ASSERT_NE(reply->notify(Notify::UnsupportedCriticalPayload), nullptr);
  net.queue.clear();
  const auto after = r.d->counters();
  EXPECT_GE(after.malformed, before.malformed + 4);
  EXPECT_EQ(after.unsupported_critical, before.unsupported_critical + 1);
  // A replayed AUTH with a flipped ciphertext byte fails integrity.
  Bytes flipped = net.log[2].data;
  flipped[flipped.size() - 20] ^= 1;
  r.d->receive(flipped, from, to);
  // The SA still works.
  EXPECT_TRUE(st(*a).up && st(*b).up);
  net.run_for(60000, 500);
  EXPECT_TRUE(st(*a).up && st(*b).up);
}

// Issue 15 item 7: a peer configured for one connection that knows another
// connection's identity and PSK must not bring that connection up towards
// its own address. The responder chooses by source address first.
TEST(IkeDaemon, IdentityAloneNeverSelectsAnotherPeersConnection) {
  SimNet net(SimNet::fast_options());
  auto& gw = net.add_peer("gw", "192.0.2.1");
  auto& good = net.add_peer("good", "198.51.100.1");
  auto& rogue = net.add_peer("rogue", "203.0.113.9");
  // The gateway has one connection per peer, each with its own id and PSK.
  ConnConfig to_good = basic_conn(gw, good, true);
  to_good.name = "to-good";
  to_good.remote_id = Identity::fqdn("good.example.net");
  to_good.psk = "psk-of-good";
  ConnConfig to_rogue = basic_conn(gw, rogue, true);
  to_rogue.name = "to-rogue";
  to_rogue.children[0].remote_ts = {*net::Cidr::parse("10.9.0.0/16")};
  ASSERT_TRUE(gw.d->upsert(to_good).has_value());
  ASSERT_TRUE(gw.d->upsert(to_rogue).has_value());
  // The rogue peer claims good's identity and knows good's PSK.
  ConnConfig forged = basic_conn(gw, rogue, false);
  forged.local_id = Identity::fqdn("good.example.net");
  forged.psk = "psk-of-good";
  ASSERT_TRUE(rogue.d->upsert(forged).has_value());
  ASSERT_TRUE(rogue.d->initiate(forged.name).has_value());
  net.pump();
  EXPECT_TRUE(gw.d->sas().empty());
  EXPECT_TRUE(gw.dp->sas().empty());
  EXPECT_FALSE(gw.d->status("to-good")->up);
  EXPECT_EQ(gw.d->status("to-good")->failure, Failure::None);
  // Counted against the connection of the source address.
  EXPECT_EQ(gw.d->status("to-rogue")->failure, Failure::IdMismatch);
  EXPECT_EQ(gw.d->counters().auth_failures, 1u);
  EXPECT_EQ(rogue.d->status(forged.name)->failure, Failure::AuthFailed);
  // The genuine peer still gets in.
  ConnConfig from_good = basic_conn(gw, good, false);
  from_good.local_id = Identity::fqdn("good.example.net");
  from_good.psk = "psk-of-good";
  ASSERT_TRUE(good.d->upsert(from_good).has_value());
  ASSERT_TRUE(good.d->initiate(from_good.name).has_value());
  net.pump();
  EXPECT_TRUE(gw.d->status("to-good")->up);
}

TEST(IkeDaemon, RejectsBadConfiguration) {
  SimNet net;
  auto& a = net.add_peer("a", "192.0.2.1");
  auto& b = net.add_peer("b", "198.51.100.1");
  auto c = basic_conn(a, b, true);
  c.psk.clear();
  EXPECT_FALSE(a.d->upsert(c).has_value());
  c = basic_conn(a, b, true);
  c.ike.clear();
  EXPECT_FALSE(a.d->upsert(c).has_value());
  EXPECT_TRUE(a.d->connections().empty());
}

}  // namespace
}  // namespace xgw::ike::test
