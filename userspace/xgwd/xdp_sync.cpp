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
  std::map<std::string, std::string> gw_problems;
  auto problem = [&](const std::string& what, const std::string& gw_id = {}) {
    log::error("dataplane.sync_error", {{"error", what}});
    problems += (problems.empty() ? "" : "\n") + what;
    if (!gw_id.empty()) {
      auto& p = gw_problems[gw_id];
      p += (p.empty() ? "" : "; ") + what;
    }
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
  std::map<std::string, XdpTunnelRef> refs;
  std::map<uint32_t, std::pair<std::string, size_t>> owners;
  std::map<uint32_t, uint32_t> tunnel_conn;
  std::set<std::string> configured;
  // The userspace ESP path's TAP device, the redirect target of matched
  // plaintext (xgw_dp_abi.h).
  uint32_t us_ifindex = 0;
  std::string us_problem;
  const bool redirect = cfg_.userspace_path != "route";
  if (backend == loader::Backend::Userspace && !us_dev_.empty() && redirect) {
    us_ifindex = ::if_nametoindex(us_dev_.c_str());
    if (us_ifindex == 0) us_problem = "no userspace ESP device " + us_dev_;
  }

  for (const auto& g : *gws) {
    auto it = cfg_.gateways.find(g.name);
    if (it == cfg_.gateways.end()) continue;
    configured.insert(g.id);
    auto gi = store_.dataplane_index("gateway", g.id, XGW_MAX_GATEWAYS);
    if (!gi) {
      problem("gateway " + g.name + ": " + gi.error().message, g.id);
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
      problem("gateway " + g.name + ": " + r.error().message(), g.id);
    if (!us_problem.empty()) {
      problem("gateway " + g.name + ": " + us_problem, g.id);
    } else if (us_ifindex || !redirect) {
      // route: no redirect target, XDP passes the frame to the stack.
      if (auto r = dp_.set_userspace_tun(gi->idx, us_ifindex, us_ifindex ? us_mtu_ : 0); !r)
        problem("gateway " + g.name + " ESP device: " + r.error().message(), g.id);
    }

    std::vector<loader::SpdRelation> rels;
    for (const auto& c : *conns) {
      if (c.vgw_id != g.id) continue;
      auto ci = store_.dataplane_index("connection", c.id, XGW_MAX_CONNS);
      if (!ci) {
        problem("connection " + c.name + ": " + ci.error().message, g.id);
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
          problem("tunnel " + tid + ": " + ti.error().message, g.id);
          ok = false;
          break;
        }
        live_tun.insert(tid);
        ce.tunnels[t] = ti->idx;
        refs[tid] = {gi->idx, ti->idx};
        owners[ti->idx] = {c.id, t};
        tunnel_conn[ti->idx] = ci->idx;
        if (ti->fresh) {
          dp_.reset_tunnel_counters(ti->idx);
          out_spi_.erase(ti->idx);
        }
        // Readiness is the IKE daemon's (set_outbound): a resync keeps it.
        auto o = out_spi_.find(ti->idx);
        const uint32_t out = o == out_spi_.end() ? 0 : o->second;
        if (auto r = dp_.set_tunnel(ti->idx, {ci->idx, backend, out != 0, out}); !r)
          problem("tunnel " + tid + ": " + r.error().message(), g.id);
      }
      if (!ok) continue;
      if (auto r = dp_.set_connection(ci->idx, ce); !r)
        problem("connection " + c.name + ": " + r.error().message(), g.id);
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
        problem("gateway " + g.name + " SPD: " + gen.error().message(), g.id);
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
        problem("gateway " + g.name + ": no interface " + ifname, g.id);
        continue;
      }
      want_if[ifindex] = {gi->idx, role};
    }
  }

  // Interfaces: attach what is new or changed, detach what is gone, and
  // attach again where someone removed the program (`ip link set dev X xdp
  // off`): the reconciler heals rather than reporting running falsely.
  for (const auto& [ifindex, want] : want_if) {
    auto cur = attached_.find(ifindex);
    if (cur != attached_.end() && cur->second == want) {
      if (loader::XdpDataplane::xgw_attached(ifindex)) continue;
      char name[IF_NAMESIZE] = {};
      ::if_indextoname(static_cast<unsigned>(ifindex), name);
      log::warn("dataplane.program_missing", {{"interface", name}});
    }
    auto mode = dp_.attach(ifindex, want.first, want.second);
    if (!mode) {
      char name[IF_NAMESIZE] = {};
      ::if_indextoname(static_cast<unsigned>(ifindex), name);
      problem(std::string("attach ") + (name[0] ? name : std::to_string(ifindex).c_str()) + ": " +
                  mode.error().message(),
              gw_ids[want.first]);
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
  sweep("tunnel", live_tun, [&](uint32_t idx) { out_spi_.erase(idx); });
  if (auto r = txn->commit(); !r) problem("store: " + r.error().message);
  // A program attached earlier that is gone now (someone ran `ip link set
  // dev X xdp off`) is not running: say so.
  for (const auto& [ifindex, want] : attached_)
    if (!loader::XdpDataplane::xgw_attached(ifindex)) {
      char name[IF_NAMESIZE] = {};
      ::if_indextoname(static_cast<unsigned>(ifindex), name);
      problem(std::string("no xgw program on ") + name, gw_ids[want.first]);
    }
  gw_ids_ = std::move(gw_ids);
  conn_ids_ = std::move(conn_ids);
  refs_ = std::move(refs);
  tunnel_owner_ = std::move(owners);
  tunnel_conn_ = std::move(tunnel_conn);
  gw_problems_ = std::move(gw_problems);
  configured_ = std::move(configured);
  if (!problems.empty()) return unexpected(problems);
  return {};
}

void XdpSync::poll_events(const AcquireHandler& on_acquire) {
  auto n = dp_.poll_events(0, [&](const loader::AcquireEvent& e) {
    ++acquire_events_;
    auto g = gw_ids_.find(e.gw_idx);
    auto c = conn_ids_.find(e.conn_idx);
    auto owner = tunnel_owner_.find(e.tunnel_idx);
    log::info("dataplane.acquire", {{"gateway", g != gw_ids_.end() ? g->second : "?"},
                                    {"connection", c != conn_ids_.end() ? c->second : "?"},
                                    {"tunnel", e.tunnel_idx},
                                    {"src", e.src.str()},
                                    {"dst", e.dst.str()}});
    if (on_acquire && owner != tunnel_owner_.end())
      on_acquire(owner->second.first, owner->second.second, e.src, e.dst);
  });
  if (!n) log::warn("dataplane.events", {{"error", n.error().message()}});
}

nlohmann::json XdpSync::status_json() const {
  using nlohmann::json;
  auto traffic = [](const loader::Traffic& t) {
    return json{{"tx_packets", t.tx_packets},
                {"tx_bytes", t.tx_bytes},
                {"rx_packets", t.rx_packets},
                {"rx_bytes", t.rx_bytes}};
  };
  json out{{"enabled", true},
           {"backend", cfg_.backend},
           {"pin_dir", dp_.pin_dir()},
           {"acquires", acquire_events_}};
  if (auto n = dp_.sa_count()) out["inbound_sas"] = *n;
  auto gws = store_.gateways();
  auto conns = store_.connections();
  json list = json::array();
  for (const auto& [idx, id] : gw_ids_) {
    json g{{"id", id}, {"index", idx}};
    if (gws)
      for (const auto& x : *gws)
        if (x.id == id) {
          g["name"] = x.name;
          g["tier_bps"] = uint64_t{x.bandwidth} * 1000000;
        }
    auto p = gw_problems_.find(id);
    g["status"] = p == gw_problems_.end() ? "running" : "error";
    if (p != gw_problems_.end()) g["status_reason"] = p->second;
    json ifs = json::array();
    for (const auto& [ifindex, want] : attached_) {
      if (want.first != idx) continue;
      char name[IF_NAMESIZE] = {};
      ::if_indextoname(static_cast<unsigned>(ifindex), name);
      ifs.push_back({{"name", name},
                     {"role", want.second == loader::IfRole::Lan ? "lan" : "wan"},
                     {"attached", loader::XdpDataplane::xgw_attached(ifindex)}});
    }
    g["interfaces"] = std::move(ifs);
    if (auto t = dp_.gateway_traffic(idx)) g["traffic"] = traffic(*t);
    if (auto r = dp_.reasons(idx)) {
      json d = json::object(), ps = json::object();
      for (size_t i = 0; i < r->drop.size(); ++i)
        d[std::string(loader::drop_reason_name(i))] = r->drop[i];
      for (size_t i = 0; i < r->pass.size(); ++i)
        ps[std::string(loader::pass_reason_name(i))] = r->pass[i];
      g["drops"] = std::move(d);
      g["passes"] = std::move(ps);
    }
    json tuns = json::array();
    for (const auto& [tidx, owner] : tunnel_owner_) {
      auto ref = refs_.find(owner.first + "/" + std::to_string(owner.second));
      if (ref == refs_.end() || ref->second.gw_idx != idx) continue;
      std::string cname = owner.first;
      if (conns)
        for (const auto& c : *conns)
          if (c.id == owner.first) cname = c.name;
      auto o = out_spi_.find(tidx);
      char spi[12] = "";
      if (o != out_spi_.end()) std::snprintf(spi, sizeof spi, "%08x", o->second);
      json t{{"connection", cname},
             {"tunnel", owner.second},
             {"index", tidx},
             {"sa_ready", o != out_spi_.end()},
             {"out_spi", spi}};
      if (auto tt = dp_.tunnel_traffic(tidx)) t["traffic"] = traffic(*tt);
      tuns.push_back(std::move(t));
    }
    g["tunnels"] = std::move(tuns);
    list.push_back(std::move(g));
  }
  out["gateways"] = std::move(list);
  return out;
}

bool XdpSync::programs_intact() const {
  for (const auto& [ifindex, want] : attached_)
    if (!loader::XdpDataplane::xgw_attached(ifindex)) return false;
  return true;
}

std::optional<XdpTunnelRef> XdpSync::tunnel_ref(const std::string& conn_id, size_t tunnel) const {
  auto it = refs_.find(conn_id + "/" + std::to_string(tunnel));
  if (it == refs_.end()) return std::nullopt;
  return it->second;
}

Expected<void, std::string> XdpSync::admit_spi(uint32_t spi, const XdpTunnelRef& t) {
  if (auto r = dp_.add_sa(spi, t.tunnel_idx, t.gw_idx); !r) return unexpected(r.error().message());
  return {};
}

Expected<void, std::string> XdpSync::revoke_spi(uint32_t spi) {
  if (auto r = dp_.remove_sa(spi); !r) return unexpected(r.error().message());
  return {};
}

Expected<void, std::string> XdpSync::set_outbound(const XdpTunnelRef& t, uint32_t out_spi) {
  if (out_spi)
    out_spi_[t.tunnel_idx] = out_spi;
  else
    out_spi_.erase(t.tunnel_idx);
  auto c = tunnel_conn_.find(t.tunnel_idx);
  if (c == tunnel_conn_.end()) return {};  // the next sync programs it
  const auto backend = cfg_.backend == "xfrm" ? loader::Backend::Xfrm : loader::Backend::Userspace;
  if (auto r = dp_.set_tunnel(t.tunnel_idx, {c->second, backend, out_spi != 0, out_spi}); !r)
    return unexpected(r.error().message());
  return {};
}

}  // namespace xgw::xgwd
