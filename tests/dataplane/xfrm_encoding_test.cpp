// The XFRM backend's netlink encoding, without a kernel: the NEWSA request
// for each transform (algorithm names, key and ICV lengths in bits, the
// RFC 4106 salt inside the key), UDP encapsulation ports per direction,
// the replay-state choice (legacy field, bitmap, ESN), lifetimes, and the
// policy priority mapping. Unprivileged.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/netlink.h>
#include <linux/udp.h>
#include <linux/xfrm.h>
#include <netinet/in.h>

#include <cstring>
#include <map>

#include "dataplane/xfrm_dataplane.h"

namespace xgw::dp {
namespace {

struct Decoded {
  nlmsghdr hdr{};
  xfrm_usersa_info info{};
  std::map<uint16_t, std::vector<uint8_t>> attrs;
};

Decoded decode(const std::vector<uint8_t>& b) {
  Decoded d;
  EXPECT_GE(b.size(), NLMSG_HDRLEN + sizeof(xfrm_usersa_info));
  std::memcpy(&d.hdr, b.data(), sizeof d.hdr);
  EXPECT_EQ(d.hdr.nlmsg_len, b.size());
  std::memcpy(&d.info, b.data() + NLMSG_HDRLEN, sizeof d.info);
  size_t off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(xfrm_usersa_info));
  while (off + NLA_HDRLEN <= b.size()) {
    nlattr a;
    std::memcpy(&a, b.data() + off, sizeof a);
    EXPECT_GE(a.nla_len, NLA_HDRLEN);
    if (a.nla_len < NLA_HDRLEN) break;
    d.attrs[a.nla_type].assign(b.begin() + off + NLA_HDRLEN, b.begin() + off + a.nla_len);
    off += NLA_ALIGN(a.nla_len);
  }
  EXPECT_EQ(off, b.size());
  return d;
}

SaSpec sa(esp::Encr e, esp::Integ i, Direction dir = Direction::Out) {
  SaSpec s;
  s.name = "t";
  s.spi = 0x1234;
  s.dir = dir;
  s.tunnel_id = 7;
  s.local = *net::IpAddr::parse("192.0.2.1");
  s.remote = *net::IpAddr::parse("192.0.2.2");
  s.encr = e;
  s.integ = i;
  s.encr_key.assign(esp::info(e).key_len, 0x11);
  s.integ_key.assign(esp::info(i).key_len, 0x22);
  return s;
}

TEST(XfrmEncoding, AesGcmIsOneAeadAttributeWithSaltInTheKey) {
  auto s = sa(esp::Encr::AesGcm16_128, esp::Integ::None);
  s.encr_key.back() = 0x99;  // last salt byte
  auto b = xfrm_sa_request(s, XFRM_MSG_NEWSA);
  ASSERT_TRUE(b) << b.error();
  auto d = decode(*b);
  EXPECT_EQ(d.hdr.nlmsg_type, XFRM_MSG_NEWSA);
  EXPECT_EQ(ntohl(d.info.id.spi), 0x1234u);
  EXPECT_EQ(d.info.id.proto, IPPROTO_ESP);
  EXPECT_EQ(d.info.mode, XFRM_MODE_TUNNEL);
  EXPECT_EQ(d.info.reqid, 7u);
  EXPECT_EQ(d.info.family, AF_INET);
  EXPECT_TRUE(d.info.flags & XFRM_STATE_AF_UNSPEC);
  // Out: daddr is the peer.
  EXPECT_EQ(std::memcmp(&d.info.id.daddr, s.remote.bytes.data(), 4), 0);
  EXPECT_EQ(std::memcmp(&d.info.saddr, s.local.bytes.data(), 4), 0);
  ASSERT_TRUE(d.attrs.count(XFRMA_ALG_AEAD));
  EXPECT_FALSE(d.attrs.count(XFRMA_ALG_CRYPT));
  EXPECT_FALSE(d.attrs.count(XFRMA_ALG_AUTH_TRUNC));
  const auto& a = d.attrs[XFRMA_ALG_AEAD];
  xfrm_algo_aead x;
  std::memcpy(&x, a.data(), sizeof x);
  EXPECT_STREQ(x.alg_name, "rfc4106(gcm(aes))");
  EXPECT_EQ(x.alg_key_len, 160u);  // 128-bit key + 32-bit salt (RFC 4106 §8.1)
  EXPECT_EQ(x.alg_icv_len, 128u);
  ASSERT_EQ(a.size(), sizeof x + 20);
  EXPECT_EQ(a.back(), 0x99);
}

TEST(XfrmEncoding, EveryCbcAndIntegrityTransform) {
  struct Want {
    esp::Encr e;
    const char* name;
    unsigned key_bits;
  };
  const Want encr[] = {
      {esp::Encr::AesCbc128, "cbc(aes)", 128}, {esp::Encr::AesCbc192, "cbc(aes)", 192},
      {esp::Encr::AesCbc256, "cbc(aes)", 256}, {esp::Encr::TripleDesCbc, "cbc(des3_ede)", 192},
      {esp::Encr::DesCbc, "cbc(des)", 64},     {esp::Encr::Sm4Cbc, "cbc(sm4)", 128},
      {esp::Encr::Null, "ecb(cipher_null)", 0}};
  struct WantI {
    esp::Integ i;
    const char* name;
    unsigned key_bits, trunc_bits;
  };
  const WantI integ[] = {{esp::Integ::HmacMd5_96, "hmac(md5)", 128, 96},
                         {esp::Integ::HmacSha1_96, "hmac(sha1)", 160, 96},
                         {esp::Integ::HmacSha256_128, "hmac(sha256)", 256, 128},
                         {esp::Integ::HmacSha384_192, "hmac(sha384)", 384, 192},
                         {esp::Integ::HmacSha512_256, "hmac(sha512)", 512, 256},
                         {esp::Integ::HmacSm3_256, "hmac(sm3)", 256, 256}};
  for (const auto& e : encr) {
    for (const auto& i : integ) {
      SCOPED_TRACE(std::string(e.name) + " " + i.name);
      auto b = xfrm_sa_request(sa(e.e, i.i), XFRM_MSG_NEWSA);
      ASSERT_TRUE(b) << b.error();
      auto d = decode(*b);
      ASSERT_TRUE(d.attrs.count(XFRMA_ALG_CRYPT));
      xfrm_algo c;
      std::memcpy(&c, d.attrs[XFRMA_ALG_CRYPT].data(), sizeof c);
      EXPECT_STREQ(c.alg_name, e.name);
      EXPECT_EQ(c.alg_key_len, e.key_bits);
      EXPECT_EQ(d.attrs[XFRMA_ALG_CRYPT].size(), sizeof c + e.key_bits / 8);
      ASSERT_TRUE(d.attrs.count(XFRMA_ALG_AUTH_TRUNC));
      xfrm_algo_auth a;
      std::memcpy(&a, d.attrs[XFRMA_ALG_AUTH_TRUNC].data(), sizeof a);
      EXPECT_STREQ(a.alg_name, i.name);
      EXPECT_EQ(a.alg_key_len, i.key_bits);
      EXPECT_EQ(a.alg_trunc_len, i.trunc_bits);
      EXPECT_FALSE(d.attrs.count(XFRMA_ALG_AEAD));
    }
  }
}

TEST(XfrmEncoding, UdpEncapsulationPortsFollowTheDirection) {
  auto out = sa(esp::Encr::AesGcm16_128, esp::Integ::None, Direction::Out);
  out.encap = Encap::Udp;
  out.local_port = 4500;
  out.remote_port = 31000;  // a NATed peer
  auto d = decode(*xfrm_sa_request(out, XFRM_MSG_NEWSA));
  ASSERT_TRUE(d.attrs.count(XFRMA_ENCAP));
  xfrm_encap_tmpl e;
  std::memcpy(&e, d.attrs[XFRMA_ENCAP].data(), sizeof e);
  EXPECT_EQ(e.encap_type, UDP_ENCAP_ESPINUDP);
  EXPECT_EQ(ntohs(e.encap_sport), 4500);
  EXPECT_EQ(ntohs(e.encap_dport), 31000);

  auto in = out;
  in.dir = Direction::In;
  d = decode(*xfrm_sa_request(in, XFRM_MSG_NEWSA));
  std::memcpy(&e, d.attrs[XFRMA_ENCAP].data(), sizeof e);
  EXPECT_EQ(ntohs(e.encap_sport), 31000);  // the peer sends from its port
  EXPECT_EQ(ntohs(e.encap_dport), 4500);
  // In: daddr is ours.
  EXPECT_EQ(std::memcmp(&d.info.id.daddr, in.local.bytes.data(), 4), 0);

  out.encap = Encap::None;
  d = decode(*xfrm_sa_request(out, XFRM_MSG_NEWSA));
  EXPECT_FALSE(d.attrs.count(XFRMA_ENCAP));
}

TEST(XfrmEncoding, ReplayStateChoice) {
  auto in = sa(esp::Encr::AesGcm16_128, esp::Integ::None, Direction::In);
  // ≤ 32 packets, no ESN: the legacy field.
  in.replay_window = 32;
  auto d = decode(*xfrm_sa_request(in, XFRM_MSG_NEWSA));
  EXPECT_EQ(d.info.replay_window, 32);
  EXPECT_FALSE(d.attrs.count(XFRMA_REPLAY_ESN_VAL));
  // Larger: the bitmap state, with replay_window 0 in the fixed part (the
  // kernel's verify_replay() insists).
  in.replay_window = 1024;
  d = decode(*xfrm_sa_request(in, XFRM_MSG_NEWSA));
  EXPECT_EQ(d.info.replay_window, 0);
  EXPECT_FALSE(d.info.flags & XFRM_STATE_ESN);
  ASSERT_TRUE(d.attrs.count(XFRMA_REPLAY_ESN_VAL));
  xfrm_replay_state_esn r;
  std::memcpy(&r, d.attrs[XFRMA_REPLAY_ESN_VAL].data(), sizeof r);
  EXPECT_EQ(r.replay_window, 1024u);
  EXPECT_EQ(r.bmp_len, 32u);
  EXPECT_EQ(d.attrs[XFRMA_REPLAY_ESN_VAL].size(), sizeof r + 32 * 4);
  // ESN: the flag and the ESN state, also on outbound SAs (window 1).
  in.esn = true;
  d = decode(*xfrm_sa_request(in, XFRM_MSG_NEWSA));
  EXPECT_TRUE(d.info.flags & XFRM_STATE_ESN);
  ASSERT_TRUE(d.attrs.count(XFRMA_REPLAY_ESN_VAL));
  auto out = in;
  out.dir = Direction::Out;
  d = decode(*xfrm_sa_request(out, XFRM_MSG_NEWSA));
  std::memcpy(&r, d.attrs[XFRMA_REPLAY_ESN_VAL].data(), sizeof r);
  EXPECT_EQ(r.replay_window, 1u);
  // Outbound without ESN: no replay state at all.
  out.esn = false;
  d = decode(*xfrm_sa_request(out, XFRM_MSG_NEWSA));
  EXPECT_EQ(d.info.replay_window, 0);
  EXPECT_FALSE(d.attrs.count(XFRMA_REPLAY_ESN_VAL));
  // What XFRM cannot do is an error, not a silent change.
  in.replay_window = 0;  // ESN without a window
  auto bad = xfrm_sa_request(in, XFRM_MSG_NEWSA);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("ESN"), std::string::npos) << bad.error();
  in.esn = false;
  in.replay_window = 8192;
  bad = xfrm_sa_request(in, XFRM_MSG_NEWSA);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("4096"), std::string::npos) << bad.error();
}

