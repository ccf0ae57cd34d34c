#include "xgwctl/output.h"

#include <algorithm>
#include <sstream>

namespace xgw::ctl {
namespace {

// Lists join with ", " in `show`; table cells use "," so that every
// column stays one word for awk and friends.
std::string text(const Json& v, const char* sep = ", ") {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : sep) + text(x, sep);
    return s.empty() ? "-" : s;
  }
  return v.dump();
}

std::string field(const Json& o, const char* key, const char* sep = ", ") {
  auto it = o.find(key);
  return it == o.end() ? "-" : text(*it, sep);
}

std::string cell(const Json& o, const char* key) {
  return field(o, key, ",");
}

std::string named(const NameIndex& names, const std::string& id) {
  auto it = names.find(id);
  return it == names.end() ? id : it->second;
}

bool scalar_list(const Json& v) {
  return std::all_of(v.begin(), v.end(), [](const Json& x) { return !x.is_structured(); });
}

void flatten(const Json& v, const std::string& key, const NameIndex& names,
             std::vector<std::pair<std::string, std::string>>& out) {
  if (key == "policy_rules" && v.is_array()) {
    if (v.empty()) out.emplace_back(key, "-");
    for (size_t i = 0; i < v.size(); ++i) {
      const Json& r = v[i];
      out.emplace_back(key + "[" + std::to_string(i) + "]",
                       field(r, "source") + " -> " + field(r, "destination"));
    }
  } else if (v.is_object()) {
    for (auto it = v.begin(); it != v.end(); ++it)
      flatten(*it, key.empty() ? it.key() : key + "." + it.key(), names, out);
  } else if (v.is_array() && !scalar_list(v)) {
    for (size_t i = 0; i < v.size(); ++i)
      flatten(v[i], key + "[" + std::to_string(i) + "]", names, out);
  } else {
    std::string s = text(v);
    if ((key == "vgw_id" || key == "cgw_id") && names.count(s)) s += " (" + names.at(s) + ")";
    out.emplace_back(key, s);
  }
}

}  // namespace

std::string format_table(const Row& header, const std::vector<Row>& rows) {
  std::vector<size_t> width(header.size(), 0);
  auto measure = [&width](const Row& r) {
    for (size_t i = 0; i < r.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], r[i].size());
  };
  measure(header);
  for (const auto& r : rows) measure(r);
  std::string out;
  auto line = [&](const Row& r) {
    std::string l;
    for (size_t i = 0; i < r.size() && i < width.size(); ++i) {
      l += r[i];
      if (i + 1 < r.size()) l += std::string(width[i] - r[i].size() + 2, ' ');
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l + "\n";
  };
  line(header);
  for (const auto& r : rows) line(r);
  return out;
}

std::string rules_summary(const Json& conn) {
  const std::string style = conn.value("style", "");
  if (style == "STATIC") {
    const std::string s = cell(conn, "peer_subnets");
    return s == "-" ? s : "peer " + s;
  }
  if (style == "BGP") return "bgp";
  auto it = conn.find("policy_rules");
  if (it == conn.end() || !it->is_array() || it->empty()) return "-";
  // Long SPDs are cut short; `show` lists every rule.
  constexpr size_t kShown = 2;
  std::string s;
  for (size_t i = 0; i < it->size() && i < kShown; ++i) {
    const Json& r = (*it)[i];
    std::string dst;
    if (r.contains("destination") && r["destination"].is_array())
      for (const auto& d : r["destination"]) dst += (dst.empty() ? "" : ",") + text(d);
    s += (i ? "; " : "") + field(r, "source") + "=" + dst;
  }
  if (it->size() > kShown) s += "; (+" + std::to_string(it->size() - kShown) + " more)";
  return s;
}

std::string format_list(const Resource& r, const Json& items, const NameIndex& names) {
  std::vector<Row> rows;
  Row header;
  if (&r == &kGateway) {
    header = {"NAME", "ID", "TYPE", "BANDWIDTH", "LOCAL_CIDR", "PUBLIC_IPS", "STATUS"};
    for (const auto& o : items)
      rows.push_back({cell(o, "name"), cell(o, "id"), cell(o, "type"), cell(o, "bandwidth") + "M",
                      cell(o, "local_cidr"), cell(o, "public_ips"), cell(o, "status")});
  } else if (&r == &kPeer) {
    header = {"NAME", "ID", "IP", "BGP_ASN"};
    for (const auto& o : items)
      rows.push_back({cell(o, "name"), cell(o, "id"), cell(o, "ip"), cell(o, "bgp_asn")});
  } else {
    header = {"NAME", "ID", "GATEWAY", "PEER", "STYLE", "STATUS", "RULES"};
    for (const auto& o : items)
      rows.push_back({cell(o, "name"), cell(o, "id"), named(names, o.value("vgw_id", "-")),
                      named(names, o.value("cgw_id", "-")), cell(o, "style"), cell(o, "status"),
                      rules_summary(o)});
  }
  return format_table(header, rows);
}

std::string format_show(const Json& obj, const NameIndex& names) {
  std::vector<std::pair<std::string, std::string>> lines;
  static const char* first[] = {"name", "id", "status"};
  static const char* last[] = {"created_at", "updated_at"};
  auto is_in = [](const std::string& k, const auto& list) {
    return std::any_of(std::begin(list), std::end(list), [&k](const char* x) { return k == x; });
  };
  for (const char* k : first)
    if (obj.contains(k)) flatten(obj[k], k, names, lines);
  for (auto it = obj.begin(); it != obj.end(); ++it)
    if (!is_in(it.key(), first) && !is_in(it.key(), last)) flatten(*it, it.key(), names, lines);
  for (const char* k : last)
    if (obj.contains(k)) flatten(obj[k], k, names, lines);
  std::string out;
  for (const auto& [k, v] : lines) out += k + ": " + v + "\n";
  return out;
}

