// Two IKEv2 daemons wired back to back in one process: a simulated clock,
// an in-memory network that can drop, hold or rewrite datagrams, and a
// MockDataplane per side. Protocol tests drive exchanges in milliseconds.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "mock_dataplane.h"
#include "ike/daemon.h"

namespace xgw::ike::test {

class SimClock : public Clock {
 public:
  uint64_t now_ms() const override { return now_; }
  void advance(uint64_t ms) { now_ += ms; }

 private:
  uint64_t now_ = 1'000'000;
};

struct Datagram {
  dp::Endpoint from, to;
  Bytes data;
};

class SimNet;

class SimTransport : public Transport {
 public:
  SimTransport(SimNet& net) : net_(net) {}
  void send(const dp::Endpoint& from, const dp::Endpoint& to,
            std::span<const uint8_t> msg) override;

 private:
  SimNet& net_;
};

struct Peer {
  std::string name;
  net::IpAddr addr;
  std::unique_ptr<dp::MockDataplane> dp;
  std::unique_ptr<SimTransport> tx;
  std::unique_ptr<Daemon> d;
};

class SimNet {
 public:
  explicit SimNet(DaemonOptions opts = fast_options()) : opts_(opts) {}

  static DaemonOptions fast_options() {
    DaemonOptions o;
    o.retransmit.base_ms = 1000;
    o.retransmit.factor = 2;
    o.retransmit.tries = 3;
    return o;
  }

  Peer& add_peer(const std::string& name, const std::string& addr);
  Peer& peer(const std::string& name);

  // Delivers queued datagrams until none are left (or `max` were).
  size_t pump(size_t max = 10000);
  // Advances the clock in steps, ticking both daemons and pumping.
  void run_for(uint64_t ms, uint64_t step = 100);

  // A filter sees every datagram; returning false drops it.
  std::function<bool(Datagram&)> filter;
  std::deque<Datagram> queue;
  SimClock clock;
  std::vector<Datagram> log;  // everything sent
  size_t dropped = 0;

 private:
  DaemonOptions opts_;
  std::vector<std::unique_ptr<Peer>> peers_;
};

// Each side's outbound SA is the other's inbound one (same SPI, keys and
// transforms), `children` of them each way (gtest assertions).
void expect_twinned(const Peer& a, const Peer& b, size_t children = 1);

// A connection from `a` to `b` with IP identities, one child
// 10.1.0.0/16 (a's side) <-> 10.2.0.0/16 (b's side), AES-GCM + MODP-2048.
ConnConfig basic_conn(const Peer& a, const Peer& b, bool a_side);

}  // namespace xgw::ike::test
