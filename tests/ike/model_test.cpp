// xgwd's IKEv2 reconciler: the object model (SPEC §2, §4) mapped onto the
// daemon's connections, and the `ike:` section of xgwd's config.
#include <gtest/gtest.h>

#include "control/codec.h"
#include "xgwd/config.h"
#include "xgwd/ike_sync.h"

namespace xgw::xgwd {
namespace {

using namespace control;

struct Objects {
  VpnGateway gw;
  CustomerGateway cgw;
  VpnConnection c;
};

Objects objects() {
  Objects o;
  o.gw.id = "vpngw-1";
  o.gw.name = "gw";
  o.gw.local_cidr = *net::Cidr::parse("10.1.0.0/16");
  o.gw.public_ips = {*net::IpAddr::parse("192.0.2.1"), *net::IpAddr::parse("192.0.2.2")};
  o.cgw.id = "cgw-1";
  o.cgw.name = "peer";
  o.cgw.ip = *net::IpAddr::parse("198.51.100.7");
  o.c.id = "vpnconn-1";
  o.c.name = "to-branch";
  o.c.psk = "secret-1";
  o.c.ikepolicy.ike_version = IkeVersion::V2;
  o.c.ikepolicy.encryption_algorithm = Encryption::Aes256;
  o.c.ikepolicy.authentication_algorithm = Integrity::Sha2_512;
  o.c.ikepolicy.dh_group = DhGroup::G20;
  o.c.ikepolicy.lifetime_seconds = 7200;
  o.c.ikepolicy.dpd.interval = 20;
  o.c.ikepolicy.dpd.timeout = 9;
  o.c.ipsecpolicy.encryption_algorithm = Encryption::Aes128Gcm16;
  o.c.ipsecpolicy.authentication_algorithm = Integrity::None;
  o.c.ipsecpolicy.pfs = DhGroup::G14;
  o.c.ipsecpolicy.lifetime_seconds = 1800;
  o.c.ipsecpolicy.lifetime_kilobytes = 1000;
  o.c.policy_rules = {
      {*net::Cidr::parse("10.1.1.0/24"),
       {*net::Cidr::parse("192.168.10.0/24"), *net::Cidr::parse("192.168.11.0/24")}},
      {*net::Cidr::parse("10.1.2.0/24"), {*net::Cidr::parse("192.168.12.0/24")}}};
  o.c.tunnels.resize(2);
  o.c.tunnels[1].ha_role = HaRole::Slave;
  o.c.start_immediately = true;
  return o;
}

TEST(IkeModel, ConnectionBecomesOneIkeConnectionPerTunnel) {
  auto o = objects();
  auto k = conn_config(o.c, o.gw, o.cgw, 0);
  ASSERT_TRUE(k.has_value()) << k.error();
  EXPECT_EQ(k->name, "to-branch");
  EXPECT_EQ(k->id, "vpnconn-1");
  EXPECT_EQ(k->local.str(), "192.0.2.1");
  EXPECT_EQ(k->remote.str(), "198.51.100.7");
  // Ids default to the addresses.
  EXPECT_EQ(k->local_id, ike::Identity::from_ip(k->local));
  EXPECT_EQ(k->remote_id, ike::Identity::from_ip(k->remote));
  EXPECT_EQ(k->psk, "secret-1");
  ASSERT_EQ(k->ike.size(), 1u);
  EXPECT_EQ(ike::to_string(k->ike[0]), "aes256-sha512-prfsha512-ecp384");
  ASSERT_EQ(k->esp.size(), 1u);
  EXPECT_EQ(ike::to_string(k->esp[0]), "aes128gcm16-modp2048");
  // One CHILD_SA per SPD rule, all of a rule's remote subnets in it.
  ASSERT_EQ(k->children.size(), 2u);
  EXPECT_EQ(k->children[0].name, "rule1");
  EXPECT_EQ(k->children[0].remote_ts.size(), 2u);
  EXPECT_EQ(k->children[1].local_ts[0].str(), "10.1.2.0/24");
  EXPECT_EQ(k->ike_lifetime_s, 7200u);
  EXPECT_EQ(k->child_lifetime_s, 1800u);
  EXPECT_EQ(k->child_lifetime_bytes, 1000u * 1024);
  EXPECT_EQ(k->dpd.interval_s, 20u);
  EXPECT_EQ(k->dpd.timeout_s, 9u);
  EXPECT_TRUE(k->start_immediately);
  // The standby tunnel uses the gateway's second address.
  auto k2 = conn_config(o.c, o.gw, o.cgw, 1);
  ASSERT_TRUE(k2.has_value());
  EXPECT_EQ(k2->name, "to-branch/standby");
  EXPECT_EQ(k2->local.str(), "192.0.2.2");
  EXPECT_FALSE(conn_config(o.c, o.gw, o.cgw, 2).has_value());
}

TEST(IkeModel, IdsCbcAndStaticRoutes) {
  auto o = objects();
  o.c.ikepolicy.encryption_algorithm = Encryption::TripleDes;
  o.c.ikepolicy.authentication_algorithm = Integrity::Sha1;
  o.c.ikepolicy.dh_group = DhGroup::G2;
  o.c.ikepolicy.local_id_type = IdType::Fqdn;
  o.c.ikepolicy.local_id = "hq.example.org";
  o.c.ikepolicy.peer_id = "203.0.113.9";
  o.c.ipsecpolicy.encryption_algorithm = Encryption::Aes256;
  o.c.ipsecpolicy.authentication_algorithm = Integrity::Md5;
  o.c.ipsecpolicy.pfs = DhGroup::Disable;
  o.c.style = RouteStyle::Static;
  auto k = conn_config(o.c, o.gw, o.cgw, 0);
  ASSERT_TRUE(k.has_value()) << k.error();
  EXPECT_EQ(k->local_id.str(), "hq.example.org");
  EXPECT_EQ(k->local_id.type, ike::IdType::Fqdn);
  EXPECT_EQ(k->remote_id.str(), "203.0.113.9");
  EXPECT_EQ(ike::to_string(k->ike[0]), "3des-sha1-prfsha1-modp1024");
  EXPECT_EQ(ike::to_string(k->esp[0]), "aes256-md5");
  ASSERT_EQ(k->children.size(), 1u);
  EXPECT_EQ(k->children[0].local_ts[0].str(), "0.0.0.0/0");
  // An IP-type id that is not an address is an error, not a guess.
  o.c.ikepolicy.local_id_type = IdType::Ip;
  o.c.ikepolicy.local_id = "hq.example.org";
  EXPECT_FALSE(conn_config(o.c, o.gw, o.cgw, 0).has_value());
  // BGP is not negotiated by the IKEv2 daemon yet: said so.
  o = objects();
  o.c.style = RouteStyle::Bgp;
  auto b = conn_config(o.c, o.gw, o.cgw, 0);
  ASSERT_FALSE(b.has_value());
  EXPECT_NE(b.error().find("BGP"), std::string::npos);
}

TEST(IkeModel, ConfigSection) {
  auto c = parse_config(
      "ike: {tun: xgwt, mtu: 1380, workers: 2, raw_esp: false, install_routes: false}\n", {});
  ASSERT_TRUE(c.has_value()) << c.error();
  EXPECT_TRUE(c->ike.enabled);
  EXPECT_EQ(c->ike.tun, "xgwt");
  EXPECT_EQ(c->ike.mtu, 1380u);
  EXPECT_EQ(c->ike.workers, 2u);
  EXPECT_FALSE(c->ike.raw_esp);
  EXPECT_FALSE(c->ike.install_routes);
  EXPECT_EQ(c->ike.port, 500);
  // Fail-closed routes are on by default, with a 60 s drain after delete.
  EXPECT_TRUE(c->ike.fail_closed);
  EXPECT_EQ(c->ike.fail_closed_drain_s, 60u);
  auto fc = parse_config("ike: {fail_closed: false, fail_closed_drain_s: 5}\n", {});
  ASSERT_TRUE(fc.has_value()) << fc.error();
  EXPECT_FALSE(fc->ike.fail_closed);
  EXPECT_EQ(fc->ike.fail_closed_drain_s, 5u);
  auto off = parse_config("ike: {enabled: false}\n", {});
  ASSERT_TRUE(off.has_value());
  EXPECT_FALSE(off->ike.enabled);
  EXPECT_FALSE(parse_config("{}\n", {})->ike.enabled);
  for (const char* bad :
       {"ike: {port: 4500}\n", "ike: {port: 0}\n", "ike: {tun: a-name-longer-than-15}\n",
        "ike: {mtu: 100}\n", "ike: {workers: 65}\n", "ike: {colour: blue}\n", "ike: 5\n",
        "ike: {fail_closed_drain_s: 90000}\n", "ike: {fail_closed: maybe}\n"}) {
    auto r = parse_config(bad, {});
    EXPECT_FALSE(r.has_value()) << bad;
    if (!r) {
      EXPECT_NE(r.error().find("ike"), std::string::npos) << r.error();
    }
  }
}

// ike.backend picks the ESP backend of the IKE SAs without a `dataplane:`
// section (which would attach XDP); with one, the two must agree.
TEST(IkeModel, ConfigBackend) {
  auto plain = parse_config("ike: {}\n", {});
  ASSERT_TRUE(plain.has_value()) << plain.error();
  EXPECT_EQ(plain->ike.backend, "");
  EXPECT_FALSE(plain->dataplane.enabled);
  EXPECT_EQ(ike_backend(*plain), "userspace");
  auto x = parse_config("ike: {backend: xfrm}\n", {});
  ASSERT_TRUE(x.has_value()) << x.error();
  EXPECT_FALSE(x->dataplane.enabled);
  EXPECT_EQ(ike_backend(*x), "xfrm");
  EXPECT_EQ(ike_backend(*parse_config("ike: {backend: auto}\n", {})), "auto");
  // Without ike.backend, dataplane.backend names it (as before).
  auto d = parse_config("dataplane: {backend: xfrm}\nike: {}\n", {});
  ASSERT_TRUE(d.has_value()) << d.error();
  EXPECT_EQ(ike_backend(*d), "xfrm");
  EXPECT_TRUE(parse_config("dataplane: {backend: xfrm}\nike: {backend: xfrm}\n", {}).has_value());
  for (const char* bad :
       {"ike: {backend: kernel}\n", "dataplane: {backend: xfrm}\nike: {backend: userspace}\n",
        "dataplane: {}\nike: {backend: xfrm}\n"}) {
    auto r = parse_config(bad, {});
    EXPECT_FALSE(r.has_value()) << bad;
    if (!r) {
      EXPECT_NE(r.error().find("ike.backend"), std::string::npos) << r.error();
    }
  }
}

}  // namespace
}  // namespace xgw::xgwd
