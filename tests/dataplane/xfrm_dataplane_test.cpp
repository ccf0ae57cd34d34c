// XfrmDataplane against a real kernel, in a private network namespace
// (main() enters one; the ctest wrapper runs the binary under `unshare
// --net` too). Two groups:
// - XfrmPolicy.*, XfrmHost.*: what works on any kernel with XFRM netlink,
//   ESP or not — policies (out/in/fwd, templates, priorities, replace,
//   delete, checked against `ip xfrm policy`), SPI allocation, the NAT-T
//   socket's IKE path, the ESP probe and `dataplane.backend: auto`.
// - XfrmEsp.*: need kernel ESP (the QEMU VM of tests/lab/xfrm_vm_test.sh):
//   every transform, the SA life cycle (allocate, add, update in place and
//   by replacement, delete) against `ip xfrm state`, policy templates
//   following the SAs, counters and expiry/acquire events from real
//   packets over loopback. Without kernel ESP they skip, unless
//   XGW_XFRM_REQUIRE_ESP=1 (set in the VM), where a skip is a failure.
#include "dataplane/xfrm_dataplane.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <regex>
#include <string>
#include <thread>

#include "privileged.h"
#include "xgwd/dataplane_factory.h"

namespace xgw::dp {
namespace {

std::string sh(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  ::pclose(p);
  return out;
}

bool esp_required() {
  const char* v = std::getenv("XGW_XFRM_REQUIRE_ESP");
  return v && std::strcmp(v, "1") == 0;
}

#define XGW_REQUIRE_ESP()                                                          \
  do {                                                                             \
    XGW_REQUIRE_ROOT();                                                            \
    std::string why_;                                                              \
    if (!xfrm_esp_available(&why_)) {                                              \
      if (esp_required()) FAIL() << "XGW_XFRM_REQUIRE_ESP=1 but " << why_;         \
      GTEST_SKIP() << "no kernel ESP (runs in the VM: tests/lab/xfrm_vm_test.sh)"; \
    }                                                                              \
  } while (0)

PolicySpec policy(uint32_t id, const char* src, const char* dst, uint32_t tunnel,
                  uint32_t prio = 0) {
  PolicySpec p;
  p.id = id;
  p.src = *net::Cidr::parse(src);
  p.dst = *net::Cidr::parse(dst);
  p.tunnel_id = tunnel;
  p.priority = prio;
  return p;
}

SaSpec sa(uint32_t spi, Direction dir, uint32_t tunnel, esp::Encr e = esp::Encr::AesGcm16_128,
          esp::Integ i = esp::Integ::None) {
  SaSpec s;
  s.name = "sa" + std::to_string(spi);
  s.spi = spi;
  s.dir = dir;
  s.tunnel_id = tunnel;
  s.local = *net::IpAddr::parse("127.0.0.1");
  s.remote = *net::IpAddr::parse("127.0.0.2");
  s.encap = Encap::None;
  s.encr = e;
  s.integ = i;
  s.encr_key.assign(esp::info(e).key_len, 0x3c);
  s.integ_key.assign(esp::info(i).key_len, 0xc3);
  return s;
}

std::unique_ptr<XfrmDataplane> make(uint16_t port = 14500) {
  XfrmOptions o;
  o.udp_port = port;
  auto x = XfrmDataplane::create(o);
  EXPECT_TRUE(x) << (x ? "" : x.error());
  return x ? std::move(*x) : nullptr;
}

// `ip xfrm policy get` for one exact selector and direction (`list`
// filters by prefix and would show covering policies too).
std::string policy_block(const std::string& src, const std::string& dst, const std::string& dir) {
  return sh("ip xfrm policy get src " + src + " dst " + dst + " dir " + dir);
}

// ---- policies (any kernel with XFRM) ----------------------------------------------

class XfrmPolicy : public ::testing::Test {
 protected:
  void SetUp() override {
    XGW_REQUIRE_ROOT();
    sh("ip xfrm policy flush; ip xfrm state flush");
    dp = make();
    ASSERT_TRUE(dp);
  }
  void TearDown() override {
    dp.reset();
    sh("ip xfrm policy flush; ip xfrm state flush");
  }
  std::unique_ptr<XfrmDataplane> dp;
};

TEST_F(XfrmPolicy, OutInFwdWithTemplateAndPriority) {
  auto p = policy(1, "10.1.0.0/24", "10.2.0.0/24", 7, 5);
  ASSERT_TRUE(dp->add_policy(p));
  const std::string prio = "priority " + std::to_string(xfrm_policy_priority(p));
  const std::string out = policy_block("10.1.0.0/24", "10.2.0.0/24", "out");
  EXPECT_NE(out.find("dir out " + prio), std::string::npos) << out;
  EXPECT_NE(out.find("proto esp reqid 7 mode tunnel"), std::string::npos) << out;
  for (const char* d : {"in", "fwd"}) {
    const std::string b = policy_block("10.2.0.0/24", "10.1.0.0/24", d);
    EXPECT_NE(b.find(std::string("dir ") + d + " " + prio), std::string::npos) << b;
    EXPECT_NE(b.find("proto esp reqid 7 mode tunnel"), std::string::npos) << b;
  }
  // No SA yet: wildcard endpoints (traffic dropped, never sent in clear).
  EXPECT_NE(out.find("tmpl src 0.0.0.0 dst 0.0.0.0"), std::string::npos) << out;
  // Nothing else was installed: exactly three policies.
  const std::string all = sh("ip xfrm policy");
  EXPECT_EQ(std::count(all.begin(), all.end(), '\n') > 0, true);
  EXPECT_EQ(std::regex_search(all, std::regex("dir (out|in|fwd)")), true);
  size_t n = 0;
  for (size_t pos = 0; (pos = all.find("\tdir ", pos)) != std::string::npos; ++pos) ++n;
  EXPECT_EQ(n, 3u) << all;
}

TEST_F(XfrmPolicy, HigherPriorityAndLongerPrefixesGetLowerXfrmValues) {
  ASSERT_TRUE(dp->add_policy(policy(1, "10.1.0.0/16", "10.2.0.0/16", 1, 100)));
  ASSERT_TRUE(dp->add_policy(policy(2, "10.1.1.0/24", "10.2.1.0/24", 2, 0)));
  auto value = [](const std::string& src, const std::string& dst) {
    std::smatch m;
    const std::string b = policy_block(src, dst, "out");
    if (!std::regex_search(b, m, std::regex("priority (\\d+)"))) return uint64_t{0};
    return uint64_t{std::stoull(m[1])};
  };
  const uint64_t v1 = value("10.1.0.0/16", "10.2.0.0/16"), v2 = value("10.1.1.0/24", "10.2.1.0/24");
  ASSERT_GT(v1, 0u);
  ASSERT_GT(v2, 0u);
  EXPECT_LT(v1, v2);  // priority 100 beats the longer prefixes of priority 0
}

TEST_F(XfrmPolicy, ReplaceSameIdAndRefuseDuplicateSelector) {
  ASSERT_TRUE(dp->add_policy(policy(1, "10.1.0.0/24", "10.2.0.0/24", 7)));
  // Same id, new selector: the old XFRM policies go.
  ASSERT_TRUE(dp->add_policy(policy(1, "10.1.0.0/24", "10.3.0.0/24", 7)));
  EXPECT_EQ(policy_block("10.1.0.0/24", "10.2.0.0/24", "out").find("dir out"), std::string::npos);
  EXPECT_NE(policy_block("10.1.0.0/24", "10.3.0.0/24", "out").find("dir out"), std::string::npos);
  EXPECT_NE(policy_block("10.3.0.0/24", "10.1.0.0/24", "fwd").find("dir fwd"), std::string::npos);
  // Same id, same selector, another tunnel: replaced in place.
  ASSERT_TRUE(dp->add_policy(policy(1, "10.1.0.0/24", "10.3.0.0/24", 9)));
  EXPECT_NE(policy_block("10.1.0.0/24", "10.3.0.0/24", "out").find("reqid 9"), std::string::npos);
  // Another id with the same selector: XFRM cannot hold both.
  auto dup = dp->add_policy(policy(2, "10.1.0.0/24", "10.3.0.0/24", 7));
  ASSERT_FALSE(dup);
  EXPECT_NE(dup.error().find("selector"), std::string::npos) << dup.error();
  // Invalid specs never reach the kernel.
  EXPECT_FALSE(dp->add_policy(policy(3, "10.1.0.0/24", "fd00::/64", 7)));
  EXPECT_FALSE(dp->add_policy(policy(3, "10.1.0.0/24", "10.9.0.0/24", 0)));
}

TEST_F(XfrmPolicy, DeleteRemovesAllThree) {
  ASSERT_TRUE(dp->add_policy(policy(4, "fd00:1::/64", "fd00:2::/64", 3)));
  EXPECT_NE(policy_block("fd00:2::/64", "fd00:1::/64", "in").find("dir in"), std::string::npos);
  ASSERT_TRUE(dp->delete_policy(4));
  EXPECT_EQ(sh("ip xfrm policy").find("dir"), std::string::npos) << sh("ip xfrm policy");
  auto again = dp->delete_policy(4);
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().find("no policy 4"), std::string::npos);
}

TEST_F(XfrmPolicy, DestructionRemovesWhatItInstalled) {
  ASSERT_TRUE(dp->add_policy(policy(1, "10.1.0.0/24", "10.2.0.0/24", 7)));
  // Another daemon's policy stays.
  sh("ip xfrm policy add src 10.8.0.0/24 dst 10.9.0.0/24 dir out");
  dp.reset();
  const std::string all = sh("ip xfrm policy");
  EXPECT_EQ(all.find("10.1.0.0/24"), std::string::npos) << all;
  EXPECT_NE(all.find("10.8.0.0/24"), std::string::npos) << all;
}

// ---- the rest of the host-side surface ---------------------------------------------

class XfrmHost : public XfrmPolicy {};

TEST_F(XfrmHost, CapabilitiesAndEventFd) {
  const auto c = dp->capabilities();
  EXPECT_EQ(c.backend, "xfrm");
  EXPECT_TRUE(c.owns_nat_t_port);
  EXPECT_EQ(c.max_replay_window, 4096u);
  EXPECT_EQ(!c.encr.empty(), xfrm_esp_available());
  EXPECT_GE(dp->event_fd(), 0);
  EXPECT_TRUE(dp->poll_events().empty());
}

TEST_F(XfrmHost, AllocateSpiLeavesNoLarvalState) {
  std::set<uint32_t> seen;
  for (int i = 0; i < 50; ++i) {
    auto s = dp->allocate_spi();
    ASSERT_TRUE(s) << s.error();
    EXPECT_GE(*s, 256u);
    EXPECT_TRUE(seen.insert(*s).second) << "SPI handed out twice: " << *s;
  }
  EXPECT_EQ(sh("ip xfrm state"), "");
}

TEST_F(XfrmHost, AddSaWithoutKernelEspFailsClearly) {
  std::string why;
  if (xfrm_esp_available(&why)) GTEST_SKIP() << "this kernel has ESP (XfrmEsp.* cover add_sa)";
  std::printf("ESP probe: %s\n", why.c_str());
  EXPECT_NE(why.find("cannot install an ESP SA"), std::string::npos) << why;
  auto r = dp->add_sa(sa(0x2001, Direction::Out, 7));
  ASSERT_FALSE(r);
  // What was attempted, the errno text and the kernel's own reason.
  EXPECT_NE(r.error().find("XFRM_MSG_NEWSA"), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("spi 0x00002001"), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("rfc4106(gcm(aes))"), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("kernel: "), std::string::npos) << r.error();
  EXPECT_FALSE(dp->sa_counters(Direction::Out, 0x2001));
  EXPECT_FALSE(dp->tunnel_counters(7));
  EXPECT_FALSE(dp->delete_sa(Direction::Out, 0x2001));
  EXPECT_FALSE(dp->update_sa(sa(0x2001, Direction::Out, 7)));
  // Bad input is refused before the kernel sees it.
  auto bad = sa(0x2002, Direction::In, 7);
  bad.encr_key.resize(3);
  auto e = dp->add_sa(bad);
  ASSERT_FALSE(e);
  EXPECT_NE(e.error().find("encryption key"), std::string::npos) << e.error();
}

TEST_F(XfrmHost, AutoBackendFollowsTheProbe) {
  std::string why;
  const bool esp = xfrm_esp_available(&why);
  xgwd::DataplaneConfig c;
  c.backend = "auto";
  auto ch = xgwd::choose_backend(c);
  std::printf("auto -> %s (%s)\n", ch.backend.c_str(), ch.reason.c_str());
  // On the lab host (no CONFIG_INET_ESP) this is userspace.
  EXPECT_EQ(ch.backend, esp ? "xfrm" : "userspace");
  if (!esp) {
    EXPECT_NE(ch.reason.find("fell back to userspace"), std::string::npos) << ch.reason;
  }
  c.backend = "userspace";
  EXPECT_EQ(xgwd::choose_backend(c).backend, "userspace");
  c.backend = "xfrm";
  EXPECT_EQ(xgwd::choose_backend(c).backend, "xfrm");
}

TEST_F(XfrmHost, IkeOverTheNatTSocket) {
  // A peer on loopback sends IKE with the non-ESP marker to our port.
  std::mutex mu;
  std::vector<uint8_t> got;
  Endpoint from_seen, to_seen;
  dp->set_ike_receiver([&](std::span<const uint8_t> m, const Endpoint& f, const Endpoint& t) {
    std::lock_guard lk(mu);
    got.assign(m.begin(), m.end());
    from_seen = f;
    to_seen = t;
  });
  const int peer = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(peer, 0);
  sockaddr_in pa{};
  pa.sin_family = AF_INET;
  pa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(peer, reinterpret_cast<sockaddr*>(&pa), sizeof pa), 0);
  socklen_t plen = sizeof pa;
  ::getsockname(peer, reinterpret_cast<sockaddr*>(&pa), &plen);
  const uint8_t ike[] = {0, 0, 0, 0, 'i', 'k', 'e', '!'};
  sockaddr_in us{};
  us.sin_family = AF_INET;
  us.sin_port = htons(14500);
  us.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::sendto(peer, ike, sizeof ike, 0, reinterpret_cast<sockaddr*>(&us), sizeof us),
            static_cast<ssize_t>(sizeof ike));
  for (int i = 0; i < 200; ++i) {
    {
      std::lock_guard lk(mu);
      if (!got.empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  {
    std::lock_guard lk(mu);
    EXPECT_EQ(std::string(got.begin(), got.end()), "ike!");
    EXPECT_EQ(from_seen.addr.str(), "127.0.0.1");
    EXPECT_EQ(from_seen.port, ntohs(pa.sin_port));
    EXPECT_EQ(to_seen.addr.str(), "127.0.0.1");
    EXPECT_EQ(to_seen.port, 14500);
  }
  EXPECT_EQ(dp->counters().ike_rx, 1u);
  // And back: send_ike prepends the marker.
  const uint8_t reply[] = {'o', 'k'};
  Endpoint me{*net::IpAddr::parse("127.0.0.1"), 14500};
  Endpoint them{*net::IpAddr::parse("127.0.0.1"), ntohs(pa.sin_port)};
  ASSERT_TRUE(dp->send_ike(me, them, reply));
  uint8_t buf[64];
  pollfd p{peer, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 2000), 1);
  sockaddr_in src{};
  socklen_t slen = sizeof src;
  const ssize_t n = ::recvfrom(peer, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&src), &slen);
  ASSERT_EQ(n, 6);
  EXPECT_EQ(std::memcmp(buf, "\0\0\0\0ok", 6), 0);
  EXPECT_EQ(ntohs(src.sin_port), 14500);
  ::close(peer);
  // Only our port may be used as the source.
  Endpoint other{*net::IpAddr::parse("127.0.0.1"), 500};
  EXPECT_FALSE(dp->send_ike(other, them, reply));
}

