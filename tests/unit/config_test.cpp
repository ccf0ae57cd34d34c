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
