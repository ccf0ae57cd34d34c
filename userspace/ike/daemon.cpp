#include "ike/daemon.h"

#include "ike/daemon_impl.h"
#include "ike/ikev1_proposals.h"

namespace xgw::ike {

// ---------------------------------------------------------------------------
// Identity

Identity Identity::from_ip(const net::IpAddr& a) {
  Identity i;
  i.type = a.family == net::Family::V4 ? IdType::Ipv4 : IdType::Ipv6;
  i.data.assign(a.bytes.begin(), a.bytes.begin() + (a.family == net::Family::V4 ? 4 : 16));
  return i;
}
Identity Identity::fqdn(const std::string& name) {
  Identity i;
  i.type = IdType::Fqdn;
  i.data.assign(name.begin(), name.end());
  return i;
}
std::string Identity::str() const {
  if ((type == IdType::Ipv4 && data.size() == 4) || (type == IdType::Ipv6 && data.size() == 16)) {
    net::IpAddr a;
    a.family = type == IdType::Ipv4 ? net::Family::V4 : net::Family::V6;
    std::copy(data.begin(), data.end(), a.bytes.begin());
    return a.str();
  }
  if (type == IdType::Fqdn || type == IdType::Rfc822) return std::string(data.begin(), data.end());
  return "id-type-" + std::to_string(static_cast<int>(type));
}

const char* to_string(Failure f) {
  switch (f) {
    case Failure::None:
      return "none";
    case Failure::PskMismatch:
      return "psk_mismatch";
    case Failure::IdMismatch:
      return "id_mismatch";
    case Failure::IkeVersionMismatch:
      return "ike_version_mismatch";
    case Failure::ModeMismatch:
      return "mode_mismatch";
    case Failure::ProposalMismatch:
      return "proposal_mismatch";
    case Failure::DhGroupMismatch:
      return "dh_group_mismatch";
    case Failure::PeerNotResponding:
      return "peer_not_responding";
    case Failure::TsMismatch:
      return "traffic_selector_mismatch";
    case Failure::PfsMismatch:
      return "pfs_mismatch";
    case Failure::ChildProposalMismatch:
      return "ipsec_proposal_mismatch";
    case Failure::AuthFailed:
      return "authentication_failed";
    case Failure::DataplaneError:
      return "dataplane_error";
    case Failure::PeerDeleted:
      return "peer_deleted";
    case Failure::DeadPeer:
      return "dead_peer";
    case Failure::Internal:
      return "internal_error";
  }
  return "?";
}

const char* to_string(IkeState s) {
  switch (s) {
    case IkeState::Connecting:
      return "CONNECTING";
    case IkeState::Established:
      return "ESTABLISHED";
    case IkeState::Rekeying:
      return "REKEYING";
    case IkeState::Deleting:
      return "DELETING";
    case IkeState::Dead:
      return "DEAD";
  }
  return "?";
}

// ---------------------------------------------------------------------------

Daemon::Daemon(Clock& clock, Transport& transport, dp::Dataplane& dataplane, DaemonOptions opts)
    : impl_(std::make_unique<Impl>(clock, transport, dataplane, opts)) {}
Daemon::~Daemon() = default;

Expected<void, std::string> Daemon::upsert(const ConnConfig& cfg) {
  if (cfg.name.empty()) return unexpected(std::string("connection without a name"));
  if (cfg.ike.empty() || cfg.esp.empty())
    return unexpected("connection " + cfg.name + ": no proposals");
  if (cfg.psk.empty()) return unexpected("connection " + cfg.name + ": empty PSK");
  for (const auto& a : cfg.ike)
    if (!encr_info(a.encr, a.key_bits) || !prf_info(a.prf) || !dh_info(a.dh) ||
        !available(a.encr, a.key_bits) || !available(a.prf) || !available(a.dh) ||
        (a.integ != IntegId::None && !available(a.integ)))
      return unexpected("connection " + cfg.name + ": IKE proposal " + to_string(a) +
                        " is not available");
  for (const auto& a : cfg.esp)
    if (!to_esp(a.encr, a.key_bits) || !to_esp(a.integ) || (a.dh != DhId::None && !available(a.dh)))
      return unexpected("connection " + cfg.name + ": ESP proposal " + to_string(a) +
                        " is not available");
  if (cfg.ike_version != 1 && cfg.ike_version != 2)
    return unexpected("connection " + cfg.name + ": IKE version must be 1 or 2");
  if (cfg.ike_version == 1) {
    // RFC 2409 Appendix A: DES, 3DES, AES-CBC with MD5, SHA-1 or SHA-2.
    for (const auto& a : cfg.ike)
      if (v1::phase1_sa({a}, cfg.ike_lifetime_s).proposals[0].transforms.empty())
        return unexpected("connection " + cfg.name + ": IKE proposal " + to_string(a) +
                          " has no IKEv1 encoding (phase 1 takes des, 3des, aes with md5, sha1, "
                          "sha2)");
    if (cfg.aggressive && cfg.ike.size() > 1)
      for (const auto& a : cfg.ike)
        if (a.dh != cfg.ike.front().dh)
          return unexpected("connection " + cfg.name +
                            ": aggressive mode sends one KE, so every proposal needs the same DH "
                            "group");
  }
  auto& I = *impl_;
  auto it = I.conns.find(cfg.name);
  if (it != I.conns.end()) {
    Conn& c = it->second;
    if (Impl::same_negotiation(c.cfg, cfg)) {
      const bool start = cfg.start_immediately && !c.cfg.start_immediately;
      c.cfg = cfg;  // lifetimes, DPD, start mode apply from now on
      if (start && !I.current_sa(cfg.name)) I.start_initiate(c, 0);
      return {};
    }
    log::info("ike.conn_changed", {{"conn", cfg.name}});
    I.teardown(cfg.name, true);
    for (auto& p : c.plans) I.remove_policies(p);
    I.conns.erase(it);
  }
  Conn c;
  c.cfg = cfg;
  c.st.name = cfg.name;
  c.st.state = "down";
  c.plans = I.make_plans(cfg);
  for (auto& p : c.plans) I.install_policies(p, cfg.name);
  auto [pos, _] = I.conns.emplace(cfg.name, std::move(c));
  log::info("ike.conn_added", {{"conn", cfg.name},
                               {"local", cfg.local.str()},
                               {"remote", cfg.remote.str()},
                               {"children", cfg.children.size()},
                               {"start", cfg.start_immediately ? "immediately" : "on_traffic"}});
  if (cfg.start_immediately) I.start_initiate(pos->second, 0);
  return {};
}

void Daemon::remove(const std::string& name) {
  auto& I = *impl_;
  auto it = I.conns.find(name);
  if (it == I.conns.end()) return;
  I.teardown(name, true);
  for (auto& p : it->second.plans) I.remove_policies(p);
  I.conns.erase(it);
  log::info("ike.conn_removed", {{"conn", name}});
}

Expected<void, std::string> Daemon::initiate(const std::string& name) {
  auto& I = *impl_;
  auto it = I.conns.find(name);
  if (it == I.conns.end()) return unexpected("no connection " + name);
  I.start_initiate(it->second, 0);
  return {};
}

void Daemon::terminate(const std::string& name) {
  impl_->teardown(name, true);
}

void Daemon::receive(std::span<const uint8_t> msg, const dp::Endpoint& from,
                     const dp::Endpoint& to) {
  impl_->receive(msg, from, to);
}
void Daemon::on_event(const dp::Event& ev) {
  impl_->on_event(ev);
}
uint64_t Daemon::tick() {
  return impl_->tick();
}
const DaemonCounters& Daemon::counters() const {
  return impl_->ctr;
}
size_t Daemon::half_open() const {
  return impl_->half_open(nullptr);
}

std::vector<std::string> Daemon::connections() const {
  std::vector<std::string> v;
  for (const auto& [n, c] : impl_->conns) v.push_back(n);
  return v;
}

std::vector<IkeSaStatus> Daemon::sas() const {
  std::vector<IkeSaStatus> out;
  for (const auto& [uid, sa] : impl_->sas) {
    IkeSaStatus s;
    s.unique_id = uid;
    s.conn = sa->conn;
    s.state = sa->state;
    s.initiator = sa->initiator;
    s.spi_i = sa->spi_i;
    s.spi_r = sa->spi_r;
    s.local = ep_str(sa->local);
    s.remote = ep_str(sa->remote);
    if (auto it = impl_->conns.find(sa->conn); it != impl_->conns.end())
      s.local_id = it->second.cfg.local_id.str();
    s.remote_id = sa->peer_id.data.empty() ? "" : sa->peer_id.str();
    s.version = sa->version;
    s.aggressive = sa->aggressive;
    s.algorithms = sa->state == IkeState::Connecting && !sa->prf ? ""
                   : sa->version == 1                            ? v1::to_string(sa->algs)
                                                                 : to_string(sa->algs);
    s.nat_local = sa->nat_local;
    s.nat_remote = sa->nat_remote;
    const uint64_t now = impl_->now();
    auto since = [now](uint64_t t) { return t && now > t ? (now - t) / 1000 : 0; };
    auto until = [now](uint64_t t) { return t > now ? (t - now) / 1000 : 0; };
    s.established_at_ms = sa->established_at;
    s.rekey_at_ms = sa->rekey_at;
    s.established_for_s = since(sa->established_at);
    s.rekey_in_s = until(sa->rekey_at);
    for (const auto& ch : sa->children) {
      ChildStatus cs;
      cs.name = ch.name;
      cs.spi_in = ch.spi_in;
      cs.spi_out = ch.spi_out;
      cs.tunnel_id = ch.tunnel_id;
      cs.algorithms = to_string(ch.algs);
      cs.local_ts = cidr_strs(ch.local);
      cs.remote_ts = cidr_strs(ch.remote);
      cs.installed_at_ms = ch.installed_at;
      cs.rekey_at_ms = ch.rekey_at;
      cs.rekeying = ch.rekeyed;
      cs.installed_for_s = since(ch.installed_at);
      cs.rekey_in_s = until(ch.rekey_at);
      cs.encap = ch.encap;
      cs.out_installed = ch.out_installed;
      if (auto c = impl_->dp.sa_counters(dp::Direction::In, ch.spi_in)) {
        cs.bytes_in = c->bytes;
        cs.packets_in = c->packets;
      }
      if (ch.out_installed)
        if (auto c = impl_->dp.sa_counters(dp::Direction::Out, ch.spi_out)) {
          cs.bytes_out = c->bytes;
          cs.packets_out = c->packets;
        }
      s.children.push_back(std::move(cs));
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::optional<ConnStatus> Daemon::status(const std::string& name) const {
  auto it = impl_->conns.find(name);
  if (it == impl_->conns.end()) return std::nullopt;
  ConnStatus st = it->second.st;
  for (const auto& p : it->second.plans) {
    st.tunnel_ids.push_back(p.tunnel_id);
    if (!p.narrowed.empty()) st.narrowed.push_back(p.name + ": " + p.narrowed);
  }
  IkeSa* sa = impl_->current_sa(name);
  st.established_children = 0;
  if (!sa) {
    st.state = "down";
    st.up = false;
  } else if (sa->state != IkeState::Established) {
    st.state = "connecting";
    st.up = false;
  } else {
    for (const auto& p : it->second.plans)
      if (impl_->plan_has_child(*sa, p.tunnel_id))
        ++st.established_children;
      else
        st.without_sa.push_back(p.name + " " + Impl::join(cidr_strs(p.local)) +
                                "===" + Impl::join(cidr_strs(p.remote)));
    st.up = st.established_children == it->second.plans.size();
    st.state = st.up ? "established" : "partial";
  }
  return st;
}

}  // namespace xgw::ike
