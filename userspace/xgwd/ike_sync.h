// Drives the IKEv2 daemon from the object model (the reconciler of issue
// "IKEv2 daemon"): every IKEv2 VPN connection becomes one ike::ConnConfig
// per tunnel — local = the gateway's public IP of that tunnel, remote = the
// customer gateway, proposals from the IKE/IPsec policies, one CHILD_SA per
// SPD rule — and sync() adds, changes or removes them after every commit,
// with routes for the remote subnets into the userspace ESP device
// (rtnetlink, kernel_routes.h).
// It also overlays live state on the API's connection views.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>

#include "common/expected.h"
#include "control/codec.h"
#include "dataplane/dataplane.h"
#include "ike/runtime.h"
#include "metrics/exporter.h"
#include "store/store.h"
#include "xgwd/config.h"
#include "xgwd/kernel_routes.h"

namespace xgw::xgwd {

// The IKE daemon's view of one connection's tunnel, built from the model;
// exposed for tests.
Expected<ike::ConnConfig, std::string> conn_config(const control::VpnConnection& c,
                                                   const control::VpnGateway& gw,
                                                   const control::CustomerGateway& cgw,
                                                   size_t tunnel);
// The name the daemon knows a tunnel by: the connection's name, "/standby"
// added for the second tunnel.
std::string tunnel_conn_name(const control::VpnConnection& c, size_t tunnel);

class IkeSync {
 public:
  IkeSync(store::Store& store, ike::Runtime& rt, dp::Dataplane& dp, IkeConfig settings);

  Expected<void, std::string> sync();
  // The connection id and tunnel number (0 master, 1 standby) behind a
  // daemon connection name, and back; from the last sync.
  std::optional<std::pair<std::string, size_t>> tunnel_of(const std::string& name) const;
  std::optional<std::string> daemon_name(const std::string& conn_id, size_t tunnel) const;
  // Adds live status to an API connection view (the JSON of one connection).
  void overlay(control::Json& view) const;
  // Every IKE SA with its CHILD_SAs, as GET /v1/ike-sas returns them.
  control::Json sas_json() const;
  // Live state for Prometheus; ESP counters are accumulated here so they
  // stay monotonic when SAs, CHILD_SA lineages or connections are renewed.
  metrics::IkeSnapshot metrics_snapshot();
  // Removes fail-closed routes whose drain time ended and records which
  // connections are up; call about once a second.
  void tick();
  // Where the names of the connections that are up are kept across
  // restarts (one per line). A restarted xgwd initiates those, with
  // INITIAL_CONTACT, whatever their start setting, so a peer that only
  // sends traffic gets its SAs back at once (issue 15, item 5).
  void set_up_state_file(std::string path);

 private:
  void sync_routes();
  void sync_fail_closed();
  void save_up_state();
  bool open_rtnl();

  store::Store& store_;
  ike::Runtime& rt_;
  dp::Dataplane& dp_;
  IkeConfig settings_;
  std::map<std::string, ike::ConnConfig> loaded_;  // daemon name -> config
  std::map<std::string, std::vector<std::string>> names_by_id_;
  std::map<std::string, std::pair<std::string, size_t>> tunnel_by_name_;
  std::optional<KernelRoutes> rtnl_;
  std::map<std::string, net::Cidr> routes_;  // installed, by prefix text
  struct FailClosed {
    net::Cidr dst;
    uint64_t expire_ms = 0;  // 0: a loaded connection wants it; else drain deadline
  };
  std::map<std::string, FailClosed> fail_closed_;  // by prefix text
  bool fail_closed_adopted_ = false;               // the kernel's leftovers were read once
  std::string up_state_file_;
  std::set<std::string> up_saved_;     // as in the file
  std::set<std::string> up_this_run_;  // went up since this xgwd started
  bool up_restored_ = false;
  std::set<std::string> warned_;
  struct Labels {
    std::string gateway, connection, role;
  };
  std::map<std::string, Labels> labels_;  // daemon name -> metric labels
  std::map<uint32_t, dp::TunnelCounters> last_tunnel_;
  std::map<std::string, dp::TunnelCounters> esp_totals_;  // daemon name -> running totals
  std::map<uint32_t, dp::SaCounters> last_sa_;
  std::map<std::string, uint64_t> sa_drop_totals_;
};

}  // namespace xgw::xgwd
