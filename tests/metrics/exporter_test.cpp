// The exporter's IKE/ESP families (metrics/exporter.h): every configured
// tunnel listed, xgw_tunnel_up taken from the IKE daemon's snapshot, the
// state set complete, counters as published.
#include "metrics/exporter.h"

#include <gtest/gtest.h>

namespace xgw::metrics {
namespace {

using prometheus::MetricFamily;

const MetricFamily* find(const std::vector<MetricFamily>& fs, const std::string& name) {
  for (const auto& f : fs)
    if (f.name == name) return &f;
  return nullptr;
}

// The value of the sample whose labels include all of `want`.
std::optional<double> value(const std::vector<MetricFamily>& fs, const std::string& name,
                            std::map<std::string, std::string> want) {
  const MetricFamily* f = find(fs, name);
  if (!f) return std::nullopt;
  for (const auto& m : f->metric) {
    size_t hit = 0;
    for (const auto& l : m.label)
      if (auto it = want.find(l.name); it != want.end() && it->second == l.value) ++hit;
    if (hit == want.size())
      return f->type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
  }
  return std::nullopt;
}

TEST(Exporter, IkeSnapshotDrivesTunnelState) {
  Exporter e("test", 0, nullptr);
  Topology t;
  t.gateways.push_back({"gw", 100000000, std::nullopt});
  t.tunnels.push_back({"gw", "c1", "master", false, std::nullopt});
  t.tunnels.push_back({"gw", "c1", "slave", false, std::nullopt});
  e.publish(t);
  auto before = e.Collect();
  EXPECT_EQ(value(before, "xgw_tunnel_up", {{"role", "master"}}), 0);
  EXPECT_EQ(find(before, "xgw_tunnel_ike_state"), nullptr) << "no IKE families without IKE";

  IkeSnapshot s;
  IkeSnapshot::Tunnel m;
  m.gateway = "gw";
  m.connection = "c1";
  m.role = "master";
  m.up = true;
  m.state = "established";
  m.child_sas = 2;
  m.child_rekeys = 3;
  m.failures["psk_mismatch"] = 4;
  m.unauthenticated_failures["dh_group_mismatch"] = 6;
  m.rx_bytes = 1000;
  m.tx_packets = 7;
  s.tunnels.push_back(m);
  s.messages[{"IKE_AUTH", "sent"}] = 5;
  s.half_open = 1;
  s.half_open_refused = 11;
  s.unknown_peer = 12;
  s.nat_t_queue_drops = 13;
  s.esp_drops["replay"] = 9;
  s.acquires = {{"negotiated", 2}, {"rate_limited", 5}, {"unmatched", 0}};
  e.publish_ike(s);
  auto fs = e.Collect();
  EXPECT_EQ(value(fs, "xgw_tunnel_up", {{"role", "master"}}), 1);
  // The standby is configured but the daemon has no state for it: still listed, 0.
  EXPECT_EQ(value(fs, "xgw_tunnel_up", {{"role", "slave"}}), 0);
  EXPECT_EQ(value(fs, "xgw_tunnel_ike_state", {{"state", "established"}}), 1);
  EXPECT_EQ(value(fs, "xgw_tunnel_ike_state", {{"state", "down"}}), 0);
  EXPECT_EQ(find(fs, "xgw_tunnel_ike_state")->metric.size(), 4u);
  EXPECT_EQ(value(fs, "xgw_tunnel_child_sas", {{"connection", "c1"}}), 2);
  EXPECT_EQ(value(fs, "xgw_tunnel_rekeys_total", {{"kind", "child"}}), 3);
  EXPECT_EQ(value(fs, "xgw_tunnel_negotiation_failures_total",
                  {{"reason", "psk_mismatch"}, {"authenticated", "true"}}),
            4);
  EXPECT_EQ(value(fs, "xgw_tunnel_negotiation_failures_total",
                  {{"reason", "dh_group_mismatch"}, {"authenticated", "false"}}),
            6);
  EXPECT_EQ(value(fs, "xgw_tunnel_esp_receive_bytes_total", {{"connection", "c1"}}), 1000);
  EXPECT_EQ(value(fs, "xgw_tunnel_esp_transmit_packets_total", {{"connection", "c1"}}), 7);
  EXPECT_EQ(value(fs, "xgw_ike_messages_total", {{"exchange", "IKE_AUTH"}, {"direction", "sent"}}),
            5);
  EXPECT_EQ(value(fs, "xgw_ike_half_open_sas", {}), 1);
  EXPECT_EQ(value(fs, "xgw_ike_half_open_refused_total", {}), 11);
  EXPECT_EQ(value(fs, "xgw_ike_unknown_peer_requests_total", {}), 12);
  EXPECT_EQ(value(fs, "xgw_ike_receive_queue_drops_total", {}), 13);
  EXPECT_EQ(value(fs, "xgw_esp_drops_total", {{"reason", "replay"}}), 9);
  EXPECT_EQ(value(fs, "xgw_dataplane_acquires_total", {{"result", "negotiated"}}), 2);
  EXPECT_EQ(value(fs, "xgw_dataplane_acquires_total", {{"result", "rate_limited"}}), 5);
  for (const auto& f : fs) {
    if (f.type == prometheus::MetricType::Counter) {
      EXPECT_TRUE(f.name.size() > 6 && f.name.substr(f.name.size() - 6) == "_total") << f.name;
    }
  }
}

}  // namespace
}  // namespace xgw::metrics