TEST(XfrmEncoding, LifetimesZeroMeansUnlimited) {
  auto s = sa(esp::Encr::AesCbc128, esp::Integ::HmacSha256_128);
  auto d = decode(*xfrm_sa_request(s, XFRM_MSG_NEWSA));
  EXPECT_EQ(d.info.lft.hard_byte_limit, XFRM_INF);
  EXPECT_EQ(d.info.lft.soft_packet_limit, XFRM_INF);
  EXPECT_EQ(d.info.lft.hard_add_expires_seconds, 0u);
  s.lifetime = {1000, 2000, 10, 20, 30, 60};
  d = decode(*xfrm_sa_request(s, XFRM_MSG_UPDSA));
  EXPECT_EQ(d.hdr.nlmsg_type, XFRM_MSG_UPDSA);
  EXPECT_EQ(d.info.lft.soft_byte_limit, 1000u);
  EXPECT_EQ(d.info.lft.hard_byte_limit, 2000u);
  EXPECT_EQ(d.info.lft.soft_packet_limit, 10u);
  EXPECT_EQ(d.info.lft.hard_packet_limit, 20u);
  EXPECT_EQ(d.info.lft.soft_add_expires_seconds, 30u);
  EXPECT_EQ(d.info.lft.hard_add_expires_seconds, 60u);
}

