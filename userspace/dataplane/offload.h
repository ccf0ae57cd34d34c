// TCP segmentation and coalescing for the TUN device's virtio-net header
// (IFF_VNET_HDR with TSO offloads): the kernel hands the data path 64 KiB
// TCP super-packets instead of MTU-sized ones, and takes coalesced ones
// back, so the kernel walks its stack once per ~45 packets instead of once
// per packet (the same trick as GSO/GRO on a NIC).
#pragma once

#include <cstddef>
#include <cstdint>

namespace xgw::dp::offload {

// struct virtio_net_hdr (linux/virtio_net.h), host byte order on x86.
struct VnetHdr {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
};
static_assert(sizeof(VnetHdr) == 10);

constexpr uint8_t kNeedsCsum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
constexpr uint8_t kGsoNone = 0, kGsoTcpV4 = 1, kGsoTcpV6 = 4, kGsoEcn = 0x80;

// RFC 1071 one's-complement sum, not folded or complemented.
uint64_t csum_add(uint64_t sum, const uint8_t* p, size_t len);
uint16_t csum_fold(uint64_t sum);

// Finishes a checksum the kernel left partial (NEEDS_CSUM): sums from
// csum_start to the end and stores it at csum_start + csum_offset.
bool complete_checksum(uint8_t* pkt, size_t len, const VnetHdr& h);

struct TcpInfo {
  bool v6 = false;
  size_t l3_len = 0;  // IP header (IPv6: fixed header only)
  size_t l4_len = 0;  // TCP header with options
  size_t payload = 0;
  uint32_t seq = 0;
  uint8_t flags = 0;
};
// Plain TCP over IPv4 (not fragmented) or IPv6 without extension headers.
bool parse_tcp(const uint8_t* pkt, size_t len, TcpInfo* out);
bool tcp_checksum_valid(const uint8_t* pkt, const TcpInfo& t);

// Splits a TSO super-packet (gso_type TCPV4/TCPV6) into gso_size segments,
// in place, calling emit(segment, length) for each in order with complete
// IP and TCP checksums. Segment i's headers are written over the end of
// segment i-1's payload, so emit must be done with a segment when it
// returns. Returns false (nothing emitted) for a packet it cannot parse.
template <typename Emit>
bool tso_segment(uint8_t* pkt, size_t len, const VnetHdr& h, Emit&& emit);

// Receive side: can `pkt` be appended to the coalesced packet `head` whose
// next expected sequence number is `next_seq` and whose segments are
// `gso_size` long? (Same flow, same header bytes apart from lengths, IP id,
// checksums and sequence number; only ACK, or ACK|PSH ending the train.)
bool can_append(const uint8_t* head, const TcpInfo& hi, uint32_t next_seq, uint16_t gso_size,
                const uint8_t* pkt, const TcpInfo& pi);
// Turns a coalesced packet of `len` bytes into a GSO packet for the TUN
// device: fixes the IP length (and IPv4 checksum), puts the pseudo-header
// sum in the TCP checksum field and fills the virtio-net header.
void finish_coalesced(uint8_t* pkt, size_t len, const TcpInfo& hi, uint16_t gso_size, VnetHdr* vh);

// ---- implementation of the template ----
namespace detail {
void prepare_segment(uint8_t* seg, const TcpInfo& t, size_t seg_payload, unsigned index, bool last,
                     uint32_t seq0, uint16_t id0, size_t mss);
}

template <typename Emit>
bool tso_segment(uint8_t* pkt, size_t len, const VnetHdr& h, Emit&& emit) {
  TcpInfo t;
  if (!parse_tcp(pkt, len, &t) || h.gso_size == 0 || t.payload == 0) return false;
  const size_t hl = t.l3_len + t.l4_len;
  const size_t mss = h.gso_size;
  const uint16_t id0 = t.v6 ? 0 : static_cast<uint16_t>(pkt[4] << 8 | pkt[5]);
  uint8_t hdr[60 + 60];  // IPv4 ≤ 60 + TCP ≤ 60; IPv6 40 + TCP ≤ 60
  if (hl > sizeof(hdr)) return false;
  for (size_t i = 0; i < hl; ++i) hdr[i] = pkt[i];
  size_t rest = t.payload;
  unsigned index = 0;
  for (size_t off = hl; rest > 0; off += mss, ++index) {
    const size_t n = rest < mss ? rest : mss;
    rest -= n;
    uint8_t* seg = pkt + off - hl;
    if (index > 0)
      for (size_t i = 0; i < hl; ++i) seg[i] = hdr[i];
    detail::prepare_segment(seg, t, n, index, rest == 0, t.seq, id0, mss);
    emit(seg, hl + n);
  }
  return true;
}

}  // namespace xgw::dp::offload
