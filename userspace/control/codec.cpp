#include "control/codec.h"

#include <limits>
#include <set>

namespace xgw::control {
namespace {

const char* type_name(const Json& j) {
  switch (j.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::boolean:
      return "a boolean";
    case Json::value_t::string:
      return "a string";
    case Json::value_t::array:
      return "an array";
    case Json::value_t::object:
      return "an object";
    case Json::value_t::number_float:
      return "a decimal number";
    default:
      return "a number";
  }
}

// Reads one JSON object field by field, remembering the first error and
// which keys were consumed so unknown ones can be reported at the end.
class Reader {
 public:
  Reader(const Json& obj, std::string path, std::optional<Error>& err)
      : obj_(obj), path_(std::move(path)), err_(err) {
    if (!err_ && !obj_.is_object()) {
      err_ =
          bad_request("WrongType", where("") + " must be an object, not " + type_name(obj_), path_);
    }
  }

  std::string field(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }

  // The raw value, or nullptr when absent (null counts as absent).
  const Json* get(std::string_view key) {
    seen_.insert(std::string(key));
    if (err_ || !obj_.is_object()) return nullptr;
    auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  void fail(Error e) {
    if (!err_) err_ = std::move(e);
  }
  bool failed() const { return err_.has_value(); }

  std::optional<std::string> string(std::string_view key, bool required = false) {
    const Json* v = get(key);
    if (!v) return missing(key, required), std::nullopt;
    if (!v->is_string()) return wrong(key, *v, "a string"), std::nullopt;
    return v->get<std::string>();
  }

  std::optional<uint64_t> uinteger(std::string_view key, uint64_t lo, uint64_t hi,
                                   bool required = false) {
    const Json* v = get(key);
    if (!v) return missing(key, required), std::nullopt;
    if (!v->is_number_integer()) return wrong(key, *v, "an integer"), std::nullopt;
    if (v->is_number_unsigned()) {
      const auto n = v->get<uint64_t>();
      if (n >= lo && n <= hi) return n;
    } else {
      const auto n = v->get<int64_t>();
      if (n >= 0 && static_cast<uint64_t>(n) >= lo && static_cast<uint64_t>(n) <= hi)
        return static_cast<uint64_t>(n);
    }
    fail(invalid(field(key), field(key) + " must be between " + std::to_string(lo) + " and " +
                                 std::to_string(hi)));
    return std::nullopt;
  }

  std::optional<bool> boolean(std::string_view key) {
    const Json* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_boolean()) return wrong(key, *v, "a boolean"), std::nullopt;
    return v->get<bool>();
  }

  template <typename E, size_t N>
  std::optional<E> enumeration(std::string_view key, const EnumName<E> (&table)[N],
                               bool required = false) {
    auto s = string(key, required);
    if (!s) return std::nullopt;
    auto e = enum_from(table, *s);
    if (!e) {
      fail(invalid(field(key), field(key) + " '" + *s + "' is not one of: " + enum_choices(table)));
    }
    return e;
  }

  std::optional<net::Cidr> cidr(const Json& v, const std::string& path) {
    if (!v.is_string()) {
      fail(bad_request("WrongType", path + " must be a string CIDR, not " + type_name(v), path));
      return std::nullopt;
    }
    auto c = net::Cidr::parse(v.get<std::string>());
    if (!c) {
      fail(invalid(path, path + ": " + c.error()));
      return std::nullopt;
    }
    return *c;
  }

  std::optional<net::Cidr> cidr(std::string_view key, bool required = false) {
    const Json* v = get(key);
    if (!v) return missing(key, required), std::nullopt;
    return cidr(*v, field(key));
  }

  std::optional<net::IpAddr> ip(const Json& v, const std::string& path) {
    if (!v.is_string()) {
      fail(bad_request("WrongType", path + " must be a string IP address, not " + type_name(v),
                       path));
      return std::nullopt;
    }
    auto a = net::IpAddr::parse(v.get<std::string>());
    if (!a) fail(invalid(path, path + " '" + v.get<std::string>() + "' is not an IP address"));
    return a;
  }

