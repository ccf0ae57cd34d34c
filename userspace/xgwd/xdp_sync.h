// Keeps the XDP data plane equal to the object model: for every gateway
// named in the daemon's dataplane config, its tier, interfaces, the SPD
// relations of all its POLICY connections, connection and tunnel entries.
// sync() re-derives everything from the store (called at start and after
// every committed change), removes what no longer exists, and keeps map
// indexes stable across restarts (store::dataplane_index).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/expected.h"
#include "loader/xdp_dataplane.h"
#include "store/store.h"
#include "xgwd/config.h"

namespace xgw::xgwd {

class XdpSync {
 public:
  XdpSync(store::Store& store, loader::XdpDataplane& dp, DataplaneConfig cfg);

  void set_config(DataplaneConfig cfg) { cfg_ = std::move(cfg); }
  // Errors are collected (one line each) and the rest still applied.
  Expected<void, std::string> sync();
  // Logs pending acquire events ("start on traffic" for IKE, later).
  void poll_events();

 private:
  store::Store& store_;
  loader::XdpDataplane& dp_;
  DataplaneConfig cfg_;
  // ifindex -> (gateway index, role) this process attached.
  std::map<int, std::pair<uint32_t, loader::IfRole>> attached_;
  // The SPD last installed per gateway index: an unchanged SPD is not
  // swapped again (a swap retires the whole flow cache of the gateway).
  std::map<uint32_t, std::vector<std::string>> installed_spd_;
  // Reverse lookups for event logs.
  std::map<uint32_t, std::string> gw_ids_, conn_ids_;
};

}  // namespace xgw::xgwd
