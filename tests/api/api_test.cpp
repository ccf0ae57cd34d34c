// The REST API against a real xgwd: CRUD, every SPEC §3 violation (right
// status, database bytes unchanged), PSK secrecy, auth, hostile bodies,
// durability across kill -9, signals.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "tests/api/xgwd_process.h"

namespace xgw::test {
namespace {

using nlohmann::json;

// Small quotas so the quota paths are cheap to reach; the defaults are
// covered by the rules unit tests.
constexpr const char* kConfig = R"(
quotas:
  gateways_per_vpc: 3
  customer_gateways: 3
  connections_per_gateway: 2
  connections_per_customer_gateway: 2
  rules_per_connection: 3
  cidrs_per_rule: 4
)";

json gw_body(const std::string& name, json extra = json::object()) {
  json g{{"name", name},
         {"bandwidth", 100},
         {"local_cidr", "10.0.0.0/16"},
         {"public_ips", {"198.51.100.10"}}};
  g.merge_patch(extra);
  return {{"vpn_gateway", g}};
}
json cgw_body(const std::string& name, const std::string& ip, json extra = json::object()) {
  json c{{"name", name}, {"ip", ip}};
  c.merge_patch(extra);
  return {{"customer_gateway", c}};
}
json conn_body(const std::string& name, const std::string& vgw, const std::string& cgw, json rules,
               json extra = json::object()) {
  json c{{"name", name}, {"vgw_id", vgw}, {"cgw_id", cgw}, {"policy_rules", rules}};
  c.merge_patch(extra);
  return {{"vpn_connection", c}};
}
json rule(const std::string& src, std::vector<std::string> dst) {
  return {{"source", src}, {"destination", dst}};
}

class ApiTest : public ::testing::Test {
 protected:
  ApiTest() : d_(kConfig) {}

