// Randomly mutated request bodies (fixed seed, so failures reproduce) go
// through the whole control plane: codec, rules, store. Every outcome must
// be a success or a well-formed error; nothing may crash, and the store
// must stay readable and consistent with the rules.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "control/service.h"

namespace xgw::control {
namespace {

Json mutate(Json j, std::mt19937& rng, int depth = 0) {
  std::uniform_int_distribution<int> pick(0, 9);
  static const Json kValues[] = {nullptr,
                                 true,
                                 0,
                                 -1,
                                 4294967296LL,
                                 1.5,
                                 "",
                                 "x",
                                 "10.0.0.0/24",
                                 "10.0.0.1/24",
                                 "::/0",
                                 "169.254.10.0/30",
                                 Json::array(),
                                 Json::object(),
                                 std::string(200, 'a'),
                                 "\xe4\xb8\xad",
                                 "group14",
                                 "aes-128-gcm-16",
                                 "BGP",
                                 "v1"};
  std::uniform_int_distribution<size_t> val(0, std::size(kValues) - 1);
  if (j.is_object() && !j.empty() && depth < 6) {
    auto it = j.begin();
    std::advance(it, std::uniform_int_distribution<size_t>(0, j.size() - 1)(rng));
    switch (pick(rng)) {
      case 0:
        j.erase(it);
        break;
      case 1:
        *it = kValues[val(rng)];
        break;
      case 2:
        j["unexpected_" + std::to_string(pick(rng))] = kValues[val(rng)];
        break;
      default:
        *it = mutate(*it, rng, depth + 1);
    }
  } else if (j.is_array() && !j.empty() && depth < 6) {
    const size_t i = std::uniform_int_distribution<size_t>(0, j.size() - 1)(rng);
    switch (pick(rng)) {
      case 0:
        j.erase(i);
        break;
      case 1:
        j.push_back(j[i]);
        break;
      default:
        j[i] = mutate(j[i], rng, depth + 1);
    }
  } else if (pick(rng) < 7) {
    j = kValues[val(rng)];
  }
  return j;
}

void expect_well_formed(const ControlPlane::Result& r, const Json& body) {
  if (r) return;
  const auto& e = r.error();
  EXPECT_TRUE(e.http_status == 400 || e.http_status == 404 || e.http_status == 409)
      << e.http_status << " " << e.code << " for " << body.dump();
  EXPECT_FALSE(e.code.empty());
  EXPECT_FALSE(e.message.empty());
}

TEST(ServiceMutation, RandomBodiesNeverCrashAndStoreStaysValid) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("xgw-mutation-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto store = store::Store::open((dir / "xgw.db").string());
  ASSERT_TRUE(store);
  ControlPlane cp(**store, Quotas{});

  auto gw = cp.create_gateway(Json::parse(R"({"vpn_gateway":{"name":"gw","bandwidth":100,
      "local_cidr":"10.0.0.0/16","local_cidr_v6":"fd00::/48","public_ips":["198.51.100.10","198.51.100.11"]}})"));
  ASSERT_TRUE(gw);
  const std::string gw_id = (*gw)["vpn_gateway"]["id"];
  auto cgw = cp.create_customer_gateway(
      Json::parse(R"({"customer_gateway":{"name":"p","ip":"203.0.113.20","bgp_asn":65000}})"));
  ASSERT_TRUE(cgw);
  const std::string cgw_id = (*cgw)["customer_gateway"]["id"];

  const Json conn = {
      {"vpn_connection",
       {{"name", "c"},
        {"vgw_id", gw_id},
        {"cgw_id", cgw_id},
        {"psk", "k"},
        {"policy_rules", {{{"source", "10.0.1.0/24"}, {"destination", {"192.168.1.0/24"}}}}},
        {"ikepolicy", {{"ike_version", "v2"}, {"dpd", {{"interval", 30}}}}},
        {"ipsecpolicy", {{"encryption_algorithm", "aes-128"}}},
        {"tunnels", {{{"ha_role", "master"}}, {{"ha_role", "slave"}}}}}}};
  const Json gateway = {{"vpn_gateway",
                         {{"name", "g2"},
                          {"bandwidth", 10},
                          {"local_cidr", "10.1.0.0/16"},
                          {"public_ips", {"198.51.100.20"}}}}};

  std::mt19937 rng(20261121);
  int accepted = 0, rejected = 0;
  for (int i = 0; i < 3000; ++i) {
    const Json base = (i % 3 == 0) ? gateway : conn;
    const Json body = mutate(base, rng);
    auto r = base.contains("vpn_gateway") ? cp.create_gateway(body) : cp.create_connection(body);
    expect_well_formed(r, body);
    r ? ++accepted : ++rejected;
    // Mutated patches against what exists.
    auto list = cp.list_connections();
    ASSERT_TRUE(list);
    for (const auto& c : (*list)["vpn_connections"]) {
      const Json patch = {{"vpn_connection", mutate(conn["vpn_connection"], rng)}};
      expect_well_formed(cp.update_connection(c["id"], patch), patch);
      if (rng() % 4 == 0) {
        ASSERT_TRUE(cp.delete_connection(c["id"]));
      }
    }
  }
  RecordProperty("accepted", accepted);
  std::printf("accepted %d, rejected %d\n", accepted, rejected);
  EXPECT_GT(accepted, 0);
  EXPECT_GT(rejected, 0);
  // Whatever was stored still satisfies the rules when read back.
  auto conns = (*store)->connections_of_gateway(gw_id);
  ASSERT_TRUE(conns) << conns.error().message;
  auto g = (*store)->gateway(gw_id);
  auto p = (*store)->customer_gateway(cgw_id);
  ASSERT_TRUE(g && *g && p && *p);
  for (const auto& c : *conns) {
    std::vector<VpnConnection> others;
    for (const auto& o : *conns)
      if (o.id != c.id) others.push_back(o);
    EXPECT_FALSE(check_connection(c, **g, **p, others, Quotas{})) << c.id;
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace xgw::control
