// xgw-esp-static: runs xgw's userspace ESP data path — or, with `backend:
// xfrm`, programs the kernel's through XfrmDataplane — with manually keyed
// SAs from a YAML file. A lab, benchmark and interop tool (documented in
// docs/esp.md and docs/xfrm.md), not a production configuration path:
// production SAs come from the IKE daemons through the same Dataplane
// interface.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/log.h"
#include "common/process.h"
#include "dataplane/userspace_dataplane.h"
#include "dataplane/xfrm_dataplane.h"
#include "static_config.h"

namespace {

using xgw::dp::Direction;

int run_ip(std::vector<std::string> args) {
  args.insert(args.begin(), "ip");
  return xgw::run_program(args);
}

nlohmann::json stats(xgw::dp::Dataplane& dp, const xgw::esp_static::StaticConfig& cfg,
                     const nlohmann::json& events) {
  nlohmann::json j;
  j["backend"] = dp.capabilities().backend;
  j["sas"] = nlohmann::json::array();
  for (const auto& sa : cfg.sas) {
    auto c = dp.sa_counters(sa.dir, sa.spi);
    if (!c) continue;
    j["sas"].push_back({{"name", sa.name},
                        {"spi", sa.spi},
                        {"direction", sa.dir == Direction::In ? "in" : "out"},
                        {"packets", c->packets},
                        {"bytes", c->bytes},
                        {"seq", c->seq},
                        {"replay_drops", c->replay_drops},
                        {"icv_failures", c->icv_failures},
                        {"pad_errors", c->pad_errors},
                        {"policy_mismatch", c->policy_mismatch},
                        {"expired_drops", c->expired_drops},
                        {"soft_expired", c->soft_expired},
                        {"hard_expired", c->hard_expired}});
  }
  if (!cfg.sas.empty()) {
    if (auto t = dp.tunnel_counters(cfg.sas.front().tunnel_id)) {
      j["tunnel"] = {{"rx_packets", t->rx_packets},
                     {"rx_bytes", t->rx_bytes},
                     {"tx_packets", t->tx_packets},
                     {"tx_bytes", t->tx_bytes}};
    }
  }
  const auto g = dp.counters();
  j["global"] = {{"unknown_spi", g.unknown_spi},
                 {"no_policy", g.no_policy},
                 {"no_sa", g.no_sa},
                 {"malformed", g.malformed},
                 {"bad_next_header", g.bad_next_header},
                 {"dummy_packets", g.dummy_packets},
                 {"too_big", g.too_big},
                 {"encap_mismatch", g.encap_mismatch},
                 {"no_buffer", g.no_buffer},
                 {"keepalives_rx", g.keepalives_rx},
                 {"keepalives_tx", g.keepalives_tx},
                 {"ike_rx", g.ike_rx},
                 {"send_errors", g.send_errors}};
  j["events"] = events;
  return j;
}

bool write_atomically(const std::string& path, const std::string& body) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    if (!f) return false;
    f << body << '\n';
    if (!f.flush()) return false;
  }
  return ::rename(tmp.c_str(), path.c_str()) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "xgw-esp-static: userspace (or kernel XFRM) ESP with manually keyed SAs (labs and "
      "benchmarks)"};
  std::string config_path, stats_path, log_level = "info";
  app.add_option("--config", config_path, "YAML file with the TUN device, SAs and policies")
      ->required();
  app.add_option("--stats-file", stats_path,
                 "write counters as JSON here every second, on SIGUSR1 and at exit");
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error");
  CLI11_PARSE(app, argc, argv);
  xgw::log::init(log_level);

  std::ifstream in(config_path);
  if (!in) {
    std::cerr << "xgw-esp-static: cannot read " << config_path << "\n";
    return 2;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto cfg = xgw::esp_static::parse_static_config(ss.str());
  if (!cfg) {
    std::cerr << "xgw-esp-static: " << config_path << ": " << cfg.error() << "\n";
    return 2;
  }

  // Signals go to this thread only (sigtimedwait), never to the workers.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  const bool xfrm = cfg->backend == xgw::esp_static::StaticConfig::Backend::Xfrm;
  std::unique_ptr<xgw::dp::Dataplane> dp;
  std::string tun;
  unsigned workers = 0;
  if (xfrm) {
    auto x = xgw::dp::XfrmDataplane::create(cfg->xfrm);
    if (!x) {
      xgw::log::error("esp.start_failed", {{"backend", "xfrm"}, {"error", x.error()}});
      return 1;
    }
    dp = std::move(*x);
  } else {
    auto u = xgw::dp::UserspaceDataplane::create(cfg->dataplane);
    if (!u) {
      xgw::log::error("esp.start_failed", {{"backend", "userspace"}, {"error", u.error()}});
      return 1;
    }
    tun = (*u)->tun_name();
    workers = (*u)->workers();
    dp = std::move(*u);
  }
  for (const auto& sa : cfg->sas) {
    if (auto r = dp->add_sa(sa); !r) {
      xgw::log::error("esp.sa_failed", {{"sa", sa.name}, {"error", r.error()}});
      return 1;
    }
    xgw::log::info("esp.sa_added", {{"sa", sa.name},
                                    {"spi", sa.spi},
                                    {"direction", sa.dir == Direction::In ? "in" : "out"},
                                    {"encr", std::string(xgw::esp::info(sa.encr).keyword)},
                                    {"integ", std::string(xgw::esp::info(sa.integ).keyword)},
                                    {"encap", sa.encap == xgw::dp::Encap::Udp ? "udp" : "none"}});
  }
  for (const auto& p : cfg->policies) {
    if (auto r = dp->add_policy(p); !r) {
      xgw::log::error("esp.policy_failed", {{"error", r.error()}});
      return 1;
    }
    if (cfg->install_routes) {
      const bool v6 = p.dst.family() == xgw::net::Family::V6;
      std::vector<std::string> args;
      if (v6) args.push_back("-6");
      for (const char* a : {"route", "replace"}) args.push_back(a);
      args.push_back(p.dst.str());
      args.push_back("dev");
      args.push_back(cfg->dataplane.tun_name);
      if (run_ip(args) != 0) {
        xgw::log::error("esp.route_failed", {{"dst", p.dst.str()}});
        return 1;
      }
    }
  }
  if (xfrm)
    xgw::log::info("esp.running", {{"backend", "xfrm"}, {"udp_port", cfg->xfrm.udp_port}});
  else
    xgw::log::info("esp.running", {{"backend", "userspace"},
                                   {"tun", tun},
                                   {"workers", workers},
                                   {"udp_port", cfg->dataplane.udp_port}});

  nlohmann::json events = nlohmann::json::array();
  auto dump = [&] {
    if (!stats_path.empty()) write_atomically(stats_path, stats(*dp, *cfg, events).dump());
  };
  timespec tick{1, 0};
  for (;;) {
    siginfo_t si;
    const int sig = sigtimedwait(&sigs, &si, &tick);
    for (const auto& e : dp->poll_events()) {
      nlohmann::json je = {{"kind", xgw::dp::to_string(e.kind)},
                           {"limit", xgw::dp::to_string(e.limit)},
                           {"spi", e.spi},
                           {"tunnel", e.tunnel_id}};
      if (e.kind == xgw::dp::Event::Kind::Acquire) {
        je["policy"] = e.policy_id;
        je["src"] = e.src.str();
        je["dst"] = e.dst.str();
      }
      if (e.kind == xgw::dp::Event::Kind::NatMapping) {
        je["new_addr"] = e.new_addr.str();
        je["new_port"] = e.new_port;
      }
      xgw::log::info("esp.event", {{"kind", xgw::dp::to_string(e.kind)},
                                   {"limit", xgw::dp::to_string(e.limit)},
                                   {"spi", e.spi}});
      if (events.size() < 1000) events.push_back(je);
    }
    if (sig == SIGTERM || sig == SIGINT) break;
    dump();
  }
  dump();
  xgw::log::info("esp.stopped");
  return 0;
}