  std::string create(const std::string& path, const json& body, const char* key) {
    auto r = d_.post(path, body);
    EXPECT_EQ(r.status, 201) << r.body;
    return r.json()[key]["id"].get<std::string>();
  }
  // Creates a gateway and waits until the reconciler has activated it, so
  // no background write races the byte comparisons below.
  std::string make_gateway(const std::string& name = "gw", json extra = json::object()) {
    auto id = create("/v1/vpn-gateways", gw_body(name, std::move(extra)), "vpn_gateway");
    wait_running(id);
    return id;
  }
  void wait_running(const std::string& id) {
    for (int i = 0; i < 200; ++i) {
      if (d_.get("/v1/vpn-gateways/" + id).json()["vpn_gateway"]["status"] == "running") return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    FAIL() << "gateway " << id << " never became running";
  }

  // Sends a request that must be rejected and checks the database did not
  // change by a single byte.
  json expect_rejected(const std::string& method, const std::string& path, const std::string& body,
                       int status, const std::string& code, const std::string& field = "*") {
    const std::string before = d_.db_bytes();
    auto r = d_.request(method, path, body);
    EXPECT_EQ(r.status, status) << method << " " << path << " " << body << " -> " << r.body;
    const json j = r.json();
    EXPECT_TRUE(j.is_object() && j.contains("error")) << r.body;
    if (j.contains("error")) {
      EXPECT_EQ(j["error"]["code"], code) << r.body;
      EXPECT_FALSE(j["error"]["message"].get<std::string>().empty());
      if (field != "*") {
        EXPECT_EQ(j["error"].value("field", ""), field) << r.body;
      }
    }
    EXPECT_TRUE(d_.db_bytes() == before)
        << "database changed by a rejected " << method << " " << path;
    return j;
  }

  XgwdProcess d_;
};

TEST_F(ApiTest, TokenIsRequiredAndPrivate) {
  struct stat st {};
  ASSERT_EQ(::stat((d_.dir() / "api-token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_GE(d_.token().size(), 32u);
  EXPECT_EQ(d_.request("GET", "/v1/vpn-gateways", "", std::string()).status, 401);
  EXPECT_EQ(d_.request("GET", "/v1/vpn-gateways", "", std::string("wrong-token")).status, 401);
  EXPECT_EQ(d_.request("GET", "/v1/vpn-gateways", "", d_.token() + "x").status, 401);
  // Unknown paths still need the token (no probing without it).
  EXPECT_EQ(d_.request("GET", "/nope", "", std::string()).status, 401);
  EXPECT_EQ(d_.get("/v1/vpn-gateways").status, 200);
}

// Without ike: in its config xgwd holds no IKE SAs; the route still
// answers (an empty list), and needs the token like every other.
TEST_F(ApiTest, IkeSasWithoutIke) {
  EXPECT_EQ(d_.request("GET", "/v1/ike-sas", "", std::string()).status, 401);
  auto r = d_.get("/v1/ike-sas");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json(), nlohmann::json({{"ike_sas", nlohmann::json::array()}}));
}

// Without dataplane: the route says so (xgwctl dataplane prints it), and
// needs the token too.
TEST_F(ApiTest, DataplaneWithoutXdp) {
  EXPECT_EQ(d_.request("GET", "/v1/dataplane", "", std::string()).status, 401);
  auto r = d_.get("/v1/dataplane");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(
      r.json(),
      nlohmann::json({{"dataplane", {{"enabled", false}, {"gateways", nlohmann::json::array()}}}}));
}

TEST_F(ApiTest, CrudOfEveryObject) {
  const auto gw = make_gateway();
  auto g = d_.get("/v1/vpn-gateways/" + gw).json()["vpn_gateway"];
  EXPECT_EQ(g["name"], "gw");
  EXPECT_EQ(g["type"], "ipsec");
  EXPECT_TRUE(g.contains("created_at") && g.contains("updated_at"));
  EXPECT_EQ(d_.get("/v1/vpn-gateways").json()["vpn_gateways"].size(), 1u);

  auto p =
      d_.patch("/v1/vpn-gateways/" + gw, {{"vpn_gateway", {{"bandwidth", 20}, {"name", "gw2"}}}});
  ASSERT_EQ(p.status, 200) << p.body;
  EXPECT_EQ(p.json()["vpn_gateway"]["bandwidth"], 20);
  EXPECT_EQ(p.json()["vpn_gateway"]["local_cidr"], "10.0.0.0/16");  // untouched fields stay

  const auto cgw =
      create("/v1/customer-gateways", cgw_body("peer", "203.0.113.20", {{"bgp_asn", 65000}}),
             "customer_gateway");
  EXPECT_EQ(d_.get("/v1/customer-gateways/" + cgw).json()["customer_gateway"]["bgp_asn"], 65000);

  auto cr = d_.post(
      "/v1/vpn-connections",
      conn_body("c1", gw, cgw, {rule("10.0.1.0/24", {"192.168.1.0/24"})},
                {{"ikepolicy", {{"ike_version", "v2"}, {"encryption_algorithm", "aes-256"}}}}));
  ASSERT_EQ(cr.status, 201) << cr.body;
  auto c = cr.json()["vpn_connection"];
  const std::string cid = c["id"];
  EXPECT_EQ(c["status"], "down");
  EXPECT_EQ(c["ikepolicy"]["ike_version"], "v2");
  EXPECT_EQ(c["ikepolicy"]["encryption_algorithm"], "aes-256");
  EXPECT_EQ(c["ikepolicy"]["dh_group"], "group1");  // the omitted field takes its default
  EXPECT_EQ(c["tunnels"][0]["local_ip"], "198.51.100.10");
  EXPECT_EQ(c["tunnels"][0]["ha_role"], "master");

  auto up =
      d_.patch("/v1/vpn-connections/" + cid,
               {{"vpn_connection", {{"policy_rules", {rule("10.0.2.0/24", {"192.168.2.0/24"})}}}}});
  ASSERT_EQ(up.status, 200) << up.body;
  EXPECT_EQ(up.json()["vpn_connection"]["policy_rules"][0]["source"], "10.0.2.0/24");
  EXPECT_EQ(up.json()["vpn_connection"]["ikepolicy"]["encryption_algorithm"], "aes-256");

  EXPECT_EQ(d_.del("/v1/vpn-connections/" + cid).status, 204);
  EXPECT_EQ(d_.get("/v1/vpn-connections/" + cid).status, 404);
  EXPECT_EQ(d_.del("/v1/customer-gateways/" + cgw).status, 204);
  EXPECT_EQ(d_.del("/v1/vpn-gateways/" + gw).status, 204);
  EXPECT_EQ(d_.get("/v1/vpn-gateways").json()["vpn_gateways"].size(), 0u);
}

TEST_F(ApiTest, DualTunnelConnectionsTakeDualTunnelDefaults) {
  const auto gw =
      create("/v1/vpn-gateways",
             gw_body("dual", {{"public_ips", {"198.51.100.10", "198.51.100.11"}}}), "vpn_gateway");
  const auto cgw =
      create("/v1/customer-gateways", cgw_body("p", "203.0.113.20"), "customer_gateway");
  auto r = d_.post("/v1/vpn-connections",
                   conn_body("c", gw, cgw, {rule("10.0.1.0/24", {"192.168.1.0/24"})}));
  ASSERT_EQ(r.status, 201) << r.body;
  auto c = r.json()["vpn_connection"];
  ASSERT_EQ(c["tunnels"].size(), 2u);
  EXPECT_EQ(c["tunnels"][0]["ha_role"], "master");
  EXPECT_EQ(c["tunnels"][0]["local_ip"], "198.51.100.10");
  EXPECT_EQ(c["tunnels"][1]["ha_role"], "slave");
  EXPECT_EQ(c["tunnels"][1]["local_ip"], "198.51.100.11");
  EXPECT_EQ(c["ikepolicy"]["ike_version"], "v2");
  EXPECT_EQ(c["ikepolicy"]["dh_group"], "group2");
  EXPECT_EQ(c["ipsecpolicy"]["pfs"], "group2");
}

TEST_F(ApiTest, EverySpecRuleViolationIsRejectedAndStoresNothing) {
  const auto gw = make_gateway();
  const auto cgw =
      create("/v1/customer-gateways", cgw_body("p1", "203.0.113.20"), "customer_gateway");
  const auto cgw2 =
      create("/v1/customer-gateways", cgw_body("p2", "203.0.113.21"), "customer_gateway");
  // SPEC §3's worked example, spread over two connections of one gateway.
  ASSERT_EQ(d_.post("/v1/vpn-connections",
                    conn_body("a", gw, cgw,
                              {rule("10.0.0.0/24", {"192.168.0.0/24", "192.168.1.0/24"}),
                               rule("10.0.1.0/24", {"192.168.2.0/24"})}))
                .status,
            201);
  auto b = d_.post("/v1/vpn-connections",
                   conn_body("b", gw, cgw2, {rule("10.0.2.0/24", {"192.168.2.0/24"})}));
  ASSERT_EQ(b.status, 201) << b.body;
  const std::string bid = b.json()["vpn_connection"]["id"];

  const std::string G = "/v1/vpn-gateways", P = "/v1/customer-gateways", C = "/v1/vpn-connections";
  auto conn_patch = [&](json fields) { return json{{"vpn_connection", fields}}.dump(); };

  // SPD overlap: 10.0.0.0/24 -> 192.168.1.0/24 fails ...
  expect_rejected("PATCH", C + "/" + bid,
                  conn_patch({{"policy_rules",
                               {rule("10.0.2.0/24", {"192.168.2.0/24"}),
                                rule("10.0.0.0/24", {"192.168.1.0/24"})}}}),
                  409, "SpdOverlap", "policy_rules[1].destination[0]");
  // ... and 10.0.1.0/24 -> 192.168.1.0/24 succeeds (checked after the rejections).

  // Bandwidth tiers and tier-change ranges.
  expect_rejected("POST", G, gw_body("x", {{"bandwidth", 30}}).dump(), 400, "InvalidValue",
                  "bandwidth");
  expect_rejected("PATCH", G + "/" + gw, json{{"vpn_gateway", {{"bandwidth", 200}}}}.dump(), 400,
                  "TierChangeNotAllowed", "bandwidth");
  expect_rejected("PATCH", G + "/" + gw, json{{"vpn_gateway", {{"type", "ssl"}}}}.dump(), 400,
                  "ImmutableField", "type");
  // Names.
  expect_rejected("POST", G, gw_body(std::string(61, 'n')).dump(), 400, "InvalidValue", "name");
  expect_rejected("POST", G, gw_body("bad name!").dump(), 400, "InvalidValue", "name");
  // Customer gateway IP classes.
  for (const char* ip : {"0.0.0.0", "255.255.255.255", "224.0.0.1", "127.0.0.1", "169.254.1.1",
                         "10.0.0.0", "10.255.255.255", "172.16.0.0", "172.16.255.255",
                         "192.168.1.0", "192.168.1.255", "240.0.0.1"}) {
    expect_rejected("POST", P, cgw_body("x", ip).dump(), 400, "InvalidValue", "ip");
  }
  expect_rejected("POST", P, cgw_body("x", "203.0.113.20").dump(), 409, "Duplicate", "ip");
  expect_rejected("POST", P, cgw_body("x", "203.0.113.30", {{"bgp_asn", 0}}).dump(), 400,
                  "InvalidValue", "bgp_asn");
  // One connection per gateway and customer gateway.
  expect_rejected("POST", C,
                  conn_body("x", gw, cgw, {rule("10.1.0.0/24", {"192.168.9.0/24"})}).dump(), 409,
                  "Duplicate", "cgw_id");
  // (a third customer gateway for connection-level checks)
  const auto cgw3 =
      create("/v1/customer-gateways", cgw_body("p3", "203.0.113.22"), "customer_gateway");
  auto cx = [&](json rules, json extra = json::object()) {
    return conn_body("x", gw, cgw3, std::move(rules), std::move(extra)).dump();
  };
  const json ok_rule = {rule("10.0.9.0/24", {"192.168.9.0/24"})};
  // Connection quota per gateway (2 in this config) comes first for gw.
  expect_rejected("POST", C, cx(ok_rule), 409, "QuotaExceeded", "vgw_id");
  // Free a slot: further connection checks run against a fresh gateway.
  const auto gw2 = make_gateway("gw2", {{"public_ips", {"198.51.100.20"}}});
  // Local CIDR inside the gateway's network; v4/v6 kept apart.
  auto cy = [&](json rules, json extra = json::object()) {
    return conn_body("y", gw2, cgw3, std::move(rules), std::move(extra)).dump();
  };
  expect_rejected("POST", C, cy({rule("10.1.0.0/24", {"192.168.9.0/24"})}), 400, "InvalidValue",
                  "policy_rules[0].source");
  expect_rejected("POST", C, cy({rule("10.0.9.0/24", {"2001:db8::/32"})}), 400, "InvalidValue",
                  "policy_rules[0].destination[0]");
  expect_rejected("POST", C, cy({rule("10.0.9.0/24", {"10.0.8.0/24"})}), 400, "InvalidValue",
                  "policy_rules[0].destination[0]");
  // Rules and CIDRs per connection (3 and 4 in this config).
  expect_rejected(
      "POST", C,
      cy({rule("10.0.1.0/24", {"192.168.1.0/24"}), rule("10.0.2.0/24", {"192.168.1.0/24"}),
          rule("10.0.3.0/24", {"192.168.1.0/24"}), rule("10.0.4.0/24", {"192.168.1.0/24"})}),
      409, "QuotaExceeded", "policy_rules");
  expect_rejected("POST", C,
                  cy({rule("10.0.1.0/24", {"192.168.1.0/24", "192.168.2.0/24", "192.168.3.0/24",
                                           "192.168.4.0/24", "192.168.5.0/24"})}),
                  409, "QuotaExceeded", "policy_rules[0].destination");
  // PSK charset and length.
  expect_rejected("POST", C, cy(ok_rule, {{"psk", "with space"}}), 400, "InvalidValue", "psk");
  expect_rejected("POST", C, cy(ok_rule, {{"psk", std::string(101, 'k')}}), 400, "InvalidValue",
                  "psk");
  expect_rejected("POST", C, cy(ok_rule, {{"psk", ""}}), 400, "InvalidValue", "psk");
  // Lifetimes and DPD ranges.
  expect_rejected("POST", C, cy(ok_rule, {{"ikepolicy", {{"lifetime_seconds", 59}}}}), 400,
                  "InvalidValue", "ikepolicy.lifetime_seconds");
  expect_rejected("POST", C, cy(ok_rule, {{"ipsecpolicy", {{"lifetime_seconds", 604801}}}}), 400,
                  "InvalidValue", "ipsecpolicy.lifetime_seconds");
  expect_rejected("POST", C, cy(ok_rule, {{"ikepolicy", {{"dpd", {{"interval", 5}}}}}}), 400,
                  "InvalidValue", "ikepolicy.dpd.interval");
  expect_rejected("POST", C, cy(ok_rule, {{"ikepolicy", {{"dpd", {{"timeout", 61}}}}}}), 400,
                  "InvalidValue", "ikepolicy.dpd.timeout");
  // BGP tunnel CIDR rules.
  auto bgp = [&](const char* cidr, const char* ip) {
    return conn_body(
               "y", gw2, cgw3, json::array(),
               {{"style", "BGP"}, {"tunnels", {{{"tunnel_cidr", cidr}, {"local_bgp_ip", ip}}}}})
        .dump();
  };
  expect_rejected("POST", C, bgp("169.254.10.0/30", "169.254.10.1"), 400, "InvalidValue",
                  "cgw_id");  // no ASN
  ASSERT_EQ(d_.patch(P + "/" + cgw3, {{"customer_gateway", {{"bgp_asn", 65010}}}}).status, 200);
  expect_rejected("POST", C, bgp("169.254.3.0/30", "169.254.3.1"), 400, "InvalidValue",
                  "tunnels[0].tunnel_cidr");
  expect_rejected("POST", C, bgp("169.254.169.252/30", "169.254.169.253"), 400, "InvalidValue",
                  "tunnels[0].tunnel_cidr");
  expect_rejected("POST", C, bgp("169.254.10.0/29", "169.254.10.1"), 400, "InvalidValue",
                  "tunnels[0].tunnel_cidr");
  expect_rejected("POST", C, bgp("169.254.10.0/30", "169.254.10.3"), 400, "InvalidValue",
                  "tunnels[0].local_bgp_ip");
  // Gateway quota (3 in this config: gw, gw2 and one more).
  make_gateway("gw3");
  expect_rejected("POST", G, gw_body("gw4").dump(), 409, "QuotaExceeded");
  // Customer gateway quota (3).
  expect_rejected("POST", P, cgw_body("p4", "203.0.113.40").dump(), 409, "QuotaExceeded");
  // Delete in use.
  expect_rejected("DELETE", G + "/" + gw, "", 409, "InUse");
  expect_rejected("DELETE", P + "/" + cgw, "", 409, "InUse");
  // Immutable endpoints of a connection.
  expect_rejected("PATCH", C + "/" + bid, conn_patch({{"cgw_id", cgw3}}), 400, "ImmutableField",
                  "cgw_id");
  // Unknown ids.
  expect_rejected("GET", G + "/vpngw-nope", "", 404, "NotFound");
  expect_rejected("PATCH", C + "/vpnconn-nope", conn_patch({{"name", "z"}}), 404, "NotFound");
  expect_rejected("DELETE", P + "/cgw-nope", "", 404, "NotFound");
  expect_rejected("POST", C, conn_body("z", "vpngw-nope", cgw3, ok_rule).dump(), 404, "NotFound",
                  "vgw_id");
  expect_rejected("POST", C, conn_body("z", gw2, "cgw-nope", ok_rule).dump(), 404, "NotFound",
                  "cgw_id");

  // And the allowed half of the worked example.
  auto ok = d_.patch(
      C + "/" + bid,
      {{"vpn_connection",
        {{"policy_rules",
          {rule("10.0.2.0/24", {"192.168.2.0/24"}), rule("10.0.1.0/24", {"192.168.1.0/24"})}}}}});
  EXPECT_EQ(ok.status, 200) << ok.body;
}

TEST_F(ApiTest, HostileBodiesGetClearErrors) {
  const std::string G = "/v1/vpn-gateways";
  expect_rejected("POST", G, "{not json", 400, "InvalidJson");
  expect_rejected("POST", G, "", 400, "InvalidJson");
  expect_rejected("POST", G, "[]", 400, "InvalidBody");
  expect_rejected("POST", G, R"({"vpn_gateway": 5})", 400, "WrongType");
  expect_rejected("POST", G, R"({"vpn_gateway": {}, "extra": 1})", 400, "InvalidBody");
  expect_rejected("POST", G, gw_body("g", {{"bandwidth", "100"}}).dump(), 400, "WrongType",
                  "bandwidth");
  expect_rejected("POST", G, gw_body("g", {{"bandwidth", 1e300}}).dump(), 400, "WrongType",
                  "bandwidth");
  expect_rejected("POST", G, gw_body("g", {{"bandwidth", -5}}).dump(), 400, "InvalidValue",
                  "bandwidth");
  expect_rejected("POST", G, gw_body("g", {{"colour", "red"}}).dump(), 400, "UnknownField",
                  "colour");
  expect_rejected("POST", G, gw_body("g", {{"id", "vpngw-mine"}}).dump(), 400, "ReadOnlyField",
                  "id");
  expect_rejected("POST", G, gw_body("g", {{"public_ips", "198.51.100.10"}}).dump(), 400,
                  "WrongType", "public_ips");
  expect_rejected("POST", G, "{\"vpn_gateway\": {\"name\": \"\xff\xfe\"}}", 400, "InvalidJson");
  expect_rejected("POST", G, std::string(100000, '[') + std::string(100000, ']'), 400,
                  "InvalidJson");
  // Declared as something other than JSON.
  {
    const std::string before = d_.db_bytes();
    auto r = d_.request("POST", G, gw_body("g").dump(), std::nullopt, "text/plain");
    EXPECT_EQ(r.status, 415);
    EXPECT_TRUE(d_.db_bytes() == before);
  }
  // A 10 MB body is refused before it is read.
  {
    const std::string before = d_.db_bytes();
    auto r = d_.request("POST", G, std::string(10 * 1024 * 1024, 'a'));
    EXPECT_EQ(r.status, 413);
    EXPECT_EQ(r.json()["error"]["code"], "PayloadTooLarge");
    EXPECT_TRUE(d_.db_bytes() == before);
  }
  EXPECT_EQ(d_.request("PUT", G, "{}").status, 405);
  EXPECT_EQ(d_.get("/v1/nothing").status, 404);
  // Still serving.
  EXPECT_EQ(d_.get(G).status, 200);
}

TEST_F(ApiTest, PskIsWriteOnly) {
  const std::string secret = "Sup3r-Secret_Psk!";
  const auto gw = make_gateway();
  const auto cgw =
      create("/v1/customer-gateways", cgw_body("p", "203.0.113.20"), "customer_gateway");
  auto r = d_.post(
      "/v1/vpn-connections",
      conn_body("c", gw, cgw, {rule("10.0.1.0/24", {"192.168.1.0/24"})}, {{"psk", secret}}));
  ASSERT_EQ(r.status, 201) << r.body;
  const std::string id = r.json()["vpn_connection"]["id"];
  EXPECT_EQ(r.body.find(secret), std::string::npos);
  EXPECT_FALSE(r.json()["vpn_connection"].contains("psk"));
  auto p = d_.patch("/v1/vpn-connections/" + id,
                    {{"vpn_connection", {{"psk", secret + "2"}, {"name", "c2"}}}});
  ASSERT_EQ(p.status, 200) << p.body;
  for (const auto& body :
       {d_.get("/v1/vpn-connections/" + id).body, d_.get("/v1/vpn-connections").body, p.body,
        d_.get("/v1/vpn-gateways").body}) {
    EXPECT_EQ(body.find(secret), std::string::npos) << body;
  }
  // A bad PSK's error names the field, not the value.
  auto bad =
      d_.patch("/v1/vpn-connections/" + id, {{"vpn_connection", {{"psk", "bad " + secret}}}});
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.body.find(secret), std::string::npos);
  const std::string log = d_.log();
  EXPECT_NE(log.find("event=api.request"), std::string::npos);  // the log is really there
  EXPECT_EQ(log.find(secret), std::string::npos) << log;
}

TEST_F(ApiTest, GeneratedPskWhenOmitted) {
  const auto gw = make_gateway();
  const auto cgw =
      create("/v1/customer-gateways", cgw_body("p", "203.0.113.20"), "customer_gateway");
  auto r = d_.post("/v1/vpn-connections",
                   conn_body("c", gw, cgw, {rule("10.0.1.0/24", {"192.168.1.0/24"})}));
  ASSERT_EQ(r.status, 201) << r.body;
  // Only the store sees it: 16 characters.
  const std::string db = d_.db_bytes();
  EXPECT_FALSE(r.json()["vpn_connection"].contains("psk"));
  EXPECT_EQ(d_.stop(), 0);
  const std::string out = [&] {
    std::string cmd = "sqlite3 '" + (d_.dir() / "xgw.db").string() +
                      "' 'SELECT length(psk) FROM vpn_connections'";
    FILE* f = ::popen(cmd.c_str(), "r");
    char buf[64] = {};
    if (f) {
      if (!fgets(buf, sizeof buf, f)) buf[0] = 0;
      ::pclose(f);
    }
    return std::string(buf);
  }();
  EXPECT_EQ(out, "16\n");
}

TEST_F(ApiTest, AcknowledgedCreateSurvivesKill9) {
  const auto gw = make_gateway();
  auto r = d_.post("/v1/customer-gateways", cgw_body("p", "203.0.113.20"));
  ASSERT_EQ(r.status, 201);
  const std::string id = r.json()["customer_gateway"]["id"];
  EXPECT_EQ(d_.stop(SIGKILL), -SIGKILL);
  d_.start();
  auto g = d_.get("/v1/customer-gateways/" + id);
  ASSERT_EQ(g.status, 200) << g.body;
  EXPECT_EQ(g.json()["customer_gateway"]["ip"], "203.0.113.20");
  EXPECT_EQ(d_.get("/v1/vpn-gateways/" + gw).status, 200);
}

TEST_F(ApiTest, SighupReloadsQuotasAndSigtermStopsCleanly) {
  make_gateway("a");
  d_.set_config("quotas:\n  gateways_per_vpc: 1\n");
  d_.signal(SIGHUP);
  bool reloaded = false;
  for (int i = 0; i < 200 && !reloaded; ++i) {
    reloaded = d_.log().find("event=xgwd.reloaded") != std::string::npos;
    if (!reloaded) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(reloaded);
  expect_rejected("POST", "/v1/vpn-gateways", gw_body("b").dump(), 409, "QuotaExceeded");
  EXPECT_EQ(d_.stop(SIGTERM), 0);
  EXPECT_NE(d_.log().find("event=xgwd.stopped"), std::string::npos);
}

TEST_F(ApiTest, PendingGatewayBecomesRunningAndThenDeletes) {
  auto r = d_.post("/v1/vpn-gateways", gw_body("g"));
  ASSERT_EQ(r.status, 201);
  EXPECT_EQ(r.json()["vpn_gateway"]["status"], "pending");
  const std::string id = r.json()["vpn_gateway"]["id"];
  wait_running(id);
  EXPECT_EQ(d_.del("/v1/vpn-gateways/" + id).status, 204);
}

}  // namespace
}  // namespace xgw::test
