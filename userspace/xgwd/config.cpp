#include "xgwd/config.h"

#include <spdlog/common.h>
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
    } else {
      return unexpected("config: unknown key '" + key + "'");
    }
  }
  return c;
}

Expected<Config, std::string> load_config_file(const std::string& path, Config base) {
  std::ifstream f(path);
  if (!f) return unexpected("config: cannot read " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_config(ss.str(), std::move(base));
}

}  // namespace xgw::xgwd
