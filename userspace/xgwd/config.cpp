#include "xgwd/config.h"

#include <spdlog/common.h>
#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <sstream>

namespace xgw::xgwd {
namespace {

template <typename T>
bool read_scalar(const YAML::Node& n, const std::string& key, T& out, std::string& err) {
  try {
    out = n.as<T>();
    return true;
  } catch (const YAML::Exception&) {
    err = "config: '" + key + "' has an invalid value";
    return false;
  }
}

bool read_quota(const YAML::Node& n, const std::string& key, uint32_t& out, std::string& err) {
  int64_t v = 0;
  if (!read_scalar(n, key, v, err)) return false;
  if (v < 1 || v > 100000) {
    err = "config: quotas." + key + " must be between 1 and 100000";
    return false;
  }
  out = static_cast<uint32_t>(v);
  return true;
}

Expected<void, std::string> parse_dataplane(const YAML::Node& v, DataplaneConfig& d) {
  if (!v.IsMap()) return unexpected(std::string("config: 'dataplane' must be a mapping"));
  d.enabled = true;
  std::string err;
  for (const auto& a : v) {
    const auto k = a.first.as<std::string>();
    const auto& n = a.second;
    if (k == "pin_dir") {
      if (!read_scalar(n, "dataplane.pin_dir", d.pin_dir, err)) return unexpected(err);
      if (d.pin_dir.rfind("/sys/fs/bpf/", 0) != 0)
        return unexpected(std::string("config: dataplane.pin_dir must lie under /sys/fs/bpf/"));
    } else if (k == "tier") {
      std::string t;
      if (!read_scalar(n, "dataplane.tier", t, err)) return unexpected(err);
      if (t != "shared" && t != "percpu")
        return unexpected("config: dataplane.tier '" + t + "' is not shared or percpu");
      d.tier_percpu = t == "percpu";
    } else if (k == "backend") {
      if (!read_scalar(n, "dataplane.backend", d.backend, err)) return unexpected(err);
      if (d.backend != "xfrm" && d.backend != "userspace" && d.backend != "auto")
        return unexpected("config: dataplane.backend '" + d.backend +
                          "' is not xfrm, userspace or auto");
    } else if (k == "userspace_path") {
      if (!read_scalar(n, "dataplane.userspace_path", d.userspace_path, err))
        return unexpected(err);
      if (d.userspace_path != "devmap" && d.userspace_path != "route")
        return unexpected("config: dataplane.userspace_path '" + d.userspace_path +
                          "' is not devmap or route");
    } else if (k == "drop_unmatched") {
      if (!read_scalar(n, "dataplane.drop_unmatched", d.drop_unmatched, err))
        return unexpected(err);
    } else if (k == "drop_no_sa") {
      if (!read_scalar(n, "dataplane.drop_no_sa", d.drop_no_sa, err)) return unexpected(err);
    } else if (k == "gateways") {
      if (!n.IsMap())
        return unexpected(std::string("config: 'dataplane.gateways' must be a mapping"));
      for (const auto& g : n) {
        const auto name = g.first.as<std::string>();
        if (!g.second.IsMap())
          return unexpected("config: dataplane.gateways." + name + " must be a mapping");
        DataplaneGateway dg;
        for (const auto& f : g.second) {
          const auto fk = f.first.as<std::string>();
          const std::string path = "dataplane.gateways." + name + "." + fk;
          std::string* slot = fk == "lan_interface"   ? &dg.lan_interface
                              : fk == "wan_interface" ? &dg.wan_interface
                                                      : nullptr;
          if (!slot) return unexpected("config: unknown key '" + path + "'");
          if (!read_scalar(f.second, path, *slot, err)) return unexpected(err);
          if (slot->empty() || slot->size() > 15)
            return unexpected("config: " + path + " must be an interface name (1-15 characters)");
        }
        if (dg.lan_interface.empty() && dg.wan_interface.empty())
          return unexpected("config: dataplane.gateways." + name + " names no interface");
        d.gateways[name] = dg;
      }
    } else {
      return unexpected("config: unknown key 'dataplane." + k + "'");
    }
  }
  return {};
}

Expected<void, std::string> parse_ike(const YAML::Node& v, IkeConfig& k) {
  if (!v.IsMap()) return unexpected(std::string("config: 'ike' must be a mapping"));
  std::string err;
  k.enabled = true;
  for (const auto& a : v) {
    const auto key = a.first.as<std::string>();
    const std::string path = "ike." + key;
    if (key == "enabled") {
      if (!read_scalar(a.second, path, k.enabled, err)) return unexpected(err);
    } else if (key == "port") {
      uint32_t port = 0;
      if (!read_scalar(a.second, path, port, err)) return unexpected(err);
      if (port == 0 || port > 65535 || port == 4500)
        return unexpected(std::string(
            "config: ike.port must be 1-65535 and not 4500 (NAT-T belongs to the data plane)"));
      k.port = static_cast<uint16_t>(port);
    } else if (key == "backend") {
      if (!read_scalar(a.second, path, k.backend, err)) return unexpected(err);
      if (k.backend != "xfrm" && k.backend != "userspace" && k.backend != "auto")
        return unexpected("config: ike.backend '" + k.backend + "' is not xfrm, userspace or auto");
    } else if (key == "tun") {
      if (!read_scalar(a.second, path, k.tun, err)) return unexpected(err);
      if (k.tun.empty() || k.tun.size() > 15)
        return unexpected(
            std::string("config: ike.tun must be an interface name (1-15 characters)"));
    } else if (key == "mtu") {
      if (!read_scalar(a.second, path, k.mtu, err)) return unexpected(err);
      if (k.mtu < 576 || k.mtu > 9000)
        return unexpected(std::string("config: ike.mtu must be 576-9000"));
    } else if (key == "workers") {
      if (!read_scalar(a.second, path, k.workers, err)) return unexpected(err);
      if (k.workers > 64) return unexpected(std::string("config: ike.workers must be 0-64"));
    } else if (key == "raw_esp") {
      if (!read_scalar(a.second, path, k.raw_esp, err)) return unexpected(err);
    } else if (key == "install_routes") {
      if (!read_scalar(a.second, path, k.install_routes, err)) return unexpected(err);
    } else if (key == "fail_closed") {
      if (!read_scalar(a.second, path, k.fail_closed, err)) return unexpected(err);
    } else if (key == "fail_closed_drain_s") {
      if (!read_scalar(a.second, path, k.fail_closed_drain_s, err)) return unexpected(err);
      if (k.fail_closed_drain_s > 86400)
        return unexpected(std::string("config: ike.fail_closed_drain_s must be 0-86400"));
    } else {
      return unexpected("config: unknown key '" + path + "'");
    }
  }
  return {};
}

}  // namespace

Expected<Config, std::string> parse_config(const std::string& yaml, Config c) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    return unexpected("config: not valid YAML: " + std::string(e.what()));
  }
  if (root.IsNull()) return c;
  if (!root.IsMap()) return unexpected(std::string("config: the top level must be a mapping"));
  std::string err;
  for (const auto& kv : root) {
    const auto key = kv.first.as<std::string>();
    const auto& v = kv.second;
    if (key == "state_dir") {
      if (!read_scalar(v, key, c.state_dir, err)) return unexpected(err);
    } else if (key == "log_level") {
      if (!read_scalar(v, key, c.log_level, err)) return unexpected(err);
      if (spdlog::level::from_str(c.log_level) == spdlog::level::off && c.log_level != "off")
        return unexpected("config: log_level '" + c.log_level +
                          "' is not trace, debug, info, warn or error");
    } else if (key == "api") {
      if (!v.IsMap()) return unexpected(std::string("config: 'api' must be a mapping"));
      for (const auto& a : v) {
        const auto k = a.first.as<std::string>();
        if (k == "listen") {
          if (!read_scalar(a.second, "api.listen", c.api_listen, err)) return unexpected(err);
        } else if (k == "token_file") {
          if (!read_scalar(a.second, "api.token_file", c.api_token_file, err))
            return unexpected(err);
        } else {
          return unexpected("config: unknown key 'api." + k + "'");
        }
      }
    } else if (key == "quotas") {
      if (!v.IsMap()) return unexpected(std::string("config: 'quotas' must be a mapping"));
      auto& q = c.quotas;
      for (const auto& a : v) {
        const auto k = a.first.as<std::string>();
        uint32_t* slot = k == "gateways_per_vpc"    ? &q.gateways_per_vpc
                         : k == "customer_gateways" ? &q.customer_gateways
                         : k == "connections_per_customer_gateway"
                             ? &q.connections_per_customer_gateway
                         : k == "connections_per_gateway" ? &q.connections_per_gateway
                         : k == "rules_per_connection"    ? &q.rules_per_connection
                         : k == "cidrs_per_rule"          ? &q.cidrs_per_rule
                                                          : nullptr;
        if (!slot) return unexpected("config: unknown key 'quotas." + k + "'");
        if (!read_quota(a.second, k, *slot, err)) return unexpected(err);
      }
    } else if (key == "metrics") {
      if (!v.IsMap()) return unexpected(std::string("config: 'metrics' must be a mapping"));
      for (const auto& a : v) {
        const auto k = a.first.as<std::string>();
        if (k != "listen") return unexpected("config: unknown key 'metrics." + k + "'");
        if (!read_scalar(a.second, "metrics.listen", c.metrics_listen, err)) return unexpected(err);
      }
    } else if (key == "dataplane") {
      if (auto r = parse_dataplane(v, c.dataplane); !r) return unexpected(r.error());
    } else if (key == "ike") {
      if (auto r = parse_ike(v, c.ike); !r) return unexpected(r.error());
    } else {
      return unexpected("config: unknown key '" + key + "'");
    }
  }
  // One ESP backend per daemon: the XDP program's verdict follows
  // dataplane.backend, so IKE must install its SAs in the same one.
  if (c.ike.enabled && !c.ike.backend.empty() && c.dataplane.enabled &&
      c.ike.backend != c.dataplane.backend)
    return unexpected("config: ike.backend '" + c.ike.backend +
                      "' differs from dataplane.backend '" + c.dataplane.backend +
                      "' (set one of them)");
  return c;
}

std::string ike_backend(const Config& cfg) {
  // With the XDP data plane the two agree (parse_config), and xgwd has
  // already resolved dataplane.backend's `auto` then: no second probe.
  if (cfg.ike.backend.empty() || cfg.dataplane.enabled) return cfg.dataplane.backend;
  return cfg.ike.backend;
}

Expected<Config, std::string> load_config_file(const std::string& path, Config base) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    return unexpected("config: " + path + " is a directory, not a file");
  std::ifstream f(path);
  if (!f) return unexpected("config: cannot read " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_config(ss.str(), std::move(base));
}

}  // namespace xgw::xgwd