TEST(XfrmEncoding, Ipv6OuterAddresses) {
  auto s = sa(esp::Encr::AesGcm16_256, esp::Integ::None);
  s.local = *net::IpAddr::parse("2001:db8::1");
  s.remote = *net::IpAddr::parse("2001:db8::2");
  auto d = decode(*xfrm_sa_request(s, XFRM_MSG_NEWSA));
  EXPECT_EQ(d.info.family, AF_INET6);
  EXPECT_EQ(std::memcmp(&d.info.id.daddr, s.remote.bytes.data(), 16), 0);
  xfrm_algo_aead x;
  std::memcpy(&x, d.attrs[XFRMA_ALG_AEAD].data(), sizeof x);
  EXPECT_EQ(x.alg_key_len, 288u);  // 256 + 32
}

TEST(XfrmEncoding, InvalidSpecsAreRefused) {
  auto s = sa(esp::Encr::AesGcm16_128, esp::Integ::None);
  s.encr_key.pop_back();
  EXPECT_FALSE(xfrm_sa_request(s, XFRM_MSG_NEWSA));
  s = sa(esp::Encr::AesGcm16_128, esp::Integ::None);
  s.spi = 5;
  EXPECT_FALSE(xfrm_sa_request(s, XFRM_MSG_NEWSA));
}