namespace {

std::string ago(const Json& j, const char* key) {
  const uint64_t s = j.value(key, uint64_t{0});
  if (s < 120) return std::to_string(s) + "s";
  if (s < 7200) return std::to_string(s / 60) + "m";
  return std::to_string(s / 3600) + "h";
}

std::string joined(const Json& list) {
  std::string out;
  for (const auto& x : list) out += (out.empty() ? "" : " ") + x.get<std::string>();
  return out;
}

}  // namespace

std::string format_sas(const Json& sas) {
  std::ostringstream o;
  for (const auto& sa : sas) {
    o << sa.value("connection", "") << ": #" << sa.value("ike_sa_id", 0) << ", "
      << sa.value("state", "") << ", IKEv" << sa.value("version", 2)
      << (sa.contains("mode") ? " " + sa.value("mode", "") + " mode" : "") << ", "
      << sa.value("spi_i", "") << "_i" << (sa.value("initiator", false) ? "* " : " ")
      << sa.value("spi_r", "") << "_r" << (sa.value("initiator", false) ? "" : "*") << "\n";
    o << "  local  '" << sa.value("local_id", "") << "' @ " << sa.value("local", "")
      << (sa.value("nat_local", false) ? " (behind NAT)" : "") << "\n";
    o << "  remote '" << sa.value("remote_id", "") << "' @ " << sa.value("remote", "")
      << (sa.value("nat_remote", false) ? " (behind NAT)" : "") << "\n";
    if (!sa.value("algorithms", "").empty()) o << "  " << sa.value("algorithms", "") << "\n";
    if (sa.value("state", "") == "ESTABLISHED") {
      o << "  established " << ago(sa, "established_seconds") << " ago";
      if (sa.value("rekey_in_seconds", 0) > 0) o << ", rekeying in " << ago(sa, "rekey_in_seconds");
      o << "\n";
    }
    for (const auto& c : sa.value("children", Json::array())) {
      o << "  " << c.value("name", "") << ": reqid " << c.value("reqid", 0) << ", "
        << c.value("state", "") << ", " << c.value("mode", "")
        << ", ESP:" << c.value("algorithms", "") << "\n";
      o << "    installed " << ago(c, "installed_seconds") << " ago";
      if (c.value("rekey_in_seconds", 0) > 0) o << ", rekeying in " << ago(c, "rekey_in_seconds");
      o << "\n";
      o << "    in  " << c.value("spi_in", "") << ", " << c.value("bytes_in", 0) << " bytes, "
        << c.value("packets_in", 0) << " packets\n";
      o << "    out " << c.value("spi_out", "") << ", " << c.value("bytes_out", 0) << " bytes, "
        << c.value("packets_out", 0) << " packets\n";
      o << "    local  " << joined(c.value("local_ts", Json::array())) << "\n";
      o << "    remote " << joined(c.value("remote_ts", Json::array())) << "\n";
    }
  }
  return o.str();
}

std::string format_dataplane(const Json& d) {
  std::ostringstream o;
  if (!d.value("enabled", false))
    return "the XDP data plane is not enabled (no dataplane: section)\n";
  o << "backend " << d.value("backend", "") << ", pins " << d.value("pin_dir", "") << ", "
    << d.value("inbound_sas", 0) << " inbound SAs, " << d.value("acquires", 0) << " acquires\n";
  auto traffic = [](const Json& t) {
    std::ostringstream s;
    s << "tx " << t.value("tx_packets", 0) << " pkts " << t.value("tx_bytes", 0) << " B, rx "
      << t.value("rx_packets", 0) << " pkts " << t.value("rx_bytes", 0) << " B";
    return s.str();
  };
  for (const auto& g : d.value("gateways", Json::array())) {
    const uint64_t tier = g.value("tier_bps", uint64_t{0});
    o << g.value("name", g.value("id", "")) << ": " << g.value("status", "")
      << (g.contains("status_reason") ? " (" + g.value("status_reason", "") + ")" : "") << ", tier "
      << (tier ? std::to_string(tier / 1000000) + " Mbit/s each way" : "none") << "\n";
    for (const auto& i : g.value("interfaces", Json::array()))
      o << "  " << i.value("role", "") << " " << i.value("name", "")
        << (i.value("attached", false) ? ", xgw program attached" : ", NOT attached") << "\n";
    if (g.contains("traffic")) o << "  traffic " << traffic(g["traffic"]) << "\n";
    for (const char* kind : {"drops", "passes"}) {
      std::string line;
      const Json counts = g.value(kind, Json::object());  // outlives the loop
      for (const auto& [k, v] : counts.items())
        if (v.is_number() && v.get<uint64_t>() > 0)
          line += (line.empty() ? "" : ", ") + k + " " + v.dump();
      o << "  " << kind << " " << (line.empty() ? "none" : line) << "\n";
    }
    for (const auto& t : g.value("tunnels", Json::array())) {
      o << "  " << t.value("connection", "") << (t.value("tunnel", 0) ? "/standby" : "")
        << ": tunnel " << t.value("index", 0) << ", "
        << (t.value("sa_ready", false) ? "SA ready, out " + t.value("out_spi", "") : "no SA");
      if (t.contains("traffic")) o << ", " << traffic(t["traffic"]);
      o << "\n";
    }
  }
  return o.str();
}

}  // namespace xgw::ctl
