#include "metrics/exporter.h"

#include <net/if.h>

namespace xgw::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

void add(MetricFamily& f, std::vector<ClientMetric::Label> labels, double v) {
  ClientMetric m;
  m.label = std::move(labels);
  if (f.type == MetricType::Counter)
    m.counter.value = v;
  else
    m.gauge.value = v;
  f.metric.push_back(std::move(m));
}

}  // namespace

Exporter::Exporter(std::string version, double start_time, const loader::XdpDataplane* dp)
    : version_(std::move(version)), start_time_(start_time), dp_(dp) {}

void Exporter::publish(Topology t) {
  std::lock_guard lk(mu_);
  topo_ = std::move(t);
}

void Exporter::publish_ike(IkeSnapshot s) {
  std::lock_guard lk(mu_);
  ike_ = std::move(s);
}

namespace {

// IKE and ESP families (SPEC §7): tunnel state, negotiation, rekeys, DPD,
// failures by reason, ESP traffic and drops, IKE messages.
void collect_ike(const IkeSnapshot& s, std::vector<MetricFamily>& out) {
  auto labels = [](const IkeSnapshot::Tunnel& t) -> std::vector<ClientMetric::Label> {
    return {{"gateway", t.gateway}, {"connection", t.connection}, {"role", t.role}};
  };
  auto with = [&](const IkeSnapshot::Tunnel& t, std::string k, std::string v) {
    auto l = labels(t);
    l.push_back({std::move(k), std::move(v)});
    return l;
  };
  auto state = family("xgw_tunnel_ike_state",
                      "IKE state of the tunnel, as a state set (1 = current)", MetricType::Gauge);
  auto children =
      family("xgw_tunnel_child_sas", "established CHILD_SAs of the tunnel", MetricType::Gauge);
  auto rekeys =
      family("xgw_tunnel_rekeys_total", "rekeys of the tunnel's SAs, by kind", MetricType::Counter);
  auto dpd =
      family("xgw_tunnel_dpd_timeouts_total", "peers declared dead by DPD", MetricType::Counter);
  auto failures = family("xgw_tunnel_negotiation_failures_total",
                         "failed negotiations, by reason (docs/ike.md)", MetricType::Counter);
  const char* names[][2] = {{"xgw_tunnel_esp_receive_bytes_total", "inner bytes decrypted"},
                            {"xgw_tunnel_esp_receive_packets_total", "inner packets decrypted"},
                            {"xgw_tunnel_esp_transmit_bytes_total", "inner bytes encrypted"},
                            {"xgw_tunnel_esp_transmit_packets_total", "inner packets encrypted"}};
  std::vector<MetricFamily> esp;
  for (const auto& n : names)
    esp.push_back(family(n[0],
                         std::string(n[1]) + " by the userspace ESP path; monotonic across rekeys",
                         MetricType::Counter));
  for (const auto& t : s.tunnels) {
    for (const char* st : {"down", "connecting", "partial", "established"})
      add(state, with(t, "state", st), t.state == st ? 1 : 0);
    add(children, labels(t), t.child_sas);
    add(rekeys, with(t, "kind", "ike"), static_cast<double>(t.ike_rekeys));
    add(rekeys, with(t, "kind", "child"), static_cast<double>(t.child_rekeys));
    add(dpd, labels(t), static_cast<double>(t.dpd_timeouts));
    // authenticated="false": caused by input before any AUTH verified, which
    // whoever can spoof the peer's address can send; alert on "true".
    for (const auto& [reason, n] : t.failures) {
      auto l = with(t, "reason", reason);
      l.push_back({"authenticated", "true"});
      add(failures, l, static_cast<double>(n));
    }
    for (const auto& [reason, n] : t.unauthenticated_failures) {
      auto l = with(t, "reason", reason);
      l.push_back({"authenticated", "false"});
      add(failures, l, static_cast<double>(n));
    }
    const uint64_t v[4] = {t.rx_bytes, t.rx_packets, t.tx_bytes, t.tx_packets};
    for (size_t i = 0; i < 4; ++i) add(esp[i], labels(t), static_cast<double>(v[i]));
  }
  for (auto* f : {&state, &children, &rekeys, &dpd, &failures}) out.push_back(std::move(*f));
  for (auto& f : esp) out.push_back(std::move(f));

  auto msgs = family("xgw_ike_messages_total", "IKE messages by exchange and direction",
                     MetricType::Counter);
  for (const auto& [k, n] : s.messages)
    add(msgs, {{"exchange", k.first}, {"direction", k.second}}, static_cast<double>(n));
  out.push_back(std::move(msgs));
  auto half =
      family("xgw_ike_half_open_sas", "responder IKE SAs waiting for IKE_AUTH", MetricType::Gauge);
  add(half, {}, static_cast<double>(s.half_open));
  out.push_back(std::move(half));
  struct Ctr {
    const char* name;
    uint64_t value;
    const char* help;
  };
  const Ctr ctrs[] = {
      {"xgw_ike_cookies_sent_total", s.cookies_sent,
       "IKE_SA_INIT answered with a COOKIE (RFC 7296 §2.6)"},
      {"xgw_ike_half_open_refused_total", s.half_open_refused,
       "first IKE messages refused at the half-open SA bounds"},
      {"xgw_ike_unknown_peer_requests_total", s.unknown_peer,
       "first IKE messages from addresses no connection is configured for (not answered)"},
      {"xgw_ike_receive_queue_drops_total", s.nat_t_queue_drops,
       "port-4500 IKE datagrams dropped at the full hand-over queue"},
      {"xgw_ike_retransmissions_total", s.retransmits, "IKE requests sent again"},
      {"xgw_ike_malformed_messages_total", s.malformed,
       "IKE datagrams dropped as unparsable or with unknown SPIs"},
      {"xgw_ike_integrity_failures_total", s.integrity_failures,
       "IKE messages whose Encrypted payload failed to verify"},
      {"xgw_ike_authentication_failures_total", s.auth_failures,
       "IKE_AUTH exchanges that failed authentication (either side)"}};
  for (const auto& c : ctrs) {
    auto f = family(c.name, c.help, MetricType::Counter);
    add(f, {}, static_cast<double>(c.value));
    out.push_back(std::move(f));
  }
  auto drops = family("xgw_esp_drops_total", "packets the userspace ESP path dropped, by reason",
                      MetricType::Counter);
  for (const auto& [reason, n] : s.esp_drops)
    add(drops, {{"reason", reason}}, static_cast<double>(n));
  out.push_back(std::move(drops));
  if (!s.acquires.empty()) {
    auto acq = family("xgw_dataplane_acquires_total",
                      "XDP acquires (traffic on a relation without an SA), by outcome",
                      MetricType::Counter);
    for (const auto& [result, n] : s.acquires)
      add(acq, {{"result", result}}, static_cast<double>(n));
    out.push_back(std::move(acq));
  }
}

}  // namespace

