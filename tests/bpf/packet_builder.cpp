#include "packet_builder.h"

#include <arpa/inet.h>

#include <algorithm>
#include <stdexcept>
#include <string>

namespace xgw::test {

namespace {

constexpr uint8_t kMacDst[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};
constexpr uint8_t kMacSrc[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};

void put16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}

void put32(Bytes& b, uint32_t v) {
  put16(b, static_cast<uint16_t>(v >> 16));
  put16(b, static_cast<uint16_t>(v));
}

void set16(Bytes& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}

void append(Bytes& b, const uint8_t* p, size_t n) {
  b.insert(b.end(), p, p + n);
}
void append(Bytes& b, const Bytes& more) {
  b.insert(b.end(), more.begin(), more.end());
}

// RFC 1071 ones' complement sum, not yet complemented; `sum` carries over.
uint32_t sum16(const uint8_t* p, size_t len, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < len; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (len & 1) sum += static_cast<uint32_t>(p[len - 1] << 8);
  return sum;
}

uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

void parse_addr(int af, std::string_view text, uint8_t* out) {
  const std::string s(text);
  if (inet_pton(af, s.c_str(), out) != 1) throw std::invalid_argument("bad address: " + s);
}

}  // namespace

Bytes pattern(size_t n, uint8_t start) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(start + i);
  return b;
}

Bytes truncate_frame(const Bytes& frame, size_t n) {
  return Bytes(frame.begin(),
               frame.begin() + static_cast<std::ptrdiff_t>(std::min(n, frame.size())));
}

PacketBuilder& PacketBuilder::vlan(uint16_t vid, uint16_t tpid) {
  vlan_ = vid;
  vlan_tpid_ = tpid;
  return *this;
}

PacketBuilder& PacketBuilder::ethertype(uint16_t type) {
  ethertype_ = type;
  return *this;
}

PacketBuilder& PacketBuilder::trailer(size_t n) {
  trailer_ = n;
  return *this;
}

PacketBuilder& PacketBuilder::ipv4(std::string_view src, std::string_view dst) {
  l3_ = L3::V4;
  std::fill(std::begin(src_), std::end(src_), 0);
  std::fill(std::begin(dst_), std::end(dst_), 0);
  parse_addr(AF_INET, src, src_);
  parse_addr(AF_INET, dst, dst_);
  return *this;
}

PacketBuilder& PacketBuilder::ipv6(std::string_view src, std::string_view dst) {
  l3_ = L3::V6;
  parse_addr(AF_INET6, src, src_);
  parse_addr(AF_INET6, dst, dst_);
  return *this;
}

PacketBuilder& PacketBuilder::ip_options(const Bytes& options) {
  if (options.size() > 40) throw std::invalid_argument("IPv4 options exceed 40 bytes");
  options_ = options;
  while (options_.size() % 4 != 0) options_.push_back(0);  // EOL padding
  return *this;
}

PacketBuilder& PacketBuilder::fragment(uint16_t offset_units, bool more_fragments, uint32_t id) {
  if (offset_units > 0x1fff) throw std::invalid_argument("fragment offset exceeds 13 bits");
  fragment_ = true;
  frag_offset_ = offset_units;
  frag_more_ = more_fragments;
  frag_id_ = id;
  return *this;
}

PacketBuilder& PacketBuilder::length_field(uint16_t value) {
  length_field_ = value;
  return *this;
}

PacketBuilder& PacketBuilder::ihl(uint8_t words) {
  ihl_ = words;
  return *this;
}

PacketBuilder& PacketBuilder::ip_version(uint8_t ver) {
  version_ = ver;
  return *this;
}

PacketBuilder& PacketBuilder::ip_protocol(uint8_t p) {
  protocol_override_ = p;
  return *this;
}

PacketBuilder& PacketBuilder::udp(uint16_t sport, uint16_t dport, const Bytes& payload) {
  proto_ = kProtoUdp;
  is_udp_ = true;
  l4_.clear();
  put16(l4_, sport);
  put16(l4_, dport);
  put16(l4_, static_cast<uint16_t>(kUdpHeaderLen + payload.size()));
  put16(l4_, 0);  // checksum, filled in by build()
  append(l4_, payload);
  return *this;
}

PacketBuilder& PacketBuilder::esp(uint32_t spi, uint32_t seq, size_t payload_len) {
  Bytes b;
  put32(b, spi);
  put32(b, seq);
  append(b, pattern(payload_len, 0x40));
  return raw(kProtoEsp, b);
}

PacketBuilder& PacketBuilder::esp_in_udp(uint32_t spi, uint32_t seq, size_t payload_len,
                                         uint16_t sport) {
  Bytes b;
  put32(b, spi);
  put32(b, seq);
  append(b, pattern(payload_len, 0x40));
  return udp(sport, kNattPort, b);
}

PacketBuilder& PacketBuilder::ike(uint16_t port, size_t body_len) {
  Bytes b;
  if (port == kNattPort) put32(b, 0);  // RFC 3948 §2.2 non-ESP marker
  const uint8_t spi_i[8] = {0x8a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f, 0x60, 0x71};
  append(b, spi_i, sizeof spi_i);
  put32(b, 0);  // responder SPI: zero in IKE_SA_INIT
  put32(b, 0);
  b.push_back(33);    // next payload: SA
  b.push_back(0x20);  // version 2.0
  b.push_back(34);    // exchange type: IKE_SA_INIT
  b.push_back(0x08);  // flags: initiator
  put32(b, 0);        // message id
  put32(b, static_cast<uint32_t>(kIkeHeaderLen + body_len));
  append(b, pattern(body_len, 0x80));
  return udp(port, port, b);
}