// ---- kernel ESP (the VM) -----------------------------------------------------------

class XfrmEsp : public XfrmPolicy {
 protected:
  void SetUp() override {
    XGW_REQUIRE_ESP();
    XfrmPolicy::SetUp();
  }
};

TEST_F(XfrmEsp, CapabilitiesListTheKernelTransforms) {
  const auto c = dp->capabilities();
  auto has_e = [&](esp::Encr e) { return std::count(c.encr.begin(), c.encr.end(), e) == 1; };
  auto has_i = [&](esp::Integ i) { return std::count(c.integ.begin(), c.integ.end(), i) == 1; };
  for (auto e : {esp::Encr::AesGcm16_128, esp::Encr::AesGcm16_256, esp::Encr::AesCbc128,
                 esp::Encr::AesCbc256, esp::Encr::TripleDesCbc, esp::Encr::Null})
    EXPECT_TRUE(has_e(e)) << esp::info(e).keyword;
  for (auto i :
       {esp::Integ::None, esp::Integ::HmacMd5_96, esp::Integ::HmacSha1_96,
        esp::Integ::HmacSha256_128, esp::Integ::HmacSha384_192, esp::Integ::HmacSha512_256})
    EXPECT_TRUE(has_i(i)) << esp::info(i).keyword;
  EXPECT_TRUE(c.udp_encap && c.raw_esp && c.esn);
  std::string list;
  for (auto e : c.encr) list += std::string(esp::info(e).keyword) + " ";
  for (auto i : c.integ) list += std::string(esp::info(i).keyword) + " ";
  std::printf("kernel transforms: %s\n", list.c_str());
  EXPECT_EQ(sh("ip xfrm state"), "");  // the probe cleaned up
}

