// Unit tests of xgwctl's logic without a daemon: YAML -> JSON typing, the
// apply diff, the apply plan against a fake API, lookups and formatting.
#include <gtest/gtest.h>

#include <map>

#include "xgwctl/apply.h"
#include "xgwctl/diff.h"
#include "xgwctl/output.h"
#include "xgwctl/resources.h"
#include "xgwctl/yaml_json.h"

namespace xgw::ctl {
namespace {

Json yaml(const std::string& text) {
  auto j = parse_yaml(text, "test");
  EXPECT_TRUE(j) << j.error();
  return j ? *j : Json();
}

std::string yaml_error(const std::string& text) {
  auto j = parse_yaml(text, "test");
  EXPECT_FALSE(j);
  return j ? std::string() : j.error();
}

TEST(YamlToJson, PlainScalarsFollowTheCoreSchema) {
  Json j = yaml(
      "int: 100\nneg: -5\nhex: 0x1F\noct: 0o17\nbig: 4294967295\nfloat: 1.5\n"
      "t: true\nf: False\nnull1: ~\nnull2:\nnull3: null\n"
      "cidr: 10.0.0.0/24\nip: 198.51.100.10\nversion: 1.2.3\nword: yes\nalg: aes-128-gcm-16\n");
  EXPECT_TRUE(j["int"].is_number_integer());
  EXPECT_EQ(j["int"], 100);
  EXPECT_EQ(j["neg"], -5);
  EXPECT_EQ(j["hex"], 31);
  EXPECT_EQ(j["oct"], 15);
  EXPECT_EQ(j["big"], 4294967295ULL);
  EXPECT_TRUE(j["float"].is_number_float());
  EXPECT_EQ(j["t"], true);
  EXPECT_EQ(j["f"], false);
  EXPECT_TRUE(j["null1"].is_null());
  EXPECT_TRUE(j["null2"].is_null());
  EXPECT_TRUE(j["null3"].is_null());
  EXPECT_EQ(j["cidr"], "10.0.0.0/24");
  EXPECT_EQ(j["ip"], "198.51.100.10");
  EXPECT_EQ(j["version"], "1.2.3");
  EXPECT_EQ(j["word"], "yes");  // YAML 1.2: not a boolean
  EXPECT_EQ(j["alg"], "aes-128-gcm-16");
}

TEST(YamlToJson, QuotedBlockAndTaggedScalarsAreStrings) {
  Json j = yaml(
      "a: '100'\nb: \"true\"\nc: 'null'\nd: !!str 42\ne: |\n  two\n  lines\nf: !!int '7'\n"
      "g: '10.0.0.0/24'\n");
  EXPECT_EQ(j["a"], "100");
  EXPECT_EQ(j["b"], "true");
  EXPECT_EQ(j["c"], "null");
  EXPECT_EQ(j["d"], "42");
  EXPECT_EQ(j["e"], "two\nlines\n");
  EXPECT_EQ(j["f"], 7);
  EXPECT_EQ(j["g"], "10.0.0.0/24");
}

TEST(YamlToJson, NestedListsAndMaps) {
  Json j = yaml(
      "vpn_connections:\n"
      "  - name: c1\n"
      "    policy_rules:\n"
      "      - source: 10.10.1.0/24\n"
      "        destination: [192.168.10.0/24, 192.168.11.0/24]\n"
      "    ikepolicy: {ike_version: v2, dpd: {interval: 30}}\n");
  const Json& c = j["vpn_connections"][0];
  EXPECT_EQ(c["policy_rules"][0]["destination"],
            Json::array({"192.168.10.0/24", "192.168.11.0/24"}));
  EXPECT_EQ(c["ikepolicy"]["dpd"]["interval"], 30);
  EXPECT_EQ(c["ikepolicy"]["ike_version"], "v2");
}

TEST(YamlToJson, ErrorsNameThePlace) {
  EXPECT_NE(yaml_error("a: 1\na: 2\n").find("a: duplicate key"), std::string::npos);
  EXPECT_NE(yaml_error("x:\n  - {k: .inf}\n").find("x[0].k"), std::string::npos);
  EXPECT_NE(yaml_error("a: !custom v\n").find("unsupported YAML tag"), std::string::npos);
  EXPECT_NE(yaml_error("a: [1, 2\n").find("test:"), std::string::npos);  // parse error position
  EXPECT_NE(yaml_error("a: !!int abc\n").find("not a valid !!int"), std::string::npos);
}

TEST(YamlToJson, EmptyDocumentIsNull) {
  EXPECT_TRUE(yaml("").is_null());
}

TEST(Diff, MatchesComparesOnlyTheGivenKeys) {
  const Json current = Json::parse(R"({"name":"c","bandwidth":100,"ikepolicy":{"ike_version":"v2",
      "dpd":{"interval":30,"timeout":15}},"tunnels":[{"ha_role":"master","local_ip":"1.2.3.4"}],
      "peer_subnets":[]})");
  EXPECT_TRUE(matches(Json::parse(R"({"bandwidth":100})"), current));
  EXPECT_TRUE(matches(Json::parse(R"({"bandwidth":100.0})"), current));  // by value
  EXPECT_TRUE(matches(Json::parse(R"({"ikepolicy":{"dpd":{"interval":30}}})"), current));
  EXPECT_TRUE(matches(Json::parse(R"({"tunnels":[{"ha_role":"master"}]})"), current));
  EXPECT_TRUE(matches(Json::parse(R"({"local_cidr_v6":null})"), current));
  EXPECT_FALSE(matches(Json::parse(R"({"bandwidth":"100"})"), current));  // types matter
  EXPECT_FALSE(
      matches(Json::parse(R"({"tunnels":[{"ha_role":"master"},{"ha_role":"slave"}]})"), current));
  EXPECT_FALSE(matches(Json::parse(R"({"missing":1})"), current));
  EXPECT_FALSE(matches(Json::parse(R"({"name":null})"), current));
}