  std::optional<net::IpAddr> ip(std::string_view key, bool required = false) {
    const Json* v = get(key);
    if (!v) return missing(key, required), std::nullopt;
    return ip(*v, field(key));
  }

  const Json* array(std::string_view key, bool required = false) {
    const Json* v = get(key);
    if (!v) return missing(key, required), nullptr;
    if (!v->is_array()) return wrong(key, *v, "an array"), nullptr;
    return v;
  }

  // Reports read-only fields present in the body, then unknown ones.
  void finish(std::initializer_list<std::string_view> read_only = {}) {
    if (err_ || !obj_.is_object()) return;
    for (auto ro : read_only) {
      if (obj_.contains(ro)) {
        fail(
            bad_request("ReadOnlyField", field(ro) + " is read-only and cannot be set", field(ro)));
        return;
      }
    }
    for (auto it = obj_.begin(); it != obj_.end(); ++it) {
      if (!seen_.count(it.key())) {
        fail(bad_request("UnknownField", "unknown field " + field(it.key()), field(it.key())));
        return;
      }
    }
  }

 private:
  std::string where(std::string_view key) const {
    auto f = field(key);
    return f.empty() ? std::string("the body") : f;
  }
  void missing(std::string_view key, bool required) {
    if (required && !err_) {
      fail(bad_request("MissingField", field(key) + " is required", field(key)));
    }
  }
  void wrong(std::string_view key, const Json& v, const char* want) {
    fail(bad_request("WrongType", field(key) + " must be " + want + ", not " + type_name(v),
                     field(key)));
  }

