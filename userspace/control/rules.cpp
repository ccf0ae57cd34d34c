#include "control/rules.h"

#include <openssl/rand.h>

#include <algorithm>
#include <cstring>
#include <string_view>

namespace xgw::control {
namespace {

std::string idx(std::string_view base, size_t i) {
  return std::string(base) + "[" + std::to_string(i) + "]";
}

// Decodes one UTF-8 code point; returns false on malformed input.
bool next_code_point(std::string_view s, size_t& pos, uint32_t& cp) {
  const auto b = static_cast<unsigned char>(s[pos]);
  int extra = 0;
  if (b < 0x80) {
    cp = b;
  } else if ((b & 0xe0) == 0xc0) {
    cp = b & 0x1f, extra = 1;
  } else if ((b & 0xf0) == 0xe0) {
    cp = b & 0x0f, extra = 2;
  } else if ((b & 0xf8) == 0xf0) {
    cp = b & 0x07, extra = 3;
  } else {
    return false;
  }
  if (pos + static_cast<size_t>(extra) >= s.size() && extra > 0) return false;
  for (int i = 1; i <= extra; ++i) {
    const auto c = static_cast<unsigned char>(s[pos + i]);
    if ((c & 0xc0) != 0x80) return false;
    cp = (cp << 6) | (c & 0x3f);
  }
  static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
  if (cp < kMin[extra]) return false;  // overlong encodings hide ASCII
  pos += 1 + extra;
  return true;
}

constexpr std::string_view kPskSymbols = "~`!@#$%^&*()_-+={}[]\\|;:',.<>/?";

bool is_alnum(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

std::string relation(const net::Cidr& l, const net::Cidr& r) {
  return l.str() + " -> " + r.str();
}

}  // namespace

Check check_name(const std::string& name, size_t max_len, const std::string& field) {
  size_t pos = 0, chars = 0;
  while (pos < name.size()) {
    uint32_t cp = 0;
    if (!next_code_point(name, pos, cp)) return invalid(field, field + " is not valid UTF-8");
    ++chars;
    const bool ok = (cp < 0x80 && (is_alnum(static_cast<char>(cp)) || cp == '_' || cp == '-')) ||
                    (cp >= 0x4e00 && cp <= 0x9fa5);
    if (!ok) {
      return invalid(field, field +
                                " may contain only letters, digits, Chinese characters, '_' and "
                                "'-'");
    }
  }
  if (chars == 0 || chars > max_len) {
    return invalid(field, field + " must be 1 to " + std::to_string(max_len) + " characters");
  }
  return std::nullopt;
}

Check check_bandwidth(uint32_t mbps) {
  for (auto t : kBandwidthTiers)
    if (t == mbps) return std::nullopt;
  return invalid("bandwidth", "bandwidth " + std::to_string(mbps) +
                                  " Mbit/s is not a tier (5, 10, 20, 50, 100, 200, 500, 1000)");
}

Check check_bandwidth_change(uint32_t from, uint32_t to) {
  if (from == to) return std::nullopt;
  const bool low_from = from <= 100, low_to = to <= 100;
  if (low_from != low_to) {
    return bad_request(
        "TierChangeNotAllowed",
        "bandwidth can change only within 5-100 or within 200-1000 Mbit/s, not from " +
            std::to_string(from) + " to " + std::to_string(to),
        "bandwidth");
  }
  return std::nullopt;
}

Check check_public_ip(const net::IpAddr& ip, const std::string& field) {
  auto bad = [&](const std::string& why) {
    return invalid(field,
                   field + " " + ip.str() + " is " + why + " and cannot be a gateway address");
  };
  if (ip.family == net::Family::V6) {
    const auto& b = ip.bytes;
    const bool all_zero = std::all_of(b.begin(), b.end(), [](uint8_t x) { return x == 0; });
    if (all_zero) return bad("the unspecified address");
    if (std::all_of(b.begin(), b.end() - 1, [](uint8_t x) { return x == 0; }) && b[15] == 1)
      return bad("loopback");
    if (b[0] == 0xff) return bad("multicast");
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return bad("link-local");
    if (std::all_of(b.begin(), b.begin() + 10, [](uint8_t x) { return x == 0; }) && b[10] == 0xff &&
        b[11] == 0xff)
      return bad("an IPv4-mapped address");
    return std::nullopt;
  }
  const uint32_t a = ip.v4();
  const uint32_t o1 = a >> 24;
  if (a == 0) return bad("all-zero");
  if (a == 0xffffffffu) return bad("the limited broadcast address");
  if (o1 == 0) return bad("in 0.0.0.0/8 (this network)");
  if (o1 == 127) return bad("loopback (127.0.0.0/8)");
  if ((a & 0xffff0000u) == 0xa9fe0000u) return bad("link-local (169.254.0.0/16)");
  if (o1 >= 224 && o1 <= 239) return bad("multicast (224.0.0.0/4)");
  if (o1 >= 240) return bad("reserved (240.0.0.0/4)");
  // Classful network and broadcast addresses (class A 1-126, B 128-191, C 192-223).
  uint32_t host_mask = 0;
  if (o1 <= 126)
    host_mask = 0x00ffffffu;
  else if (o1 >= 128 && o1 <= 191)
    host_mask = 0x0000ffffu;
  else
    host_mask = 0x000000ffu;
  if ((a & host_mask) == 0) return bad("a classful network address");
  if ((a & host_mask) == host_mask) return bad("a classful broadcast address");
  return std::nullopt;
}

Check check_psk(const std::string& psk) {
  if (psk.empty() || psk.size() > 100) return invalid("psk", "psk must be 1 to 100 characters");
  for (char ch : psk) {
    if (!is_alnum(ch) && kPskSymbols.find(ch) == std::string_view::npos) {
      return invalid("psk",
                     "psk may contain only letters, digits and ~`!@#$%^&*()_-+={}[]\\|;:',.<>/?");
    }
  }
  return std::nullopt;
}

std::string generate_psk() {
  // Letters and digits only: every vendor's configuration syntax takes them
  // unquoted. Rejection sampling keeps the choice uniform.
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string out;
  while (out.size() < 16) {
    unsigned char buf[32];
    if (RAND_bytes(buf, sizeof buf) != 1) abort();  // no entropy: nothing safe to do
    for (unsigned char b : buf) {
      if (b < 248 && out.size() < 16) out.push_back(kAlphabet[b % kAlphabet.size()]);
    }
  }
  return out;
}

Check check_fqdn(const std::string& s, const std::string& field) {
  auto bad = [&] { return invalid(field, field + " '" + s + "' is not a valid FQDN"); };
  if (s.empty() || s.size() > 253) return bad();
  size_t label = 0;
  char prev = '.';
  for (char ch : s) {
    if (ch == '.') {
      if (label == 0 || prev == '-') return bad();
      label = 0;
    } else if (is_alnum(ch) || ch == '-') {
      if (label == 0 && ch == '-') return bad();
      if (++label > 63) return bad();
    } else {
      return bad();
    }
    prev = ch;
  }
  if (label == 0 || prev == '-') return bad();
  return std::nullopt;
}

Check check_bgp_tunnel_cidr(const net::Cidr& c, const std::string& field) {
  static const net::Cidr kLinkLocal = *net::Cidr::parse("169.254.0.0/16");
  if (c.family() != net::Family::V4 || c.len != 30 || !kLinkLocal.contains(c)) {
    return invalid(field, field + " " + c.str() + " must be a /30 inside 169.254.0.0/16");
  }
  const uint32_t a = c.addr.v4();
  const bool reserved = (a >= 0xa9fe0000u && a <= 0xa9fe0600u && (a & 0xff) == 0) ||
                        a == 0xa9fea9fcu;  // 169.254.0-6.0/30 and 169.254.169.252/30
  if (reserved) {
    return invalid(field, field + " " + c.str() +
                              " is reserved (169.254.0.0/30 to 169.254.6.0/30 and "
                              "169.254.169.252/30 are not allowed)");
  }
  return std::nullopt;
}

Check check_gateway(const VpnGateway& g) {
  if (auto e = check_name(g.name, 60)) return e;
  if (auto e = check_bandwidth(g.bandwidth)) return e;
  if (g.local_cidr.family() != net::Family::V4 || g.local_cidr.len < 8) {
    return invalid("local_cidr", "local_cidr " + g.local_cidr.str() +
                                     " must be an IPv4 network with a prefix of /8 or longer");
  }
  if (g.local_cidr_v6 &&
      (g.local_cidr_v6->family() != net::Family::V6 || g.local_cidr_v6->len < 16)) {
    return invalid("local_cidr_v6", "local_cidr_v6 " + g.local_cidr_v6->str() +
                                        " must be an IPv6 network with a prefix of /16 or longer");
  }
  if (g.public_ips.empty() || g.public_ips.size() > 2) {
    return invalid("public_ips",
                   "public_ips must hold one or two addresses (two for dual-tunnel mode)");
  }
  for (size_t i = 0; i < g.public_ips.size(); ++i) {
    if (auto e = check_public_ip(g.public_ips[i], idx("public_ips", i))) return e;
  }
  if (g.public_ips.size() == 2 && g.public_ips[0] == g.public_ips[1]) {
    return invalid("public_ips[1]",
                   "public_ips[1] repeats public_ips[0]; dual-tunnel mode needs two addresses");
  }
  return std::nullopt;
}

Check check_customer_gateway(const CustomerGateway& c) {
  if (auto e = check_name(c.name, 64)) return e;
  if (auto e = check_public_ip(c.ip, "ip")) return e;
  return std::nullopt;
}

Check check_ike_policy(const IkePolicy& p) {
  const std::string f = "ikepolicy.";
  if (p.lifetime_seconds < 60 || p.lifetime_seconds > 604800) {
    return invalid(f + "lifetime_seconds", f + "lifetime_seconds must be between 60 and 604800");
  }
  if (p.ike_version == IkeVersion::V2 && p.phase1_negotiation_mode == NegotiationMode::Aggressive) {
    return invalid(f + "phase1_negotiation_mode",
                   "aggressive mode exists only in IKEv1; use ike_version v1 or mode main");
  }
  if (p.authentication_algorithm == Integrity::None) {
    return invalid(f + "authentication_algorithm",
                   "IKE needs an authentication (PRF) algorithm; 'none' is not allowed");
  }
  if (p.ike_version == IkeVersion::V1 && is_aead(p.encryption_algorithm)) {
    return invalid(f + "encryption_algorithm",
                   std::string(enum_name(kEncryptions, p.encryption_algorithm)) +
                       " needs IKEv2; IKEv1 has no AEAD ciphers");
  }
  if (p.dh_group == DhGroup::Disable) {
    return invalid(f + "dh_group", "IKE needs a DH group; 'disable' is allowed only for pfs");
  }
  struct Id {
    IdType type;
    const std::string& id;
    const char* name;
  };
  for (const Id& i :
       {Id{p.local_id_type, p.local_id, "local_id"}, Id{p.peer_id_type, p.peer_id, "peer_id"}}) {
    const std::string name = f + i.name;
    if (i.type == IdType::Fqdn) {
      if (i.id.empty()) return invalid(name, name + " is required when its type is fqdn");
      if (auto e = check_fqdn(i.id, name)) return e;
    } else if (!i.id.empty() && !net::IpAddr::parse(i.id)) {
      return invalid(name, name + " '" + i.id + "' is not an IP address");
    }
  }
  if (p.dpd.interval < 10 || p.dpd.interval > 3600) {
    return invalid(f + "dpd.interval", f + "dpd.interval must be between 10 and 3600 seconds");
  }
  if (p.dpd.timeout < 2 || p.dpd.timeout > 60) {
    return invalid(f + "dpd.timeout", f + "dpd.timeout must be between 2 and 60 seconds");
  }
  return std::nullopt;
}

Check check_ipsec_policy(const IpsecPolicy& p) {
  const std::string f = "ipsecpolicy.";
  if (p.lifetime_seconds < 30 || p.lifetime_seconds > 604800) {
    return invalid(f + "lifetime_seconds", f + "lifetime_seconds must be between 30 and 604800");
  }
  if (p.lifetime_kilobytes < 2560 || p.lifetime_kilobytes > 4294967295ULL) {
    return invalid(f + "lifetime_kilobytes",
                   f + "lifetime_kilobytes must be between 2560 and 4294967295");
  }
  const bool aead = is_aead(p.encryption_algorithm);
  if (aead && p.authentication_algorithm != Integrity::None) {
    return invalid(f + "authentication_algorithm",
                   std::string(enum_name(kEncryptions, p.encryption_algorithm)) +
                       " carries its own integrity; authentication_algorithm must be 'none'");
  }
  if (!aead && p.authentication_algorithm == Integrity::None) {
    return invalid(f + "authentication_algorithm",
                   "authentication_algorithm 'none' is allowed only with a GCM cipher");
  }
  return std::nullopt;
}

namespace {

// The parts of a connection that depend on its gateway alone; re-checked
// for every connection when the gateway changes.
Check check_against_gateway(const VpnConnection& c, const VpnGateway& gw) {
  for (size_t i = 0; i < c.policy_rules.size(); ++i) {
    const auto& rule = c.policy_rules[i];
    const std::string rf = idx("policy_rules", i);
    const auto& local =
        rule.source.family() == net::Family::V4 ? std::optional(gw.local_cidr) : gw.local_cidr_v6;
    if (!local || !local->contains(rule.source)) {
      return invalid(rf + ".source",
                     rf + ".source " + rule.source.str() +
                         " is not inside the gateway's local network " +
                         (local ? local->str() : std::string("(no IPv6 local_cidr_v6 set)")));
    }
    for (size_t k = 0; k < rule.destination.size(); ++k) {
      const auto& d = rule.destination[k];
      const std::string df = idx(rf + ".destination", k);
      if (d.family() != rule.source.family()) {
        return invalid(df, df + " " + d.str() + " is not the same IP version as source " +
                               rule.source.str() + "; IPv4 and IPv6 rules are kept apart");
      }
      if (local->overlaps(d)) {
        return invalid(
            df, df + " " + d.str() + " overlaps the gateway's local network " + local->str());
      }
    }
  }
  for (size_t i = 0; i < c.peer_subnets.size(); ++i) {
    const auto& s = c.peer_subnets[i];
    const std::string f = idx("peer_subnets", i);
    const auto& local =
        s.family() == net::Family::V4 ? std::optional(gw.local_cidr) : gw.local_cidr_v6;
    if (local && local->overlaps(s)) {
      return invalid(f,
                     f + " " + s.str() + " overlaps the gateway's local network " + local->str());
    }
  }
  if (c.tunnels.size() > gw.public_ips.size()) {
    return invalid("tunnels", "the connection has " + std::to_string(c.tunnels.size()) +
                                  " tunnels but the gateway has only " +
                                  std::to_string(gw.public_ips.size()) + " public IP(s)");
  }
  return std::nullopt;
}

}  // namespace

Check check_spd_overlap(const VpnConnection& c, std::span<const VpnConnection> others) {
  struct Rel {
    const net::Cidr* l;
    const net::Cidr* r;
    size_t i, k;
  };
  std::vector<Rel> mine;
  for (size_t i = 0; i < c.policy_rules.size(); ++i)
    for (size_t k = 0; k < c.policy_rules[i].destination.size(); ++k)
      mine.push_back({&c.policy_rules[i].source, &c.policy_rules[i].destination[k], i, k});
  auto field = [](const Rel& r) { return idx("policy_rules", r.i) + idx(".destination", r.k); };
  for (size_t a = 0; a < mine.size(); ++a) {
    for (size_t b = 0; b < a; ++b) {
      if (mine[a].l->overlaps(*mine[b].l) && mine[a].r->overlaps(*mine[b].r)) {
        return conflict("SpdOverlap",
                        "match relation " + relation(*mine[a].l, *mine[a].r) + " overlaps " +
                            relation(*mine[b].l, *mine[b].r) + " (" + field(mine[b]) +
                            ") of the same connection",
                        field(mine[a]));
      }
    }
  }
  for (const auto& o : others) {
    if (o.id == c.id) continue;
    for (const auto& rule : o.policy_rules) {
      for (const auto& dst : rule.destination) {
        for (const auto& m : mine) {
          if (m.l->overlaps(rule.source) && m.r->overlaps(dst)) {
            return conflict("SpdOverlap",
                            "match relation " + relation(*m.l, *m.r) + " overlaps " +
                                relation(rule.source, dst) + " of connection '" + o.name + "' (" +
                                o.id + ") on the same gateway",
                            field(m));
          }
        }
      }
    }
  }
  return std::nullopt;
}

Check check_connection(const VpnConnection& c, const VpnGateway& gw, const CustomerGateway& cgw,
                       std::span<const VpnConnection> others, const Quotas& q) {
  if (auto e = check_name(c.name, 64)) return e;
  if (gw.type != GatewayType::Ipsec) {
    return invalid("vgw_id", "gateway " + gw.id +
                                 " is an ssl gateway; IPsec connections need an ipsec gateway");
  }
  if (auto e = check_psk(c.psk)) return e;
  if (c.tunnels.empty() || c.tunnels.size() > 2) {
    return invalid("tunnels", "a connection has one or two tunnels");
  }
  for (size_t i = 0; i < c.tunnels.size(); ++i) {
    const HaRole want = i == 0 ? HaRole::Master : HaRole::Slave;
    if (c.tunnels[i].ha_role != want) {
      return invalid(idx("tunnels", i) + ".ha_role",
                     "tunnel roles are fixed: tunnels[0] is master (gateway IP 1), tunnels[1] is "
                     "slave (gateway IP 2)");
    }
  }
  // Style-specific shape.
  switch (c.style) {
    case RouteStyle::Policy:
      if (c.policy_rules.empty())
        return invalid("policy_rules", "style POLICY needs at least one policy rule");
      if (!c.peer_subnets.empty())
        return invalid("peer_subnets",
                       "peer_subnets apply to style STATIC; POLICY uses policy_rules");
      break;
    case RouteStyle::Static:
      if (c.peer_subnets.empty())
        return invalid("peer_subnets", "style STATIC needs at least one peer subnet to route");
      if (!c.policy_rules.empty())
        return invalid("policy_rules", "policy_rules apply to style POLICY only");
      break;
    case RouteStyle::Bgp:
      if (!c.policy_rules.empty())
        return invalid("policy_rules", "policy_rules apply to style POLICY only");
      if (!c.peer_subnets.empty())
        return invalid("peer_subnets", "style BGP learns peer subnets from BGP");
      if (!cgw.bgp_asn)
        return invalid(
            "cgw_id", "style BGP needs a customer gateway with a bgp_asn; " + cgw.id + " has none");
      break;
  }
  if (c.policy_rules.size() > q.rules_per_connection) {
    return conflict(
        "QuotaExceeded",
        "a connection may have at most " + std::to_string(q.rules_per_connection) + " policy rules",
        "policy_rules");
  }
  for (size_t i = 0; i < c.policy_rules.size(); ++i) {
    const auto& d = c.policy_rules[i].destination;
    if (d.empty()) {
      return invalid(idx("policy_rules", i) + ".destination",
                     "a policy rule needs at least one destination");
    }
    if (d.size() > q.cidrs_per_rule) {
      return conflict("QuotaExceeded",
                      "a policy rule may have at most " + std::to_string(q.cidrs_per_rule) +
                          " destination CIDRs",
                      idx("policy_rules", i) + ".destination");
    }
  }
  if (c.peer_subnets.size() > q.cidrs_per_rule) {
    return conflict(
        "QuotaExceeded",
        "a connection may route at most " + std::to_string(q.cidrs_per_rule) + " peer subnets",
        "peer_subnets");
  }
  for (size_t i = 0; i < c.peer_subnets.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (c.peer_subnets[i].overlaps(c.peer_subnets[j])) {
        return invalid(idx("peer_subnets", i), idx("peer_subnets", i) + " " +
                                                   c.peer_subnets[i].str() + " overlaps " +
                                                   c.peer_subnets[j].str());
      }
    }
  }
  if (auto e = check_against_gateway(c, gw)) return e;
  if (auto e = check_ike_policy(c.ikepolicy)) return e;
  if (auto e = check_ipsec_policy(c.ipsecpolicy)) return e;

