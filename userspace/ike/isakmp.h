// IKEv1 messages: the ISAKMP header and payloads (RFC 2408 §3) with the
// IPsec DOI's ID layout (RFC 2407 §4.6.2) and RFC 3947's NAT-D, decoded
// into plain values and encoded back. Like message.h for IKEv2, every
// length is checked against its parent. An encrypted message (the E flag)
// carries its payload chain encrypted after the header; parse_chain()
// reads it once decrypted. This is the codec only: the IKEv1 exchanges
// (main, aggressive and quick mode) are still to be built on it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "common/expected.h"

namespace xgw::ike::isakmp {

using Bytes = std::vector<uint8_t>;

// RFC 2408 §3.1 (exchange types: RFC 2409 §5 and §5.5 for quick mode).
enum class Exchange : uint8_t { Main = 2, Aggressive = 4, Informational = 5, Quick = 32 };

enum class PayloadType : uint8_t {
  None = 0,
  SA = 1,
  Proposal = 2,
  Transform = 3,
  KE = 4,
  ID = 5,
  CERT = 6,
  CR = 7,
  HASH = 8,
  SIG = 9,
  Nonce = 10,
  Notify = 11,
  Delete = 12,
  Vendor = 13,
  NatD = 20,   // RFC 3947 §3.2
  NatOA = 21,  // RFC 3947 §5.2
};

inline constexpr uint8_t kFlagEncryption = 0x01;
inline constexpr uint8_t kFlagCommit = 0x02;
inline constexpr uint8_t kFlagAuthOnly = 0x04;
inline constexpr uint8_t kVersion = 0x10;  // major 1, minor 0
inline constexpr size_t kHeaderSize = 28;
inline constexpr uint32_t kDoiIpsec = 1;         // RFC 2407 §4.2
inline constexpr uint32_t kSitIdentityOnly = 1;  // RFC 2407 §4.2

struct Header {
  uint64_t icookie = 0, rcookie = 0;
  PayloadType next = PayloadType::None;
  uint8_t version = kVersion;
  Exchange exchange = Exchange::Main;
  uint8_t flags = 0;
  uint32_t message_id = 0;
  uint32_t length = 0;
};

// §3.3 data attributes: TV (AF=1, a 16-bit value) or TLV.
struct Attribute {
  uint16_t type = 0;
  bool tv = true;
  uint16_t value = 0;  // TV
  Bytes data;          // TLV
  bool operator==(const Attribute&) const = default;
};
struct Transform {  // §3.6
  uint8_t number = 1;
  uint8_t id = 1;  // KEY_IKE (1) in phase 1; ESP_* in phase 2
  std::vector<Attribute> attributes;
  bool operator==(const Transform&) const = default;
};
struct Proposal {  // §3.5
  uint8_t number = 1;
  uint8_t protocol = 1;  // PROTO_ISAKMP (1), PROTO_IPSEC_ESP (3)
  Bytes spi;
  std::vector<Transform> transforms;
  bool operator==(const Proposal&) const = default;
};
struct SaPayload {  // §3.4
  uint32_t doi = kDoiIpsec;
  uint32_t situation = kSitIdentityOnly;
  std::vector<Proposal> proposals;
  bool operator==(const SaPayload&) const = default;
};
struct IdPayload {   // RFC 2407 §4.6.2
  uint8_t type = 1;  // ID_IPV4_ADDR
  uint8_t protocol = 0;
  uint16_t port = 0;
  Bytes data;
  // What HASH_I/HASH_R cover (RFC 2409 §5: IDii_b/IDir_b, the payload body).
  Bytes body() const;
  bool operator==(const IdPayload&) const = default;
};
struct NotifyPayload {  // §3.14
  uint32_t doi = kDoiIpsec;
  uint8_t protocol = 1;
  Bytes spi;
  uint16_t type = 0;
  Bytes data;
  bool operator==(const NotifyPayload&) const = default;
};
struct DeletePayload {  // §3.15
  uint32_t doi = kDoiIpsec;
  uint8_t protocol = 1;
  uint8_t spi_size = 16;  // 16 (both cookies) for ISAKMP, 4 for ESP
  std::vector<Bytes> spis;
  bool operator==(const DeletePayload&) const = default;
};
// KE, HASH, Nonce, Vendor ID, NAT-D, SIG, CERT, CR...: bodies as bytes.
struct RawPayload {
  Bytes data;
  bool operator==(const RawPayload&) const = default;
};

struct Payload {
  PayloadType type = PayloadType::None;
  std::variant<RawPayload, SaPayload, IdPayload, NotifyPayload, DeletePayload> body;
  bool operator==(const Payload&) const = default;
};

Expected<Header, std::string> parse_header(std::span<const uint8_t> datagram);
// A payload chain starting with `first`: the plaintext after the header,
// or the decrypted body of an encrypted message (whose padding follows the
// last payload and is allowed when `trailing_padding`, RFC 2408 §3.1).
Expected<std::vector<Payload>, std::string> parse_chain(PayloadType first,
                                                        std::span<const uint8_t> bytes,
                                                        bool trailing_padding = false);

// A run of data attributes (§3.3), as in a transform or in a
// RESPONDER-LIFETIME notification (RFC 2407 §4.6.3.1).
Expected<std::vector<Attribute>, std::string> parse_attributes(std::span<const uint8_t> bytes);

Bytes encode_chain(const std::vector<Payload>& payloads);
void encode_header(const Header& h, Bytes& out);  // appends 28 bytes

}  // namespace xgw::ike::isakmp
