#include "xgwd/ike_sync.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "common/log.h"

namespace xgw::xgwd {

namespace {

using namespace control;

// SPEC §4 names → IKEv2 transforms.
std::pair<ike::EncrId, uint16_t> encr_of(Encryption e) {
  switch (e) {
    case Encryption::Des:
      return {ike::EncrId::Des, 0};
    case Encryption::TripleDes:
      return {ike::EncrId::TripleDes, 0};
    case Encryption::Aes128:
      return {ike::EncrId::AesCbc, 128};
    case Encryption::Aes192:
      return {ike::EncrId::AesCbc, 192};
    case Encryption::Aes256:
      return {ike::EncrId::AesCbc, 256};
    case Encryption::Aes128Gcm16:
      return {ike::EncrId::AesGcm16, 128};
    case Encryption::Aes256Gcm16:
      return {ike::EncrId::AesGcm16, 256};
    case Encryption::Sm4:
      return {ike::EncrId::Sm4Cbc, 0};
  }
  return {ike::EncrId::AesCbc, 128};
}
ike::IntegId integ_of(Integrity i) {
  switch (i) {
    case Integrity::None:
      return ike::IntegId::None;
    case Integrity::Md5:
      return ike::IntegId::HmacMd5_96;
    case Integrity::Sha1:
      return ike::IntegId::HmacSha1_96;
    case Integrity::Sha2_256:
      return ike::IntegId::HmacSha2_256_128;
    case Integrity::Sha2_384:
      return ike::IntegId::HmacSha2_384_192;
    case Integrity::Sha2_512:
      return ike::IntegId::HmacSha2_512_256;
    case Integrity::Sm3:
      return ike::IntegId::HmacSm3_256;
  }
  return ike::IntegId::None;
}
ike::PrfId prf_of(Integrity i) {
  switch (i) {
    case Integrity::Md5:
      return ike::PrfId::HmacMd5;
    case Integrity::Sha1:
      return ike::PrfId::HmacSha1;
    case Integrity::Sha2_384:
      return ike::PrfId::HmacSha2_384;
    case Integrity::Sha2_512:
      return ike::PrfId::HmacSha2_512;
    case Integrity::Sm3:
      return ike::PrfId::HmacSm3;
    default:
      return ike::PrfId::HmacSha2_256;
  }
}

Expected<ike::Identity, std::string> identity(IdType type, const std::string& value,
                                              const net::IpAddr& fallback) {
  if (value.empty()) return ike::Identity::from_ip(fallback);
  if (type == IdType::Fqdn) return ike::Identity::fqdn(value);
  auto a = net::IpAddr::parse(value);
  if (!a) return unexpected("id " + value + " is not an IP address");
  return ike::Identity::from_ip(*a);
}

const char* negotiation_status(const ike::ConnStatus& s) {
  if (s.up) return "established";
  if (s.state == "partial") return "ike_sa_established";
  if (s.state == "connecting") return "negotiating";
  if (s.failure != ike::Failure::None) return "failed";
  return "down";
}

}  // namespace

std::string tunnel_conn_name(const VpnConnection& c, size_t tunnel) {
  return tunnel == 0 ? c.name : c.name + "/standby";
}

Expected<ike::ConnConfig, std::string> conn_config(const VpnConnection& c, const VpnGateway& gw,
                                                   const CustomerGateway& cgw, size_t tunnel) {
  if (tunnel >= gw.public_ips.size())
    return unexpected("gateway " + gw.name + " has no public IP for tunnel " +
                      std::to_string(tunnel + 1));
  ike::ConnConfig k;
  k.name = tunnel_conn_name(c, tunnel);
  k.id = c.id;
  k.local = gw.public_ips[tunnel];
  k.remote = cgw.ip;
  auto lid = identity(c.ikepolicy.local_id_type, c.ikepolicy.local_id, k.local);
  if (!lid) return unexpected(lid.error());
  auto rid = identity(c.ikepolicy.peer_id_type, c.ikepolicy.peer_id, k.remote);
  if (!rid) return unexpected(rid.error());
  k.local_id = *lid;
  k.remote_id = *rid;
  k.psk = c.psk;
  ike::IkeAlgs ia;
  std::tie(ia.encr, ia.key_bits) = encr_of(c.ikepolicy.encryption_algorithm);
  ia.integ = is_aead(c.ikepolicy.encryption_algorithm)
                 ? ike::IntegId::None
                 : integ_of(c.ikepolicy.authentication_algorithm);
  ia.prf = prf_of(c.ikepolicy.authentication_algorithm);
  ia.dh = static_cast<ike::DhId>(static_cast<int>(c.ikepolicy.dh_group));
  k.ike = {ia};
  ike::EspAlgs ea;
  std::tie(ea.encr, ea.key_bits) = encr_of(c.ipsecpolicy.encryption_algorithm);
  ea.integ = is_aead(c.ipsecpolicy.encryption_algorithm)
                 ? ike::IntegId::None
                 : integ_of(c.ipsecpolicy.authentication_algorithm);
  ea.dh = static_cast<ike::DhId>(static_cast<int>(c.ipsecpolicy.pfs));
  k.esp = {ea};
  if (c.style == RouteStyle::Policy) {
    for (size_t i = 0; i < c.policy_rules.size(); ++i) {
      ike::ChildConfig ch;
      ch.name = "rule" + std::to_string(i + 1);
      ch.local_ts = {c.policy_rules[i].source};
      ch.remote_ts = c.policy_rules[i].destination;
      k.children.push_back(std::move(ch));
    }
  } else if (c.style == RouteStyle::Static) {
    // SPEC §5: destination routing negotiates 0.0.0.0/0 both ways; routes
    // decide what enters the tunnel.
    ike::ChildConfig ch;
    ch.name = "any";
    ch.local_ts = {*net::Cidr::parse("0.0.0.0/0")};
    ch.remote_ts = {*net::Cidr::parse("0.0.0.0/0")};
    k.children.push_back(std::move(ch));
  } else {
    return unexpected(std::string("BGP route style is not negotiated by the IKEv2 daemon yet"));
  }
  k.ike_lifetime_s = c.ikepolicy.lifetime_seconds;
  k.child_lifetime_s = c.ipsecpolicy.lifetime_seconds;
  k.child_lifetime_bytes = c.ipsecpolicy.lifetime_kilobytes * 1024;
  k.dpd.interval_s = c.ikepolicy.dpd.interval;
  k.dpd.timeout_s = c.ikepolicy.dpd.timeout;
  k.dpd.retries = 3;
  k.nat_t = c.enable_nat_traversal;
  k.ike_version = c.ikepolicy.ike_version == IkeVersion::V1 ? 1 : 2;
  k.aggressive = c.ikepolicy.phase1_negotiation_mode == NegotiationMode::Aggressive;
  k.dpd_notify_first = c.ikepolicy.dpd.msg == DpdMsg::SeqNotifyHash;
  k.start_immediately = c.start_immediately;
  return k;
}

IkeSync::IkeSync(store::Store& store, ike::Runtime& rt, dp::Dataplane& dp, IkeConfig settings)
    : store_(store), rt_(rt), dp_(dp), settings_(std::move(settings)) {}

namespace {
uint64_t steady_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}
}  // namespace