TEST_F(XfrmEsp, EveryCapableTransformInstalls) {
  const auto c = dp->capabilities();
  uint32_t spi = 0x3000;
  for (auto e : c.encr) {
    const bool aead = esp::info(e).aead;
    for (auto i : c.integ) {
      if (aead != (i == esp::Integ::None)) continue;
      if (e == esp::Encr::Null && i == esp::Integ::None) continue;
      SCOPED_TRACE(std::string(esp::info(e).keyword) + "/" + std::string(esp::info(i).keyword));
      auto s = sa(++spi, Direction::Out, 1, e, i);
      ASSERT_TRUE(dp->add_sa(s));
      char hex[16];
      std::snprintf(hex, sizeof hex, "0x%08x", spi);
      const std::string st = sh(std::string("ip xfrm state get src 127.0.0.1 dst 127.0.0.2 "
                                            "proto esp spi ") +
                                hex);
      EXPECT_NE(st.find(xfrm_encr_name(e)), std::string::npos) << st;
      if (i != esp::Integ::None) {
        EXPECT_NE(st.find(std::string("auth-trunc ") + xfrm_integ_name(i)), std::string::npos)
            << st;
        EXPECT_NE(st.find(" " + std::to_string(esp::info(i).icv_len * 8) + "\n"), std::string::npos)
            << st;
      } else {
        EXPECT_NE(st.find("aead rfc4106(gcm(aes))"), std::string::npos) << st;
      }
      EXPECT_NE(st.find("mode tunnel"), std::string::npos) << st;
      ASSERT_TRUE(dp->delete_sa(Direction::Out, spi));
    }
  }
  EXPECT_EQ(sh("ip xfrm state"), "");
}