  const Json& obj_;
  std::string path_;
  std::optional<Error>& err_;
  std::set<std::string> seen_;
};

}  // namespace

IkePolicy default_ike_policy(PolicyDefaults d) {
  IkePolicy p;  // the struct's initializers are the TCE column
  if (d == PolicyDefaults::DualTunnel) {
    p.ike_version = IkeVersion::V2;
    p.encryption_algorithm = Encryption::Aes128;
    p.authentication_algorithm = Integrity::Sha1;
    p.dh_group = DhGroup::G2;
  }
  return p;
}

IpsecPolicy default_ipsec_policy(PolicyDefaults d) {
  IpsecPolicy p;
  if (d == PolicyDefaults::DualTunnel) {
    p.encryption_algorithm = Encryption::Aes128;
    p.authentication_algorithm = Integrity::Sha1;
    p.pfs = DhGroup::G2;
  }
  return p;
}

Expected<VpnGateway, Error> gateway_from_json(const Json& obj) {
  std::optional<Error> err;
  VpnGateway g;
  Reader r(obj, "", err);
  if (auto v = r.string("name", true)) g.name = *v;
  if (auto v = r.enumeration("type", kGatewayTypes)) g.type = *v;
  if (auto v = r.uinteger("bandwidth", 0, std::numeric_limits<uint32_t>::max(), true))
    g.bandwidth = static_cast<uint32_t>(*v);
  if (auto v = r.cidr("local_cidr", true)) g.local_cidr = *v;
  if (const Json* v = r.get("local_cidr_v6")) g.local_cidr_v6 = r.cidr(*v, "local_cidr_v6");
  if (const Json* a = r.array("public_ips", true)) {
    for (size_t i = 0; i < a->size(); ++i) {
      if (auto ip = r.ip((*a)[i], "public_ips[" + std::to_string(i) + "]")) {
        g.public_ips.push_back(*ip);
      }
    }
  }
  r.finish({"id", "status", "created_at", "updated_at"});
  if (err) return unexpected(*err);
  return g;
}

Expected<CustomerGateway, Error> customer_gateway_from_json(const Json& obj) {
  std::optional<Error> err;
  CustomerGateway c;
  Reader r(obj, "", err);
  if (auto v = r.string("name", true)) c.name = *v;
  if (auto v = r.ip("ip", true)) c.ip = *v;
  if (auto v = r.uinteger("bgp_asn", 1, 4294967295ULL)) c.bgp_asn = static_cast<uint32_t>(*v);
  r.finish({"id", "created_at", "updated_at"});
  if (err) return unexpected(*err);
  return c;
}

namespace {

void read_ike(Reader& parent, IkePolicy& p, std::optional<Error>& err) {
  const Json* obj = parent.get("ikepolicy");
  if (!obj) return;
  Reader r(*obj, "ikepolicy", err);
  if (auto v = r.enumeration("ike_version", kIkeVersions)) p.ike_version = *v;
  if (auto v = r.enumeration("phase1_negotiation_mode", kNegotiationModes))
    p.phase1_negotiation_mode = *v;
  if (auto v = r.enumeration("authentication_algorithm", kIntegrities))
    p.authentication_algorithm = *v;
  if (auto v = r.enumeration("encryption_algorithm", kEncryptions)) p.encryption_algorithm = *v;
  if (auto v = r.enumeration("dh_group", kDhGroups)) p.dh_group = *v;
  if (auto v = r.uinteger("lifetime_seconds", 0, std::numeric_limits<uint32_t>::max()))
    p.lifetime_seconds = static_cast<uint32_t>(*v);
  if (auto v = r.string("authentication_method")) {
    if (*v != "pre-share") {
      r.fail(invalid("ikepolicy.authentication_method",
                     "ikepolicy.authentication_method must be 'pre-share'"));
    }
  }
  if (auto v = r.enumeration("local_id_type", kIdTypes)) p.local_id_type = *v;
  if (auto v = r.string("local_id")) p.local_id = *v;
  if (auto v = r.enumeration("peer_id_type", kIdTypes)) p.peer_id_type = *v;
  if (auto v = r.string("peer_id")) p.peer_id = *v;
  if (const Json* d = r.get("dpd")) {
    Reader rd(*d, "ikepolicy.dpd", err);
    if (auto v = rd.uinteger("interval", 0, std::numeric_limits<uint32_t>::max()))
      p.dpd.interval = static_cast<uint32_t>(*v);
    if (auto v = rd.uinteger("timeout", 0, std::numeric_limits<uint32_t>::max()))
      p.dpd.timeout = static_cast<uint32_t>(*v);
    if (auto v = rd.enumeration("msg", kDpdMsgs)) p.dpd.msg = *v;
    rd.finish();
  }
  r.finish();
}

void read_ipsec(Reader& parent, IpsecPolicy& p, std::optional<Error>& err) {
  const Json* obj = parent.get("ipsecpolicy");
  if (!obj) return;
  Reader r(*obj, "ipsecpolicy", err);
  auto enc = r.enumeration("encryption_algorithm", kEncryptions);
  if (enc) p.encryption_algorithm = *enc;
  auto auth = r.enumeration("authentication_algorithm", kIntegrities);
  if (auth) {
    p.authentication_algorithm = *auth;
  } else if (enc) {
    // GCM carries its own ICV: an omitted integrity follows the cipher.
    if (is_aead(*enc))
      p.authentication_algorithm = Integrity::None;
    else if (p.authentication_algorithm == Integrity::None)
      p.authentication_algorithm = Integrity::Sha1;
  }
  if (auto v = r.enumeration("pfs", kDhGroups)) p.pfs = *v;
  if (auto v = r.uinteger("lifetime_seconds", 0, std::numeric_limits<uint32_t>::max()))
    p.lifetime_seconds = static_cast<uint32_t>(*v);
  if (auto v = r.uinteger("lifetime_kilobytes", 0, std::numeric_limits<uint64_t>::max()))
    p.lifetime_kilobytes = *v;
  if (auto v = r.string("transform_protocol"); v && *v != "esp") {
    r.fail(
        invalid("ipsecpolicy.transform_protocol", "ipsecpolicy.transform_protocol must be 'esp'"));
  }
  if (auto v = r.string("encapsulation_mode"); v && *v != "tunnel") {
    r.fail(invalid("ipsecpolicy.encapsulation_mode",
                   "ipsecpolicy.encapsulation_mode must be 'tunnel'"));
  }
  r.finish();
}

}  // namespace

Expected<VpnConnection, Error> connection_from_json(const Json& obj, PolicyDefaults defaults) {
  std::optional<Error> err;
  VpnConnection c;
  c.ikepolicy = default_ike_policy(defaults);
  c.ipsecpolicy = default_ipsec_policy(defaults);
  Reader r(obj, "", err);
  if (auto v = r.string("name", true)) c.name = *v;
  if (auto v = r.string("vgw_id", true)) c.vgw_id = *v;
  if (auto v = r.string("cgw_id", true)) c.cgw_id = *v;
  if (auto v = r.string("psk")) c.psk = *v;
  if (auto v = r.enumeration("style", kRouteStyles)) c.style = *v;
  if (const Json* rules = r.array("policy_rules")) {
    for (size_t i = 0; i < rules->size() && !r.failed(); ++i) {
      const std::string path = "policy_rules[" + std::to_string(i) + "]";
      Reader rr((*rules)[i], path, err);
      PolicyRule rule;
      if (auto s = rr.cidr("source", true)) rule.source = *s;
      if (const Json* d = rr.array("destination", true)) {
        for (size_t k = 0; k < d->size(); ++k) {
          if (auto dc = rr.cidr((*d)[k], path + ".destination[" + std::to_string(k) + "]"))
            rule.destination.push_back(*dc);
        }
      }
      rr.get("rule_index");  // echoed back by clients that copy a GET; position is the index
      rr.finish();
      c.policy_rules.push_back(std::move(rule));
    }
  }
  if (const Json* subnets = r.array("peer_subnets")) {
    for (size_t i = 0; i < subnets->size(); ++i) {
      if (auto s = r.cidr((*subnets)[i], "peer_subnets[" + std::to_string(i) + "]"))
        c.peer_subnets.push_back(*s);
    }
  }
  read_ike(r, c.ikepolicy, err);
  read_ipsec(r, c.ipsecpolicy, err);
  if (auto v = r.boolean("enable_nat_traversal")) c.enable_nat_traversal = *v;
  if (auto v = r.boolean("start_immediately")) c.start_immediately = *v;
  if (auto v = r.uinteger("local_asn", 1, 4294967295ULL)) c.local_asn = static_cast<uint32_t>(*v);
  if (const Json* tunnels = r.array("tunnels")) {
    for (size_t i = 0; i < tunnels->size() && !r.failed(); ++i) {
      const std::string path = "tunnels[" + std::to_string(i) + "]";
      Reader rt((*tunnels)[i], path, err);
      Tunnel t;
      t.ha_role = i == 0 ? HaRole::Master : HaRole::Slave;
      if (auto v = rt.enumeration("ha_role", kHaRoles)) t.ha_role = *v;
      t.tunnel_cidr = rt.cidr("tunnel_cidr");
      t.local_bgp_ip = rt.ip("local_bgp_ip");
      rt.finish({"local_ip", "status", "negotiation_status", "failure_reason", "failure_detail"});
      c.tunnels.push_back(t);
    }
  }
  // Read-only: live state xgwd adds to views (a view sent back is fine).
  r.finish({"id", "status", "negotiation_status", "failure_reason", "failure_detail", "created_at",
            "updated_at"});
  if (err) return unexpected(*err);
  return c;
}

namespace {
Json meta(Json j, const std::string& id, const std::string& status, const std::string& created,
          const std::string& updated) {
  j["id"] = id;
  if (!status.empty()) j["status"] = status;
  j["created_at"] = created;
  j["updated_at"] = updated;
  return j;
}
template <typename E, size_t N>
std::string name(const EnumName<E> (&t)[N], E v) {
  return std::string(enum_name(t, v));
}
}  // namespace

Json to_json(const VpnGateway& g, bool with_meta) {
  Json j{{"name", g.name},
         {"type", name(kGatewayTypes, g.type)},
         {"bandwidth", g.bandwidth},
         {"local_cidr", g.local_cidr.str()},
         {"public_ips", Json::array()}};
  if (g.local_cidr_v6) j["local_cidr_v6"] = g.local_cidr_v6->str();
  for (const auto& ip : g.public_ips) j["public_ips"].push_back(ip.str());
  return with_meta ? meta(j, g.id, g.status, g.created_at, g.updated_at) : j;
}

Json to_json(const CustomerGateway& c, bool with_meta) {
  Json j{{"name", c.name}, {"ip", c.ip.str()}};
  if (c.bgp_asn) j["bgp_asn"] = *c.bgp_asn;
  return with_meta ? meta(j, c.id, "", c.created_at, c.updated_at) : j;
}

Json to_json(const VpnConnection& c, bool with_meta, const VpnGateway* gw) {
  Json rules = Json::array();
  for (const auto& rule : c.policy_rules) {
    Json d = Json::array();
    for (const auto& dst : rule.destination) d.push_back(dst.str());
    rules.push_back({{"source", rule.source.str()}, {"destination", d}});
  }
  Json subnets = Json::array();
  for (const auto& s : c.peer_subnets) subnets.push_back(s.str());
  const auto& ike = c.ikepolicy;
  Json ikej{{"ike_version", name(kIkeVersions, ike.ike_version)},
            {"phase1_negotiation_mode", name(kNegotiationModes, ike.phase1_negotiation_mode)},
            {"authentication_method", "pre-share"},
            {"authentication_algorithm", name(kIntegrities, ike.authentication_algorithm)},
            {"encryption_algorithm", name(kEncryptions, ike.encryption_algorithm)},
            {"dh_group", name(kDhGroups, ike.dh_group)},
            {"lifetime_seconds", ike.lifetime_seconds},
            {"local_id_type", name(kIdTypes, ike.local_id_type)},
            {"peer_id_type", name(kIdTypes, ike.peer_id_type)},
            {"dpd",
             {{"interval", ike.dpd.interval},
              {"timeout", ike.dpd.timeout},
              {"msg", name(kDpdMsgs, ike.dpd.msg)}}}};
  if (!ike.local_id.empty()) ikej["local_id"] = ike.local_id;
  if (!ike.peer_id.empty()) ikej["peer_id"] = ike.peer_id;
  const auto& ips = c.ipsecpolicy;
  Json ipsecj{{"authentication_algorithm", name(kIntegrities, ips.authentication_algorithm)},
              {"encryption_algorithm", name(kEncryptions, ips.encryption_algorithm)},
              {"pfs", name(kDhGroups, ips.pfs)},
              {"transform_protocol", "esp"},
              {"encapsulation_mode", "tunnel"},
              {"lifetime_seconds", ips.lifetime_seconds},
              {"lifetime_kilobytes", ips.lifetime_kilobytes}};
  Json tunnels = Json::array();
  for (size_t i = 0; i < c.tunnels.size(); ++i) {
    const auto& t = c.tunnels[i];
    Json tj{{"ha_role", name(kHaRoles, t.ha_role)}};
    if (t.tunnel_cidr) tj["tunnel_cidr"] = t.tunnel_cidr->str();
    if (t.local_bgp_ip) tj["local_bgp_ip"] = t.local_bgp_ip->str();
    if (with_meta && gw && i < gw->public_ips.size()) tj["local_ip"] = gw->public_ips[i].str();
    tunnels.push_back(tj);
  }
  Json j{{"name", c.name},
         {"vgw_id", c.vgw_id},
         {"cgw_id", c.cgw_id},
         {"style", name(kRouteStyles, c.style)},
         {"policy_rules", rules},
         {"peer_subnets", subnets},
         {"ikepolicy", ikej},
         {"ipsecpolicy", ipsecj},
         {"enable_nat_traversal", c.enable_nat_traversal},
         {"start_immediately", c.start_immediately},
         {"local_asn", c.local_asn},
         {"tunnels", tunnels}};
  return with_meta ? meta(j, c.id, c.status, c.created_at, c.updated_at) : j;
}

}  // namespace xgw::control
