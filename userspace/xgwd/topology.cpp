#include "xgwd/topology.h"

#include <map>

namespace xgw::xgwd {

Expected<metrics::Topology, std::string> build_topology(store::Store& store,
                                                        const DataplaneConfig& dp) {
  auto gws = store.gateways();
  auto conns = store.connections();
  if (!gws) return unexpected(gws.error().message);
  if (!conns) return unexpected(conns.error().message);
  // Indexes exist only for objects the data plane serves.
  std::map<std::string, uint32_t> gw_idx, tun_idx;
  if (dp.enabled) {
    for (const char* kind : {"gateway", "tunnel"}) {
      auto all = store.dataplane_indexes(kind);
      if (!all) return unexpected(all.error().message);
      for (const auto& [id, idx] : *all) (kind[0] == 'g' ? gw_idx : tun_idx)[id] = idx;
    }
  }
  metrics::Topology t;
  std::map<std::string, std::string> names;
  for (const auto& g : *gws) {
    names[g.id] = g.name;
    metrics::Topology::Gateway mg{g.name, uint64_t{g.bandwidth} * 1000000, std::nullopt};
    if (auto it = gw_idx.find(g.id); it != gw_idx.end()) mg.dp_idx = it->second;
    t.gateways.push_back(mg);
    if (auto it = dp.gateways.find(g.name); dp.enabled && it != dp.gateways.end()) {
      if (!it->second.lan_interface.empty())
        t.interfaces.push_back({it->second.lan_interface, "lan"});
      if (!it->second.wan_interface.empty())
        t.interfaces.push_back({it->second.wan_interface, "wan"});
    }
  }
  std::map<std::pair<std::string, int>, size_t> relations;  // (gateway, family) -> count
  for (const auto& c : *conns) {
    for (size_t i = 0; i < c.tunnels.size(); ++i) {
      metrics::Topology::Tunnel mt;
      mt.gateway = names[c.vgw_id];
      mt.connection = c.name;
      mt.role = std::string(control::enum_name(control::kHaRoles, c.tunnels[i].ha_role));
      mt.up = false;  // the IKE daemon's snapshot (Exporter::publish_ike) says otherwise
      if (auto it = tun_idx.find(c.id + "/" + std::to_string(i)); it != tun_idx.end())
        mt.dp_idx = it->second;
      t.tunnels.push_back(std::move(mt));
    }
    for (const auto& rule : c.policy_rules)
      relations[{c.vgw_id, rule.source.family() == net::Family::V4 ? 4 : 6}] +=
          rule.destination.size();
  }
  for (const auto& [key, n] : relations) t.max_spd_relations = std::max(t.max_spd_relations, n);
  return t;
}

}  // namespace xgw::xgwd