TEST_F(XfrmEsp, SaLifeCycle) {
  // An inbound SA on an allocated SPI, UDP-encapsulated, ESN, big window.
  auto spi = dp->allocate_spi();
  ASSERT_TRUE(spi) << spi.error();
  auto in = sa(*spi, Direction::In, 7, esp::Encr::AesCbc128, esp::Integ::HmacSha256_128);
  in.encap = Encap::Udp;
  in.remote_port = 4500;
  in.local_port = 14500;
  in.esn = true;
  in.replay_window = 1024;
  in.lifetime = {0, 0, 100, 200, 3000, 3600};
  auto r = dp->add_sa(in);
  ASSERT_TRUE(r) << r.error();
  char hex[16];
  std::snprintf(hex, sizeof hex, "0x%08x", *spi);
  auto get = [&](const char* src, const char* dst) {
    return sh(std::string("ip -s xfrm state get src ") + src + " dst " + dst + " proto esp spi " +
              hex);
  };
  std::string st = get("127.0.0.2", "127.0.0.1");
  EXPECT_NE(st.find("reqid 7(0x00000007) mode tunnel"), std::string::npos) << st;
  EXPECT_NE(st.find("encap type espinudp sport 4500 dport 14500"), std::string::npos) << st;
  EXPECT_NE(st.find("esn"), std::string::npos) << st;
  EXPECT_NE(st.find("af-unspec"), std::string::npos) << st;
  EXPECT_NE(st.find("replay_window 1024"), std::string::npos) << st;
  EXPECT_NE(st.find("hard 200(packets)"), std::string::npos) << st;
  EXPECT_NE(st.find("hard 3600(sec)"), std::string::npos) << st;
  // Same SPI twice: refused.
  EXPECT_FALSE(dp->add_sa(in));
  // The peer's NAT port changed: updated in place (UPDSA).
  in.remote_port = 31000;
  in.lifetime.hard_packets = 300;
  ASSERT_TRUE(dp->update_sa(in));
  st = get("127.0.0.2", "127.0.0.1");
  EXPECT_NE(st.find("sport 31000 dport 14500"), std::string::npos) << st;
  EXPECT_NE(st.find("hard 300(packets)"), std::string::npos) << st;
  // The peer moved: a new SA key, replaced (GETSA, DELSA, NEWSA).
  // (XFRM finds SAs by destination and SPI: an inbound SA keeps its key,
  // but the source cannot change in place.)
  in.remote = *net::IpAddr::parse("127.0.0.3");
  ASSERT_TRUE(dp->update_sa(in));
  st = get("127.0.0.3", "127.0.0.1");
  EXPECT_NE(st.find("src 127.0.0.3 dst 127.0.0.1"), std::string::npos) << st;
  EXPECT_EQ(sh("ip xfrm state | grep -c '^src'"), "1\n");
  EXPECT_NE(st.find("sport 31000 dport 14500"), std::string::npos) << st;
  EXPECT_NE(st.find("esn"), std::string::npos) << st;
  auto c = dp->sa_counters(Direction::In, *spi);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->packets, 0u);
  EXPECT_FALSE(c->hard_expired);
  ASSERT_TRUE(dp->tunnel_counters(7));
  ASSERT_TRUE(dp->delete_sa(Direction::In, *spi));
  EXPECT_EQ(sh("ip xfrm state"), "");
  EXPECT_FALSE(dp->sa_counters(Direction::In, *spi));
  EXPECT_TRUE(dp->tunnel_counters(7));  // the tunnel's history stays
}

