#include "control/codec.h"

#include <gtest/gtest.h>

namespace xgw::control {
namespace {

Json conn_body() {
  return Json::parse(R"({"name":"c","vgw_id":"vpngw-1","cgw_id":"cgw-1",
    "policy_rules":[{"source":"10.0.0.0/24","destination":["192.168.0.0/24"]}]})");
}

TEST(Codec, TceDefaultsForSingleTunnel) {
  auto c = connection_from_json(conn_body(), PolicyDefaults::Single);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->ikepolicy.ike_version, IkeVersion::V1);
  EXPECT_EQ(c->ikepolicy.phase1_negotiation_mode, NegotiationMode::Main);
  EXPECT_EQ(c->ikepolicy.encryption_algorithm, Encryption::TripleDes);
  EXPECT_EQ(c->ikepolicy.authentication_algorithm, Integrity::Md5);
  EXPECT_EQ(c->ikepolicy.dh_group, DhGroup::G1);
  EXPECT_EQ(c->ikepolicy.lifetime_seconds, 86400u);
  EXPECT_EQ(c->ipsecpolicy.encryption_algorithm, Encryption::Aes128);
  EXPECT_EQ(c->ipsecpolicy.authentication_algorithm, Integrity::Md5);
  EXPECT_EQ(c->ipsecpolicy.pfs, DhGroup::Disable);
  EXPECT_EQ(c->ipsecpolicy.lifetime_seconds, 3600u);
  EXPECT_EQ(c->ipsecpolicy.lifetime_kilobytes, 1843200u);
  EXPECT_EQ(c->ikepolicy.dpd.interval, 30u);
  EXPECT_TRUE(c->enable_nat_traversal);
  EXPECT_FALSE(c->start_immediately);
  EXPECT_EQ(c->style, RouteStyle::Policy);
  EXPECT_EQ(c->local_asn, 45104u);
  EXPECT_TRUE(c->psk.empty());
}

TEST(Codec, DualTunnelDefaults) {
  auto c = connection_from_json(conn_body(), PolicyDefaults::DualTunnel);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->ikepolicy.ike_version, IkeVersion::V2);
  EXPECT_EQ(c->ikepolicy.encryption_algorithm, Encryption::Aes128);
  EXPECT_EQ(c->ikepolicy.authentication_algorithm, Integrity::Sha1);
  EXPECT_EQ(c->ikepolicy.dh_group, DhGroup::G2);
  EXPECT_EQ(c->ipsecpolicy.authentication_algorithm, Integrity::Sha1);
  EXPECT_EQ(c->ipsecpolicy.pfs, DhGroup::G2);
}

TEST(Codec, GcmWithoutIntegrityDefaultsToNone) {
  auto b = conn_body();
  b["ipsecpolicy"] = {{"encryption_algorithm", "aes-256-gcm-16"}};
  auto c = connection_from_json(b, PolicyDefaults::Single);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->ipsecpolicy.authentication_algorithm, Integrity::None);
}

TEST(Codec, ErrorsNameTheField) {
  struct Case {
    const char* patch;
    const char* code;
    const char* field;
  } cases[] = {
      {R"({"bogus":1})", "UnknownField", "bogus"},
      {R"({"name":5})", "WrongType", "name"},
      {R"({"id":"x"})", "ReadOnlyField", "id"},
      {R"({"style":"ROUTE"})", "InvalidValue", "style"},
      {R"({"policy_rules":"10.0.0.0/24"})", "WrongType", "policy_rules"},
      {R"({"policy_rules":[{"source":"10.0.0.1/24","destination":["1.2.3.0/24"]}]})",
       "InvalidValue", "policy_rules[0].source"},
      {R"({"policy_rules":[{"source":"10.0.0.0/24","destination":["1.2.3.0/24", 7]}]})",
       "WrongType", "policy_rules[0].destination[1]"},
      {R"({"policy_rules":[{"source":"10.0.0.0/24"}]})", "MissingField",
       "policy_rules[0].destination"},
      {R"({"ikepolicy":{"dh_group":"group3"}})", "InvalidValue", "ikepolicy.dh_group"},
      {R"({"ikepolicy":{"dpd":{"interval":"30"}}})", "WrongType", "ikepolicy.dpd.interval"},
      {R"({"ikepolicy":{"dpd":{"x":1}}})", "UnknownField", "ikepolicy.dpd.x"},
      {R"({"ikepolicy":{"lifetime_seconds":1.5}})", "WrongType", "ikepolicy.lifetime_seconds"},
      {R"({"ikepolicy":{"lifetime_seconds":-5}})", "InvalidValue", "ikepolicy.lifetime_seconds"},
      {R"({"ipsecpolicy":{"encapsulation_mode":"transport"}})", "InvalidValue",
       "ipsecpolicy.encapsulation_mode"},
      {R"({"enable_nat_traversal":"yes"})", "WrongType", "enable_nat_traversal"},
      {R"({"tunnels":[{"local_ip":"1.2.3.4"}]})", "ReadOnlyField", "tunnels[0].local_ip"},
      {R"({"local_asn":0})", "InvalidValue", "local_asn"},
      {R"({"local_asn":4294967296})", "InvalidValue", "local_asn"},
  };
  for (const auto& c : cases) {
    auto b = conn_body();
    b.merge_patch(Json::parse(c.patch));
    auto r = connection_from_json(b, PolicyDefaults::Single);
    ASSERT_FALSE(r) << c.patch;
    EXPECT_EQ(r.error().code, c.code) << c.patch << ": " << r.error().message;
    EXPECT_EQ(r.error().field, c.field) << c.patch << ": " << r.error().message;
    EXPECT_EQ(r.error().http_status, 400);
  }
  auto r = connection_from_json(Json::array(), PolicyDefaults::Single);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "WrongType");
  r = connection_from_json(Json::parse(R"({"vgw_id":"a","cgw_id":"b"})"), PolicyDefaults::Single);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "MissingField");
  EXPECT_EQ(r.error().field, "name");
}

