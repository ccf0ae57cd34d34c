#include "ike_pair.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace xgw::ike::test {

void SimTransport::send(const dp::Endpoint& from, const dp::Endpoint& to,
                        std::span<const uint8_t> msg) {
  Datagram d{from, to, Bytes(msg.begin(), msg.end())};
  net_.log.push_back(d);
  net_.queue.push_back(std::move(d));
}

Peer& SimNet::add_peer(const std::string& name, const std::string& addr) {
  auto p = std::make_unique<Peer>();
  p->name = name;
  p->addr = *net::IpAddr::parse(addr);
  p->dp = std::make_unique<dp::MockDataplane>();
  p->tx = std::make_unique<SimTransport>(*this);
  p->d = std::make_unique<Daemon>(clock, *p->tx, *p->dp, opts_);
  peers_.push_back(std::move(p));
  return *peers_.back();
}

Peer& SimNet::peer(const std::string& name) {
  for (auto& p : peers_)
    if (p->name == name) return *p;
  throw std::runtime_error("no peer " + name);
}

size_t SimNet::pump(size_t max) {
  size_t n = 0;
  while (!queue.empty() && n < max) {
    Datagram d = std::move(queue.front());
    queue.pop_front();
    ++n;
    if (filter && !filter(d)) {
      ++dropped;
      continue;
    }
    for (auto& p : peers_)
      if (p->addr == d.to.addr) p->d->receive(d.data, d.from, d.to);
  }
  return n;
}

void SimNet::run_for(uint64_t ms, uint64_t step) {
  for (uint64_t t = 0; t < ms; t += step) {
    clock.advance(step);
    for (auto& p : peers_) p->d->tick();
    pump();
  }
}

void expect_twinned(const Peer& a, const Peer& b, size_t children) {
  using dp::Direction;
  auto sa = a.dp->sas();
  auto sb = b.dp->sas();
  size_t outs = 0;
  for (const auto& [k, s] : sa) {
    if (k.first != Direction::Out) continue;
    ++outs;
    auto it = sb.find({Direction::In, s.spi});
    ASSERT_NE(it, sb.end()) << "b has no inbound SA " << s.spi;
    EXPECT_EQ(it->second.encr_key, s.encr_key);
    EXPECT_EQ(it->second.integ_key, s.integ_key);
    EXPECT_EQ(it->second.encr, s.encr);
    EXPECT_EQ(it->second.integ, s.integ);
    EXPECT_FALSE(s.encr_key.empty());
  }
  size_t outs_b = 0;
  for (const auto& [k, s] : sb) {
    if (k.first != Direction::Out) continue;
    ++outs_b;
    auto it = sa.find({Direction::In, s.spi});
    ASSERT_NE(it, sa.end()) << "a has no inbound SA " << s.spi;
    EXPECT_EQ(it->second.encr_key, s.encr_key);
  }
  EXPECT_EQ(outs, children);
  EXPECT_EQ(outs_b, children);
}

ConnConfig basic_conn(const Peer& a, const Peer& b, bool a_side) {
  const Peer& me = a_side ? a : b;
  const Peer& other = a_side ? b : a;
  ConnConfig c;
  c.name = "conn-" + me.name;
  c.id = "vpnconn-" + me.name;
  c.local = me.addr;
  c.remote = other.addr;
  c.local_id = Identity::from_ip(me.addr);
  c.remote_id = Identity::from_ip(other.addr);
  c.psk = "s3cret-psk";
  c.ike = {*parse_ike_proposal("aes128gcm16-prfsha256-modp2048")};
  c.esp = {*parse_esp_proposal("aes128gcm16")};
  ChildConfig ch;
  ch.name = "rule1";
  const auto l = *net::Cidr::parse("10.1.0.0/16");
  const auto r = *net::Cidr::parse("10.2.0.0/16");
  ch.local_ts = {a_side ? l : r};
  ch.remote_ts = {a_side ? r : l};
  c.children = {ch};
  c.start_immediately = false;
  c.dpd.interval_s = 30;
  c.dpd.timeout_s = 15;
  c.dpd.retries = 3;
  return c;
}

}  // namespace xgw::ike::test
