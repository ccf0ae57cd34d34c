// xgwd: the xgw daemon. Today it serves the control plane: the object
// store and the REST API. Later issues attach IKE, the data plane and
// metrics to the same process.
#include <fcntl.h>
#include <openssl/rand.h>
#include <prometheus/text_serializer.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "api/http_server.h"
#include "api/rest_api.h"
#include "common/log.h"
#include "control/service.h"
#include "dataplane/userspace_dataplane.h"
#include "ike/runtime.h"
#include "store/store.h"
#include "xgwd/config.h"
#include "xgwd/dataplane_factory.h"
#include "xgwd/ike_sync.h"
#include "xgwd/topology.h"
#include "xgwd/xdp_sa_bridge.h"
#include "xgwd/xdp_sync.h"

namespace {

using namespace xgw;

// Writes `content` to `path` atomically (temp file, fsync, rename) with `mode`.
Expected<void, SysError> write_file_atomic(const std::string& path, const std::string& content,
                                           mode_t mode) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return unexpected(SysError{"open " + tmp, errno});
  const bool ok =
      ::fchmod(fd, mode) == 0 &&
      ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()) &&
      ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok) return unexpected(SysError{"write " + tmp, err});
  if (::rename(tmp.c_str(), path.c_str()) != 0) return unexpected(SysError{"rename " + tmp, errno});
  return {};
}

std::string random_token() {
  unsigned char b[24];
  if (RAND_bytes(b, sizeof b) != 1) abort();
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (unsigned char x : b) s += hex[x >> 4], s += hex[x & 15];
  return s;
}

// The API token: read from the configured file, or generated on first
// start into <state_dir>/api-token (mode 0600).
Expected<std::string, std::string> load_token(const xgwd::Config& cfg) {
  const bool generated_path = cfg.api_token_file.empty();
  const std::string path = generated_path ? cfg.state_dir + "/api-token" : cfg.api_token_file;
  std::ifstream f(path);
  if (f) {
    std::string tok;
    std::getline(f, tok);
    while (!tok.empty() && (tok.back() == '\r' || tok.back() == ' ')) tok.pop_back();
    if (tok.size() < 16)
      return unexpected("token file " + path + " holds fewer than 16 characters");
    return tok;
  }
  if (!generated_path) return unexpected("cannot read token file " + path);
  const std::string tok = random_token();
  if (auto r = write_file_atomic(path, tok + "\n", 0600); !r)
    return unexpected(r.error().message());
  log::info("api.token_created", {{"path", path}});
  return tok;
}

}  // namespace

// Connections each HTTP listener keeps open: at most 1024, and at most a
// quarter of the descriptor limit, so that idle clients cannot take the
// descriptors the data plane, IKE and the store need.
size_t connection_cap() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 1024;
  return std::clamp<size_t>(static_cast<size_t>(rl.rlim_cur) / 4, 8, 1024);
}

