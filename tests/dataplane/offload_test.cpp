// The TUN offload helpers (userspace/dataplane/offload.h) against
// independent references written here: a byte-by-byte RFC 1071 sum, a
// packet builder that computes every checksum from scratch and a
// straightforward segmenter that rebuilds each TSO segment on its own.
#include "dataplane/offload.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "common/bytes.h"

namespace xgw::dp::offload {
namespace {

using Bytes = std::vector<uint8_t>;

constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10, kUrg = 0x20,
                  kEce = 0x40, kCwr = 0x80;

// ---- reference arithmetic -------------------------------------------------

// RFC 1071 §1: big-endian 16-bit words, an odd last byte padded with a zero
// low byte, carries folded back in; the folded sum, not complemented.
uint16_t ref_sum(std::span<const uint8_t> d) {
  uint32_t s = 0;
  for (size_t i = 0; i < d.size(); i += 2) {
    const uint32_t hi = d[i];
    const uint32_t lo = i + 1 < d.size() ? d[i + 1] : 0;
    s += hi << 8 | lo;
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
  }
  return static_cast<uint16_t>(s);
}

// The pseudo-header (RFC 793 §3.1 / RFC 8200 §8.1) as bytes.
Bytes pseudo_header(const uint8_t* ip, bool v6, uint8_t proto, size_t l4_len) {
  Bytes ph;
  if (v6) {
    ph.assign(ip + 8, ip + 40);
    ph.push_back(static_cast<uint8_t>(l4_len >> 24));
    ph.push_back(static_cast<uint8_t>(l4_len >> 16));
    ph.push_back(static_cast<uint8_t>(l4_len >> 8));
    ph.push_back(static_cast<uint8_t>(l4_len));
    ph.insert(ph.end(), {0, 0, 0, proto});
  } else {
    ph.assign(ip + 12, ip + 20);
    ph.insert(ph.end(),
              {0, proto, static_cast<uint8_t>(l4_len >> 8), static_cast<uint8_t>(l4_len)});
  }
  return ph;
}

size_t l3_len_of(const Bytes& pkt) {
  return (pkt[0] >> 4) == 6 ? 40 : size_t{pkt[0] & 0x0fu} * 4;
}

// Does the transport checksum at `field` (offset within L4) verify?
bool ref_l4_valid(const Bytes& pkt, uint8_t proto) {
  const bool v6 = (pkt[0] >> 4) == 6;
  const size_t l3 = l3_len_of(pkt);
  Bytes all = pseudo_header(pkt.data(), v6, proto, pkt.size() - l3);
  all.insert(all.end(), pkt.begin() + static_cast<std::ptrdiff_t>(l3), pkt.end());
  return ref_sum(all) == 0xffff;
}

bool ref_ip4_header_valid(const Bytes& pkt) {
  return ref_sum({pkt.data(), l3_len_of(pkt)}) == 0xffff;
}

// ---- reference packet builder ---------------------------------------------

const uint8_t kSrc4[4] = {10, 1, 0, 10}, kDst4[4] = {10, 2, 0, 10};
const uint8_t kSrc6[16] = {0xfd, 0, 0, 0xa, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10};
const uint8_t kDst6[16] = {0xfd, 0, 0, 0xb, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10};

struct TcpPkt {
  bool v6 = false;
  Bytes ip_opts;   // IPv4 only, a multiple of 4
  Bytes tcp_opts;  // a multiple of 4
  uint8_t flags = kAck;
  uint32_t seq = 1000, ack = 77777;
  uint16_t win = 502, sport = 40000, dport = 5201, id = 0x1234;
  bool df = true;
  uint8_t ttl = 64, tos = 0;
  uint32_t flow = 0x5a5a5;
  Bytes payload;
};

// Full: a valid TCP checksum. Pseudo: the pseudo-header sum, as the kernel
// leaves it in a CHECKSUM_PARTIAL / TSO packet.
enum class Csum { Full, Pseudo };

Bytes build_tcp(const TcpPkt& s, Csum mode = Csum::Full) {
  const size_t l3 = s.v6 ? 40 : 20 + s.ip_opts.size();
  const size_t l4 = 20 + s.tcp_opts.size();
  Bytes p(l3 + l4 + s.payload.size(), 0);
  uint8_t* ip = p.data();
  if (s.v6) {
    store_be32(ip, 6u << 28 | uint32_t{s.tos} << 20 | (s.flow & 0xfffff));
    store_be16(ip + 4, static_cast<uint16_t>(l4 + s.payload.size()));
    ip[6] = 6;
    ip[7] = s.ttl;
    std::memcpy(ip + 8, kSrc6, 16);
    std::memcpy(ip + 24, kDst6, 16);
  } else {
    ip[0] = static_cast<uint8_t>(0x40 | l3 / 4);
    ip[1] = s.tos;
    store_be16(ip + 2, static_cast<uint16_t>(p.size()));
    store_be16(ip + 4, s.id);
    store_be16(ip + 6, s.df ? 0x4000 : 0);
    ip[8] = s.ttl;
    ip[9] = 6;
    std::memcpy(ip + 12, kSrc4, 4);
    std::memcpy(ip + 16, kDst4, 4);
    if (!s.ip_opts.empty()) std::memcpy(ip + 20, s.ip_opts.data(), s.ip_opts.size());
    store_be16(ip + 10, static_cast<uint16_t>(~ref_sum({ip, l3})));
  }
  uint8_t* th = ip + l3;
  store_be16(th, s.sport);
  store_be16(th + 2, s.dport);
  store_be32(th + 4, s.seq);
  store_be32(th + 8, s.ack);
  th[12] = static_cast<uint8_t>(l4 / 4 << 4);
  th[13] = s.flags;
  store_be16(th + 14, s.win);
  if (!s.tcp_opts.empty()) std::memcpy(th + 20, s.tcp_opts.data(), s.tcp_opts.size());
  if (!s.payload.empty()) std::memcpy(th + l4, s.payload.data(), s.payload.size());
  const Bytes ph = pseudo_header(ip, s.v6, 6, l4 + s.payload.size());
  if (mode == Csum::Pseudo) {
    store_be16(th + 16, ref_sum(ph));
  } else {
    Bytes all = ph;
    all.insert(all.end(), th, p.data() + p.size());
    store_be16(th + 16, static_cast<uint16_t>(~ref_sum(all)));
  }
  return p;
}

Bytes build_udp(bool v6, uint16_t sport, uint16_t dport, const Bytes& payload) {
  const size_t l3 = v6 ? 40 : 20;
  const size_t l4 = 8 + payload.size();
  Bytes p(l3 + l4, 0);
  uint8_t* ip = p.data();
  if (v6) {
    ip[0] = 0x60;
    store_be16(ip + 4, static_cast<uint16_t>(l4));
    ip[6] = 17;
    ip[7] = 64;
    std::memcpy(ip + 8, kSrc6, 16);
    std::memcpy(ip + 24, kDst6, 16);
  } else {
    ip[0] = 0x45;
    store_be16(ip + 2, static_cast<uint16_t>(p.size()));
    ip[8] = 64;
    ip[9] = 17;
    std::memcpy(ip + 12, kSrc4, 4);
    std::memcpy(ip + 16, kDst4, 4);
    store_be16(ip + 10, static_cast<uint16_t>(~ref_sum({ip, 20})));
  }
  store_be16(ip + l3, sport);
  store_be16(ip + l3 + 2, dport);
  store_be16(ip + l3 + 4, static_cast<uint16_t>(l4));
  if (!payload.empty()) std::memcpy(ip + l3 + 8, payload.data(), payload.size());
  return p;
}

Bytes random_bytes(std::mt19937& rng, size_t n) {
  Bytes b(n);
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  return b;
}

// NOP, NOP, timestamps (RFC 7323 §3).
Bytes timestamps(uint32_t tsval, uint32_t tsecr) {
  Bytes o = {1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0};
  store_be32(o.data() + 4, tsval);
  store_be32(o.data() + 8, tsecr);
  return o;
}

// ---- reference segmenter ----------------------------------------------------

// Each segment built from scratch: its slice of the payload, seq advanced by
// the bytes before it, IPv4 id + index, FIN/PSH only on the last, CWR only
// on the first.
std::vector<Bytes> ref_segment(const TcpPkt& super, size_t mss) {
  std::vector<Bytes> out;
  const size_t n = (super.payload.size() + mss - 1) / mss;
  for (size_t i = 0; i < n; ++i) {
    TcpPkt s = super;
    const size_t off = i * mss, len = std::min(mss, super.payload.size() - off);
    s.payload.assign(super.payload.begin() + static_cast<std::ptrdiff_t>(off),
                     super.payload.begin() + static_cast<std::ptrdiff_t>(off + len));
    s.seq = super.seq + static_cast<uint32_t>(off);
    s.id = static_cast<uint16_t>(super.id + i);
    if (i + 1 < n) s.flags &= static_cast<uint8_t>(~(kFin | kPsh));
    if (i > 0) s.flags &= static_cast<uint8_t>(~kCwr);
    out.push_back(build_tcp(s));
  }
  return out;
}

VnetHdr tso_hdr(const TcpPkt& s, uint16_t mss) {
  VnetHdr h{};
  h.flags = kNeedsCsum;
  h.gso_type = s.v6 ? kGsoTcpV6 : kGsoTcpV4;
  if (s.flags & kCwr) h.gso_type |= kGsoEcn;
  const size_t l3 = s.v6 ? 40 : 20 + s.ip_opts.size();
  h.hdr_len = static_cast<uint16_t>(l3 + 20 + s.tcp_opts.size());
  h.gso_size = mss;
  h.csum_start = static_cast<uint16_t>(l3);
  h.csum_offset = 16;
  return h;
}

// Runs tso_segment on a copy of `pkt` and returns copies of the segments,
// taken inside emit (the next segment's headers overwrite the previous
// segment's tail).
std::vector<Bytes> run_tso(Bytes pkt, const VnetHdr& h, bool* ok) {
  std::vector<Bytes> segs;
  *ok = tso_segment(pkt.data(), pkt.size(), h,
                    [&](uint8_t* seg, size_t len) { segs.emplace_back(seg, seg + len); });
  return segs;
}

// ===========================================================================
// RFC 1071 sums

TEST(Checksum, Rfc1071NumericalExample) {
  // RFC 1071 §3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to dd f2.
  const uint8_t d[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  EXPECT_EQ(ref_sum(d), 0xddf2);
  EXPECT_EQ(csum_fold(csum_add(0, d, sizeof(d))), 0xddf2);
  // In two even-offset pieces.
  EXPECT_EQ(csum_fold(csum_add(csum_add(0, d, 2), d + 2, 6)), 0xddf2);
}

TEST(Checksum, KnownIpv4HeaderVector) {
  // 45 00 00 73 00 00 40 00 40 11 [b8 61] c0 a8 00 01 c0 a8 00 c7: a UDP
  // packet 192.168.0.1 -> 192.168.0.199 whose header checksum is 0xb861.
  uint8_t h[20] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                   0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
  EXPECT_EQ(static_cast<uint16_t>(~csum_fold(csum_add(0, h, 20))), 0xb861);
  EXPECT_EQ(static_cast<uint16_t>(~ref_sum(h)), 0xb861);
  h[10] = 0xb8;
  h[11] = 0x61;
  EXPECT_EQ(csum_fold(csum_add(0, h, 20)), 0xffff);  // a valid header sums to all ones
}

TEST(Checksum, EdgeValues) {
  const uint8_t none[1] = {0xaa};
  EXPECT_EQ(csum_fold(csum_add(0, none, 0)), 0);
  const uint8_t ones[] = {0xff, 0xff, 0xff, 0xff, 0xff};
  for (size_t n = 1; n <= 5; ++n)
    EXPECT_EQ(csum_fold(csum_add(0, ones, n)), ref_sum({ones, n})) << n;
  const uint8_t odd[] = {0x12};
  EXPECT_EQ(csum_fold(csum_add(0, odd, 1)), 0x1200);  // an odd byte is a high byte
  // A carried-in sum of all ones still folds to all ones.
  EXPECT_EQ(csum_fold(~uint64_t{0}), 0xffff);
}

// Chains csum_add over pieces that all start at even offsets.
uint16_t chunked_sum(const Bytes& d, std::mt19937& rng) {
  uint64_t s = 0;
  size_t off = 0;
  while (off < d.size()) {
    size_t n = std::uniform_int_distribution<size_t>(0, 40)(rng) * 2;
    if (rng() % 8 == 0) n = d.size();  // sometimes the whole rest
    n = std::min(n, d.size() - off);
    s = csum_add(s, d.data() + off, n);
    off += n;
  }
  return csum_fold(s);
}

TEST(Checksum, MatchesReferenceForEveryLengthUpTo200) {
  std::mt19937 rng(1071);
  for (size_t len = 0; len <= 200; ++len) {
    for (int rep = 0; rep < 20; ++rep) {
      Bytes d = random_bytes(rng, len);
      if (rep == 1) std::fill(d.begin(), d.end(), 0xff);  // maximal carries
      if (rep == 2) std::fill(d.begin(), d.end(), 0x00);
      const uint16_t want = ref_sum(d);
      ASSERT_EQ(csum_fold(csum_add(0, d.data(), d.size())), want) << "len " << len;
      ASSERT_EQ(chunked_sum(d, rng), want) << "len " << len << " rep " << rep;
      // At any (even or odd) buffer alignment in memory.
      Bytes shifted(d.size() + 3);
      for (size_t a = 1; a <= 3; ++a) {
        if (!d.empty()) std::memcpy(shifted.data() + a, d.data(), d.size());
        ASSERT_EQ(csum_fold(csum_add(0, shifted.data() + a, d.size())), want) << len << " @" << a;
      }
    }
  }
}

TEST(Checksum, MatchesReferenceFor64KiBBuffers) {
  std::mt19937 rng(65536);
  for (size_t len : {65535u, 65536u, 65534u}) {
    for (int rep = 0; rep < 4; ++rep) {
      Bytes d = random_bytes(rng, len);
      if (rep == 0) std::fill(d.begin(), d.end(), 0xff);
      const uint16_t want = ref_sum(d);
      EXPECT_EQ(csum_fold(csum_add(0, d.data(), d.size())), want) << len;
      for (int k = 0; k < 5; ++k) EXPECT_EQ(chunked_sum(d, rng), want) << len;
    }
  }
}

// ===========================================================================
// complete_checksum: the kernel's CHECKSUM_PARTIAL (NEEDS_CSUM)

TEST(CompleteChecksum, TcpAndUdpBothFamilies) {
  std::mt19937 rng(7);
  for (bool v6 : {false, true}) {
    for (size_t n : {0u, 1u, 2u, 3u, 100u, 1399u, 1400u}) {
      // TCP: the field holds the pseudo-header sum.
      TcpPkt t;
      t.v6 = v6;
      t.tcp_opts = timestamps(rng(), rng());
      t.payload = random_bytes(rng, n);
      Bytes want = build_tcp(t, Csum::Full);
      Bytes pkt = build_tcp(t, Csum::Pseudo);
      VnetHdr h{};
      h.flags = kNeedsCsum;
      h.csum_start = static_cast<uint16_t>(v6 ? 40 : 20);
      h.csum_offset = 16;
      ASSERT_TRUE(complete_checksum(pkt.data(), pkt.size(), h));
      EXPECT_TRUE(ref_l4_valid(pkt, 6)) << v6 << " " << n;
      EXPECT_EQ(pkt, want) << v6 << " " << n;
      TcpInfo ti;
      ASSERT_TRUE(parse_tcp(pkt.data(), pkt.size(), &ti));
      EXPECT_TRUE(tcp_checksum_valid(pkt.data(), ti));

      // UDP likewise (csum_offset 6).
      Bytes u = build_udp(v6, 5353, 53, random_bytes(rng, n));
      const size_t l3 = v6 ? 40 : 20;
      store_be16(u.data() + l3 + 6, ref_sum(pseudo_header(u.data(), v6, 17, u.size() - l3)));
      h.csum_offset = 6;
      ASSERT_TRUE(complete_checksum(u.data(), u.size(), h));
      EXPECT_TRUE(ref_l4_valid(u, 17)) << v6 << " " << n;
    }
  }
}

TEST(CompleteChecksum, UdpNeverGetsAZeroChecksum) {
  // A UDP checksum that computes to 0x0000 goes out as 0xffff (RFC 768;
  // zero means "no checksum", and IPv6 receivers drop it, RFC 8200 §8.1).
  for (bool v6 : {false, true}) {
    Bytes payload = {'x', 'g', 'w', '!', 0, 0};
    Bytes u = build_udp(v6, 1000, 2000, payload);
    const size_t l3 = v6 ? 40 : 20;
    // Choose the last payload word so that the whole sum is 0xffff.
    Bytes all = pseudo_header(u.data(), v6, 17, u.size() - l3);
    all.insert(all.end(), u.begin() + static_cast<std::ptrdiff_t>(l3), u.end());
    const uint16_t s = ref_sum(all);
    store_be16(u.data() + u.size() - 2, static_cast<uint16_t>(0xffff - s));
    store_be16(u.data() + l3 + 6, ref_sum(pseudo_header(u.data(), v6, 17, u.size() - l3)));
    VnetHdr h{};
    h.flags = kNeedsCsum;
    h.csum_start = static_cast<uint16_t>(l3);
    h.csum_offset = 6;
    ASSERT_TRUE(complete_checksum(u.data(), u.size(), h));
    EXPECT_EQ(load_be16(u.data() + l3 + 6), 0xffff) << (v6 ? "IPv6" : "IPv4");
    EXPECT_TRUE(ref_l4_valid(u, 17));
  }
}

TEST(CompleteChecksum, RejectsOffsetsOutsideThePacket) {
  Bytes u = build_udp(false, 1, 2, {1, 2, 3, 4});
  VnetHdr h{};
  h.flags = kNeedsCsum;
  h.csum_start = static_cast<uint16_t>(u.size());
  h.csum_offset = 0;
  EXPECT_FALSE(complete_checksum(u.data(), u.size(), h));
  h.csum_start = 20;
  h.csum_offset = static_cast<uint16_t>(u.size() - 21);  // the field's 2nd byte past the end
  EXPECT_FALSE(complete_checksum(u.data(), u.size(), h));
  h.csum_offset = static_cast<uint16_t>(u.size() - 22);  // the last two bytes: fine
  EXPECT_TRUE(complete_checksum(u.data(), u.size(), h));
}

// ===========================================================================
// parse_tcp

TEST(ParseTcp, AcceptsPlainTcp) {
  TcpPkt s;
  s.payload = Bytes(100, 0xab);
  s.seq = 0xfedcba98;
  s.flags = kAck | kPsh;
  Bytes p = build_tcp(s);
  TcpInfo t;
  ASSERT_TRUE(parse_tcp(p.data(), p.size(), &t));
  EXPECT_FALSE(t.v6);
  EXPECT_EQ(t.l3_len, 20u);
  EXPECT_EQ(t.l4_len, 20u);
  EXPECT_EQ(t.payload, 100u);
  EXPECT_EQ(t.seq, 0xfedcba98u);
  EXPECT_EQ(t.flags, kAck | kPsh);
  EXPECT_TRUE(tcp_checksum_valid(p.data(), t));

  s.ip_opts = {0x94, 0x04, 0x00, 0x00};  // router alert
  s.tcp_opts = timestamps(1, 2);
  s.payload.clear();
  p = build_tcp(s);
  ASSERT_TRUE(parse_tcp(p.data(), p.size(), &t));
  EXPECT_EQ(t.l3_len, 24u);
  EXPECT_EQ(t.l4_len, 32u);
  EXPECT_EQ(t.payload, 0u);
  EXPECT_TRUE(tcp_checksum_valid(p.data(), t));

  s.df = false;  // DF is not a fragment
  p = build_tcp(s);
  EXPECT_TRUE(parse_tcp(p.data(), p.size(), &t));

  TcpPkt v6;
  v6.v6 = true;
  v6.tcp_opts = timestamps(3, 4);
  v6.payload = Bytes(1, 7);
  p = build_tcp(v6);
  ASSERT_TRUE(parse_tcp(p.data(), p.size(), &t));
  EXPECT_TRUE(t.v6);
  EXPECT_EQ(t.l3_len, 40u);
  EXPECT_EQ(t.l4_len, 32u);
  EXPECT_EQ(t.payload, 1u);
  EXPECT_TRUE(tcp_checksum_valid(p.data(), t));
  p[p.size() - 1] ^= 1;
  EXPECT_FALSE(tcp_checksum_valid(p.data(), t));
}

TEST(ParseTcp, RejectsWhatItCannotHandle) {
  TcpPkt s;
  s.payload = Bytes(30, 1);  // less than a maximal TCP header's options
  const Bytes good4 = build_tcp(s);
  s.v6 = true;
  const Bytes good6 = build_tcp(s);
  TcpInfo t;
  t.payload = 12345;  // untouched on failure
  auto rejects = [&](Bytes p, const char* what) {
    EXPECT_FALSE(parse_tcp(p.data(), p.size(), &t)) << what;
    EXPECT_EQ(t.payload, 12345u) << what;
  };
  ASSERT_TRUE(parse_tcp(good4.data(), good4.size(), &t));
  ASSERT_TRUE(parse_tcp(good6.data(), good6.size(), &t));
  t.payload = 12345;

  rejects(Bytes(good4.begin(), good4.begin() + 19), "shorter than an IPv4 header");
  rejects(Bytes{}, "empty");
  Bytes p = good4;
  p[0] = 0x55;
  rejects(p, "version 5");
  p = good4;
  p[0] = 0x44;
  rejects(p, "IHL 4");
  p = good4;
  p[0] = 0x4f;
  rejects(p, "IHL 15 past the packet's TCP header");
  p = good4;
  p[9] = 17;
  rejects(p, "UDP");
  p = good4;
  p[6] |= 0x20;
  rejects(p, "more fragments");
  p = good4;
  store_be16(p.data() + 6, 0x0001);
  rejects(p, "fragment offset");
  p = good4;
  p.push_back(0);
  rejects(p, "IPv4 total length shorter than the buffer");
  p = good4;
  p.pop_back();
  rejects(p, "IPv4 total length longer than the buffer");
  p = good4;
  p[20 + 12] = 0x40;
  rejects(p, "TCP data offset 4");
  p = good4;
  p[20 + 12] = 0xf0;
  rejects(p, "TCP data offset past the packet");
  {
    // IPv4 header + 10 bytes of TCP header, consistent IP length.
    Bytes q(good4.begin(), good4.begin() + 30);
    store_be16(q.data() + 2, 30);
    rejects(q, "truncated TCP header");
  }

  rejects(Bytes(good6.begin(), good6.begin() + 39), "shorter than an IPv6 header");
  p = good6;
  p[6] = 0;
  rejects(p, "IPv6 hop-by-hop header");
  p = good6;
  p[6] = 44;
  rejects(p, "IPv6 fragment header");
  p = good6;
  p[6] = 17;
  rejects(p, "IPv6 UDP");
  p = good6;
  p.push_back(0);
  rejects(p, "IPv6 payload length shorter than the buffer");
  p = good6;
  p.pop_back();
  rejects(p, "IPv6 payload length longer than the buffer");
  {
    Bytes q(good6.begin(), good6.begin() + 50);
    store_be16(q.data() + 4, 10);
    rejects(q, "IPv6 truncated TCP header");
  }
  {
    // A real hop-by-hop header in front of TCP (ext headers unsupported).
    Bytes q(good6.begin(), good6.begin() + 40);
    q[6] = 0;
    q.insert(q.end(), {6, 0, 1, 4, 0, 0, 0, 0});
    q.insert(q.end(), good6.begin() + 40, good6.end());
    store_be16(q.data() + 4, static_cast<uint16_t>(q.size() - 40));
    rejects(q, "IPv6 with an extension header");
  }
}

// ===========================================================================
// tso_segment

struct TsoCase {
  const char* name;
  bool v6;
  size_t ip_opts, payload;
  uint16_t mss;
  bool ts;
  uint8_t flags;
  uint32_t seq = 1000;
  uint16_t id = 0x1234;
};

void check_segments(const TcpPkt& super, uint16_t mss, const std::vector<Bytes>& got) {
  const std::vector<Bytes> want = ref_segment(super, mss);
  ASSERT_EQ(got.size(), want.size());
  const size_t l3 = super.v6 ? 40 : 20 + super.ip_opts.size();
  const size_t hl = l3 + 20 + super.tcp_opts.size();
  Bytes joined;
  for (size_t i = 0; i < got.size(); ++i) {
    SCOPED_TRACE("segment " + std::to_string(i));
    const Bytes& g = got[i];
    const bool last = i + 1 == got.size();
    ASSERT_GE(g.size(), hl);
    const size_t pl = g.size() - hl;
    EXPECT_EQ(pl, last ? super.payload.size() - i * mss : mss);
    if (super.v6) {
      EXPECT_EQ(load_be16(g.data() + 4), g.size() - 40);
    } else {
      EXPECT_EQ(load_be16(g.data() + 2), g.size());
      EXPECT_EQ(load_be16(g.data() + 4), static_cast<uint16_t>(super.id + i));
      EXPECT_TRUE(ref_ip4_header_valid(g));
    }
    const uint8_t* th = g.data() + l3;
    EXPECT_EQ(load_be32(th + 4), static_cast<uint32_t>(super.seq + i * mss));
    const uint8_t f = th[13];
    EXPECT_EQ(bool(f & kFin), last && (super.flags & kFin));
    EXPECT_EQ(bool(f & kPsh), last && (super.flags & kPsh));
    EXPECT_EQ(bool(f & kCwr), i == 0 && (super.flags & kCwr));
    EXPECT_EQ(f & (kAck | kEce | kUrg), super.flags & (kAck | kEce | kUrg));
    EXPECT_TRUE(ref_l4_valid(g, 6));
    TcpInfo ti;
    ASSERT_TRUE(parse_tcp(g.data(), g.size(), &ti));
    EXPECT_TRUE(tcp_checksum_valid(g.data(), ti));
    joined.insert(joined.end(), g.begin() + static_cast<std::ptrdiff_t>(hl), g.end());
    EXPECT_EQ(g, want[i]);  // byte for byte what the reference builds
  }
  EXPECT_EQ(joined, super.payload);
}

class Tso : public ::testing::TestWithParam<TsoCase> {};

TEST_P(Tso, SegmentsLikeTheReference) {
  const TsoCase& c = GetParam();
  std::mt19937 rng(static_cast<uint32_t>(c.payload * 31 + c.mss));
  TcpPkt s;
  s.v6 = c.v6;
  if (c.ip_opts) s.ip_opts = {0x94, 0x04, 0x00, 0x00, 1, 1, 1, 0};  // RA, NOPs, EOL
  s.ip_opts.resize(c.ip_opts);
  if (c.ts) s.tcp_opts = timestamps(0x01020304, 0xa0b0c0d0);
  s.flags = c.flags;
  s.seq = c.seq;
  s.id = c.id;
  s.payload = random_bytes(rng, c.payload);
  const Bytes pkt = build_tcp(s, Csum::Pseudo);
  ASSERT_LE(pkt.size(), 65535u + (c.v6 ? 40 : 0));
  bool ok = false;
  const auto segs = run_tso(pkt, tso_hdr(s, c.mss), &ok);
  ASSERT_TRUE(ok);
  check_segments(s, c.mss, segs);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, Tso,
    ::testing::Values(
        TsoCase{"v4_exact_multiple", false, 0, 1460 * 10, 1460, false, kAck},
        TsoCase{"v4_timestamps_remainder", false, 0, 5000, 1448, true, kAck},
        TsoCase{"v4_ip_options", false, 8, 4000, 1400, true, kAck | kPsh},
        TsoCase{"v4_fin_psh", false, 0, 3000, 1000, false, kAck | kPsh | kFin},
        TsoCase{"v4_cwr_ece", false, 0, 3001, 1000, true, kAck | kCwr | kEce},
        TsoCase{"v4_urg", false, 0, 2500, 1000, false, kAck | kUrg},
        TsoCase{"v4_odd_mss", false, 0, 10007, 999, true, kAck | kPsh},
        TsoCase{"v4_single_segment", false, 0, 700, 1448, true, kAck | kPsh | kFin | kCwr},
        TsoCase{"v4_max_size", false, 0, 65535 - 40 - 12, 1448, true, kAck | kPsh},
        TsoCase{"v4_seq_and_id_wrap", false, 0, 9000, 1448, true, kAck, 0xffffe000, 0xfffe},
        TsoCase{"v6_exact_multiple", true, 0, 1440 * 8, 1440, false, kAck},
        TsoCase{"v6_timestamps_remainder", true, 0, 6543, 1428, true, kAck | kPsh},
        TsoCase{"v6_fin_psh_cwr", true, 0, 4321, 1000, true, kAck | kPsh | kFin | kCwr},
        TsoCase{"v6_max_size", true, 0, 65535 - 32, 1428, true, kAck},
        TsoCase{"v6_tiny_mss", true, 0, 100, 7, false, kAck, 0xfffffff0}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(TsoReject, MalformedInputEmitsNothing) {
  TcpPkt s;
  s.tcp_opts = timestamps(5, 6);
  s.payload = Bytes(3000, 0x42);
  const Bytes good = build_tcp(s, Csum::Pseudo);
  const VnetHdr h = tso_hdr(s, 1448);
  bool ok = true;
  EXPECT_EQ(run_tso(good, h, &ok).size(), 3u);
  EXPECT_TRUE(ok);

  auto rejected = [&](Bytes p, VnetHdr hh, const char* what) {
    bool r = true;
    const auto segs = run_tso(std::move(p), hh, &r);
    EXPECT_FALSE(r) << what;
    EXPECT_TRUE(segs.empty()) << what;
  };
  VnetHdr zero = h;
  zero.gso_size = 0;
  rejected(good, zero, "gso_size 0");
  Bytes p = good;
  p.pop_back();
  rejected(p, h, "IP length longer than the read");
  p = good;
  p[9] = 17;
  rejected(p, h, "not TCP");
  p = good;
  p[6] |= 0x20;
  rejected(p, h, "IPv4 fragment");
  p = good;
  p[20 + 12] = 0x30;
  rejected(p, h, "TCP data offset 3");
  rejected(Bytes(good.begin(), good.begin() + 30), h, "truncated");
  s.v6 = true;
  p = build_tcp(s, Csum::Pseudo);
  p[6] = 0;
  VnetHdr h6 = tso_hdr(s, 1448);
  rejected(p, h6, "IPv6 extension header");
}

// ===========================================================================
// can_append / finish_coalesced (software GRO)

struct Train {
  Bytes buf;  // the coalesced packet grows here
  size_t len = 0;
  TcpInfo head;
  uint32_t next_seq = 0;
  uint16_t gso = 0;

  explicit Train(const Bytes& first) : buf(65536 + 64) {
    if (!first.empty()) std::memcpy(buf.data(), first.data(), first.size());
    len = first.size();
    EXPECT_TRUE(parse_tcp(first.data(), first.size(), &head));
    next_seq = head.seq + static_cast<uint32_t>(head.payload);
    gso = static_cast<uint16_t>(head.payload);
  }
  bool can(const Bytes& seg) const {
    TcpInfo pi;
    if (!parse_tcp(seg.data(), seg.size(), &pi)) return false;
    return can_append(buf.data(), head, next_seq, gso, seg.data(), pi);
  }
  // What the worker does after can_append: copy the payload, move PSH.
  void append(const Bytes& seg) {
    TcpInfo pi;
    ASSERT_TRUE(parse_tcp(seg.data(), seg.size(), &pi));
    std::memcpy(buf.data() + len, seg.data() + pi.l3_len + pi.l4_len, pi.payload);
    len += pi.payload;
    next_seq += static_cast<uint32_t>(pi.payload);
    if (pi.flags & kPsh) buf[head.l3_len + 13] |= kPsh;
  }
};

void coalesce_round_trip(const TcpPkt& s, uint16_t mss) {
  const Bytes super = build_tcp(s, Csum::Pseudo);
  bool ok = false;
  const auto segs = run_tso(super, tso_hdr(s, mss), &ok);
  ASSERT_TRUE(ok);
  ASSERT_GE(segs.size(), 2u);
  Train t(segs[0]);
  for (size_t i = 1; i < segs.size(); ++i) {
    ASSERT_TRUE(t.can(segs[i])) << "segment " << i;
    t.append(segs[i]);
  }
  VnetHdr vh{};
  finish_coalesced(t.buf.data(), t.len, t.head, t.gso, &vh);
  const Bytes got(t.buf.begin(), t.buf.begin() + static_cast<std::ptrdiff_t>(t.len));
  const size_t l3 = s.v6 ? 40 : 20 + s.ip_opts.size();
  const size_t hl = l3 + 20 + s.tcp_opts.size();

  ASSERT_EQ(got.size(), super.size());
  EXPECT_EQ(Bytes(got.begin() + static_cast<std::ptrdiff_t>(hl), got.end()), s.payload);
  if (s.v6) {
    EXPECT_EQ(load_be16(got.data() + 4), got.size() - 40);
  } else {
    EXPECT_EQ(load_be16(got.data() + 2), got.size());
    EXPECT_TRUE(ref_ip4_header_valid(got));
  }
  // The field holds the pseudo-header sum for the whole TCP length...
  EXPECT_EQ(load_be16(got.data() + l3 + 16),
            ref_sum(pseudo_header(got.data(), s.v6, 6, got.size() - l3)));
  // ...so the coalesced packet is the super-packet the kernel would have sent.
  EXPECT_EQ(got, super);

  EXPECT_EQ(vh.flags, kNeedsCsum);
  EXPECT_EQ(vh.gso_type, s.v6 ? kGsoTcpV6 : kGsoTcpV4);
  EXPECT_EQ(vh.gso_size, mss);
  EXPECT_EQ(vh.hdr_len, hl);
  EXPECT_EQ(vh.csum_start, l3);
  EXPECT_EQ(vh.csum_offset, 16);

  // Completing the checksum as the kernel would gives a valid packet.
  Bytes done = got;
  ASSERT_TRUE(complete_checksum(done.data(), done.size(), vh));
  EXPECT_TRUE(ref_l4_valid(done, 6));
  TcpInfo ti;
  ASSERT_TRUE(parse_tcp(done.data(), done.size(), &ti));
  EXPECT_TRUE(tcp_checksum_valid(done.data(), ti));
  EXPECT_EQ(ti.flags, s.flags);
}

TEST(Coalesce, RoundTripsTsoSegments) {
  std::mt19937 rng(42);
  for (bool v6 : {false, true}) {
    for (bool ts : {false, true}) {
      for (uint8_t flags : {kAck, static_cast<uint8_t>(kAck | kPsh)}) {
        for (size_t payload : {2u * 1448, 5000u, 44u * 1448 + 17}) {
          SCOPED_TRACE(std::string(v6 ? "v6" : "v4") + (ts ? " ts" : "") + " flags " +
                       std::to_string(flags) + " payload " + std::to_string(payload));
          TcpPkt s;
          s.v6 = v6;
          if (ts) s.tcp_opts = timestamps(rng(), rng());
          s.flags = flags;
          s.seq = rng();
          s.id = static_cast<uint16_t>(rng());
          s.payload = random_bytes(rng, payload);
          coalesce_round_trip(s, v6 ? 1428 : 1448);
        }
      }
    }
  }
  TcpPkt opts;  // IPv4 options take part in the comparison
  opts.ip_opts = {0x94, 0x04, 0x00, 0x00};
  opts.payload = random_bytes(rng, 3333);
  coalesce_round_trip(opts, 1111);
}

// Two consecutive full-size segments of one flow, from `base`.
struct Pair {
  Bytes a, b;
};
Pair pair_of(TcpPkt base, size_t mss = 1000) {
  base.payload.assign(mss, 0x11);
  Pair p;
  p.a = build_tcp(base);
  base.seq += static_cast<uint32_t>(mss);
  base.id = static_cast<uint16_t>(base.id + 1);
  base.payload.assign(mss, 0x22);
  p.b = build_tcp(base);
  return p;
}

TEST(Coalesce, AcceptsTheNextInOrderSegment) {
  for (bool v6 : {false, true}) {
    TcpPkt s;
    s.v6 = v6;
    s.tcp_opts = timestamps(100, 200);
    Pair p = pair_of(s);
    EXPECT_TRUE(Train(p.a).can(p.b));
    s.flags = kAck | kPsh;  // a PSH segment may end the train
    Bytes b = pair_of(s).b;
    EXPECT_TRUE(Train(p.a).can(b));
    // A shorter segment may end it as well.
    TcpPkt shorter = s;
    shorter.seq += 1000;
    shorter.payload.assign(10, 0x33);
    EXPECT_TRUE(Train(p.a).can(build_tcp(shorter)));
  }
}

TEST(Coalesce, RejectsWhatMustNotMerge) {
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "IPv6" : "IPv4");
    TcpPkt s;
    s.v6 = v6;
    s.tcp_opts = timestamps(100, 200);
    const Pair p = pair_of(s);
    const size_t l3 = v6 ? 40 : 20;
    ASSERT_TRUE(Train(p.a).can(p.b));

    auto rejects = [&](const Bytes& head, const Bytes& next, const char* what) {
      EXPECT_FALSE(Train(head).can(next)) << what;
    };
    auto changed = [&](auto edit) {
      TcpPkt t = s;
      edit(t);
      return pair_of(t).b;
    };
    rejects(p.a, changed([](TcpPkt& t) { t.sport++; }), "other source port");
    rejects(p.a, changed([](TcpPkt& t) { t.dport++; }), "other destination port");
    rejects(p.a, changed([](TcpPkt& t) { t.seq += 1; }), "out-of-order seq (gap)");
    rejects(p.a, p.a, "the same segment again");
    rejects(p.b, p.a, "older segment after newer");
    rejects(p.a, changed([](TcpPkt& t) { t.tcp_opts = timestamps(101, 200); }),
            "timestamps differ");
    rejects(p.a, changed([](TcpPkt& t) { t.tcp_opts.clear(); }), "options dropped");
    rejects(p.a, changed([](TcpPkt& t) { t.ack++; }), "other ack number");
    rejects(p.a, changed([](TcpPkt& t) { t.win++; }), "other window");
    for (uint8_t f : {kSyn, kFin, kRst, kUrg, kCwr, kEce}) {
      const uint8_t flags = static_cast<uint8_t>(kAck | f);
      rejects(p.a, changed([&](TcpPkt& t) { t.flags = flags; }),
              ("flag " + std::to_string(f) + " on the next segment").c_str());
      TcpPkt h = s;
      h.flags = flags;
      rejects(pair_of(h).a, p.b, ("flag " + std::to_string(f) + " on the head").c_str());
    }
    rejects(p.a, changed([](TcpPkt& t) { t.flags = 0; }), "no ACK");
    TcpPkt psh = s;
    psh.flags = kAck | kPsh;
    rejects(pair_of(psh).a, p.b, "a PSH head ends the train");
    rejects(p.a, changed([](TcpPkt& t) { t.ttl--; }), "TTL / hop limit differs");
    rejects(p.a, changed([](TcpPkt& t) { t.tos = 0x10; }), "TOS / traffic class differs");
    if (v6) {
      rejects(p.a, changed([](TcpPkt& t) { t.flow ^= 1; }), "flow label differs");
    } else {
      rejects(p.a, changed([](TcpPkt& t) { t.df = false; }), "DF differs");
      rejects(p.a, changed([](TcpPkt& t) { t.ip_opts = {1, 1, 1, 0}; }), "IP options differ");
    }
    {
      Bytes b = p.b;  // other destination address
      b[l3 - 1] ^= 1;
      rejects(p.a, b, "other destination address");
    }
    {
      TcpPkt big = s;  // payload > gso_size
      big.seq += 1000;
      big.payload.assign(1001, 0x44);
      rejects(p.a, build_tcp(big), "payload larger than gso_size");
      big.payload.clear();
      rejects(p.a, build_tcp(big), "no payload");
    }
    {
      TcpPkt other = s;  // other family
      other.v6 = !v6;
      other.seq += 1000;
      other.payload.assign(1000, 0x55);
      rejects(p.a, build_tcp(other), "other IP version");
    }
  }
}

}  // namespace
}  // namespace xgw::dp::offload