TEST(Diff, PatchHoldsOnlyDifferencesWithNestedPaths) {
  const Json current = Json::parse(R"({"name":"c","bandwidth":100,"public_ips":["1.1.1.1"],
      "ikepolicy":{"ike_version":"v2","dpd":{"interval":30,"timeout":15}}})");
  const Json desired = Json::parse(R"({"name":"c","bandwidth":50,"public_ips":["1.1.1.1","2.2.2.2"],
      "ikepolicy":{"ike_version":"v2","dpd":{"interval":10,"timeout":15}},"local_cidr_v6":null})");
  FieldDiff d = diff_objects(desired, current);
  EXPECT_EQ(d.fields,
            (std::vector<std::string>{"bandwidth", "ikepolicy.dpd.interval", "public_ips"}));
  EXPECT_EQ(d.patch, Json::parse(R"({"bandwidth":50,"public_ips":["1.1.1.1","2.2.2.2"],
      "ikepolicy":{"dpd":{"interval":10}}})"));
  EXPECT_TRUE(diff_objects(current, current).empty());
}

TEST(Diff, ArraysAreSentWhole) {
  const Json current = Json::parse(
      R"({"policy_rules":[{"source":"10.0.0.0/24","destination":["192.168.0.0/24"]}]})");
  const Json desired = Json::parse(
      R"({"policy_rules":[{"source":"10.0.0.0/24","destination":["192.168.1.0/24"]}]})");
  FieldDiff d = diff_objects(desired, current);
  EXPECT_EQ(d.fields, std::vector<std::string>{"policy_rules"});
  EXPECT_EQ(d.patch["policy_rules"], desired["policy_rules"]);
}

TEST(Diff, SetPathBuildsObjects) {
  Json j = Json::object();
  ASSERT_TRUE(set_path(j, "ikepolicy.dpd.interval", 10));
  ASSERT_TRUE(set_path(j, "name", "x"));
  EXPECT_EQ(j, Json::parse(R"({"ikepolicy":{"dpd":{"interval":10}},"name":"x"})"));
  EXPECT_FALSE(set_path(j, "name.sub", 1));
  EXPECT_FALSE(set_path(j, "a..b", 1));
}

// Records calls; answers like xgwd would for the collections it holds.
class FakeApi : public Api {
 public:
  std::map<std::string, Json> lists{{"/v1/vpn-gateways", Json::array()},
                                    {"/v1/customer-gateways", Json::array()},
                                    {"/v1/vpn-connections", Json::array()}};
  std::vector<std::pair<std::string, Json>> calls;  // "METHOD path", body