std::vector<MetricFamily> Exporter::Collect() const {
  Topology t;
  std::optional<IkeSnapshot> ike;
  {
    std::lock_guard lk(mu_);
    t = topo_;
    ike = ike_;
  }
  std::vector<MetricFamily> out;
  auto info = family("xgw_build_info", "xgw version; always 1", MetricType::Gauge);
  add(info, {{"version", version_}}, 1);
  out.push_back(std::move(info));
  auto start = family("xgw_start_time_seconds", "when xgwd started, Unix time", MetricType::Gauge);
  add(start, {}, start_time_);
  out.push_back(std::move(start));

  // Base unit bytes (Prometheus convention, promtool lint): a 100 Mbit/s
  // tier is 12500000.
  auto tier = family("xgw_gateway_bandwidth_tier_bytes_per_second",
                     "configured bandwidth tier of the gateway, each direction", MetricType::Gauge);
  for (const auto& g : t.gateways)
    add(tier, {{"gateway", g.name}}, static_cast<double>(g.tier_bps) / 8);
  out.push_back(std::move(tier));

  auto up =
      family("xgw_tunnel_up", "1 when the tunnel has an established SA, else 0", MetricType::Gauge);
  for (const auto& tu : t.tunnels) {
    bool is_up = tu.up;
    if (ike)  // the IKE daemon knows; every configured tunnel stays listed
      for (const auto& lt : ike->tunnels)
        if (lt.connection == tu.connection && lt.role == tu.role) is_up = lt.up;
    add(up, {{"gateway", tu.gateway}, {"connection", tu.connection}, {"role", tu.role}},
        is_up ? 1 : 0);
  }
  out.push_back(std::move(up));
  if (ike) collect_ike(*ike, out);

  if (!dp_) return out;

  const char* dirs[][2] = {{"receive", "WAN to LAN, ESP as received"},
                           {"transmit", "LAN to WAN, before encryption"}};
  std::vector<MetricFamily> gw_fams, tun_fams;
  for (const auto& d : dirs) {
    for (const char* unit : {"bytes", "packets"}) {
      gw_fams.push_back(family(std::string("xgw_gateway_") + d[0] + "_" + unit + "_total",
                               std::string("IP ") + unit + " through the gateway, " + d[1],
                               MetricType::Counter));
      tun_fams.push_back(family(
          std::string("xgw_tunnel_") + d[0] + "_" + unit + "_total",
          std::string("IP ") + unit + " through the tunnel, " + d[1] + "; monotonic across rekeys",
          MetricType::Counter));
    }
  }
  auto drops = family("xgw_gateway_drops_total", "packets the XDP data plane dropped, by reason",
                      MetricType::Counter);
  // Order of the families above: receive bytes, receive packets, transmit
  // bytes, transmit packets.
  auto traffic_values = [](const loader::Traffic& tr) {
    return std::array<double, 4>{
        static_cast<double>(tr.rx_bytes), static_cast<double>(tr.rx_packets),
        static_cast<double>(tr.tx_bytes), static_cast<double>(tr.tx_packets)};
  };
  for (const auto& g : t.gateways) {
    if (!g.dp_idx) continue;
    if (auto tr = dp_->gateway_traffic(*g.dp_idx)) {
      const auto v = traffic_values(*tr);
      for (size_t i = 0; i < 4; ++i) add(gw_fams[i], {{"gateway", g.name}}, v[i]);
    }
    if (auto r = dp_->reasons(*g.dp_idx)) {
      for (size_t i = 0; i < XGW_DROP__MAX; ++i)
        add(drops, {{"gateway", g.name}, {"reason", std::string(loader::drop_reason_name(i))}},
            static_cast<double>(r->drop[i]));
    }
  }
  for (const auto& tu : t.tunnels) {
    if (!tu.dp_idx) continue;
    if (auto tr = dp_->tunnel_traffic(*tu.dp_idx)) {
      const auto v = traffic_values(*tr);
      for (size_t i = 0; i < 4; ++i)
        add(tun_fams[i],
            {{"gateway", tu.gateway}, {"connection", tu.connection}, {"role", tu.role}}, v[i]);
    }
  }
  for (auto& f : gw_fams) out.push_back(std::move(f));
  for (auto& f : tun_fams) out.push_back(std::move(f));
  out.push_back(std::move(drops));

  auto attached = family("xgw_xdp_attached", "1 when xgw's XDP program runs on the interface",
                         MetricType::Gauge);
  for (const auto& i : t.interfaces) {
    const int ifindex = static_cast<int>(::if_nametoindex(i.name.c_str()));
    const bool on = ifindex > 0 && loader::XdpDataplane::xgw_attached(ifindex);
    add(attached, {{"interface", i.name}, {"role", i.role}}, on ? 1 : 0);
  }
  out.push_back(std::move(attached));

  auto fill = family("xgw_dataplane_map_fill_ratio", "how full the data plane's tables are, 0 to 1",
                     MetricType::Gauge);
  add(fill, {{"map", "spd"}}, static_cast<double>(t.max_spd_relations) / XGW_MAX_RELATIONS);
  if (auto n = dp_->sa_count()) add(fill, {{"map", "sa"}}, static_cast<double>(*n) / XGW_MAX_SAS);
  out.push_back(std::move(fill));
  return out;
}

}  // namespace xgw::metrics
