// Prometheus exposition for xgwd (DESIGN §5: prefix xgw_, base units,
// counters end in _total, every configured tunnel exported). Counters are
// read from the XDP data plane's per-CPU maps at scrape time (map reads are
// syscalls, they never stall the packet path); which gateways and tunnels
// exist comes from a Topology snapshot the daemon publishes after every
// change, so scrapes never touch the store.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "loader/xdp_dataplane.h"

namespace xgw::metrics {

struct Topology {
  struct Gateway {
    std::string name;
    uint64_t tier_bps = 0;
    std::optional<uint32_t> dp_idx;  // set when the data plane serves it
  };
  struct Tunnel {
    std::string gateway, connection, role;
    bool up = false;
    std::optional<uint32_t> dp_idx;
  };
  struct Interface {
    std::string name, role;  // role: lan | wan
  };
  std::vector<Gateway> gateways;
  std::vector<Tunnel> tunnels;
  std::vector<Interface> interfaces;
  size_t max_spd_relations = 0;  // the largest SPD of one gateway and family
};

// The IKE daemon's and the ESP path's live state, published by xgwd once a
// second from its io thread (the daemon is not thread-safe; scrapes run on
// prometheus-cpp's thread). Counters are monotonic: per tunnel they are
// kept across rekeys and re-negotiations by the publisher.
struct IkeSnapshot {
  struct Tunnel {
    std::string gateway, connection, role;
    bool up = false;
    std::string state;  // down | connecting | partial | established
    uint32_t child_sas = 0;
    uint64_t ike_rekeys = 0, child_rekeys = 0, dpd_timeouts = 0;
    std::map<std::string, uint64_t> failures;  // reason -> count (authenticated input)
    // reason -> count, from input no peer had authenticated (spoofable)
    std::map<std::string, uint64_t> unauthenticated_failures;
    // Inner traffic through the ESP path (decrypted in, to be encrypted out).
    uint64_t rx_bytes = 0, rx_packets = 0, tx_bytes = 0, tx_packets = 0;
  };
  std::vector<Tunnel> tunnels;
  std::map<std::pair<std::string, std::string>, uint64_t> messages;  // (exchange, direction)
  // Flood defences: first messages refused at the half-open bounds, first
  // messages from unconfigured addresses (unanswered), port-4500
  // datagrams dropped at the hand-over queue.
  uint64_t half_open_refused = 0, unknown_peer = 0, nat_t_queue_drops = 0;
  uint64_t half_open = 0, cookies_sent = 0, retransmits = 0, malformed = 0, integrity_failures = 0,
           auth_failures = 0;
  std::map<std::string, uint64_t> esp_drops;  // reason -> packets
  // XDP acquires by what became of them (negotiated | rate_limited |
  // unmatched); empty without the XDP data plane.
  std::map<std::string, uint64_t> acquires;
};

class Exporter : public prometheus::Collectable {
 public:
  // `dp` may be null (no data plane): counters are then not exported.
  Exporter(std::string version, double start_time, const loader::XdpDataplane* dp);
  void publish(Topology t);
  void publish_ike(IkeSnapshot s);
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  std::string version_;
  double start_time_;
  const loader::XdpDataplane* dp_;
  mutable std::mutex mu_;
  Topology topo_;
  std::optional<IkeSnapshot> ike_;
};

}  // namespace xgw::metrics
