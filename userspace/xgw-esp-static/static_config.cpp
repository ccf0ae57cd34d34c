#include "static_config.h"

#include <yaml-cpp/yaml.h>

#include <map>
#include <set>

namespace xgw::esp_static {

namespace {

struct Error {
  std::string msg;
};

std::vector<uint8_t> parse_hex(const std::string& where, std::string s) {
  if (s.rfind("0x", 0) == 0 || s.rfind("0X", 0) == 0) s = s.substr(2);
  if (s.size() % 2) throw Error{where + ": odd number of hex digits"};
  std::vector<uint8_t> out;
  for (size_t i = 0; i < s.size(); i += 2) {
    auto nib = [&](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      throw Error{where + ": '" + std::string(1, c) + "' is not a hex digit"};
    };
    out.push_back(static_cast<uint8_t>(nib(s[i]) << 4 | nib(s[i + 1])));
  }
  return out;
}

uint64_t parse_uint(const std::string& where, const YAML::Node& n, uint64_t max) {
  if (!n.IsScalar()) throw Error{where + ": expected a number"};
  const std::string s = n.Scalar();
  size_t pos = 0;
  uint64_t v = 0;
  try {
    v = std::stoull(s, &pos, 0);
  } catch (...) {
    throw Error{where + ": '" + s + "' is not a number"};
  }
  if (pos != s.size() || s.empty() || s[0] == '-')
    throw Error{where + ": '" + s + "' is not a number"};
  if (v > max) throw Error{where + ": " + s + " exceeds " + std::to_string(max)};
  return v;
}

std::string str(const std::string& where, const YAML::Node& n) {
  if (!n.IsScalar()) throw Error{where + ": expected a string"};
  return n.Scalar();
}

net::IpAddr addr(const std::string& where, const YAML::Node& n) {
  auto a = net::IpAddr::parse(str(where, n));
  if (!a) throw Error{where + ": '" + n.Scalar() + "' is not an IP address"};
  return *a;
}

void only_keys(const std::string& where, const YAML::Node& n, std::set<std::string> allowed) {
  if (!n.IsMap()) throw Error{where + ": expected a mapping"};
  for (const auto& kv : n) {
    const std::string k = kv.first.Scalar();
    if (!allowed.count(k)) throw Error{where + "." + k + ": unknown key"};
  }
}

}  // namespace

Expected<StaticConfig, std::string> parse_static_config(const std::string& yaml) {
  StaticConfig c;
  try {
    YAML::Node root = YAML::Load(yaml);
    only_keys("config", root,
              {"backend", "tun", "device", "mtu", "workers", "udp_port", "raw_esp", "ipv6",
               "udp_gso", "install_routes", "tunnel_id", "sas", "policies"});
    if (root["backend"]) {
      const std::string b = str("backend", root["backend"]);
      if (b == "xfrm")
        c.backend = StaticConfig::Backend::Xfrm;
      else if (b != "userspace")
        throw Error{"backend: must be userspace or xfrm"};
    }
    if (c.backend == StaticConfig::Backend::Xfrm) {
      // The kernel path has no device, workers or routes of ours: a key
      // that would be ignored is an error instead.
      for (const char* k :
           {"tun", "device", "mtu", "workers", "raw_esp", "udp_gso", "install_routes"})
        if (root[k]) throw Error{std::string(k) + ": only with backend: userspace"};
      c.install_routes = false;
    }
    if (root["tun"]) c.dataplane.tun_name = str("tun", root["tun"]);
    if (root["device"]) {
      const std::string d = str("device", root["device"]);
      if (d != "tap" && d != "tun") throw Error{"device: must be tap or tun"};
      c.dataplane.tap = d == "tap";
    }
    if (root["mtu"]) c.dataplane.mtu = static_cast<uint32_t>(parse_uint("mtu", root["mtu"], 9000));
    if (root["workers"])
      c.dataplane.workers = static_cast<unsigned>(parse_uint("workers", root["workers"], 64));
    if (root["udp_port"])
      c.dataplane.udp_port = static_cast<uint16_t>(parse_uint("udp_port", root["udp_port"], 65535));
    if (root["raw_esp"]) c.dataplane.raw_esp = root["raw_esp"].as<bool>();
    if (root["ipv6"]) c.dataplane.ipv6 = root["ipv6"].as<bool>();
    if (root["udp_gso"]) c.dataplane.udp_gso = root["udp_gso"].as<bool>();
    if (root["install_routes"]) c.install_routes = root["install_routes"].as<bool>();
    c.xfrm.udp_port = c.dataplane.udp_port;
    c.xfrm.ipv6 = c.dataplane.ipv6;
    const uint32_t tunnel =
        root["tunnel_id"]
            ? static_cast<uint32_t>(parse_uint("tunnel_id", root["tunnel_id"], UINT32_MAX))
            : 1;

    std::map<std::string, size_t> by_name;
    if (!root["sas"] || !root["sas"].IsSequence()) throw Error{"sas: expected a list"};
    size_t i = 0;
    for (const auto& n : root["sas"]) {
      const std::string w = "sas[" + std::to_string(i++) + "]";
      only_keys(w, n,
                {"name", "direction", "spi", "local", "remote", "encap", "local_port",
                 "remote_port", "encr", "integ", "encr_key", "integ_key", "esn", "replay_window",
                 "lifetime", "keepalive"});
      dp::SaSpec sa;
      sa.tunnel_id = tunnel;
      sa.name = n["name"] ? str(w + ".name", n["name"]) : w;
      const std::string dir = n["direction"] ? str(w + ".direction", n["direction"]) : "";
      if (dir == "in")
        sa.dir = dp::Direction::In;
      else if (dir == "out")
        sa.dir = dp::Direction::Out;
      else
        throw Error{w + ".direction: must be in or out"};
      if (!n["spi"]) throw Error{w + ".spi: missing"};
      sa.spi = static_cast<uint32_t>(parse_uint(w + ".spi", n["spi"], UINT32_MAX));
      if (!n["local"] || !n["remote"]) throw Error{w + ": local and remote addresses are required"};
      sa.local = addr(w + ".local", n["local"]);
      sa.remote = addr(w + ".remote", n["remote"]);
      const std::string encap = n["encap"] ? str(w + ".encap", n["encap"]) : "udp";
      if (encap == "udp")
        sa.encap = dp::Encap::Udp;
      else if (encap == "none")
        sa.encap = dp::Encap::None;
      else
        throw Error{w + ".encap: must be udp or none"};
      sa.local_port = c.dataplane.udp_port;
      if (n["local_port"])
        sa.local_port =
            static_cast<uint16_t>(parse_uint(w + ".local_port", n["local_port"], 65535));
      if (n["remote_port"])
        sa.remote_port =
            static_cast<uint16_t>(parse_uint(w + ".remote_port", n["remote_port"], 65535));
      // A bare `null` is YAML's null; mean the algorithm of that name.
      const std::string encr = !n["encr"]           ? ""
                               : n["encr"].IsNull() ? "null"
                                                    : str(w + ".encr", n["encr"]);
      auto e = esp::parse_encr(encr);
      if (!e) throw Error{w + ".encr: unknown algorithm '" + encr + "'"};
      sa.encr = *e;
      const std::string integ = n["integ"] ? str(w + ".integ", n["integ"]) : "none";
      auto ig = esp::parse_integ(integ);
      if (!ig) throw Error{w + ".integ: unknown algorithm '" + integ + "'"};
      sa.integ = *ig;
      if (n["encr_key"])
        sa.encr_key = parse_hex(w + ".encr_key", str(w + ".encr_key", n["encr_key"]));
      if (n["integ_key"])
        sa.integ_key = parse_hex(w + ".integ_key", str(w + ".integ_key", n["integ_key"]));
      if (n["esn"]) sa.esn = n["esn"].as<bool>();
      if (n["replay_window"])
        sa.replay_window =
            static_cast<uint32_t>(parse_uint(w + ".replay_window", n["replay_window"], 65536));
      if (n["keepalive"])
        sa.keepalive_seconds =
            static_cast<uint32_t>(parse_uint(w + ".keepalive", n["keepalive"], 3600));
      if (const auto& lt = n["lifetime"]) {
        only_keys(w + ".lifetime", lt,
                  {"soft_bytes", "hard_bytes", "soft_packets", "hard_packets", "soft_seconds",
                   "hard_seconds"});
        auto get = [&](const char* k) -> uint64_t {
          return lt[k] ? parse_uint(w + ".lifetime." + k, lt[k], UINT64_MAX) : 0;
        };
        sa.lifetime.soft_bytes = get("soft_bytes");
        sa.lifetime.hard_bytes = get("hard_bytes");
        sa.lifetime.soft_packets = get("soft_packets");
        sa.lifetime.hard_packets = get("hard_packets");
        sa.lifetime.soft_seconds = static_cast<uint32_t>(get("soft_seconds"));
        sa.lifetime.hard_seconds = static_cast<uint32_t>(get("hard_seconds"));
      }
      if (auto v = dp::validate(sa); !v) throw Error{w + ": " + v.error()};
      if (by_name.count(sa.name)) throw Error{w + ".name: '" + sa.name + "' is used twice"};
      by_name[sa.name] = c.sas.size();
      c.sas.push_back(std::move(sa));
    }
    if (root["policies"]) {
      if (!root["policies"].IsSequence()) throw Error{"policies: expected a list"};
      i = 0;
      for (const auto& n : root["policies"]) {
        const std::string w = "policies[" + std::to_string(i++) + "]";
        only_keys(w, n, {"src", "dst", "priority", "sa"});
        dp::PolicySpec p;
        p.id = static_cast<uint32_t>(i);
        p.tunnel_id = tunnel;
        auto src = net::Cidr::parse(str(w + ".src", n["src"]));
        if (!src) throw Error{w + ".src: " + src.error()};
        auto dst = net::Cidr::parse(str(w + ".dst", n["dst"]));
        if (!dst) throw Error{w + ".dst: " + dst.error()};
        p.src = *src;
        p.dst = *dst;
        if (n["priority"])
          p.priority =
              static_cast<uint32_t>(parse_uint(w + ".priority", n["priority"], UINT32_MAX));
        if (n["sa"]) {  // documentation of intent: the SA must exist and be outbound
          const std::string name = str(w + ".sa", n["sa"]);
          auto it = by_name.find(name);
          if (it == by_name.end()) throw Error{w + ".sa: no SA named '" + name + "'"};
          if (c.sas[it->second].dir != dp::Direction::Out)
            throw Error{w + ".sa: '" + name + "' is not an outbound SA"};
        }
        if (auto v = dp::validate(p); !v) throw Error{w + ": " + v.error()};
        c.policies.push_back(p);
      }
    }
  } catch (const Error& e) {
    return unexpected(e.msg);
  } catch (const YAML::Exception& e) {
    return unexpected(std::string("YAML: ") + e.what());
  }
  return c;
}

}  // namespace xgw::esp_static