  Expected<Json, ApiError> call(std::string_view method, const std::string& path,
                                const Json* body) override {
    const std::string m(method);
    if (m != "GET") calls.emplace_back(m + " " + path, body ? *body : Json());
    for (const Resource* r : {&kGateway, &kPeer, &kConnection}) {
      if (m == "GET" && path == r->path) return Json{{r->list_key, lists[path]}};
      if (m == "POST" && path == r->path) {
        Json o = (*body)[r->key];
        o["id"] = std::string(r->noun) + "-" + std::to_string(++next_);
        lists[path].push_back(o);
        return Json{{r->key, o}};
      }
      if (m == "PATCH" && path.rfind(std::string(r->path) + "/", 0) == 0) {
        for (auto& o : lists[r->path])
          if (path == std::string(r->path) + "/" + o["id"].get<std::string>()) {
            o.merge_patch((*body)[r->key]);
            return Json{{r->key, o}};
          }
        return unexpected(ApiError{404, "NotFound", "no such object", ""});
      }
    }
    return unexpected(ApiError{404, "NotFound", "unknown path " + path, ""});
  }

 private:
  int next_ = 0;
};

const char* kDoc = R"(
vpn_gateways:
  - {name: gw, bandwidth: 100, local_cidr: 10.10.0.0/16, public_ips: [198.51.100.10]}
customer_gateways:
  - {name: peer, ip: 203.0.113.20}
vpn_connections:
  - name: conn
    vpn_gateway: gw
    customer_gateway: peer
    psk: secret
    ikepolicy: {ike_version: v2}
)";

TEST(Apply, CreatesInOrderThenReportsUnchanged) {
  FakeApi api;
  Json doc = yaml(kDoc);
  ASSERT_FALSE(validate_apply_doc(doc));
  std::vector<std::string> lines, notes;
  ApplyCallbacks cb;
  cb.on_event = [&](const ApplyEvent& e) { lines.push_back(describe(e)); };
  cb.on_note = [&](const std::string& n) { notes.push_back(n); };

  auto sum = apply(api, doc, cb);
  ASSERT_TRUE(sum) << sum.error().describe();
  EXPECT_EQ(sum->created, 3);
  ASSERT_EQ(api.calls.size(), 3u);
  EXPECT_EQ(api.calls[0].first, "POST /v1/vpn-gateways");
  EXPECT_EQ(api.calls[1].first, "POST /v1/customer-gateways");
  EXPECT_EQ(api.calls[2].first, "POST /v1/vpn-connections");
  const Json& conn = api.calls[2].second["vpn_connection"];
  EXPECT_EQ(conn["vgw_id"], "gateway-1");  // the name became the new id
  EXPECT_EQ(conn["cgw_id"], "peer-2");
  EXPECT_FALSE(conn.contains("vpn_gateway"));
  EXPECT_EQ(conn["psk"], "secret");  // sent on create
  EXPECT_EQ(lines[0], "created gateway gw (gateway-1)");

  // The fake stores the PSK it was sent; xgwd would not show it. Drop it
  // so the second run sees what the real server returns.
  api.lists["/v1/vpn-connections"][0].erase("psk");
  lines.clear();
  api.calls.clear();
  sum = apply(api, doc, cb);
  ASSERT_TRUE(sum);
  EXPECT_EQ(sum->unchanged, 3);
  EXPECT_TRUE(api.calls.empty());
  EXPECT_EQ(lines[2], "unchanged connection conn (connection-3)");
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("psk is write-only"), std::string::npos);
}

TEST(Apply, PatchesOnlyTheDifference) {
  FakeApi api;
  ASSERT_TRUE(apply(api, yaml(kDoc), {}));
  api.calls.clear();
  std::string edited = kDoc;
  edited.replace(edited.find("bandwidth: 100"), 14, "bandwidth: 50");
  std::vector<std::string> lines;
  ApplyCallbacks cb;
  cb.on_event = [&](const ApplyEvent& e) { lines.push_back(describe(e)); };
  auto sum = apply(api, yaml(edited), cb);
  ASSERT_TRUE(sum);
  EXPECT_EQ(sum->updated, 1);
  EXPECT_EQ(sum->unchanged, 2);
  ASSERT_EQ(api.calls.size(), 1u);
  EXPECT_EQ(api.calls[0].first, "PATCH /v1/vpn-gateways/gateway-1");
  EXPECT_EQ(api.calls[0].second, Json::parse(R"({"vpn_gateway":{"bandwidth":50}})"));
  EXPECT_EQ(lines[0], "updated gateway gw (gateway-1): fields bandwidth");
}