TEST_F(XfrmEsp, PolicyTemplatesFollowTheTunnelsSas) {
  ASSERT_TRUE(dp->add_policy(policy(1, "10.77.1.0/24", "10.77.2.0/24", 9)));
  EXPECT_NE(
      policy_block("10.77.1.0/24", "10.77.2.0/24", "out").find("tmpl src 0.0.0.0 dst 0.0.0.0"),
      std::string::npos);
  ASSERT_TRUE(dp->add_sa(sa(0x4001, Direction::Out, 9)));
  EXPECT_NE(
      policy_block("10.77.1.0/24", "10.77.2.0/24", "out").find("tmpl src 127.0.0.1 dst 127.0.0.2"),
      std::string::npos)
      << policy_block("10.77.1.0/24", "10.77.2.0/24", "out");
  for (const char* d : {"in", "fwd"})
    EXPECT_NE(
        policy_block("10.77.2.0/24", "10.77.1.0/24", d).find("tmpl src 127.0.0.2 dst 127.0.0.1"),
        std::string::npos)
        << policy_block("10.77.2.0/24", "10.77.1.0/24", d);
  // The peer moves: the templates follow.
  auto moved = sa(0x4001, Direction::Out, 9);
  moved.remote = *net::IpAddr::parse("127.0.0.5");
  ASSERT_TRUE(dp->update_sa(moved));
  EXPECT_NE(
      policy_block("10.77.1.0/24", "10.77.2.0/24", "out").find("tmpl src 127.0.0.1 dst 127.0.0.5"),
      std::string::npos);
  // A policy added after the SA gets the endpoints at once.
  ASSERT_TRUE(dp->add_policy(policy(2, "10.77.1.0/24", "10.77.3.0/24", 9)));
  EXPECT_NE(
      policy_block("10.77.1.0/24", "10.77.3.0/24", "out").find("tmpl src 127.0.0.1 dst 127.0.0.5"),
      std::string::npos);
}