int main(int argc, char** argv) {
  CLI::App app{"xgwd - the xgw VPN gateway daemon"};
  std::string config_path, state_dir, api_listen, log_level, token_file, metrics_listen;
  app.add_option("--config", config_path, "YAML file with daemon settings");
  app.add_option("--state-dir", state_dir, "state directory (default /var/lib/xgw)");
  app.add_option("--api-listen", api_listen, "REST API address ADDR:PORT (default 127.0.0.1:9740)");
  app.add_option("--api-token-file", token_file, "read the API token from this file");
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error");
  app.add_option("--metrics-listen", metrics_listen,
                 "Prometheus /metrics address ADDR:PORT, or off (default 127.0.0.1:9741)");
  bool detach_all = false;
  app.add_flag("--detach-all", detach_all,
               "detach the XDP programs of the configured pin dir, remove its pins, and exit");
  CLI11_PARSE(app, argc, argv);

  // Flags override the file; the file overrides defaults. Kept so SIGHUP
  // can re-read the file and re-apply the same flags.
  auto effective = [&]() -> Expected<xgwd::Config, std::string> {
    xgwd::Config c;
    if (!config_path.empty()) {
      auto r = xgwd::load_config_file(config_path, c);
      if (!r) return r;
      c = *r;
    }
    if (!state_dir.empty()) c.state_dir = state_dir;
    if (!api_listen.empty()) c.api_listen = api_listen;
    if (!token_file.empty()) c.api_token_file = token_file;
    if (!log_level.empty()) c.log_level = log_level;
    if (!metrics_listen.empty()) c.metrics_listen = metrics_listen;
    return c;
  };
  auto cfg = effective();
  if (!cfg) {
    std::fprintf(stderr, "xgwd: %s\n", cfg.error().c_str());
    return 2;
  }
  log::init(cfg->log_level);
  if (detach_all) {
    auto r = loader::XdpDataplane::detach_all(cfg->dataplane.pin_dir);
    if (!r) {
      log::error("dataplane.detach_all",
                 {{"pin_dir", cfg->dataplane.pin_dir}, {"error", r.error().message()}});
      return 1;
    }
    log::info("dataplane.detached_all", {{"pin_dir", cfg->dataplane.pin_dir}});
    return 0;
  }
  auto hp = api::parse_host_port(cfg->api_listen);
  if (!hp) {
    log::error("xgwd.bad_config", {{"error", "api listen: " + hp.error()}});
    return 2;
  }

  std::error_code ec;
  std::filesystem::create_directories(cfg->state_dir, ec);
  if (ec || ::chmod(cfg->state_dir.c_str(), 0700) != 0) {
    log::error("xgwd.state_dir",
               {{"path", cfg->state_dir}, {"error", ec ? ec.message() : std::strerror(errno)}});
    return 1;
  }
  auto token = load_token(*cfg);
  if (!token) {
    log::error("api.token", {{"error", token.error()}});
    return 1;
  }
  const std::string db_path = cfg->state_dir + "/xgw.db";
  auto store = store::Store::open(db_path);
  if (!store) {
    log::error("store.open", {{"path", db_path}, {"error", store.error().message}});
    return 1;
  }

  boost::asio::io_context io;
  control::ControlPlane cp(**store, cfg->quotas);

  // The reconciler: turns committed changes into running state. A gateway
  // the XDP data plane serves is running only once its programs are
  // attached and its maps programmed (after each data-plane sync, below);
  // any other gateway has nothing to provision and runs at once. It runs
  // after the API reply, as provisioning does.
  std::unique_ptr<xgwd::XdpSync> xdp;
  auto activate = [&cp, &xdp](const std::string& id) {
    if (xdp) return;  // settle_gateways decides, after the data-plane sync
    auto r = cp.set_gateway_status(id, "running");
    if (r)
      log::info("gateway.running", {{"gateway", id}});
    else
      log::error("gateway.activate_failed", {{"gateway", id}, {"error", r.error().message}});
  };
  if (auto gws = (*store)->gateways()) {
    for (const auto& g : *gws)
      if (g.status == "pending") boost::asio::post(io, [activate, id = g.id] { activate(id); });
  }
  // After a data-plane sync: each configured gateway is running or in
  // error, with the reason in its views (status_reason).
  auto settle_gateways = [&cp, &xdp, &store] {
    auto gws = (*store)->gateways();
    if (!gws || !xdp) return;
    for (const auto& g : *gws) {
      // A gateway the data plane does not serve has nothing to attach.
      auto p = xdp->gateway_problems().find(g.id);
      const std::string want = p == xdp->gateway_problems().end() ? "running" : "error";
      if (g.status == want) continue;
      if (auto r = cp.set_gateway_status(g.id, want); !r) {
        log::error("gateway.status_failed", {{"gateway", g.id}, {"error", r.error().message}});
        continue;
      }
      if (want == "running")
        log::info("gateway.running", {{"gateway", g.id}});
      else
        log::error("gateway.error", {{"gateway", g.id}, {"reason", p->second}});
    }
  };

  // The XDP data plane, when configured: programmed from the store at
  // start and after every committed change (coalesced), events polled.
  std::optional<loader::XdpDataplane> dp;
  // The IKE daemon's SAs mirrored into the XDP maps (with both sections).
  std::unique_ptr<xgwd::XdpSaBridge> sa_bridge;
  std::function<void(const std::string&, size_t, const net::IpAddr&, const net::IpAddr&)>
      on_acquire;
  bool sync_queued = false;
  uint64_t ticks = 0;
  boost::asio::steady_timer event_timer(io);
  std::function<void()> schedule_sync = [] {};
  std::function<void(const boost::system::error_code&)> tick;
  if (cfg->dataplane.enabled) {
    // dataplane.backend `auto` is resolved once, here (a probe SA); the
    // XDP verdict per tunnel follows the result. Reloads keep it.
    const auto choice = xgwd::choose_backend(cfg->dataplane);
    log::info("dataplane.backend", {{"backend", choice.backend},
                                    {"configured", cfg->dataplane.backend},
                                    {"reason", choice.reason}});
    cfg->dataplane.backend = choice.backend;
    auto opened = loader::XdpDataplane::open({.pin_dir = cfg->dataplane.pin_dir,
                                              .tier_percpu = cfg->dataplane.tier_percpu,
                                              .flow_cache = true});
    if (!opened) {
      log::error("dataplane.open",
                 {{"pin_dir", cfg->dataplane.pin_dir}, {"error", opened.error().message()}});
      return 1;
    }
    dp.emplace(std::move(*opened));
    xdp = std::make_unique<xgwd::XdpSync>(**store, *dp, cfg->dataplane);
    cp.set_gateway_overlay([&xdp](control::Json& v) {
      if (!v.contains("id")) return;
      auto p = xdp->gateway_problems().find(v["id"].get<std::string>());
      if (p != xdp->gateway_problems().end()) v["status_reason"] = p->second;
    });
    cp.set_dataplane_provider([&xdp] { return xdp->status_json(); });
    log::info("dataplane.loaded", {{"pin_dir", cfg->dataplane.pin_dir},
                                   {"tier", cfg->dataplane.tier_percpu ? "percpu" : "shared"},
                                   {"backend", cfg->dataplane.backend}});
    schedule_sync = [&] {
      if (sync_queued) return;
      sync_queued = true;
      boost::asio::post(io, [&] {
        sync_queued = false;
        (void)xdp->sync();  // problems are logged one by one
        if (sa_bridge) sa_bridge->reconcile();
        settle_gateways();
      });
    };
    schedule_sync();
    tick = [&](const boost::system::error_code& e) {
      if (e) return;
      xdp->poll_events(on_acquire);
      // Every 2 s: a program removed behind our back is attached again.
      if (++ticks % 20 == 0 && !xdp->programs_intact()) schedule_sync();
      event_timer.expires_after(std::chrono::milliseconds(100));
      event_timer.async_wait(tick);
    };
    event_timer.expires_after(std::chrono::milliseconds(250));
    event_timer.async_wait(tick);
  }
  // IKEv2: SAs negotiated for every IKEv2 connection in the store,
  // re-synced after every committed change, installed in the ESP data
  // plane dataplane.backend names (userspace, xfrm or auto).
  std::unique_ptr<dp::Dataplane> esp_dp;
  std::unique_ptr<ike::Runtime> ike_rt;
  std::unique_ptr<xgwd::IkeSync> ike_sync;
  if (cfg->ike.enabled) {
    std::string chosen;
    auto created = xgwd::make_dataplane(*cfg, &chosen);
    if (!created) {
      log::error("ike.dataplane", {{"error", created.error()}});
      return 1;
    }
    esp_dp = std::move(*created);
    dp::Dataplane* ike_dp = esp_dp.get();
    const bool userspace_backend = esp_dp->capabilities().backend == "userspace";
    if (xdp) {
      // One packet path: the SAs IKE installs drive the XDP programs. A
      // restarted xgwd holds no SA yet: SPIs a previous run left in the
      // pinned map are dropped until negotiated again.
      if (auto n = dp->clear_sas(); !n)
        log::warn("dataplane.clear_sas", {{"error", n.error().message()}});
      else if (*n)
        log::info("dataplane.stale_sas_cleared", {{"count", *n}});
      sa_bridge = std::make_unique<xgwd::XdpSaBridge>(
          *esp_dp, *xdp, [&](const std::string& name) -> std::optional<xgwd::XdpTunnelRef> {
            if (!ike_sync) return std::nullopt;
            auto t = ike_sync->tunnel_of(name);
            if (!t) return std::nullopt;
            return xdp->tunnel_ref(t->first, t->second);
          });
      ike_dp = sa_bridge.get();
      if (userspace_backend) xdp->set_userspace_device(cfg->ike.tun, cfg->ike.mtu);
      schedule_sync();
    }
    ike::RuntimeOptions ro;
    ro.port = cfg->ike.port;
    auto rt = ike::Runtime::create(io, *ike_dp, ro);
    if (!rt) {
      log::error("ike.start", {{"error", rt.error()}});
      return 1;
    }
    ike_rt = std::move(*rt);
    xgwd::IkeConfig ikc = cfg->ike;
    // The kernel (xfrm) routes by its policies; only the userspace path
    // needs the remote subnets routed into its device.
    const bool userspace = esp_dp->capabilities().backend == "userspace";
    if (!userspace) ikc.install_routes = false;
    ike_sync = std::make_unique<xgwd::IkeSync>(**store, *ike_rt, *esp_dp, ikc);
    ike_sync->set_up_state_file(cfg->state_dir + "/ike-up");
    cp.set_connection_overlay([&ike_sync](control::Json& v) { ike_sync->overlay(v); });
    cp.set_sa_provider([&ike_sync] { return ike_sync->sas_json(); });
    boost::asio::post(io, [&ike_sync, &sa_bridge] {
      (void)ike_sync->sync();
      if (sa_bridge) sa_bridge->reconcile();
    });
    if (sa_bridge) {
      // XDP saw traffic on a relation without an SA: the daemon negotiates
      // the CHILD_SA of the policy that matches (rate-limited per relation).
      on_acquire = [&](const std::string& conn_id, size_t tunnel, const net::IpAddr& src,
                       const net::IpAddr& dst) {
        auto name = ike_sync->daemon_name(conn_id, tunnel);
        if (!name) return;
        const uint64_t now_ms =
            static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::chrono::steady_clock::now().time_since_epoch())
                                      .count());
        auto ev = sa_bridge->acquire(*name, src, dst, now_ms);
        if (!ev) return;
        ike_rt->daemon().on_event(*ev);
        ike_rt->kick();
      };
    }
    if (auto* u = dynamic_cast<dp::UserspaceDataplane*>(esp_dp.get()))
      log::info("ike.started", {{"port", cfg->ike.port},
                                {"backend", chosen},
                                {"device", u->tun_name()},
                                {"workers", u->workers()}});
    else
      log::info("ike.started", {{"port", cfg->ike.port}, {"backend", chosen}});
  }
  // Prometheus exposition: counters read at scrape time, the object
  // topology republished after every change.
  const double started =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  auto exporter = std::make_shared<metrics::Exporter>(XGW_VERSION, started, dp ? &*dp : nullptr);
  // The IKE daemon lives on this thread; its state reaches the scrape
  // thread as a snapshot published once a second.
  boost::asio::steady_timer ike_metrics_timer(io);
  std::function<void(const boost::system::error_code&)> publish_ike;
  if (ike_sync) {
    publish_ike = [&](const boost::system::error_code& e) {
      if (e) return;
      ike_sync->tick();  // fail-closed routes whose drain time ended go
      auto snap = ike_sync->metrics_snapshot();
      if (sa_bridge) {
        const auto& st = sa_bridge->stats();
        snap.acquires = {{"negotiated", st.acquires},
                         {"rate_limited", st.acquires_limited},
                         {"unmatched", st.acquires_unmatched}};
      }
      exporter->publish_ike(std::move(snap));
      ike_metrics_timer.expires_after(std::chrono::seconds(1));
      ike_metrics_timer.async_wait(publish_ike);
    };
    boost::asio::post(io, [&] { publish_ike({}); });
  }
  // /metrics is served by the same asynchronous HTTP server as the API
  // (without its token; Prometheus scrapes unauthenticated): an idle or
  // slow connection holds no thread, so it never stalls a scrape (with
  // prometheus-cpp's one-thread exposer one idle connection stalled
  // scrapes for 29.5 s).
  api::Router metrics_router;
  metrics_router.add(
      "GET", "/metrics", [exporter](const api::PathParams&, const api::HttpRequest&) {
        api::HttpResponse r;
        r.body = prometheus::TextSerializer().Serialize(exporter->Collect());
        r.headers.emplace_back("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
        return r;
      });
  std::unique_ptr<api::HttpServer> metrics_server;
  if (cfg->metrics_listen != "off") {
    const auto mhp = api::parse_host_port(cfg->metrics_listen);
    if (!mhp) {
      log::error("metrics.listen", {{"address", cfg->metrics_listen}, {"error", mhp.error()}});
      return 1;
    }
    api::HttpServerOptions mo;
    mo.require_token = false;
    mo.log_requests = false;
    mo.body_limit = 4096;
    mo.read_timeout = std::chrono::seconds(10);
    mo.max_connections = connection_cap() / 4 + 1;
    metrics_server = std::make_unique<api::HttpServer>(io, metrics_router, mo);
    auto mep = metrics_server->listen(mhp->first, mhp->second);
    if (!mep) {
      log::error("metrics.listen",
                 {{"address", cfg->metrics_listen}, {"error", mep.error().message()}});
      return 1;
    }
    const std::string maddr = mhp->first + ":" + std::to_string(mep->port());
    if (auto r = write_file_atomic(cfg->state_dir + "/metrics.addr", maddr + "\n", 0644); !r) {
      log::error("metrics.addr_file", {{"error", r.error().message()}});
      return 1;
    }
    log::info("metrics.listening", {{"address", maddr}});
  }
  auto refresh_metrics = [&] {
    auto t = xgwd::build_topology(**store, cfg->dataplane);
    if (t)
      exporter->publish(std::move(*t));
    else
      log::warn("metrics.topology", {{"error", t.error()}});
  };
  boost::asio::post(io, refresh_metrics);

  cp.set_observer([&io, activate, &schedule_sync, &refresh_metrics, &ike_sync,
                   &sa_bridge](const control::Change& c) {
    log::info("control.change",
              {{"kind", c.kind == control::Change::Kind::Gateway           ? "vpn_gateway"
                        : c.kind == control::Change::Kind::CustomerGateway ? "customer_gateway"
                                                                           : "vpn_connection"},
               {"op", c.op == control::Change::Op::Created   ? "created"
                      : c.op == control::Change::Op::Updated ? "updated"
                                                             : "deleted"},
               {"id", c.id}});
    if (c.kind == control::Change::Kind::Gateway && c.op == control::Change::Op::Created) {
      boost::asio::post(io, [activate, id = c.id] { activate(id); });
    }
    boost::asio::post(io, [&io, &schedule_sync, &refresh_metrics, &ike_sync, &sa_bridge] {
      schedule_sync();
      if (ike_sync) (void)ike_sync->sync();  // problems are logged per connection
      if (sa_bridge) sa_bridge->reconcile();
      // Runs after the sync just queued, so new data-plane indexes show.
      boost::asio::post(io, refresh_metrics);
    });
  });

  api::Router router = api::make_rest_api(cp);
  api::HttpServerOptions ao;
  ao.token = *token;
  ao.body_limit = api::kMaxBodyBytes;
  ao.read_timeout = std::chrono::seconds(30);
  ao.max_connections = connection_cap();
  api::HttpServer server(io, router, ao);
  auto ep = server.listen(hp->first, hp->second);
  if (!ep) {
    log::error("api.listen", {{"error", ep.error().message()}});
    return 1;
  }
  const std::string bound =
      (ep->address().is_v6() ? "[" + ep->address().to_string() + "]" : ep->address().to_string()) +
      ":" + std::to_string(ep->port());
  // Tells xgwctl and tests where the API is (useful with port 0).
  if (auto r = write_file_atomic(cfg->state_dir + "/api.addr", bound + "\n", 0644); !r) {
    log::error("api.addr_file", {{"error", r.error().message()}});
    return 1;
  }
  log::info("xgwd.started", {{"version", XGW_VERSION},
                             {"state_dir", cfg->state_dir},
                             {"api", bound},
                             {"schema", (*store)->schema_version().value()}});

  boost::asio::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
  std::function<void(const boost::system::error_code&, int)> on_signal = [&](const boost::system::
                                                                                 error_code& e,
                                                                             int sig) {
    if (e) return;
    if (sig == SIGHUP) {
      auto next = effective();
      if (!next) {
        log::error("xgwd.reload_failed", {{"error", next.error()}});
      } else {
        log::set_level(next->log_level);
        cp.set_quotas(next->quotas);
        if (xdp) {
          if (next->dataplane.pin_dir != cfg->dataplane.pin_dir ||
              next->dataplane.tier_percpu != cfg->dataplane.tier_percpu)
            log::warn("xgwd.reload_partial",
                      {{"reason", "dataplane pin_dir and tier change only on restart"}});
          if (next->dataplane.backend == "auto") next->dataplane.backend = cfg->dataplane.backend;
          xdp->set_config(next->dataplane);
          schedule_sync();
        } else if (next->dataplane.enabled) {
          log::warn("xgwd.reload_partial", {{"reason", "enabling the dataplane needs a restart"}});
        }
        log::info("xgwd.reloaded", {{"log_level", next->log_level}});
        if (next->api_listen != cfg->api_listen || next->state_dir != cfg->state_dir)
          log::warn("xgwd.reload_partial",
                    {{"reason", "state_dir and api.listen change only on restart"}});
      }
      signals.async_wait(on_signal);
      return;
    }
    log::info("xgwd.stopping", {{"signal", sig}});
    server.stop();
    if (metrics_server) metrics_server->stop();
    if (ike_rt) ike_rt->stop();
    ike_metrics_timer.cancel();
    event_timer.cancel();
    io.stop();
  };
  signals.async_wait(on_signal);
  io.run();
  ::unlink((cfg->state_dir + "/api.addr").c_str());
  ::unlink((cfg->state_dir + "/metrics.addr").c_str());
  log::info("xgwd.stopped");
  return 0;
}