PacketBuilder& PacketBuilder::natt_keepalive(uint16_t sport) {
  return udp(sport, kNattPort, Bytes{0xff});
}

PacketBuilder& PacketBuilder::raw(uint8_t proto, const Bytes& payload) {
  proto_ = proto;
  is_udp_ = false;
  l4_ = payload;
  return *this;
}

PacketBuilder& PacketBuilder::arp(std::string_view sender_ip, std::string_view target_ip) {
  l3_ = L3::Arp;
  arp_.clear();
  put16(arp_, 1);       // hardware: Ethernet
  put16(arp_, 0x0800);  // protocol: IPv4
  arp_.push_back(6);
  arp_.push_back(4);
  put16(arp_, 1);  // request
  append(arp_, kMacSrc, 6);
  uint8_t ip[4];
  parse_addr(AF_INET, sender_ip, ip);
  append(arp_, ip, 4);
  const uint8_t zero_mac[6] = {};
  append(arp_, zero_mac, 6);
  parse_addr(AF_INET, target_ip, ip);
  append(arp_, ip, 4);
  return *this;
}

size_t PacketBuilder::l3_len() const {
  switch (l3_) {
    case L3::V4:
      return kIpv4HeaderLen + options_.size() + l4_.size();
    case L3::V6:
      return kIpv6HeaderLen + (fragment_ ? kIpv6FragHeaderLen : 0) + l4_.size();
    case L3::Arp:
      return arp_.size();
    case L3::None:
      break;
  }
  return 0;
}

uint16_t PacketBuilder::udp_checksum(const Bytes& udp) const {
  // Pseudo-header (RFC 768 / RFC 8200 §8.1) + the UDP datagram.
  Bytes ph;
  if (l3_ == L3::V4) {
    append(ph, src_, 4);
    append(ph, dst_, 4);
    ph.push_back(0);
    ph.push_back(kProtoUdp);
    put16(ph, static_cast<uint16_t>(udp.size()));
  } else {
    append(ph, src_, 16);
    append(ph, dst_, 16);
    put32(ph, static_cast<uint32_t>(udp.size()));
    put32(ph, kProtoUdp);
  }
  uint16_t c = fold(sum16(udp.data(), udp.size(), sum16(ph.data(), ph.size())));
  return c == 0 ? 0xffff : c;  // zero means "no checksum"
}

Bytes PacketBuilder::transport() const {
  Bytes l4 = l4_;
  if (is_udp_ && l4.size() >= kUdpHeaderLen) set16(l4, 6, udp_checksum(l4));
  return l4;
}

Bytes PacketBuilder::build_ipv4(const Bytes& l4) const {
  const size_t hlen = kIpv4HeaderLen + options_.size();
  Bytes h;
  const uint8_t version = version_.value_or(4);
  const uint8_t ihl = ihl_.value_or(static_cast<uint8_t>(hlen / 4));
  h.push_back(static_cast<uint8_t>(version << 4 | (ihl & 0x0f)));
  h.push_back(0);  // DSCP/ECN
  put16(h, length_field_.value_or(static_cast<uint16_t>(hlen + l4.size())));
  put16(h, static_cast<uint16_t>(frag_id_));
  uint16_t frag = 0;
  if (fragment_) frag = static_cast<uint16_t>((frag_more_ ? 0x2000 : 0) | frag_offset_);
  put16(h, frag);
  h.push_back(64);  // TTL
  h.push_back(protocol_override_.value_or(proto_));
  put16(h, 0);  // checksum below
  append(h, src_, 4);
  append(h, dst_, 4);
  append(h, options_);
  set16(h, 10, fold(sum16(h.data(), h.size())));
  append(h, l4);
  return h;
}

Bytes PacketBuilder::build_ipv6(const Bytes& l4) const {
  Bytes h;
  const uint8_t version = version_.value_or(6);
  put32(h, static_cast<uint32_t>(version) << 28);  // traffic class 0, flow label 0
  const size_t payload = (fragment_ ? kIpv6FragHeaderLen : 0) + l4.size();
  put16(h, length_field_.value_or(static_cast<uint16_t>(payload)));
  const uint8_t next = protocol_override_.value_or(fragment_ ? kProtoIpv6Frag : proto_);
  h.push_back(next);
  h.push_back(64);  // hop limit
  append(h, src_, 16);
  append(h, dst_, 16);
  if (fragment_) {
    h.push_back(proto_);  // next header after the fragment header
    h.push_back(0);
    put16(h, static_cast<uint16_t>(frag_offset_ << 3 | (frag_more_ ? 1 : 0)));
    put32(h, frag_id_);
  }
  append(h, l4);
  return h;
}

Bytes PacketBuilder::build() const {
  Bytes f;
  append(f, kMacDst, 6);
  append(f, kMacSrc, 6);
  uint16_t type = 0;
  switch (l3_) {
    case L3::V4:
      type = kEthTypeIpv4;
      break;
    case L3::V6:
      type = kEthTypeIpv6;
      break;
    case L3::Arp:
      type = kEthTypeArp;
      break;
    case L3::None:
      type = 0x88b5;  // IEEE local experimental
      break;
  }
  type = ethertype_.value_or(type);
  if (vlan_) {
    put16(f, vlan_tpid_);
    put16(f, *vlan_ & 0x0fff);  // PCP 0, DEI 0
  }
  put16(f, type);
  switch (l3_) {
    case L3::V4:
      append(f, build_ipv4(transport()));
      break;
    case L3::V6:
      append(f, build_ipv6(transport()));
      break;
    case L3::Arp:
      append(f, arp_);
      break;
    case L3::None:
      break;
  }
  f.resize(f.size() + trailer_, 0);
  return f;
}

}  // namespace xgw::test