TEST(Codec, RoundTripKeepsEveryField) {
  auto b = conn_body();
  b.merge_patch(Json::parse(R"({"psk":"k","style":"POLICY","ikepolicy":{"ike_version":"v2",
    "encryption_algorithm":"aes-256-gcm-16","authentication_algorithm":"sha2-512","dh_group":"group21",
    "lifetime_seconds":3600,"local_id_type":"fqdn","local_id":"a.example","peer_id":"203.0.113.9",
    "dpd":{"interval":60,"timeout":5,"msg":"seq-notify-hash"}},
    "ipsecpolicy":{"encryption_algorithm":"sm4","authentication_algorithm":"sm3","pfs":"group24",
    "lifetime_seconds":600,"lifetime_kilobytes":9999},"enable_nat_traversal":false,
    "start_immediately":true,"local_asn":65001,"tunnels":[{"ha_role":"master"}]})"));
  auto c = connection_from_json(b, PolicyDefaults::Single);
  ASSERT_TRUE(c) << c.error().message;
  const Json spec = to_json(*c, false);
  EXPECT_FALSE(spec.contains("psk"));
  EXPECT_FALSE(spec.contains("id"));
  auto again = connection_from_json(spec, PolicyDefaults::DualTunnel);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(to_json(*again, false), spec);
  EXPECT_EQ(spec["ikepolicy"]["dpd"]["msg"], "seq-notify-hash");
  EXPECT_EQ(spec["ipsecpolicy"]["pfs"], "group24");
  EXPECT_EQ(spec["ikepolicy"]["local_id"], "a.example");
}

TEST(Codec, ViewNeverCarriesThePsk) {
  auto b = conn_body();
  b["psk"] = "TopSecret123";
  auto c = connection_from_json(b, PolicyDefaults::Single);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->psk, "TopSecret123");
  EXPECT_EQ(to_json(*c, true).dump().find("TopSecret123"), std::string::npos);
  EXPECT_EQ(to_json(*c, false).dump().find("TopSecret123"), std::string::npos);
}

TEST(Codec, Gateway) {
  auto g = gateway_from_json(Json::parse(
      R"({"name":"g","bandwidth":100,"local_cidr":"10.0.0.0/16","local_cidr_v6":"fd00::/48","public_ips":["198.51.100.10"]})"));
  ASSERT_TRUE(g) << g.error().message;
  EXPECT_EQ(g->type, GatewayType::Ipsec);
  EXPECT_EQ(to_json(*g, false)["local_cidr_v6"], "fd00::/48");
  auto bad = gateway_from_json(
      Json::parse(R"({"name":"g","bandwidth":100,"local_cidr":"10.0.0.0/16","public_ips":["x"]})"));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().field, "public_ips[0]");
  bad = gateway_from_json(Json::parse(
      R"({"name":"g","bandwidth":100,"local_cidr":"10.0.0.0/16","public_ips":["1.2.3.4"],"status":"running"})"));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, "ReadOnlyField");
}

TEST(Codec, CustomerGateway) {
  auto c = customer_gateway_from_json(
      Json::parse(R"({"name":"p","ip":"203.0.113.5","bgp_asn":4294967295})"));
  ASSERT_TRUE(c);
  EXPECT_EQ(*c->bgp_asn, 4294967295u);
  auto bad =
      customer_gateway_from_json(Json::parse(R"({"name":"p","ip":"203.0.113.5","bgp_asn":0})"));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().field, "bgp_asn");
}

}  // namespace
}  // namespace xgw::control