// Traffic through an outbound SA: an inner address on a dummy device (lo
// has disable_xfrm set), a route for the remote subnet through it, UDP
// datagrams matching the policy. The outer addresses are on the dummy
// too, so the ESP packets vanish there (over lo they would come back and
// be decrypted by the same SA: XFRM states have no direction in 6.1).
class XfrmEspTraffic : public XfrmEsp {
 protected:
  void SetUp() override {
    XfrmEsp::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    sh("ip link add xgwt0 type dummy && ip link set xgwt0 up && "
       "ip addr add 10.77.1.1/24 dev xgwt0 && ip addr add 192.0.2.1/24 dev xgwt0 && "
       "ip route add 10.77.2.0/24 dev xgwt0");
    routed_ = true;
  }
  void TearDown() override {
    if (routed_) sh("ip link del xgwt0");
    XfrmEsp::TearDown();
  }
  bool routed_ = false;
  // Sends n datagrams 10.77.1.1 → 10.77.2.1:9; returns how many left.
  int send_udp(int n) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    inet_pton(AF_INET, "10.77.1.1", &a.sin_addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return -1;
    sockaddr_in d{};
    d.sin_family = AF_INET;
    d.sin_port = htons(9);
    inet_pton(AF_INET, "10.77.2.1", &d.sin_addr);
    int ok = 0;
    for (int i = 0; i < n; ++i)
      if (::sendto(fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&d), sizeof d) == 1) ++ok;
    ::close(fd);
    return ok;
  }
  static SaSpec wan_sa(uint32_t spi, Direction dir, uint32_t tunnel) {
    SaSpec s = sa(spi, dir, tunnel);
    s.local = *net::IpAddr::parse("192.0.2.1");
    s.remote = *net::IpAddr::parse("192.0.2.99");
    return s;
  }
  std::vector<Event> wait_events(size_t want, int ms = 5000) {
    std::vector<Event> all;
    for (int t = 0; t < ms / 20 && all.size() < want; ++t) {
      pollfd p{dp->event_fd(), POLLIN, 0};
      ::poll(&p, 1, 20);
      for (auto& e : dp->poll_events()) all.push_back(e);
    }
    return all;
  }
};

