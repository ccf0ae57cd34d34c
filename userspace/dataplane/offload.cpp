#include "dataplane/offload.h"

#include <bit>
#include <cstring>

#include "common/bytes.h"

namespace xgw::dp::offload {

namespace {
constexpr uint8_t kFin = 0x01, kPsh = 0x08, kAck = 0x10, kCwr = 0x80;

// Pseudo-header sum (RFC 793 §3.1, RFC 8200 §8.1) for a TCP length.
uint64_t pseudo_sum(const uint8_t* pkt, const TcpInfo& t, size_t tcp_len) {
  uint64_t s = 0;
  if (t.v6) {
    s = csum_add(s, pkt + 8, 32);
    uint8_t tail[8] = {static_cast<uint8_t>(tcp_len >> 24),
                       static_cast<uint8_t>(tcp_len >> 16),
                       static_cast<uint8_t>(tcp_len >> 8),
                       static_cast<uint8_t>(tcp_len),
                       0,
                       0,
                       0,
                       6};
    s = csum_add(s, tail, 8);
  } else {
    s = csum_add(s, pkt + 12, 8);
    uint8_t tail[4] = {0, 6, static_cast<uint8_t>(tcp_len >> 8), static_cast<uint8_t>(tcp_len)};
    s = csum_add(s, tail, 4);
  }
  return s;
}

void ip4_checksum(uint8_t* pkt, size_t ihl) {
  pkt[10] = pkt[11] = 0;
  store_be16(pkt + 10, static_cast<uint16_t>(~csum_fold(csum_add(0, pkt, ihl))));
}
}  // namespace

// The sum runs over native-endian 32-bit words in a 64-bit accumulator
// (RFC 1071 §2(B): byte order only swaps the folded result; carries wait
// for the fold), a loop the compiler vectorises; csum_fold() swaps back to
// network order. Chunks must start at even offsets of the summed data.
__attribute__((optimize("O3"))) uint64_t csum_add(uint64_t sum, const uint8_t* p, size_t len) {
  const size_t words = len / 4;
  uint64_t acc = 0;
  for (size_t i = 0; i < words; ++i) {
    uint32_t v;
    std::memcpy(&v, p + 4 * i, 4);
    acc += v;
  }
  uint32_t tail = 0;
  if (len % 4)
    std::memcpy(&tail, p + 4 * words, len % 4);  // an odd last byte is a word's high byte
  return sum + acc + tail;
}

uint16_t csum_fold(uint64_t sum) {
  uint64_t s = (sum & 0xffffffff) + (sum >> 32);
  s = (s & 0xffffffff) + (s >> 32);
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  const auto native = static_cast<uint16_t>(s);
  static_assert(std::endian::native == std::endian::little,
                "checksums assume a little-endian host");
  return static_cast<uint16_t>(native << 8 | native >> 8);
}

bool complete_checksum(uint8_t* pkt, size_t len, const VnetHdr& h) {
  const size_t start = h.csum_start, field = size_t{h.csum_start} + h.csum_offset;
  if (start >= len || field + 2 > len) return false;
  // The field holds the pseudo-header sum; summing over it completes it.
  uint16_t c = static_cast<uint16_t>(~csum_fold(csum_add(0, pkt + start, len - start)));
  // A computed zero goes out as all ones (RFC 768): to UDP zero means "no
  // checksum", and IPv6 receivers drop it (RFC 8200 §8.1). TCP reads both
  // alike; the kernel's skb_checksum_help() does the same.
  if (c == 0) c = 0xffff;
  store_be16(pkt + field, c);
  return true;
}

bool parse_tcp(const uint8_t* pkt, size_t len, TcpInfo* out) {
  if (len < 20) return false;
  const unsigned v = pkt[0] >> 4;
  TcpInfo t;
  if (v == 4) {
    t.l3_len = size_t{pkt[0] & 0x0fu} * 4;
    if (t.l3_len < 20 || pkt[9] != 6) return false;
    if ((load_be16(pkt + 6) & 0x3fff) != 0) return false;  // fragment
    if (load_be16(pkt + 2) != len) return false;
  } else if (v == 6) {
    t.v6 = true;
    t.l3_len = 40;
    if (len < 40 || pkt[6] != 6) return false;
    if (size_t{load_be16(pkt + 4)} + 40 != len) return false;
  } else {
    return false;
  }
  if (len < t.l3_len + 20) return false;
  const uint8_t* th = pkt + t.l3_len;
  t.l4_len = static_cast<size_t>(th[12] >> 4) * 4;
  if (t.l4_len < 20 || t.l3_len + t.l4_len > len) return false;
  t.payload = len - t.l3_len - t.l4_len;
  t.seq = load_be32(th + 4);
  t.flags = th[13];
  *out = t;
  return true;
}

bool tcp_checksum_valid(const uint8_t* pkt, const TcpInfo& t) {
  const size_t tcp_len = t.l4_len + t.payload;
  uint64_t s = pseudo_sum(pkt, t, tcp_len);
  s = csum_add(s, pkt + t.l3_len, tcp_len);
  return csum_fold(s) == 0xffff;
}

namespace detail {
void prepare_segment(uint8_t* seg, const TcpInfo& t, size_t seg_payload, unsigned index, bool last,
                     uint32_t seq0, uint16_t id0, size_t mss) {
  const size_t tcp_len = t.l4_len + seg_payload;
  if (t.v6) {
    store_be16(seg + 4, static_cast<uint16_t>(tcp_len));
  } else {
    store_be16(seg + 2, static_cast<uint16_t>(t.l3_len + tcp_len));
    store_be16(seg + 4, static_cast<uint16_t>(id0 + index));
    ip4_checksum(seg, t.l3_len);
  }
  uint8_t* th = seg + t.l3_len;
  store_be32(th + 4, seq0 + static_cast<uint32_t>(index * mss));
  // As the kernel's tcp_gso_segment: FIN and PSH only on the last segment,
  // CWR only on the first.
  if (!last) th[13] &= static_cast<uint8_t>(~(kFin | kPsh));
  if (index > 0) th[13] &= static_cast<uint8_t>(~kCwr);
  th[16] = th[17] = 0;
  uint64_t s = pseudo_sum(seg, t, tcp_len);
  s = csum_add(s, th, tcp_len);
  store_be16(th + 16, static_cast<uint16_t>(~csum_fold(s)));
}
}  // namespace detail

bool can_append(const uint8_t* head, const TcpInfo& hi, uint32_t next_seq, uint16_t gso_size,
                const uint8_t* pkt, const TcpInfo& pi) {
  if (pi.v6 != hi.v6 || pi.l3_len != hi.l3_len || pi.l4_len != hi.l4_len) return false;
  if (pi.seq != next_seq || pi.payload == 0 || pi.payload > gso_size) return false;
  if ((pi.flags & ~kPsh) != kAck || (hi.flags & ~kPsh) != kAck) return false;
  if (hi.flags & kPsh) return false;  // a PSH ends the train
  const uint8_t* a = head;
  const uint8_t* b = pkt;
  if (!pi.v6) {
    // Version/IHL/TOS, TTL/protocol, addresses; options likewise.
    if (a[0] != b[0] || a[1] != b[1] || a[8] != b[8] || a[9] != b[9]) return false;
    if ((load_be16(a + 6) & 0x4000) != (load_be16(b + 6) & 0x4000)) return false;  // DF
    if (std::memcmp(a + 12, b + 12, pi.l3_len - 12) != 0) return false;
  } else {
    if (std::memcmp(a, b, 4) != 0) return false;  // version, class, flow label
    if (a[7] != b[7] || std::memcmp(a + 8, b + 8, 32) != 0) return false;
  }
  const uint8_t* ta = a + hi.l3_len;
  const uint8_t* tb = b + pi.l3_len;
  if (std::memcmp(ta, tb, 4) != 0) return false;                         // ports
  if (std::memcmp(ta + 8, tb + 8, 5) != 0) return false;                 // ack, data offset
  if (std::memcmp(ta + 14, tb + 14, 2) != 0) return false;               // window
  if (std::memcmp(ta + 18, tb + 18, hi.l4_len - 18) != 0) return false;  // urg ptr, options
  return true;
}

void finish_coalesced(uint8_t* pkt, size_t len, const TcpInfo& hi, uint16_t gso_size, VnetHdr* vh) {
  const size_t tcp_len = len - hi.l3_len;
  if (hi.v6) {
    store_be16(pkt + 4, static_cast<uint16_t>(tcp_len));
  } else {
    store_be16(pkt + 2, static_cast<uint16_t>(len));
    ip4_checksum(pkt, hi.l3_len);
  }
  uint8_t* th = pkt + hi.l3_len;
  th[16] = th[17] = 0;
  store_be16(th + 16, csum_fold(pseudo_sum(pkt, hi, tcp_len)));
  vh->flags = kNeedsCsum;
  vh->gso_type = hi.v6 ? kGsoTcpV6 : kGsoTcpV4;
  vh->hdr_len = static_cast<uint16_t>(hi.l3_len + hi.l4_len);
  vh->gso_size = gso_size;
  vh->csum_start = static_cast<uint16_t>(hi.l3_len);
  vh->csum_offset = 16;
}

}  // namespace xgw::dp::offload