bool IkeSync::open_rtnl() {
  if (rtnl_) return true;
  auto r = KernelRoutes::open();
  if (!r) {
    log::warn("ike.route_failed", {{"error", r.error()}});
    return false;
  }
  rtnl_.emplace(std::move(*r));
  return true;
}

// Fail-closed routes (kernel_routes.h): one per remote subnet of every
// loaded connection, kept while a connection wants it and for the drain
// time after; those a previous xgwd left are adopted at the first sync
// (and drained unless still wanted). A subnet that holds the connection's
// own peer address is skipped: blocking it would cut IKE itself.
void IkeSync::sync_fail_closed() {
  if (!settings_.fail_closed || !open_rtnl()) return;
  const uint64_t now = steady_ms();
  const uint64_t drain = uint64_t{settings_.fail_closed_drain_s} * 1000;
  if (!fail_closed_adopted_) {
    auto have = rtnl_->list_fail_closed();
    if (!have) {
      log::warn("ike.route_failed", {{"op", "dump"}, {"error", have.error()}});
    } else {
      for (const auto& c : *have) fail_closed_[c.str()] = {c, now + drain};
      if (!have->empty()) log::info("ike.fail_closed_adopted", {{"routes", have->size()}});
    }
    fail_closed_adopted_ = true;
  }
  std::map<std::string, net::Cidr> want;
  for (const auto& [name, k] : loaded_)
    for (const auto& ch : k.children)
      for (const auto& r : ch.remote_ts) {
        if (r.len == 0) continue;
        if (r.contains(k.remote)) {
          if (warned_.insert("fail-closed/" + name + "/" + r.str()).second)
            log::warn("ike.fail_closed_skipped",
                      {{"conn", name},
                       {"prefix", r.str()},
                       {"reason", "the remote subnet holds the peer's own address"}});
          continue;
        }
        want.emplace(r.str(), r);
      }
  for (const auto& [key, dst] : want) {
    auto it = fail_closed_.find(key);
    if (it != fail_closed_.end()) {
      it->second.expire_ms = 0;
      continue;
    }
    if (auto r = rtnl_->add_fail_closed(dst); !r) {
      log::warn("ike.route_failed", {{"op", "fail_closed"}, {"error", r.error()}});
      continue;  // tried again at the next sync
    }
    fail_closed_[key] = {dst, 0};
  }
  for (auto& [key, fc] : fail_closed_)
    if (!want.count(key) && fc.expire_ms == 0) {
      fc.expire_ms = now + drain;
      log::info("ike.fail_closed_draining",
                {{"prefix", key}, {"drain_s", settings_.fail_closed_drain_s}});
    }
  tick();
}

