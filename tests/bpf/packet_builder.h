// Ethernet frames for BPF_PROG_TEST_RUN: at most one VLAN tag, IPv4 (with
// options, fragment fields, and length fields that may lie) or IPv6 (with
// an optional fragment extension header), UDP, ESP (raw and in UDP 4500),
// IKE (UDP 500, and 4500 behind the non-ESP marker), NAT-T keepalives and
// ARP. Checksums (IPv4 header, UDP) are always correct for the bytes built,
// lies included, so a program never sees a frame broken in a way the test
// did not ask for.
//
//   auto f = PacketBuilder().vlan(7).ipv4("10.0.0.5", "192.168.0.9").udp(4000, 5000, 32).build();
//   auto esp = PacketBuilder().ipv6("2001:db8::1", "2001:db8::2").esp(0x1234, 1, 64).build();
//   auto cut = truncate_frame(esp, 20);
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace xgw::test {

using Bytes = std::vector<uint8_t>;

inline constexpr uint16_t kEthTypeIpv4 = 0x0800;
inline constexpr uint16_t kEthTypeIpv6 = 0x86dd;
inline constexpr uint16_t kEthTypeArp = 0x0806;
inline constexpr uint16_t kEthTypeVlan = 0x8100;
inline constexpr uint16_t kEthTypeQinQ = 0x88a8;
inline constexpr size_t kEthHeaderLen = 14;
inline constexpr size_t kVlanTagLen = 4;
inline constexpr size_t kIpv4HeaderLen = 20;
inline constexpr size_t kIpv6HeaderLen = 40;
inline constexpr size_t kIpv6FragHeaderLen = 8;
inline constexpr size_t kUdpHeaderLen = 8;
inline constexpr size_t kEspHeaderLen = 8;  // SPI + sequence number
inline constexpr size_t kIkeHeaderLen = 28;
inline constexpr uint8_t kProtoUdp = 17;
inline constexpr uint8_t kProtoEsp = 50;
inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoIcmp = 1;
inline constexpr uint8_t kProtoIpv6Frag = 44;
inline constexpr uint16_t kIkePort = 500;
inline constexpr uint16_t kNattPort = 4500;

// `n` bytes of a recognisable pattern (0, 1, 2, ...).
Bytes pattern(size_t n, uint8_t start = 0);

// The first `n` bytes of `frame` (all of it when n >= size).
Bytes truncate_frame(const Bytes& frame, size_t n);

class PacketBuilder {
 public:
  // --- Link layer -------------------------------------------------------
  // One 802.1Q tag (or 802.1ad with tpid = kEthTypeQinQ).
  PacketBuilder& vlan(uint16_t vid, uint16_t tpid = kEthTypeVlan);
  // Forces the (inner) EtherType instead of the one the L3 choice implies.
  PacketBuilder& ethertype(uint16_t type);
  // Zero bytes after the IP packet (Ethernet padding, FCS-like junk).
  PacketBuilder& trailer(size_t n);

  // --- Network layer ----------------------------------------------------
  // Addresses in text form; an unparsable address throws.
  PacketBuilder& ipv4(std::string_view src, std::string_view dst);
  PacketBuilder& ipv6(std::string_view src, std::string_view dst);
  // IPv4 options, padded with EOL (0) to a multiple of 4 bytes (max 40).
  PacketBuilder& ip_options(const Bytes& options);
  // Fragment fields: offset in 8-byte units and the MF flag. IPv4: the
  // header's frag_off; IPv6: adds a fragment extension header.
  PacketBuilder& fragment(uint16_t offset_units, bool more_fragments, uint32_t id = 0x1234);
  // Lies: IPv4 tot_len / IPv6 payload_len as given instead of the truth.
  PacketBuilder& length_field(uint16_t value);
  PacketBuilder& ihl(uint8_t words);       // IPv4 IHL nibble as given
  PacketBuilder& ip_version(uint8_t ver);  // version nibble as given
  PacketBuilder& ip_protocol(uint8_t p);   // protocol / next header as given

  // --- Transport layer (pick one) ---------------------------------------
  PacketBuilder& udp(uint16_t sport, uint16_t dport, const Bytes& payload);
  PacketBuilder& udp(uint16_t sport, uint16_t dport, size_t payload_len) {
    return udp(sport, dport, pattern(payload_len));
  }
  // Raw ESP (protocol 50): SPI and sequence number (host order), payload.
  PacketBuilder& esp(uint32_t spi, uint32_t seq, size_t payload_len);
  // ESP in UDP (RFC 3948): UDP sport -> 4500, SPI, sequence, payload.
  PacketBuilder& esp_in_udp(uint32_t spi, uint32_t seq, size_t payload_len,
                            uint16_t sport = kNattPort);
  // An IKE_SA_INIT-shaped message (28-byte header + body) over UDP 500, or
  // over UDP 4500 behind the 4-byte non-ESP marker.
  PacketBuilder& ike(uint16_t port = kIkePort, size_t body_len = 52);
  // RFC 3948 NAT keepalive: UDP 4500, one byte 0xff.
  PacketBuilder& natt_keepalive(uint16_t sport = kNattPort);
  // Any protocol number with the given bytes as its payload.
  PacketBuilder& raw(uint8_t proto, const Bytes& payload);

  // --- Non-IP -----------------------------------------------------------
  // An ARP who-has request (EtherType 0x0806, 28 bytes).
  PacketBuilder& arp(std::string_view sender_ip = "10.0.0.1",
                     std::string_view target_ip = "10.0.0.2");

  Bytes build() const;

  // Where the IP header starts in the built frame (14, or 18 with a tag).
  size_t l3_offset() const { return kEthHeaderLen + (vlan_ ? kVlanTagLen : 0); }
  // The true IP packet length (header, options, extension headers and
  // transport), i.e. what tot_len says when it does not lie.
  size_t l3_len() const;

 private:
  enum class L3 { None, V4, V6, Arp };

  Bytes build_ipv4(const Bytes& l4) const;
  Bytes build_ipv6(const Bytes& l4) const;
  Bytes transport() const;  // transport header + payload, UDP checksum filled in
  uint16_t udp_checksum(const Bytes& udp) const;

  std::optional<uint16_t> vlan_;
  uint16_t vlan_tpid_ = kEthTypeVlan;
  std::optional<uint16_t> ethertype_;
  size_t trailer_ = 0;

  L3 l3_ = L3::None;
  uint8_t src_[16] = {};
  uint8_t dst_[16] = {};
  Bytes options_;
  bool fragment_ = false;
  uint16_t frag_offset_ = 0;
  bool frag_more_ = false;
  uint32_t frag_id_ = 0;
  std::optional<uint16_t> length_field_;
  std::optional<uint8_t> ihl_;
  std::optional<uint8_t> version_;
  std::optional<uint8_t> protocol_override_;

  uint8_t proto_ = 0;  // transport protocol
  Bytes l4_;           // transport bytes (UDP checksum zero until build)
  bool is_udp_ = false;
  Bytes arp_;
};

}  // namespace xgw::test
