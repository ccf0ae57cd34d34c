#include "xgwd/xdp_sync.h"

#include <net/if.h>

#include <algorithm>
#include <set>

#include "common/log.h"

namespace xgw::xgwd {

XdpSync::XdpSync(store::Store& store, loader::XdpDataplane& dp, DataplaneConfig cfg)
    : store_(store), dp_(dp), cfg_(std::move(cfg)) {}

Expected<void, std::string> XdpSync::sync() {
  std::string problems;
  auto problem = [&](const std::string& what) {
    log::error("dataplane.sync_error", {{"error", what}});
    problems += (problems.empty() ? "" : "\n") + what;
  };
  auto gws = store_.gateways();
  auto conns = store_.connections();
  if (!gws || !conns)
    return unexpected(std::string("read store: ") + (!gws ? gws.error() : conns.error()).message);
  auto txn = store_.begin_write();  // index allocations commit together
  if (!txn) return unexpected("store: " + txn.error().message);

  const auto backend = cfg_.backend == "xfrm" ? loader::Backend::Xfrm : loader::Backend::Userspace;
  std::set<std::string> live_gw, live_conn, live_tun;
  std::map<int, std::pair<uint32_t, loader::IfRole>> want_if;
  std::map<uint32_t, std::string> gw_ids, conn_ids;

  for (const auto& g : *gws) {
    auto it = cfg_.gateways.find(g.name);
    if (it == cfg_.gateways.end()) continue;
    auto gi = store_.dataplane_index("gateway", g.id, XGW_MAX_GATEWAYS);
    if (!gi) {
      problem("gateway " + g.name + ": " + gi.error().message);
      continue;
    }
    live_gw.insert(g.id);
    gw_ids[gi->idx] = g.id;
    if (gi->fresh) dp_.reset_gateway_counters(gi->idx);
    loader::GatewayConfig gc;
    gc.drop_unmatched = cfg_.drop_unmatched;
    gc.drop_no_sa = cfg_.drop_no_sa;
    gc.tier_bps = uint64_t{g.bandwidth} * 1000000;
    if (auto r = dp_.set_gateway(gi->idx, gc); !r)
      problem("gateway " + g.name + ": " + r.error().message());

    std::vector<loader::SpdRelation> rels;
    for (const auto& c : *conns) {
      if (c.vgw_id != g.id) continue;
      auto ci = store_.dataplane_index("connection", c.id, XGW_MAX_CONNS);
      if (!ci) {
        problem("connection " + c.name + ": " + ci.error().message);
        continue;
      }
      live_conn.insert(c.id);
      conn_ids[ci->idx] = c.id;
      loader::ConnectionEntry ce;
      ce.gw_idx = gi->idx;
      ce.ntunnels = static_cast<uint32_t>(std::min<size_t>(c.tunnels.size(), 2));
      bool ok = ce.ntunnels > 0;
      for (uint32_t t = 0; t < ce.ntunnels && ok; ++t) {
        const std::string tid = c.id + "/" + std::to_string(t);
        auto ti = store_.dataplane_index("tunnel", tid, XGW_MAX_TUNNELS);
        if (!ti) {
          problem("tunnel " + tid + ": " + ti.error().message);
          ok = false;
          break;
        }
        live_tun.insert(tid);
        ce.tunnels[t] = ti->idx;
        if (ti->fresh) dp_.reset_tunnel_counters(ti->idx);
        // No SA exists until IKE installs one; IKE will set sa_ready.
        if (auto r = dp_.set_tunnel(ti->idx, {ci->idx, backend, false}); !r)
          problem("tunnel " + tid + ": " + r.error().message());
      }
      if (!ok) continue;
      if (auto r = dp_.set_connection(ci->idx, ce); !r)
        problem("connection " + c.name + ": " + r.error().message());
      if (c.style == control::RouteStyle::Policy) {
        for (const auto& rule : c.policy_rules)
          for (const auto& dst : rule.destination) rels.push_back({rule.source, dst, ci->idx});
      }
    }
    // Swap only a changed SPD: a swap retires the gateway's flow cache.
    std::vector<std::string> fingerprint;
    for (const auto& r : rels)
      fingerprint.push_back(r.local.str() + ">" + r.remote.str() + "@" +
                            std::to_string(r.conn_idx));
    std::sort(fingerprint.begin(), fingerprint.end());
    auto prev = installed_spd_.find(gi->idx);
    if (prev == installed_spd_.end() || prev->second != fingerprint) {
      auto gen = dp_.replace_spd(gi->idx, rels);
      if (!gen) {
        problem("gateway " + g.name + " SPD: " + gen.error().message());
        installed_spd_.erase(gi->idx);
      } else {
        installed_spd_[gi->idx] = std::move(fingerprint);
        log::info("dataplane.spd",
                  {{"gateway", g.id}, {"relations", rels.size()}, {"generation", *gen}});
      }
    }

    for (auto [ifname, role] : {std::pair{it->second.lan_interface, loader::IfRole::Lan},
                                std::pair{it->second.wan_interface, loader::IfRole::Wan}}) {
      if (ifname.empty()) continue;
      const int ifindex = static_cast<int>(::if_nametoindex(ifname.c_str()));
      if (ifindex == 0) {
        problem("gateway " + g.name + ": no interface " + ifname);
        continue;
      }
      want_if[ifindex] = {gi->idx, role};
    }
  }

  // Interfaces: attach what is new or changed, detach what is gone.
  for (const auto& [ifindex, want] : want_if) {
    auto cur = attached_.find(ifindex);
    if (cur != attached_.end() && cur->second == want) continue;
    auto mode = dp_.attach(ifindex, want.first, want.second);
    if (!mode) {
      problem("attach ifindex " + std::to_string(ifindex) + ": " + mode.error().message());
      continue;
    }
    attached_[ifindex] = want;
    char name[IF_NAMESIZE] = {};
    ::if_indextoname(static_cast<unsigned>(ifindex), name);
    log::info("dataplane.attached",
              {{"interface", name},
               {"role", want.second == loader::IfRole::Lan ? "lan" : "wan"},
               {"mode", *mode == loader::AttachMode::Native ? "native" : "generic"}});
  }
  for (auto it = attached_.begin(); it != attached_.end();) {
    if (want_if.count(it->first)) {
      ++it;
      continue;
    }
    if (auto r = dp_.detach(it->first); !r) problem(r.error().message());
    it = attached_.erase(it);
  }

  // Objects that no longer exist (or left the dataplane config): clear
  // their entries and free their indexes.
  auto sweep = [&](const char* kind, const std::set<std::string>& live, auto&& clear) {
    auto all = store_.dataplane_indexes(kind);
    if (!all) return problem(all.error().message);
    for (const auto& [id, idx] : *all) {
      if (live.count(id)) continue;
      clear(idx);
      if (auto r = store_.release_dataplane_index(kind, id); !r) problem(r.error().message);
    }
  };
  sweep("gateway", live_gw, [&](uint32_t idx) {
    dp_.remove_gateway(idx);
    installed_spd_.erase(idx);
  });
  sweep("connection", live_conn, [&](uint32_t idx) { dp_.remove_connection(idx); });
  sweep("tunnel", live_tun, [&](uint32_t) {});
  if (auto r = txn->commit(); !r) problem("store: " + r.error().message);
  gw_ids_ = std::move(gw_ids);
  conn_ids_ = std::move(conn_ids);
  if (!problems.empty()) return unexpected(problems);
  return {};
}

void XdpSync::poll_events() {
  auto n = dp_.poll_events(0, [&](const loader::AcquireEvent& e) {
    auto g = gw_ids_.find(e.gw_idx);
    auto c = conn_ids_.find(e.conn_idx);
    log::info("dataplane.acquire", {{"gateway", g != gw_ids_.end() ? g->second : "?"},
                                    {"connection", c != conn_ids_.end() ? c->second : "?"},
                                    {"tunnel", e.tunnel_idx},
                                    {"src", e.src.str()},
                                    {"dst", e.dst.str()}});
  });
  if (!n) log::warn("dataplane.events", {{"error", n.error().message()}});
}

}  // namespace xgw::xgwd
