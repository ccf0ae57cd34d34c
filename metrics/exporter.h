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

class Exporter : public prometheus::Collectable {
 public:
  // `dp` may be null (no data plane): counters are then not exported.
  Exporter(std::string version, double start_time, const loader::XdpDataplane* dp);
  void publish(Topology t);
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  std::string version_;
  double start_time_;
  const loader::XdpDataplane* dp_;
  mutable std::mutex mu_;
  Topology topo_;
};

}  // namespace xgw::metrics