TEST_F(XfrmEspTraffic, CountersAndPacketLimitExpiry) {
  ASSERT_TRUE(dp->add_policy(policy(1, "10.77.1.0/24", "10.77.2.0/24", 9)));
  auto out = wan_sa(0x5001, Direction::Out, 9);
  out.lifetime.soft_packets = 2;
  out.lifetime.hard_packets = 3;
  ASSERT_TRUE(dp->add_sa(out));
  send_udp(2);
  auto c = dp->sa_counters(Direction::Out, 0x5001);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->packets, 2u);
  EXPECT_GT(c->bytes, 0u);
  EXPECT_EQ(c->seq, 2u);
  send_udp(3);  // the third passes, then the hard limit stops the SA
  auto ev = wait_events(2);
  bool soft = false, hard = false;
  for (const auto& e : ev) {
    if (e.kind == Event::Kind::Acquire) {  // the tunnel lost its only SA
      EXPECT_EQ(e.policy_id, 1u);
      continue;
    }
    EXPECT_EQ(e.spi, 0x5001u);
    EXPECT_EQ(e.tunnel_id, 9u);
    EXPECT_EQ(e.dir, Direction::Out);
    EXPECT_EQ(e.limit, Event::Limit::Packets) << to_string(e.kind);
    soft |= e.kind == Event::Kind::SoftExpire;
    hard |= e.kind == Event::Kind::HardExpire;
  }
  EXPECT_TRUE(soft);
  EXPECT_TRUE(hard);
  // The kernel deleted the SA; its last counters stay, marked.
  c = dp->sa_counters(Direction::Out, 0x5001);
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->hard_expired);
  EXPECT_TRUE(c->soft_expired);
  EXPECT_EQ(c->packets, 3u);
  auto t = dp->tunnel_counters(9);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->tx_packets, 3u);
  // delete_sa of a hard-expired SA succeeds and keeps the tunnel monotonic.
  ASSERT_TRUE(dp->delete_sa(Direction::Out, 0x5001));
  // A rekeyed SA adds to the tunnel's counts.
  ASSERT_TRUE(dp->add_sa(wan_sa(0x5002, Direction::Out, 9)));
  send_udp(4);
  t = dp->tunnel_counters(9);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->tx_packets, 7u);
  ASSERT_TRUE(dp->delete_sa(Direction::Out, 0x5002));
  t = dp->tunnel_counters(9);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->tx_packets, 7u);
}

