#include "common/net.h"

#include <gtest/gtest.h>

using xgw::net::Cidr;
using xgw::net::IpAddr;

TEST(Cidr, ParsesV4AndV6) {
  auto c = Cidr::parse("10.0.0.0/24");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->str(), "10.0.0.0/24");
  auto v6 = Cidr::parse("2001:DB8::/32");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->str(), "2001:db8::/32");  // canonical form
  EXPECT_TRUE(Cidr::parse("0.0.0.0/0"));
  EXPECT_TRUE(Cidr::parse("192.168.1.1/32"));
}

TEST(Cidr, RejectsMalformed) {
  for (const char* s : {"10.0.0.0", "10.0.0.0/33", "10.0.0.0/", "10.0.0/24", "x/24", "10.0.0.0/2a",
                        "10.0.0.0/-1", "2001:db8::/129", "", "/24", "10.0.0.0/024"}) {
    EXPECT_FALSE(Cidr::parse(s)) << s;
  }
}

TEST(Cidr, HostBitsSetNamesTheNetwork) {
  auto c = Cidr::parse("10.0.0.1/24");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("10.0.0.0/24"), std::string::npos) << c.error();
}

TEST(Cidr, ContainsAndOverlaps) {
  auto a = *Cidr::parse("10.0.0.0/16"), b = *Cidr::parse("10.0.5.0/24"),
       c = *Cidr::parse("10.1.0.0/16");
  EXPECT_TRUE(a.contains(b));
  EXPECT_FALSE(b.contains(a));
  EXPECT_TRUE(a.overlaps(b));
  EXPECT_TRUE(b.overlaps(a));
  EXPECT_FALSE(a.overlaps(c));
  EXPECT_TRUE(a.contains(*IpAddr::parse("10.0.255.255")));
  EXPECT_FALSE(a.contains(*IpAddr::parse("10.1.0.0")));
  // Families never mix.
  auto v6 = *Cidr::parse("::/0");
  EXPECT_FALSE(v6.overlaps(*Cidr::parse("0.0.0.0/0")));
  EXPECT_FALSE(v6.contains(*IpAddr::parse("10.0.0.1")));
  EXPECT_TRUE(v6.contains(*Cidr::parse("fd00::/8")));
}

TEST(IpAddr, Parse) {
  EXPECT_TRUE(IpAddr::parse("1.2.3.4"));
  EXPECT_EQ(IpAddr::parse("1.2.3.4")->v4(), 0x01020304u);
  EXPECT_TRUE(IpAddr::parse("::1"));
  EXPECT_FALSE(IpAddr::parse("1.2.3"));
  EXPECT_FALSE(IpAddr::parse("1.2.3.256"));
  EXPECT_FALSE(IpAddr::parse(""));
  EXPECT_FALSE(IpAddr::parse(std::string(100, '1')));
}
