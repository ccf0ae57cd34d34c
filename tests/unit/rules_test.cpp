// One test per SPEC §3 rule, each with accepted and rejected cases.
#include "control/rules.h"

#include <gtest/gtest.h>

#include "control/codec.h"

namespace xgw::control {
namespace {

net::Cidr C(const char* s) {
  return *net::Cidr::parse(s);
}
net::IpAddr IP(const char* s) {
  return *net::IpAddr::parse(s);
}

VpnGateway gateway(std::vector<const char*> ips = {"198.51.100.10"}) {
  VpnGateway g;
  g.id = "vpngw-1";
  g.name = "gw";
  g.bandwidth = 100;
  g.local_cidr = C("10.0.0.0/16");
  for (auto ip : ips) g.public_ips.push_back(IP(ip));
  g.status = "running";
  return g;
}

CustomerGateway peer(std::optional<uint32_t> asn = std::nullopt) {
  CustomerGateway c;
  c.id = "cgw-1";
  c.name = "peer";
  c.ip = IP("203.0.113.20");
  c.bgp_asn = asn;
  return c;
}

PolicyRule rule(const char* src, std::vector<const char*> dsts) {
  PolicyRule r{C(src), {}};
  for (auto d : dsts) r.destination.push_back(C(d));
  return r;
}

VpnConnection conn(std::string id, std::vector<PolicyRule> rules) {
  VpnConnection c;
  c.id = std::move(id);
  c.name = "c-" + c.id;
  c.vgw_id = "vpngw-1";
  c.cgw_id = "cgw-1";
  c.psk = "secret";
  c.policy_rules = std::move(rules);
  c.tunnels = {Tunnel{}};
  return c;
}

void expect_error(const Check& e, int status, const std::string& code,
                  const std::string& field = "*") {
  ASSERT_TRUE(e.has_value()) << "expected " << code;
  EXPECT_EQ(e->http_status, status) << e->message;
  EXPECT_EQ(e->code, code) << e->message;
  if (field != "*") {
    EXPECT_EQ(e->field, field) << e->message;
  }
  EXPECT_FALSE(e->message.empty());
}

// --- bandwidth tiers ------------------------------------------------------------

TEST(Rules, BandwidthTiers) {
  for (uint32_t t : {5, 10, 20, 50, 100, 200, 500, 1000}) EXPECT_FALSE(check_bandwidth(t)) << t;
  for (uint32_t t : {0, 1, 6, 99, 150, 300, 1001, 10000})
    expect_error(check_bandwidth(t), 400, "InvalidValue", "bandwidth");
}

TEST(Rules, BandwidthChangeStaysWithinItsRange) {
  EXPECT_FALSE(check_bandwidth_change(5, 100));
  EXPECT_FALSE(check_bandwidth_change(100, 5));
  EXPECT_FALSE(check_bandwidth_change(200, 1000));
  EXPECT_FALSE(check_bandwidth_change(1000, 200));
  EXPECT_FALSE(check_bandwidth_change(50, 50));
  expect_error(check_bandwidth_change(100, 200), 400, "TierChangeNotAllowed", "bandwidth");
  expect_error(check_bandwidth_change(200, 100), 400, "TierChangeNotAllowed");
  expect_error(check_bandwidth_change(5, 1000), 400, "TierChangeNotAllowed");
}

// --- names ------------------------------------------------------------------------

TEST(Rules, Names) {
  EXPECT_FALSE(check_name("gw-1_a", 60));
  EXPECT_FALSE(check_name("总部网关-1", 60));  // CJK
  EXPECT_FALSE(check_name(std::string(60, 'a'), 60));
  expect_error(check_name(std::string(61, 'a'), 60), 400, "InvalidValue", "name");
  expect_error(check_name("", 60), 400, "InvalidValue");
  expect_error(check_name("a b", 60), 400, "InvalidValue");
  expect_error(check_name("a.b", 60), 400, "InvalidValue");
  expect_error(check_name("\xc1\xa1", 60), 400, "InvalidValue");     // overlong 'a'
  expect_error(check_name("\xe4\xb8", 60), 400, "InvalidValue");     // truncated UTF-8
  expect_error(check_name("caf\xc3\xa9", 60), 400, "InvalidValue");  // é is not CJK
}

// --- customer gateway public IP --------------------------------------------------

TEST(Rules, PublicIpAcceptsOrdinaryUnicast) {
  for (const char* ip : {"203.0.113.20", "1.2.3.4", "10.1.2.3", "172.16.5.4", "192.168.1.1",
                         "126.1.1.1", "191.1.0.1", "223.255.254.1", "2001:db8::1"}) {
    EXPECT_FALSE(check_public_ip(IP(ip), "ip")) << ip;
  }
}

TEST(Rules, PublicIpRejectsEveryClass) {
  const char* bad[] = {
      "0.0.0.0",
      "255.255.255.255",
      "0.1.2.3",  // all-zero / all-one / this network
      "224.0.0.1",
      "239.255.255.255",
      "230.1.2.3",  // multicast
      "127.0.0.1",
      "127.255.255.254",  // loopback
      "169.254.1.1",
      "169.254.169.254",  // link-local
      "240.0.0.1",
      "250.1.2.3",  // reserved
      "10.0.0.0",
      "10.255.255.255",
      "126.0.0.0",  // class A network / broadcast
      "172.16.0.0",
      "172.16.255.255",
      "128.0.0.0",  // class B
      "192.168.1.0",
      "192.168.1.255",
      "223.1.1.0",  // class C
      "::",
      "::1",
      "ff02::1",
      "fe80::1",
      "::ffff:1.2.3.4",  // IPv6 specials
  };
  for (const char* ip : bad) expect_error(check_public_ip(IP(ip), "ip"), 400, "InvalidValue", "ip");
}

// --- PSK ---------------------------------------------------------------------------

TEST(Rules, PskCharsetAndLength) {
  EXPECT_FALSE(check_psk("a"));
  EXPECT_FALSE(check_psk(std::string(100, 'x')));
  EXPECT_FALSE(check_psk("Ab1~`!@#$%^&*()_-+={}[]\\|;:',.<>/?"));
  expect_error(check_psk(""), 400, "InvalidValue", "psk");
  expect_error(check_psk(std::string(101, 'x')), 400, "InvalidValue", "psk");
  expect_error(check_psk("has space"), 400, "InvalidValue", "psk");
  expect_error(check_psk("quote\""), 400, "InvalidValue", "psk");
  expect_error(check_psk("tab\t"), 400, "InvalidValue", "psk");
  expect_error(check_psk("中文"), 400, "InvalidValue", "psk");
}

TEST(Rules, GeneratedPskIs16ValidRandomCharacters) {
  const auto a = generate_psk(), b = generate_psk();
  EXPECT_EQ(a.size(), 16u);
  EXPECT_FALSE(check_psk(a));
  EXPECT_NE(a, b);
}

// --- gateways -------------------------------------------------------------------------

TEST(Rules, Gateway) {
  EXPECT_FALSE(check_gateway(gateway()));
  EXPECT_FALSE(check_gateway(gateway({"198.51.100.10", "198.51.100.11"})));
  expect_error(check_gateway(gateway({})), 400, "InvalidValue", "public_ips");
  expect_error(check_gateway(gateway({"198.51.100.10", "198.51.100.11", "198.51.100.12"})), 400,
               "InvalidValue", "public_ips");
  expect_error(check_gateway(gateway({"198.51.100.10", "198.51.100.10"})), 400, "InvalidValue",
               "public_ips[1]");
  expect_error(check_gateway(gateway({"127.0.0.1"})), 400, "InvalidValue", "public_ips[0]");
  auto g = gateway();
  g.local_cidr = C("2001:db8::/32");
  expect_error(check_gateway(g), 400, "InvalidValue", "local_cidr");
  g = gateway();
  g.local_cidr_v6 = C("10.0.0.0/8");
  expect_error(check_gateway(g), 400, "InvalidValue", "local_cidr_v6");
  g = gateway();
  g.bandwidth = 7;
  expect_error(check_gateway(g), 400, "InvalidValue", "bandwidth");
}

TEST(Rules, GatewayDelete) {
  auto g = gateway();
  EXPECT_FALSE(check_gateway_delete(g, 0));
  expect_error(check_gateway_delete(g, 1), 409, "InUse");
  g.status = "pending";
  expect_error(check_gateway_delete(g, 0), 409, "InvalidState");
}

TEST(Rules, GatewayUpdate) {
  auto before = gateway();
  auto after = before;
  after.bandwidth = 5;
  EXPECT_FALSE(check_gateway_update(before, after, {}));
  after.bandwidth = 200;
  expect_error(check_gateway_update(before, after, {}), 400, "TierChangeNotAllowed");
  after = before;
  after.type = GatewayType::Ssl;
  expect_error(check_gateway_update(before, after, {}), 400, "ImmutableField", "type");
  // Shrinking the local network below a connection's SPD source is refused.
  std::vector<VpnConnection> conns{conn("a", {rule("10.0.5.0/24", {"192.168.0.0/24"})})};
  after = before;
  after.local_cidr = C("10.0.0.0/22");
  expect_error(check_gateway_update(before, after, conns), 409, "InUse");
  after.local_cidr = C("10.0.0.0/8");
  EXPECT_FALSE(check_gateway_update(before, after, conns));
  // A dual-tunnel connection needs both public IPs.
  auto dual_before = gateway({"198.51.100.10", "198.51.100.11"});
  auto dual = conn("d", {rule("10.0.5.0/24", {"192.168.0.0/24"})});
  dual.tunnels = {Tunnel{HaRole::Master, {}, {}}, Tunnel{HaRole::Slave, {}, {}}};
  expect_error(check_gateway_update(dual_before, gateway(), std::vector{dual}), 409, "InUse");
}

// --- quotas ------------------------------------------------------------------------------

TEST(Rules, Quotas) {
  Quotas q;
  EXPECT_FALSE(check_gateway_quota(9, q));
  expect_error(check_gateway_quota(10, q), 409, "QuotaExceeded");
  EXPECT_FALSE(check_customer_gateway_quota(19, q));
  expect_error(check_customer_gateway_quota(20, q), 409, "QuotaExceeded");
  q.gateways_per_vpc = 3;  // configurable
  expect_error(check_gateway_quota(3, q), 409, "QuotaExceeded");

  Quotas dq;
  auto c = conn("new", {rule("10.0.0.0/24", {"192.168.0.0/24"})});
  c.cgw_id = "cgw-new";
  std::vector<VpnConnection> on_gw, on_cgw;
  for (int i = 0; i < 19; ++i) {
    auto o = conn("o" + std::to_string(i), {});
    o.cgw_id = "cgw-" + std::to_string(i);
    on_gw.push_back(o);
  }
  EXPECT_FALSE(check_connection_quota(c, on_gw, on_cgw, dq));
  on_gw.push_back(conn("o19", {}));
  on_gw.back().cgw_id = "cgw-19";
  expect_error(check_connection_quota(c, on_gw, on_cgw, dq), 409, "QuotaExceeded", "vgw_id");
  on_gw.clear();
  for (int i = 0; i < 10; ++i) on_cgw.push_back(conn("p" + std::to_string(i), {}));
  expect_error(check_connection_quota(c, on_gw, on_cgw, dq), 409, "QuotaExceeded", "cgw_id");
}

TEST(Rules, OneConnectionPerGatewayAndPeer) {
  auto existing = conn("a", {rule("10.0.0.0/24", {"192.168.0.0/24"})});
  auto dup = conn("b", {rule("10.0.1.0/24", {"192.168.1.0/24"})});
  expect_error(check_connection_quota(dup, std::vector{existing}, std::vector{existing}, Quotas{}),
               409, "Duplicate", "cgw_id");
  dup.cgw_id = "cgw-2";
  EXPECT_FALSE(check_connection_quota(dup, std::vector{existing}, {}, Quotas{}));
}

TEST(Rules, RulesAndCidrsPerConnection) {
  auto g = gateway();
  g.local_cidr = C("10.0.0.0/8");
  std::vector<PolicyRule> rules;
  for (int i = 0; i < 10; ++i) {
    rules.push_back(rule(("10." + std::to_string(i) + ".0.0/16").c_str(), {"192.168.0.0/24"}));
  }
  auto c = conn("a", rules);
  EXPECT_FALSE(check_connection(c, g, peer(), {}, Quotas{}));
  c.policy_rules.push_back(rule("10.99.0.0/16", {"192.168.0.0/24"}));
  expect_error(check_connection(c, g, peer(), {}, Quotas{}), 409, "QuotaExceeded", "policy_rules");

  std::vector<const char*> dsts;
  std::vector<std::string> storage;
  for (int i = 0; i < 51; ++i) storage.push_back("172.16." + std::to_string(i) + ".0/24");
  for (auto& s : storage) dsts.push_back(s.c_str());
  auto wide = conn("w", {rule("10.0.0.0/24", dsts)});
  expect_error(check_connection(wide, g, peer(), {}, Quotas{}), 409, "QuotaExceeded",
               "policy_rules[0].destination");
  wide.policy_rules[0].destination.pop_back();  // 50 is allowed
  EXPECT_FALSE(check_connection(wide, g, peer(), {}, Quotas{}));
}

// --- SPD overlap: SPEC §3's worked example ---------------------------------------

TEST(Rules, SpdOverlapWorkedExample) {
  const std::vector<VpnConnection> existing{
      conn("a", {rule("10.0.0.0/24", {"192.168.0.0/24", "192.168.1.0/24"})}),
      conn("b", {rule("10.0.1.0/24", {"192.168.2.0/24"})}),
      conn("c", {rule("10.0.2.0/24", {"192.168.2.0/24"})}),
  };
  auto fails = conn("new1", {rule("10.0.0.0/24", {"192.168.1.0/24"})});
  const auto e = check_spd_overlap(fails, existing);
  expect_error(e, 409, "SpdOverlap", "policy_rules[0].destination[0]");
  EXPECT_NE(e->message.find("c-a"), std::string::npos) << e->message;

  auto succeeds = conn("new2", {rule("10.0.1.0/24", {"192.168.1.0/24"})});
  EXPECT_FALSE(check_spd_overlap(succeeds, existing));
}

TEST(Rules, SpdOverlapNeedsBothSidesAndCoversContainment) {
  const std::vector<VpnConnection> existing{conn("a", {rule("10.0.0.0/16", {"192.168.0.0/16"})})};
  // Local overlaps (contained), remote overlaps (contained) -> conflict.
  EXPECT_TRUE(check_spd_overlap(conn("n", {rule("10.0.3.0/24", {"192.168.7.0/24"})}), existing));
  // Local overlaps, remote apart -> fine.
  EXPECT_FALSE(check_spd_overlap(conn("n", {rule("10.0.3.0/24", {"172.16.0.0/24"})}), existing));
  // Remote overlaps, local apart -> fine.
  EXPECT_FALSE(check_spd_overlap(conn("n", {rule("10.1.0.0/24", {"192.168.7.0/24"})}), existing));
  // Within one connection: a later rule repeating a relation.
  auto self =
      conn("s", {rule("10.1.0.0/24", {"172.16.0.0/24"}), rule("10.1.0.0/25", {"172.16.0.0/16"})});
  expect_error(check_spd_overlap(self, {}), 409, "SpdOverlap", "policy_rules[1].destination[0]");
  // Updating a connection does not conflict with its own stored version.
  EXPECT_FALSE(check_spd_overlap(existing[0], existing));
}

TEST(Rules, SpdIpv6RulesKeptApart) {
  auto g = gateway();
  g.local_cidr_v6 = C("fd00:10::/48");
  auto c = conn("v6", {rule("fd00:10:0:1::/64", {"2001:db8:1::/48"}),
                       rule("10.0.0.0/24", {"192.168.0.0/24"})});
  EXPECT_FALSE(check_connection(c, g, peer(), {}, Quotas{}));
  // v4 source with a v6 destination
  auto mixed = conn("m", {rule("10.0.0.0/24", {"2001:db8:1::/48"})});
  expect_error(check_connection(mixed, g, peer(), {}, Quotas{}), 400, "InvalidValue",
               "policy_rules[0].destination[0]");
  // v6 source but the gateway has no IPv6 local network
  auto no_v6 = conn("n", {rule("fd00:10:0:1::/64", {"2001:db8:1::/48"})});
  expect_error(check_connection(no_v6, gateway(), peer(), {}, Quotas{}), 400, "InvalidValue",
               "policy_rules[0].source");
}

TEST(Rules, LocalCidrInsideGatewayNetwork) {
  auto g = gateway();
  EXPECT_FALSE(check_connection(conn("a", {rule("10.0.200.0/24", {"192.168.0.0/24"})}), g, peer(),
                                {}, Quotas{}));
  EXPECT_FALSE(check_connection(conn("a", {rule("10.0.0.0/16", {"192.168.0.0/24"})}), g, peer(), {},
                                Quotas{}));
  expect_error(check_connection(conn("a", {rule("10.1.0.0/24", {"192.168.0.0/24"})}), g, peer(), {},
                                Quotas{}),
               400, "InvalidValue", "policy_rules[0].source");
  expect_error(check_connection(conn("a", {rule("10.0.0.0/8", {"192.168.0.0/24"})}), g, peer(), {},
                                Quotas{}),
               400, "InvalidValue", "policy_rules[0].source");
  // A remote CIDR inside the local network would loop.
  expect_error(
      check_connection(conn("a", {rule("10.0.1.0/24", {"10.0.9.0/24"})}), g, peer(), {}, Quotas{}),
      400, "InvalidValue", "policy_rules[0].destination[0]");
}

// --- lifetimes, DPD, algorithms --------------------------------------------------

TEST(Rules, IkeLifetimeAndDpdRanges) {
  IkePolicy p;
  EXPECT_FALSE(check_ike_policy(p));
  for (uint32_t ok : {60u, 86400u, 604800u}) {
    p.lifetime_seconds = ok;
    EXPECT_FALSE(check_ike_policy(p)) << ok;
  }
  for (uint32_t bad : {0u, 59u, 604801u}) {
    p.lifetime_seconds = bad;
    expect_error(check_ike_policy(p), 400, "InvalidValue", "ikepolicy.lifetime_seconds");
  }
  p = IkePolicy{};
  for (uint32_t ok : {10u, 3600u}) {
    p.dpd.interval = ok;
    EXPECT_FALSE(check_ike_policy(p));
  }
  for (uint32_t bad : {9u, 3601u}) {
    p.dpd.interval = bad;
    expect_error(check_ike_policy(p), 400, "InvalidValue", "ikepolicy.dpd.interval");
  }
  p = IkePolicy{};
  for (uint32_t ok : {2u, 60u}) {
    p.dpd.timeout = ok;
    EXPECT_FALSE(check_ike_policy(p));
  }
  for (uint32_t bad : {1u, 61u}) {
    p.dpd.timeout = bad;
    expect_error(check_ike_policy(p), 400, "InvalidValue", "ikepolicy.dpd.timeout");
  }
}

TEST(Rules, IkeAlgorithmCombinations) {
  IkePolicy p;
  p.ike_version = IkeVersion::V2;
  p.phase1_negotiation_mode = NegotiationMode::Aggressive;
  expect_error(check_ike_policy(p), 400, "InvalidValue", "ikepolicy.phase1_negotiation_mode");
  p = IkePolicy{};
  p.encryption_algorithm = Encryption::Aes128Gcm16;
  expect_error(check_ike_policy(p), 400, "InvalidValue", "ikepolicy.encryption_algorithm");
  p.ike_version = IkeVersion::V2;
  EXPECT_FALSE(check_ike_policy(p));
  p.dh_group = DhGroup::Disable;
  expect_error(check_ike_policy(p), 400, "InvalidValue", "ikepolicy.dh_group");
  p = IkePolicy{};
  p.authentication_algorithm = Integrity::None;
  expect_error(check_ike_policy(p), 400, "InvalidValue", "ikepolicy.authentication_algorithm");
}

TEST(Rules, IkeIdentities) {
  IkePolicy p;
  p.local_id_type = IdType::Fqdn;
  expect_error(check_ike_policy(p), 400, "InvalidValue", "ikepolicy.local_id");
  p.local_id = "vpn.example.com";
  EXPECT_FALSE(check_ike_policy(p));
  p.local_id = "bad_name.example";
  expect_error(check_ike_policy(p), 400, "InvalidValue", "ikepolicy.local_id");
  p = IkePolicy{};
  p.peer_id = "not-an-ip";
  expect_error(check_ike_policy(p), 400, "InvalidValue", "ikepolicy.peer_id");
  p.peer_id = "203.0.113.20";
  EXPECT_FALSE(check_ike_policy(p));
}

TEST(Rules, IpsecLifetimesAndGcm) {
  IpsecPolicy p;
  EXPECT_FALSE(check_ipsec_policy(p));
  for (uint32_t bad : {29u, 604801u}) {
    p.lifetime_seconds = bad;
    expect_error(check_ipsec_policy(p), 400, "InvalidValue", "ipsecpolicy.lifetime_seconds");
  }
  p = IpsecPolicy{};
  p.lifetime_seconds = 30;
  EXPECT_FALSE(check_ipsec_policy(p));
  p.lifetime_kilobytes = 100;
  expect_error(check_ipsec_policy(p), 400, "InvalidValue", "ipsecpolicy.lifetime_kilobytes");
  p = IpsecPolicy{};
  p.encryption_algorithm = Encryption::Aes256Gcm16;
  expect_error(check_ipsec_policy(p), 400, "InvalidValue", "ipsecpolicy.authentication_algorithm");
  p.authentication_algorithm = Integrity::None;
  EXPECT_FALSE(check_ipsec_policy(p));
  p.encryption_algorithm = Encryption::Aes128;
  expect_error(check_ipsec_policy(p), 400, "InvalidValue", "ipsecpolicy.authentication_algorithm");
}

// --- route styles, tunnels and BGP ------------------------------------------------

TEST(Rules, RouteStyleShapes) {
  auto g = gateway();
  auto c = conn("a", {});
  expect_error(check_connection(c, g, peer(), {}, Quotas{}), 400, "InvalidValue", "policy_rules");
  c.style = RouteStyle::Static;
  expect_error(check_connection(c, g, peer(), {}, Quotas{}), 400, "InvalidValue", "peer_subnets");
  c.peer_subnets = {C("192.168.0.0/24")};
  EXPECT_FALSE(check_connection(c, g, peer(), {}, Quotas{}));
  // Two STATIC connections on one gateway may not route the same subnet.
  auto other = c;
  other.id = "b";
  expect_error(check_connection(c, g, peer(), std::vector{other}, Quotas{}), 409, "RouteOverlap",
               "peer_subnets[0]");
  c.peer_subnets = {C("10.0.1.0/24")};
  expect_error(check_connection(c, g, peer(), {}, Quotas{}), 400, "InvalidValue",
               "peer_subnets[0]");
  auto ssl = gateway();
  ssl.type = GatewayType::Ssl;
  expect_error(check_connection(conn("a", {rule("10.0.0.0/24", {"192.168.0.0/24"})}), ssl, peer(),
                                {}, Quotas{}),
               400, "InvalidValue", "vgw_id");
}

TEST(Rules, TunnelRolesAreFixed) {
  auto g = gateway({"198.51.100.10", "198.51.100.11"});
  auto c = conn("a", {rule("10.0.0.0/24", {"192.168.0.0/24"})});
  c.tunnels = {Tunnel{HaRole::Master, {}, {}}, Tunnel{HaRole::Slave, {}, {}}};
  EXPECT_FALSE(check_connection(c, g, peer(), {}, Quotas{}));
  c.tunnels = {Tunnel{HaRole::Slave, {}, {}}, Tunnel{HaRole::Master, {}, {}}};
  expect_error(check_connection(c, g, peer(), {}, Quotas{}), 400, "InvalidValue",
               "tunnels[0].ha_role");
  c.tunnels = {Tunnel{HaRole::Master, {}, {}}, Tunnel{HaRole::Slave, {}, {}}};
  expect_error(check_connection(c, gateway(), peer(), {}, Quotas{}), 400, "InvalidValue",
               "tunnels");
  c.tunnels.clear();
  expect_error(check_connection(c, g, peer(), {}, Quotas{}), 400, "InvalidValue", "tunnels");
}

TEST(Rules, BgpTunnelCidr) {
  EXPECT_FALSE(check_bgp_tunnel_cidr(C("169.254.10.0/30"), "f"));
  EXPECT_FALSE(check_bgp_tunnel_cidr(C("169.254.7.0/30"), "f"));
  EXPECT_FALSE(check_bgp_tunnel_cidr(C("169.254.6.4/30"), "f"));
  for (const char* r : {"169.254.0.0/30", "169.254.3.0/30", "169.254.6.0/30", "169.254.169.252/30"})
    expect_error(check_bgp_tunnel_cidr(C(r), "f"), 400, "InvalidValue", "f");
  for (const char* r : {"169.254.10.0/29", "169.254.10.0/31", "10.0.0.0/30", "169.255.0.0/30"})
    expect_error(check_bgp_tunnel_cidr(C(r), "f"), 400, "InvalidValue", "f");
}

TEST(Rules, BgpConnection) {
  auto g = gateway();
  auto c = conn("a", {});
  c.style = RouteStyle::Bgp;
  c.tunnels = {Tunnel{HaRole::Master, C("169.254.10.0/30"), IP("169.254.10.1")}};
  expect_error(check_connection(c, g, peer(), {}, Quotas{}), 400, "InvalidValue",
               "cgw_id");  // no ASN
  EXPECT_FALSE(check_connection(c, g, peer(65000), {}, Quotas{}));
  // The local address must be a host of the /30.
  for (const char* bad : {"169.254.10.0", "169.254.10.3", "169.254.11.1"}) {
    c.tunnels[0].local_bgp_ip = IP(bad);
    expect_error(check_connection(c, g, peer(65000), {}, Quotas{}), 400, "InvalidValue",
                 "tunnels[0].local_bgp_ip");
  }
  c.tunnels[0].local_bgp_ip = IP("169.254.10.2");
  EXPECT_FALSE(check_connection(c, g, peer(65000), {}, Quotas{}));
  // Unique per gateway.
  auto other = c;
  other.id = "b";
  expect_error(check_connection(c, g, peer(65000), std::vector{other}, Quotas{}), 409, "Duplicate",
               "tunnels[0].tunnel_cidr");
  // Required for BGP, refused for other styles.
  c.tunnels[0].tunnel_cidr.reset();
  expect_error(check_connection(c, g, peer(65000), {}, Quotas{}), 400, "InvalidValue",
               "tunnels[0].tunnel_cidr");
  auto pol = conn("p", {rule("10.0.0.0/24", {"192.168.0.0/24"})});
  pol.tunnels[0].tunnel_cidr = C("169.254.10.0/30");
  expect_error(check_connection(pol, g, peer(), {}, Quotas{}), 400, "InvalidValue",
               "tunnels[0].tunnel_cidr");
}

TEST(Rules, CustomerGatewayRules) {
  EXPECT_FALSE(check_customer_gateway(peer()));
  auto c = peer();
  c.ip = IP("224.0.0.5");
  expect_error(check_customer_gateway(c), 400, "InvalidValue", "ip");
  auto other = peer();
  other.id = "cgw-2";
  expect_error(check_customer_gateway_ip_unique(peer(), std::vector{other}), 409, "Duplicate",
               "ip");
  EXPECT_FALSE(check_customer_gateway_ip_unique(peer(), std::vector{peer()}));  // itself
  // Removing the ASN of a peer that a BGP connection uses.
  auto bgp = conn("b", {});
  bgp.style = RouteStyle::Bgp;
  expect_error(check_customer_gateway_update(peer(), std::vector{bgp}), 409, "InUse", "bgp_asn");
  EXPECT_FALSE(check_customer_gateway_update(peer(65001), std::vector{bgp}));
  expect_error(check_customer_gateway_delete(peer(), 1), 409, "InUse");
  EXPECT_FALSE(check_customer_gateway_delete(peer(), 0));
}

TEST(Rules, SslServer) {
  auto g = gateway();
  g.type = GatewayType::Ssl;
  SslServer s{C("10.0.1.0/24"), C("192.168.100.0/24"), 10};
  EXPECT_FALSE(check_ssl_server(s, g));
  for (const char* pool : {"172.20.0.0/16", "10.200.0.0/20"}) {
    s.client_pool = C(pool);
    EXPECT_FALSE(check_ssl_server(s, g)) << pool;
  }
  // Outside the private ranges, wrong mask, or overlapping the VPC.
  for (const char* pool : {"100.64.0.0/24", "172.32.0.0/24", "192.168.0.0/15", "10.200.0.0/25",
                           "10.0.0.0/8", "10.0.5.0/24"}) {
    s.client_pool = C(pool);
    expect_error(check_ssl_server(s, g), 400, "InvalidValue", "client_pool");
  }
  s.client_pool = C("192.168.100.0/24");
  s.local_cidr = C("10.1.0.0/24");
  expect_error(check_ssl_server(s, g), 400, "InvalidValue", "local_cidr");
  s.local_cidr = C("10.0.1.0/24");
  for (uint32_t m : {0u, 4u, 30u, 101u}) {
    s.max_connections = m;
    expect_error(check_ssl_server(s, g), 400, "InvalidValue", "max_connections");
  }
  s.max_connections = 100;
  EXPECT_FALSE(check_ssl_server(s, gateway()) == std::nullopt);  // an ipsec gateway
}

TEST(Rules, ConnectionUpdateKeepsEndpoints) {
  auto a = conn("a", {});
  auto b = a;
  EXPECT_FALSE(check_connection_update(a, b));
  b.vgw_id = "vpngw-2";
  expect_error(check_connection_update(a, b), 400, "ImmutableField", "vgw_id");
  b = a;
  b.cgw_id = "cgw-2";
  expect_error(check_connection_update(a, b), 400, "ImmutableField", "cgw_id");
}

}  // namespace
}  // namespace xgw::control
