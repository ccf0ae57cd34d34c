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

std::vector<MetricFamily> Exporter::Collect() const {
  Topology t;
  {
    std::lock_guard lk(mu_);
    t = topo_;
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
  for (const auto& tu : t.tunnels)
    add(up, {{"gateway", tu.gateway}, {"connection", tu.connection}, {"role", tu.role}},
        tu.up ? 1 : 0);
  out.push_back(std::move(up));

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
