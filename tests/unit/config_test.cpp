#include "xgwd/config.h"

#include <gtest/gtest.h>

namespace xgw::xgwd {
namespace {

TEST(Config, DefaultsAndOverrides) {
  auto c = parse_config("", Config{});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->state_dir, "/var/lib/xgw");
  EXPECT_EQ(c->api_listen, "127.0.0.1:9740");
  EXPECT_EQ(c->quotas.gateways_per_vpc, 10u);
  c = parse_config(R"(
state_dir: /tmp/x
log_level: debug
api:
  listen: 0.0.0.0:1234
  token_file: /etc/xgw/token
quotas:
  gateways_per_vpc: 3
  cidrs_per_rule: 80
)",
                   Config{});
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->state_dir, "/tmp/x");
  EXPECT_EQ(c->log_level, "debug");
  EXPECT_EQ(c->api_listen, "0.0.0.0:1234");
  EXPECT_EQ(c->api_token_file, "/etc/xgw/token");
  EXPECT_EQ(c->quotas.gateways_per_vpc, 3u);
  EXPECT_EQ(c->quotas.cidrs_per_rule, 80u);
  EXPECT_EQ(c->quotas.customer_gateways, 20u);
}

TEST(Config, RejectsTyposAndBadValues) {
  for (const char* bad :
       {"stat_dir: /x", "api: {listn: x}", "quotas: {gateways: 1}", "quotas: {gateways_per_vpc: 0}",
        "quotas: {gateways_per_vpc: many}", "log_level: loud", "[1, 2]", "api: 5", "{unclosed"}) {
    auto c = parse_config(bad, Config{});
    EXPECT_FALSE(c) << bad;
    if (!c) {
      EXPECT_NE(c.error().find("config:"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace xgw::xgwd

namespace xgw::xgwd {
namespace {

TEST(Config, Dataplane) {
  auto c = parse_config("", Config{});
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->dataplane.enabled);
  c = parse_config(R"(
dataplane:
  pin_dir: /sys/fs/bpf/xgw/site1
  tier: percpu
  backend: xfrm
  drop_unmatched: true
  gateways:
    gw-hq: {lan_interface: eth1, wan_interface: eth0}
)",
                   Config{});
  ASSERT_TRUE(c) << c.error();
  EXPECT_TRUE(c->dataplane.enabled);
  EXPECT_EQ(c->dataplane.pin_dir, "/sys/fs/bpf/xgw/site1");
  EXPECT_TRUE(c->dataplane.tier_percpu);
  EXPECT_EQ(c->dataplane.backend, "xfrm");
  EXPECT_TRUE(c->dataplane.drop_unmatched);
  EXPECT_FALSE(c->dataplane.drop_no_sa);
  EXPECT_EQ(c->dataplane.gateways.at("gw-hq").lan_interface, "eth1");
  EXPECT_EQ(c->dataplane.gateways.at("gw-hq").wan_interface, "eth0");
  // auto: resolved at start by a probe (xgwd/dataplane_factory.h).
  c = parse_config("dataplane: {backend: auto}", Config{});
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->dataplane.backend, "auto");
  // How plaintext reaches the userspace ESP engine: route unless told.
  EXPECT_EQ(c->dataplane.userspace_path, "route");
  c = parse_config("dataplane: {userspace_path: devmap}", Config{});
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->dataplane.userspace_path, "devmap");
  for (const char* bad :
       {"dataplane: {pin_dir: /tmp/x}", "dataplane: {tier: fast}", "dataplane: {backend: dpdk}",
        "dataplane: {gateways: {g: {lan_interface: averyveryverylongname}}}",
        "dataplane: {gateways: {g: {}}}", "dataplane: {gateways: {g: {lan: eth0}}}",
        "dataplane: {drop_unmatched: maybe}", "dataplane: 3",
        "dataplane: {userspace_path: afxdp}"}) {
    EXPECT_FALSE(parse_config(bad, Config{})) << bad;
  }
}

}  // namespace
}  // namespace xgw::xgwd