TEST(Apply, DryRunChangesNothing) {
  FakeApi api;
  ApplyCallbacks cb;
  cb.dry_run = true;
  auto sum = apply(api, yaml(kDoc), cb);
  ASSERT_TRUE(sum);
  EXPECT_EQ(sum->created, 3);
  EXPECT_TRUE(api.calls.empty());
}

TEST(Apply, UnknownReferenceFailsBeforeAnyChange) {
  FakeApi api;
  std::string doc = kDoc;
  doc.replace(doc.find("vpn_gateway: gw"), 15, "vpn_gateway: nope");
  auto sum = apply(api, yaml(doc), {});
  ASSERT_FALSE(sum);
  EXPECT_NE(sum.error().message.find("nope"), std::string::npos);
  EXPECT_TRUE(api.calls.empty());
}

TEST(Apply, ValidationCatchesShapeErrors) {
  EXPECT_FALSE(validate_apply_doc(Json()));  // empty file: nothing to do
  auto bad = [](const std::string& text) {
    auto e = validate_apply_doc(yaml(text));
    return e ? *e : std::string("<valid>");
  };
  EXPECT_NE(bad("gateways: []").find("unknown section 'gateways'"), std::string::npos);
  EXPECT_NE(bad("vpn_gateways: {name: x}").find("must be a list"), std::string::npos);
  EXPECT_NE(bad("vpn_gateways: [{bandwidth: 5}]").find("name is required"), std::string::npos);
  EXPECT_NE(bad("vpn_gateways: [{name: a}, {name: a}]").find("appears twice"), std::string::npos);
  EXPECT_NE(bad("vpn_gateways: [{name: a, id: x}]").find("read-only"), std::string::npos);
  EXPECT_NE(bad("vpn_connections: [{name: c, customer_gateway: p}]").find("vpn_gateway"),
            std::string::npos);
  EXPECT_NE(bad("vpn_connections: [{name: c, vpn_gateway: g, vgw_id: x, customer_gateway: p}]")
                .find("exactly one"),
            std::string::npos);
}

TEST(Resources, FindByIdOrUniqueName) {
  const Json items = Json::parse(R"([{"id":"vpngw-1","name":"a"},{"id":"vpngw-2","name":"b"},
      {"id":"vpngw-3","name":"b"}])");
  EXPECT_EQ((*find_by_ref(items, kGateway, "a"))["id"], "vpngw-1");
  EXPECT_EQ((*find_by_ref(items, kGateway, "vpngw-3"))["id"], "vpngw-3");
  auto amb = find_by_ref(items, kGateway, "b");
  ASSERT_FALSE(amb);
  EXPECT_NE(amb.error().message.find("vpngw-2, vpngw-3"), std::string::npos);
  auto none = find_by_ref(items, kGateway, "zzz");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().status, 404);
}

TEST(Output, TableColumnsAlign) {
  EXPECT_EQ(format_table({"NAME", "ID"}, {{"a-long-name", "x"}, {"b", "y"}}),
            "NAME         ID\n"
            "a-long-name  x\n"
            "b            y\n");
}

TEST(Output, RulesSummaryUsesRuleSyntax) {
  const Json c = Json::parse(R"({"style":"POLICY","policy_rules":[
      {"source":"10.0.0.0/24","destination":["192.168.0.0/24","192.168.1.0/24"]},
      {"source":"10.0.1.0/24","destination":["192.168.2.0/24"]},
      {"source":"10.0.2.0/24","destination":["192.168.3.0/24"]}]})");
  EXPECT_EQ(rules_summary(c),
            "10.0.0.0/24=192.168.0.0/24,192.168.1.0/24; 10.0.1.0/24=192.168.2.0/24; (+1 more)");
}

TEST(Endpoint, Parses) {
  auto a = parse_endpoint("127.0.0.1:39953");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, "39953");
  auto b = parse_endpoint("http://[::1]:9740/");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->str(), "[::1]:9740");
  EXPECT_EQ(parse_endpoint("localhost")->port, "9740");
  EXPECT_FALSE(parse_endpoint("host:port"));
  EXPECT_FALSE(parse_endpoint(":80"));
}

