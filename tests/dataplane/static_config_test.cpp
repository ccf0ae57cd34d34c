// xgw-esp-static's YAML: the backend key (userspace | xfrm) and the keys
// that only the userspace backend understands. Unprivileged.
#include "xgw-esp-static/static_config.h"

#include <gtest/gtest.h>

namespace xgw::esp_static {
namespace {

const char* kSas = R"(
sas:
  - {name: o, direction: out, spi: 0x1001, local: 192.0.2.1, remote: 192.0.2.2, encap: none,
     encr: aes128gcm16, encr_key: "0x0102030405060708090a0b0c0d0e0f1011121314"}
policies:
  - {src: 10.1.0.0/24, dst: 10.2.0.0/24, sa: o}
)";

TEST(StaticConfig, BackendDefaultsToUserspace) {
  auto c = parse_static_config(kSas);
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->backend, StaticConfig::Backend::Userspace);
  EXPECT_TRUE(c->install_routes);
}

TEST(StaticConfig, XfrmBackendSharesPortAndFamilyKeys) {
  auto c = parse_static_config(std::string("backend: xfrm\nudp_port: 14500\nipv6: false\n") + kSas);
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ(c->backend, StaticConfig::Backend::Xfrm);
  EXPECT_EQ(c->xfrm.udp_port, 14500);
  EXPECT_FALSE(c->xfrm.ipv6);
  EXPECT_FALSE(c->install_routes);  // the kernel path routes nothing itself
  ASSERT_EQ(c->sas.size(), 1u);
  ASSERT_EQ(c->policies.size(), 1u);
}

TEST(StaticConfig, UserspaceOnlyKeysAreErrorsWithXfrm) {
  for (const char* k : {"tun: x0", "device: tap", "mtu: 1400", "workers: 1", "raw_esp: true",
                        "udp_gso: false", "install_routes: true"}) {
    auto c = parse_static_config(std::string("backend: xfrm\n") + k + "\n" + kSas);
    ASSERT_FALSE(c) << k;
    EXPECT_NE(c.error().find("only with backend: userspace"), std::string::npos) << c.error();
  }
  auto bad = parse_static_config(std::string("backend: kernel\n") + kSas);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("backend"), std::string::npos);
}

}  // namespace
}  // namespace xgw::esp_static