void IkeSync::set_up_state_file(std::string path) {
  up_state_file_ = std::move(path);
  std::ifstream in(up_state_file_);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) up_saved_.insert(line);
}

void IkeSync::save_up_state() {
  if (up_state_file_.empty() || !up_restored_) return;
  std::set<std::string> want = up_saved_;
  auto& d = rt_.daemon();
  for (auto it = want.begin(); it != want.end();)
    it = loaded_.count(*it) ? std::next(it) : want.erase(it);
  for (const auto& [name, k] : loaded_) {
    auto st = d.status(name);
    if (st && st->up) {
      want.insert(name);
      up_this_run_.insert(name);
    } else if (up_this_run_.count(name)) {
      want.erase(name);  // went down in this run: not to be restored
    }
  }
  if (want == up_saved_) return;
  // Written whole and renamed, so a crash never leaves half a file.
  const std::string tmp = up_state_file_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    for (const auto& n : want) out << n << "\n";
    if (!out.flush()) {
      log::warn("ike.up_state_failed", {{"path", tmp}});
      return;
    }
  }
  if (std::rename(tmp.c_str(), up_state_file_.c_str()) != 0) {
    log::warn("ike.up_state_failed", {{"path", up_state_file_}, {"error", std::strerror(errno)}});
    return;
  }
  up_saved_ = std::move(want);
}

void IkeSync::tick() {
  save_up_state();
  if (!rtnl_) return;
  const uint64_t now = steady_ms();
  for (auto it = fail_closed_.begin(); it != fail_closed_.end();) {
    if (it->second.expire_ms == 0 || now < it->second.expire_ms) {
      ++it;
      continue;
    }
    if (auto r = rtnl_->remove_fail_closed(it->second.dst); !r) {
      log::warn("ike.route_failed", {{"op", "del fail_closed"}, {"error", r.error()}});
      ++it;  // tried again at the next tick
      continue;
    }
    log::info("ike.fail_closed_removed", {{"prefix", it->first}});
    it = fail_closed_.erase(it);
  }
}

// The remote subnets of every loaded connection, routed into the ESP
// engine's device over rtnetlink; routes no connection wants any more go.
void IkeSync::sync_routes() {
  if (!settings_.install_routes) return;
  // The fail-closed floor first: a subnet is never without both routes.
  sync_fail_closed();
  std::map<std::string, net::Cidr> want;
  for (const auto& [name, k] : loaded_)
    for (const auto& ch : k.children)
      for (const auto& r : ch.remote_ts)
        if (r.len > 0) want.emplace(r.str(), r);
  if (!open_rtnl()) return;
  for (auto it = routes_.begin(); it != routes_.end();) {
    if (want.count(it->first)) {
      ++it;
      continue;
    }
    if (auto r = rtnl_->remove(it->second, settings_.tun); !r)
      log::warn("ike.route_failed", {{"op", "del"}, {"error", r.error()}});
    it = routes_.erase(it);
  }
  for (const auto& [key, dst] : want) {
    if (routes_.count(key)) continue;
    if (auto r = rtnl_->replace(dst, settings_.tun); !r) {
      log::warn("ike.route_failed", {{"op", "replace"}, {"error", r.error()}});
      continue;  // tried again at the next sync
    }
    routes_.emplace(key, dst);
  }
}

