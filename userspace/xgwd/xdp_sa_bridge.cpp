#include "xgwd/xdp_sa_bridge.h"

#include <algorithm>

#include "common/log.h"

namespace xgw::xgwd {

namespace {

void erase_value(std::vector<uint32_t>& v, uint32_t x) {
  v.erase(std::remove(v.begin(), v.end(), x), v.end());
}

}  // namespace

XdpSaBridge::XdpSaBridge(dp::Dataplane& inner, XdpSaSink& sink, Resolver resolve)
    : inner_(inner), sink_(sink), resolve_(std::move(resolve)) {}

void XdpSaBridge::sink_error(const char* what, uint32_t spi, const std::string& err) {
  ++stats_.sink_errors;
  log::error("dataplane.sa_sync_failed", {{"op", what}, {"spi", dp::spi_hex(spi)}, {"error", err}});
}

Expected<void, std::string> XdpSaBridge::add_sa(const dp::SaSpec& sa) {
  if (auto r = inner_.add_sa(sa); !r) return r;
  if (sa.conn.empty()) return {};  // not the IKE daemon's (nothing to mirror)
  conn_of_[{sa.dir, sa.spi}] = sa.conn;
  auto& s = conns_[sa.conn];
  (sa.dir == dp::Direction::In ? s.in : s.out).push_back(sa.spi);
  apply(sa.conn, s);
  return {};
}

Expected<void, std::string> XdpSaBridge::delete_sa(dp::Direction dir, uint32_t spi) {
  // The ESP path drops the SA first: XDP never admits an SPI the backend
  // no longer decrypts, and the backend never holds one XDP refuses.
  auto r = inner_.delete_sa(dir, spi);
  auto it = conn_of_.find({dir, spi});
  if (it == conn_of_.end()) return r;
  const std::string conn = it->second;
  conn_of_.erase(it);
  auto cs = conns_.find(conn);
  if (cs == conns_.end()) return r;
  erase_value(dir == dp::Direction::In ? cs->second.in : cs->second.out, spi);
  apply(conn, cs->second);
  if (cs->second.in.empty() && cs->second.out.empty() && cs->second.admitted.empty() &&
      cs->second.out_programmed == 0)
    conns_.erase(cs);
  return r;
}

Expected<void, std::string> XdpSaBridge::add_policy(const dp::PolicySpec& p) {
  if (auto r = inner_.add_policy(p); !r) return r;
  policies_[p.id] = p;
  return {};
}

Expected<void, std::string> XdpSaBridge::delete_policy(uint32_t id) {
  auto r = inner_.delete_policy(id);
  policies_.erase(id);
  last_acquire_ms_.erase(id);
  return r;
}

void XdpSaBridge::apply(const std::string& conn, ConnSas& s) {
  const std::optional<XdpTunnelRef> want = resolve_ ? resolve_(conn) : std::nullopt;
  // The connection moved to another XDP tunnel (or left XDP): take back
  // what the old one was given first.
  if (s.programmed && s.programmed != want) {
    for (uint32_t spi : s.admitted)
      if (auto r = sink_.revoke_spi(spi); !r) sink_error("revoke", spi, r.error());
    s.admitted.clear();
    if (s.out_programmed)
      if (auto r = sink_.set_outbound(*s.programmed, 0); !r)
        sink_error("outbound", s.out_programmed, r.error());
    s.out_programmed = 0;
    s.programmed.reset();
  }
  if (!want) return;
  s.programmed = want;
  // Inbound SPIs: admit new ones, revoke deleted ones.
  for (uint32_t spi : s.in)
    if (std::find(s.admitted.begin(), s.admitted.end(), spi) == s.admitted.end()) {
      if (auto r = sink_.admit_spi(spi, *want); !r)
        sink_error("admit", spi, r.error());
      else
        s.admitted.push_back(spi);
    }
  for (auto it = s.admitted.begin(); it != s.admitted.end();) {
    if (std::find(s.in.begin(), s.in.end(), *it) != s.in.end()) {
      ++it;
      continue;
    }
    if (auto r = sink_.revoke_spi(*it); !r) sink_error("revoke", *it, r.error());
    it = s.admitted.erase(it);
  }
  // The newest outbound SA is the one the backend sends on.
  const uint32_t out = s.out.empty() ? 0 : s.out.back();
  if (out != s.out_programmed) {
    if (auto r = sink_.set_outbound(*want, out); !r)
      sink_error("outbound", out, r.error());
    else
      s.out_programmed = out;
  }
}

void XdpSaBridge::reconcile() {
  for (auto it = conns_.begin(); it != conns_.end();) {
    apply(it->first, it->second);
    const auto& s = it->second;
    if (s.in.empty() && s.out.empty() && s.admitted.empty() && s.out_programmed == 0)
      it = conns_.erase(it);
    else
      ++it;
  }
}

std::optional<dp::Event> XdpSaBridge::acquire(const std::string& conn, const net::IpAddr& src,
                                              const net::IpAddr& dst, uint64_t now_ms,
                                              uint64_t interval_ms) {
  const dp::PolicySpec* best = nullptr;
  for (const auto& [id, p] : policies_) {
    if (p.conn != conn || !p.src.contains(src) || !p.dst.contains(dst)) continue;
    if (!best || p.priority > best->priority) best = &p;
  }
  if (!best) {
    ++stats_.acquires_unmatched;
    return std::nullopt;
  }
  auto& last = last_acquire_ms_[best->id];
  if (last && now_ms - last < interval_ms) {
    ++stats_.acquires_limited;
    return std::nullopt;
  }
  last = now_ms;
  ++stats_.acquires;
  dp::Event ev;
  ev.kind = dp::Event::Kind::Acquire;
  ev.tunnel_id = best->tunnel_id;
  ev.policy_id = best->id;
  ev.src = src;
  ev.dst = dst;
  return ev;
}

XdpSaBridge::ConnView XdpSaBridge::view(const std::string& conn) const {
  ConnView v;
  auto it = conns_.find(conn);
  if (it == conns_.end()) return v;
  v.tunnel = it->second.programmed;
  v.admitted = it->second.admitted;
  v.out_spi = it->second.out_programmed;
  return v;
}

}  // namespace xgw::xgwd