TEST(FormatSas, SwanctlStyle) {
  const Json sas = Json::parse(R"([{
    "ike_sa_id": 3, "connection": "hq", "state": "ESTABLISHED", "version": 2, "initiator": true,
    "spi_i": "91bd1b18250cb29c", "spi_r": "8aa22bb098f1ebbb", "local": "192.0.2.1:4500",
    "remote": "192.0.2.2:4500", "local_id": "192.0.2.1", "remote_id": "gw.example.org",
    "algorithms": "aes128-sha256-prfsha256-modp2048", "nat_local": false, "nat_remote": true,
    "established_seconds": 75, "rekey_in_seconds": 7300,
    "children": [{"name": "rule1", "reqid": 1000, "state": "INSTALLED", "mode": "TUNNEL-in-UDP",
                  "algorithms": "aes128gcm16", "spi_in": "66d8fad7", "spi_out": "13a501ed",
                  "local_ts": ["10.1.0.0/24"], "remote_ts": ["10.2.0.0/24", "10.3.0.0/24"],
                  "installed_seconds": 5, "rekey_in_seconds": 3000, "bytes_in": 336,
                  "packets_in": 4, "bytes_out": 84, "packets_out": 1}]}])");
  EXPECT_EQ(format_sas(sas),
            "hq: #3, ESTABLISHED, IKEv2, 91bd1b18250cb29c_i* 8aa22bb098f1ebbb_r\n"
            "  local  '192.0.2.1' @ 192.0.2.1:4500\n"
            "  remote 'gw.example.org' @ 192.0.2.2:4500 (behind NAT)\n"
            "  aes128-sha256-prfsha256-modp2048\n"
            "  established 75s ago, rekeying in 2h\n"
            "  rule1: reqid 1000, INSTALLED, TUNNEL-in-UDP, ESP:aes128gcm16\n"
            "    installed 5s ago, rekeying in 50m\n"
            "    in  66d8fad7, 336 bytes, 4 packets\n"
            "    out 13a501ed, 84 bytes, 1 packets\n"
            "    local  10.1.0.0/24\n"
            "    remote 10.2.0.0/24 10.3.0.0/24\n");
  EXPECT_EQ(format_sas(Json::array()), "");
}

TEST(Output, DataplaneReadsLikeAnOperatorSummary) {
  // The shape GET /v1/dataplane returns (xgwd/xdp_sync.cpp status_json).
  const Json d = Json::parse(R"({
    "enabled": true, "backend": "userspace", "pin_dir": "/sys/fs/bpf/xgw/lab",
    "inbound_sas": 2, "acquires": 1,
    "gateways": [{
      "id": "vpngw-1", "name": "gw-lab", "index": 0, "status": "error",
      "status_reason": "no xgw program on wan0", "tier_bps": 100000000,
      "interfaces": [{"name": "lan0", "role": "lan", "attached": true},
                     {"name": "wan0", "role": "wan", "attached": false}],
      "traffic": {"tx_packets": 10, "tx_bytes": 1000, "rx_packets": 9, "rx_bytes": 1200},
      "drops": {"malformed": 0, "unknown_spi": 3},
      "passes": {"ike": 4, "userspace": 10, "xfrm": 0},
      "tunnels": [{"connection": "hq", "tunnel": 0, "index": 5, "sa_ready": true,
                   "out_spi": "c0ffee01",
                   "traffic": {"tx_packets": 10, "tx_bytes": 1000, "rx_packets": 9,
                               "rx_bytes": 1200}},
                  {"connection": "hq", "tunnel": 1, "index": 6, "sa_ready": false,
                   "out_spi": ""}]}]})");
  EXPECT_EQ(format_dataplane(d),
            "backend userspace, pins /sys/fs/bpf/xgw/lab, 2 inbound SAs, 1 acquires\n"
            "gw-lab: error (no xgw program on wan0), tier 100 Mbit/s each way\n"
            "  lan lan0, xgw program attached\n"
            "  wan wan0, NOT attached\n"
            "  traffic tx 10 pkts 1000 B, rx 9 pkts 1200 B\n"
            "  drops unknown_spi 3\n"
            "  passes ike 4, userspace 10\n"
            "  hq: tunnel 5, SA ready, out c0ffee01, tx 10 pkts 1000 B, rx 9 pkts 1200 B\n"
            "  hq/standby: tunnel 6, no SA\n");
  EXPECT_EQ(format_dataplane(Json{{"enabled", false}}),
            "the XDP data plane is not enabled (no dataplane: section)\n");
}

}  // namespace
}  // namespace xgw::ctl
