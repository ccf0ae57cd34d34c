// Keeps the XDP data plane equal to the object model: for every gateway
// named in the daemon's dataplane config, its tier, interfaces, the SPD
// relations of all its POLICY connections, connection and tunnel entries,
// and (userspace backend) the ESP path's TAP device as the redirect target.
// sync() re-derives everything from the store (called at start and after
// every committed change), removes what no longer exists, and keeps map
// indexes stable across restarts (store::dataplane_index).
// SA state comes from the IKE daemon through XdpSaBridge, for which this
// is the sink: inbound SPIs and each tunnel's active outbound SA, kept
// across syncs (a resync never clears a ready tunnel).
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/expected.h"
#include "loader/xdp_dataplane.h"
#include "store/store.h"
#include "xgwd/config.h"
#include "xgwd/xdp_sa_bridge.h"

namespace xgw::xgwd {

class XdpSync final : public XdpSaSink {
 public:
  XdpSync(store::Store& store, loader::XdpDataplane& dp, DataplaneConfig cfg);

  void set_config(DataplaneConfig cfg) { cfg_ = std::move(cfg); }
  // The userspace ESP path's TAP device: XDP redirects matched plaintext
  // into it (empty: none, plaintext reaches it through routing).
  void set_userspace_device(std::string ifname, uint32_t mtu) {
    us_dev_ = std::move(ifname);
    us_mtu_ = mtu;
  }
  // Errors are collected (one line each) and the rest still applied.
  Expected<void, std::string> sync();
  // Why each configured gateway (by id) is not fully attached and
  // programmed after the last sync; absent: it is.
  const std::map<std::string, std::string>& gateway_problems() const { return gw_problems_; }
  // Gateway ids the dataplane config names (after the last sync).
  const std::set<std::string>& configured_gateways() const { return configured_; }

  // Whether every program this process attached still runs (cheap: one
  // netlink query per interface); false: sync() attaches them again.
  bool programs_intact() const;

  // The XDP tunnel of a connection's tunnel (0 master, 1 standby).
  std::optional<XdpTunnelRef> tunnel_ref(const std::string& conn_id, size_t tunnel) const;

  // Drains acquire events: `on_acquire(connection id, tunnel number, src,
  // dst)` for each (null: only logged).
  using AcquireHandler = std::function<void(const std::string& conn_id, size_t tunnel,
                                            const net::IpAddr& src, const net::IpAddr& dst)>;
  void poll_events(const AcquireHandler& on_acquire = {});
  uint64_t acquire_events() const { return acquire_events_; }

  // GET /v1/dataplane: per configured gateway its status, interfaces,
  // tier, traffic, outcomes and tunnels with their SA state and counters.
  nlohmann::json status_json() const;

  // XdpSaSink
  Expected<void, std::string> admit_spi(uint32_t spi, const XdpTunnelRef& t) override;
  Expected<void, std::string> revoke_spi(uint32_t spi) override;
  Expected<void, std::string> set_outbound(const XdpTunnelRef& t, uint32_t out_spi) override;

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
  // "connection id/tunnel number" -> XDP tunnel, and back (by tunnel index).
  std::map<std::string, XdpTunnelRef> refs_;
  std::map<uint32_t, std::pair<std::string, size_t>> tunnel_owner_;
  // Per tunnel index: its connection index and active outbound SA.
  std::map<uint32_t, uint32_t> tunnel_conn_;
  std::map<uint32_t, uint32_t> out_spi_;
  std::string us_dev_;
  uint32_t us_mtu_ = 0;
  std::map<std::string, std::string> gw_problems_;
  std::set<std::string> configured_;
  uint64_t acquire_events_ = 0;
};

}  // namespace xgw::xgwd