TEST(XfrmEncoding, PolicyPriorityOrder) {
  auto pol = [](uint32_t prio, const char* src, const char* dst) {
    PolicySpec p;
    p.id = 1;
    p.tunnel_id = 1;
    p.priority = prio;
    p.src = *net::Cidr::parse(src);
    p.dst = *net::Cidr::parse(dst);
    return p;
  };
  // XFRM prefers lower values.
  EXPECT_LT(xfrm_policy_priority(pol(10, "10.0.0.0/8", "10.2.0.0/16")),
            xfrm_policy_priority(pol(9, "10.1.0.0/24", "10.2.0.0/24")));
  EXPECT_LT(xfrm_policy_priority(pol(0, "10.1.0.0/24", "10.2.0.0/24")),
            xfrm_policy_priority(pol(0, "10.1.0.0/24", "10.2.0.0/16")));
  EXPECT_LT(xfrm_policy_priority(pol(0, "::/0", "fd00::/128")),
            xfrm_policy_priority(pol(0, "::/0", "fd00::/127")));
  // Clamped at the top, never wrapping.
  EXPECT_EQ(xfrm_policy_priority(pol(UINT32_MAX, "::/0", "::/0")),
            xfrm_policy_priority(pol(kMaxPolicyPriority, "::/0", "::/0")));
  EXPECT_LT(xfrm_policy_priority(pol(kMaxPolicyPriority, "0.0.0.0/0", "0.0.0.0/0")),
            xfrm_policy_priority(pol(kMaxPolicyPriority - 1, "::/0", "fd00::/128")));
  EXPECT_GT(xfrm_policy_priority(pol(kMaxPolicyPriority, "::/128", "::/128")), 0u);
}

}  // namespace
}  // namespace xgw::dp