TEST_F(XfrmEspTraffic, TimeExpiry) {
  auto in = wan_sa(0x6001, Direction::In, 4);
  in.lifetime.soft_seconds = 1;
  in.lifetime.hard_seconds = 2;
  ASSERT_TRUE(dp->add_sa(in));
  auto ev = wait_events(2, 6000);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].kind, Event::Kind::SoftExpire);
  EXPECT_EQ(ev[1].kind, Event::Kind::HardExpire);
  for (const auto& e : ev) {
    EXPECT_EQ(e.limit, Event::Limit::Time);
    EXPECT_EQ(e.dir, Direction::In);
    EXPECT_EQ(e.spi, 0x6001u);
  }
  EXPECT_TRUE(dp->sa_counters(Direction::In, 0x6001)->hard_expired);
}

TEST_F(XfrmEspTraffic, AcquireWhenTheTunnelHasNoOutboundSa) {
  // The tunnel's endpoints are known from its inbound SA; no outbound one.
  ASSERT_TRUE(dp->add_sa(wan_sa(0x7001, Direction::In, 5)));
  ASSERT_TRUE(dp->add_policy(policy(3, "10.77.1.0/24", "10.77.2.0/24", 5)));
  send_udp(1);
  auto ev = wait_events(1);
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev[0].kind, Event::Kind::Acquire);
  EXPECT_EQ(ev[0].policy_id, 3u);
  EXPECT_EQ(ev[0].tunnel_id, 5u);
  EXPECT_EQ(ev[0].src.str(), "10.77.1.1");
  EXPECT_EQ(ev[0].dst.str(), "10.77.2.1");
}

}  // namespace
}  // namespace xgw::dp

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (geteuid() == 0) {
    // A private network namespace: policies and SAs never touch the host's.
    if (::unshare(CLONE_NEWNET) != 0) {
      std::perror("unshare(CLONE_NEWNET)");
      return 1;
    }
    if (std::system("ip link set lo up") != 0) {
      std::fprintf(stderr, "cannot bring up lo in the test namespace\n");
      return 1;
    }
  }
  return RUN_ALL_TESTS();
}