Expected<void, std::string> IkeSync::sync() {
  auto conns = store_.connections();
  auto gws = store_.gateways();
  auto cgws = store_.customer_gateways();
  if (!conns || !gws || !cgws) return unexpected(std::string("store read failed"));
  std::map<std::string, ike::ConnConfig> want;
  std::map<std::string, std::vector<std::string>> names;
  std::string errors;
  for (const auto& c : *conns) {
    const VpnGateway* gw = nullptr;
    const CustomerGateway* cgw = nullptr;
    for (const auto& g : *gws)
      if (g.id == c.vgw_id) gw = &g;
    for (const auto& g : *cgws)
      if (g.id == c.cgw_id) cgw = &g;
    if (!gw || !cgw || gw->type != GatewayType::Ipsec) continue;
    const size_t n = std::max<size_t>(1, std::min(c.tunnels.size(), gw->public_ips.size()));
    for (size_t t = 0; t < n; ++t) {
      auto k = conn_config(c, *gw, *cgw, t);
      if (!k) {
        if (warned_.insert(c.id + "/" + k.error()).second)
          log::warn("ike.unsupported", {{"conn", c.name}, {"reason", k.error()}});
        continue;
      }
      names[c.id].push_back(k->name);
      labels_[k->name] = {gw->name, c.name,
                          t < c.tunnels.size()
                              ? std::string(enum_name(kHaRoles, c.tunnels[t].ha_role))
                              : std::string(t == 0 ? "master" : "slave")};
      want.emplace(k->name, std::move(*k));
    }
  }
  auto& d = rt_.daemon();
  for (auto it = loaded_.begin(); it != loaded_.end();) {
    if (!want.count(it->first)) {
      d.remove(it->first);
      labels_.erase(it->first);
      esp_totals_.erase(it->first);
      it = loaded_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [name, k] : want) {
    if (auto r = d.upsert(k); !r) {
      errors += (errors.empty() ? "" : "; ") + r.error();
      log::error("ike.conn_rejected", {{"conn", name}, {"error", r.error()}});
      continue;
    }
    loaded_[name] = k;
  }
  sync_routes();
  names_by_id_ = std::move(names);
  tunnel_by_name_.clear();
  for (const auto& [id, v] : names_by_id_)
    for (const auto& n : v)
      tunnel_by_name_[n] = {id, n.ends_with("/standby") ? 1 : 0};  // tunnel_conn_name()
  if (!up_restored_) {
    // The first sync after a start: bring back what was up before.
    up_restored_ = true;
    for (const auto& name : up_saved_)
      if (loaded_.count(name)) {
        log::info("ike.restore_initiate", {{"conn", name}});
        (void)rt_.daemon().initiate(name);
      }
  }
  rt_.kick();
  if (!errors.empty()) return unexpected(errors);
  return {};
}

std::optional<std::pair<std::string, size_t>> IkeSync::tunnel_of(const std::string& name) const {
  auto it = tunnel_by_name_.find(name);
  if (it == tunnel_by_name_.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> IkeSync::daemon_name(const std::string& conn_id, size_t tunnel) const {
  auto it = names_by_id_.find(conn_id);
  if (it == names_by_id_.end()) return std::nullopt;
  for (const auto& n : it->second)
    if (tunnel_by_name_.at(n).second == tunnel) return n;
  return std::nullopt;
}

void IkeSync::overlay(Json& view) const {
  if (!view.contains("id")) return;
  auto it = names_by_id_.find(view["id"].get<std::string>());
  if (it == names_by_id_.end()) return;
  auto& d = rt_.daemon();
  bool any_up = false;
  std::string negotiation = "down";
  for (size_t t = 0; t < it->second.size(); ++t) {
    auto st = d.status(it->second[t]);
    if (!st) continue;
    const char* ns = negotiation_status(*st);
    if (t == 0) negotiation = ns;
    any_up |= st->up;
    if (view.contains("tunnels") && t < view["tunnels"].size()) {
      auto& tj = view["tunnels"][t];
      tj["status"] = st->up ? "up" : "down";
      tj["negotiation_status"] = ns;
      if (st->failure != ike::Failure::None) {
        tj["failure_reason"] = ike::to_string(st->failure);
        tj["failure_detail"] = st->failure_detail;
      }
      // What the peer narrowed, and which relations have no CHILD_SA.
      if (!st->narrowed.empty()) tj["ts_narrowed"] = st->narrowed;
      if (!st->without_sa.empty()) tj["relations_without_sa"] = st->without_sa;
    }
    if (t == 0) {
      if (!st->narrowed.empty()) view["ts_narrowed"] = st->narrowed;
      if (!st->without_sa.empty()) view["relations_without_sa"] = st->without_sa;
    }
    if (t == 0 && st->failure != ike::Failure::None) {
      view["failure_reason"] = ike::to_string(st->failure);
      view["failure_detail"] = st->failure_detail;
    }
  }
  view["status"] = any_up ? "up" : "down";
  view["negotiation_status"] = negotiation;
}

Json IkeSync::sas_json() const {
  Json out = Json::array();
  char spi[24];
  for (const auto& sa : rt_.daemon().sas()) {
    Json j{{"ike_sa_id", sa.unique_id},
           {"connection", sa.conn},
           {"state", ike::to_string(sa.state)},
           {"version", sa.version},
           {"initiator", sa.initiator},
           {"local", sa.local},
           {"remote", sa.remote},
           {"local_id", sa.local_id},
           {"remote_id", sa.remote_id},
           {"algorithms", sa.algorithms},
           {"nat_local", sa.nat_local},
           {"nat_remote", sa.nat_remote},
           {"established_seconds", sa.established_for_s},
           {"rekey_in_seconds", sa.rekey_in_s}};
    if (sa.version == 1) j["mode"] = sa.aggressive ? "aggressive" : "main";
    snprintf(spi, sizeof spi, "%016llx", static_cast<unsigned long long>(sa.spi_i));
    j["spi_i"] = spi;
    snprintf(spi, sizeof spi, "%016llx", static_cast<unsigned long long>(sa.spi_r));
    j["spi_r"] = spi;
    Json children = Json::array();
    for (const auto& c : sa.children) {
      Json cj{{"name", c.name},
              {"reqid", c.tunnel_id},
              {"state", c.rekeying ? "REKEYED" : "INSTALLED"},
              {"mode", c.encap ? "TUNNEL-in-UDP" : "TUNNEL"},
              {"algorithms", c.algorithms},
              {"local_ts", c.local_ts},
              {"remote_ts", c.remote_ts},
              {"installed_seconds", c.installed_for_s},
              {"rekey_in_seconds", c.rekey_in_s},
              {"bytes_in", c.bytes_in},
              {"packets_in", c.packets_in},
              {"bytes_out", c.bytes_out},
              {"packets_out", c.packets_out}};
      snprintf(spi, sizeof spi, "%08x", c.spi_in);
      cj["spi_in"] = spi;
      snprintf(spi, sizeof spi, "%08x", c.spi_out);
      cj["spi_out"] = spi;
      children.push_back(std::move(cj));
    }
    j["children"] = std::move(children);
    out.push_back(std::move(j));
  }
  return out;
}

namespace {

// b - a for a monotonic source that may have restarted (a new SA or tunnel
// id starts from zero): then all of b is new.
uint64_t delta(uint64_t a, uint64_t b) {
  return b >= a ? b - a : b;
}

}  // namespace

metrics::IkeSnapshot IkeSync::metrics_snapshot() {
  auto& d = rt_.daemon();
  metrics::IkeSnapshot s;
  for (const auto& [name, l] : labels_) {
    auto st = d.status(name);
    if (!st) continue;
    metrics::IkeSnapshot::Tunnel t;
    t.gateway = l.gateway;
    t.connection = l.connection;
    t.role = l.role;
    t.up = st->up;
    t.state = st->state;
    t.child_sas = st->established_children;
    t.ike_rekeys = st->ike_rekeys;
    t.child_rekeys = st->child_rekeys;
    t.dpd_timeouts = st->dpd_timeouts;
    for (const auto& [f, n] : st->failures_total) t.failures[ike::to_string(f)] = n;
    for (const auto& [f, n] : st->unauthenticated_failures_total)
      t.unauthenticated_failures[ike::to_string(f)] = n;
    auto& tot = esp_totals_[name];
    for (uint32_t tid : st->tunnel_ids) {
      auto cur = dp_.tunnel_counters(tid);
      if (!cur) continue;
      auto& last = last_tunnel_[tid];
      tot.rx_bytes += delta(last.rx_bytes, cur->rx_bytes);
      tot.rx_packets += delta(last.rx_packets, cur->rx_packets);
      tot.tx_bytes += delta(last.tx_bytes, cur->tx_bytes);
      tot.tx_packets += delta(last.tx_packets, cur->tx_packets);
      last = *cur;
    }
    t.rx_bytes = tot.rx_bytes;
    t.rx_packets = tot.rx_packets;
    t.tx_bytes = tot.tx_bytes;
    t.tx_packets = tot.tx_packets;
    s.tunnels.push_back(std::move(t));
  }
  const auto& c = d.counters();
  const char* exchanges[] = {"IKE_SA_INIT", "IKE_AUTH", "CREATE_CHILD_SA", "INFORMATIONAL"};
  for (size_t i = 0; i < 4; ++i) {
    s.messages[{exchanges[i], "received"}] = c.rx_by_exchange[i];
    s.messages[{exchanges[i], "sent"}] = c.tx_by_exchange[i];
  }
  // IKEv1, as strongSwan names the exchanges.
  const char* v1_exchanges[] = {"ID_PROT", "AGGRESSIVE", "QUICK_MODE", "INFORMATIONAL_V1"};
  for (size_t i = 0; i < 4; ++i) {
    s.messages[{v1_exchanges[i], "received"}] = c.v1_rx_by_exchange[i];
    s.messages[{v1_exchanges[i], "sent"}] = c.v1_tx_by_exchange[i];
  }
  s.half_open = d.half_open();
  s.cookies_sent = c.cookies_sent;
  s.half_open_refused = c.half_open_refused;
  s.unknown_peer = c.unknown_peer;
  s.nat_t_queue_drops = rt_.nat_t_queue_drops();
  s.retransmits = c.retransmits;
  s.malformed = c.malformed + c.bad_spi + c.invalid_message_id + c.unsupported_critical;
  s.integrity_failures = c.integrity_failed;
  s.auth_failures = c.auth_failures;
  // ESP drops: the data plane's global counters, plus the per-SA ones
  // summed as deltas (an SA's last second of drops is lost when it goes).
  const auto g = dp_.counters();
  s.esp_drops = {{"unknown_spi", g.unknown_spi},
                 {"no_policy", g.no_policy},
                 {"no_sa", g.no_sa},
                 {"malformed", g.malformed},
                 {"bad_next_header", g.bad_next_header},
                 {"too_big", g.too_big},
                 {"no_buffer", g.no_buffer},
                 {"encap_mismatch", g.encap_mismatch},
                 {"send_error", g.send_errors}};
  std::set<uint32_t> seen;
  for (const auto& sa : d.sas())
    for (const auto& ch : sa.children) {
      auto cur = dp_.sa_counters(dp::Direction::In, ch.spi_in);
      if (!cur) continue;
      seen.insert(ch.spi_in);
      auto& last = last_sa_[ch.spi_in];
      sa_drop_totals_["replay"] += delta(last.replay_drops, cur->replay_drops);
      sa_drop_totals_["icv"] += delta(last.icv_failures, cur->icv_failures);
      sa_drop_totals_["padding"] += delta(last.pad_errors, cur->pad_errors);
      sa_drop_totals_["policy_mismatch"] += delta(last.policy_mismatch, cur->policy_mismatch);
      sa_drop_totals_["expired"] += delta(last.expired_drops, cur->expired_drops);
      last = *cur;
    }
  for (auto it = last_sa_.begin(); it != last_sa_.end();)
    it = seen.count(it->first) ? std::next(it) : last_sa_.erase(it);
  for (const char* r : {"replay", "icv", "padding", "policy_mismatch", "expired"})
    s.esp_drops[r] = sa_drop_totals_[r];
  return s;
}

}  // namespace xgw::xgwd