  // Tunnels: BGP inside addresses.
  for (size_t i = 0; i < c.tunnels.size(); ++i) {
    const auto& t = c.tunnels[i];
    const std::string tf = idx("tunnels", i);
    if (c.style != RouteStyle::Bgp) {
      if (t.tunnel_cidr || t.local_bgp_ip)
        return invalid(tf + ".tunnel_cidr", "tunnel_cidr and local_bgp_ip apply to style BGP only");
      continue;
    }
    if (!t.tunnel_cidr)
      return invalid(tf + ".tunnel_cidr", tf + ".tunnel_cidr is required for style BGP");
    if (!t.local_bgp_ip)
      return invalid(tf + ".local_bgp_ip", tf + ".local_bgp_ip is required for style BGP");
    if (auto e = check_bgp_tunnel_cidr(*t.tunnel_cidr, tf + ".tunnel_cidr")) return e;
    const uint32_t host = t.local_bgp_ip->family == net::Family::V4 ? t.local_bgp_ip->v4() & 3 : 0;
    if (!t.tunnel_cidr->contains(*t.local_bgp_ip) || host == 0 || host == 3) {
      return invalid(tf + ".local_bgp_ip", tf + ".local_bgp_ip " + t.local_bgp_ip->str() +
                                               " must be a host address inside " +
                                               t.tunnel_cidr->str());
    }
    for (size_t j = 0; j < i; ++j) {
      if (c.tunnels[j].tunnel_cidr == t.tunnel_cidr)
        return conflict("Duplicate",
                        tf + ".tunnel_cidr " + t.tunnel_cidr->str() +
                            " is already used by tunnels[" + std::to_string(j) + "]",
                        tf + ".tunnel_cidr");
    }
    for (const auto& o : others) {
      if (o.id == c.id) continue;
      for (const auto& ot : o.tunnels) {
        if (ot.tunnel_cidr && *ot.tunnel_cidr == *t.tunnel_cidr) {
          return conflict("Duplicate",
                          tf + ".tunnel_cidr " + t.tunnel_cidr->str() +
                              " is already used on this gateway by connection '" + o.name + "' (" +
                              o.id + ")",
                          tf + ".tunnel_cidr");
        }
      }
    }
  }
  // STATIC routes of two connections on one gateway must not compete.
  for (const auto& o : others) {
    if (o.id == c.id) continue;
    for (size_t i = 0; i < c.peer_subnets.size(); ++i) {
      for (const auto& s : o.peer_subnets) {
        if (c.peer_subnets[i].overlaps(s)) {
          return conflict("RouteOverlap",
                          idx("peer_subnets", i) + " " + c.peer_subnets[i].str() + " overlaps " +
                              s.str() + " routed by connection '" + o.name + "' (" + o.id + ")",
                          idx("peer_subnets", i));
        }
      }
    }
  }
  return check_spd_overlap(c, others);
}

Check check_ssl_server(const SslServer& s, const VpnGateway& gw) {
  if (gw.type != GatewayType::Ssl) {
    return invalid("vgw_id",
                   "gateway " + gw.id + " is an ipsec gateway; an SSL server needs an ssl gateway");
  }
  static const net::Cidr kPrivate[] = {*net::Cidr::parse("10.0.0.0/8"),
                                       *net::Cidr::parse("172.16.0.0/12"),
                                       *net::Cidr::parse("192.168.0.0/16")};
  const auto& pool = s.client_pool;
  const bool is_private = std::any_of(std::begin(kPrivate), std::end(kPrivate),
                                      [&](const net::Cidr& p) { return p.contains(pool); });
  if (!is_private) {
    return invalid("client_pool", "client_pool " + pool.str() +
                                      " must lie in 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16");
  }
  if (pool.len < 16 || pool.len > 24) {
    return invalid("client_pool",
                   "client_pool " + pool.str() + " must have a mask from /16 to /24");
  }
  if (pool.overlaps(gw.local_cidr)) {
    return invalid("client_pool",
                   "client_pool " + pool.str() + " overlaps the VPC CIDR " + gw.local_cidr.str());
  }
  if (!gw.local_cidr.contains(s.local_cidr)) {
    return invalid("local_cidr", "local_cidr " + s.local_cidr.str() +
                                     " is not inside the VPC CIDR " + gw.local_cidr.str());
  }
  for (uint32_t m : {5u, 10u, 20u, 50u, 100u}) {
    if (s.max_connections == m) return std::nullopt;
  }
  return invalid("max_connections", "max_connections must be 5, 10, 20, 50 or 100");
}

Check check_gateway_update(const VpnGateway& before, const VpnGateway& after,
                           std::span<const VpnConnection> connections) {
  if (before.type != after.type) {
    return bad_request("ImmutableField", "type cannot change after creation", "type");
  }
  if (auto e = check_gateway(after)) return e;
  if (auto e = check_bandwidth_change(before.bandwidth, after.bandwidth)) return e;
  for (const auto& c : connections) {
    if (auto e = check_against_gateway(c, after)) {
      return conflict(
          "InUse",
          "the change conflicts with connection '" + c.name + "' (" + c.id + "): " + e->message,
          "");
    }
  }
  return std::nullopt;
}

Check check_customer_gateway_update(const CustomerGateway& after,
                                    std::span<const VpnConnection> connections) {
  if (auto e = check_customer_gateway(after)) return e;
  if (!after.bgp_asn) {
    for (const auto& c : connections) {
      if (c.style == RouteStyle::Bgp) {
        return conflict("InUse",
                        "bgp_asn is needed by BGP connection '" + c.name + "' (" + c.id + ")",
                        "bgp_asn");
      }
    }
  }
  return std::nullopt;
}

Check check_connection_update(const VpnConnection& before, const VpnConnection& after) {
  if (before.vgw_id != after.vgw_id)
    return bad_request("ImmutableField", "vgw_id cannot change; create a new connection", "vgw_id");
  if (before.cgw_id != after.cgw_id)
    return bad_request("ImmutableField", "cgw_id cannot change; create a new connection", "cgw_id");
  return std::nullopt;
}

Check check_gateway_delete(const VpnGateway& g, size_t connections) {
  if (connections > 0) {
    return conflict("InUse", "gateway " + g.id + " still has " + std::to_string(connections) +
                                 " connection(s); delete them first");
  }
  if (g.status == "pending") {
    return conflict("InvalidState",
                    "gateway " + g.id + " is still pending; retry when it is running");
  }
  return std::nullopt;
}

Check check_customer_gateway_delete(const CustomerGateway& c, size_t connections) {
  if (connections > 0) {
    return conflict("InUse", "customer gateway " + c.id + " is used by " +
                                 std::to_string(connections) + " connection(s); delete them first");
  }
  return std::nullopt;
}

Check check_gateway_quota(size_t existing, const Quotas& q) {
  if (existing >= q.gateways_per_vpc) {
    return conflict("QuotaExceeded",
                    "at most " + std::to_string(q.gateways_per_vpc) + " VPN gateways per VPC");
  }
  return std::nullopt;
}

Check check_customer_gateway_quota(size_t existing, const Quotas& q) {
  if (existing >= q.customer_gateways) {
    return conflict("QuotaExceeded",
                    "at most " + std::to_string(q.customer_gateways) + " customer gateways");
  }
  return std::nullopt;
}

Check check_customer_gateway_ip_unique(const CustomerGateway& c,
                                       std::span<const CustomerGateway> all) {
  for (const auto& o : all) {
    if (o.id != c.id && o.ip == c.ip) {
      return conflict(
          "Duplicate",
          "customer gateway '" + o.name + "' (" + o.id + ") already has IP " + c.ip.str(), "ip");
    }
  }
  return std::nullopt;
}

Check check_connection_quota(const VpnConnection& c, std::span<const VpnConnection> on_gateway,
                             std::span<const VpnConnection> on_customer_gateway, const Quotas& q) {
  for (const auto& o : on_gateway) {
    if (o.id != c.id && o.cgw_id == c.cgw_id) {
      return conflict("Duplicate",
                      "connection '" + o.name + "' (" + o.id +
                          ") already links this gateway and customer gateway",
                      "cgw_id");
    }
  }
  if (on_gateway.size() >= q.connections_per_gateway) {
    return conflict(
        "QuotaExceeded",
        "at most " + std::to_string(q.connections_per_gateway) + " connections per VPN gateway",
        "vgw_id");
  }
  if (on_customer_gateway.size() >= q.connections_per_customer_gateway) {
    return conflict("QuotaExceeded",
                    "at most " + std::to_string(q.connections_per_customer_gateway) +
                        " connections per customer gateway",
                    "cgw_id");
  }
  return std::nullopt;
}

}  // namespace xgw::control
