// IKEv2 messages (RFC 7296 §3): the fixed header and the payloads xgw reads
// and writes, decoded into plain values and encoded back. The parser never
// trusts a length: every payload must fit its parent, and what cannot be
// parsed is reported with the notify type RFC 7296 says to answer with
// (or none: drop). Encrypted payloads (SK, §3.14) are located here and
// opened by crypto.h; their contents parse with parse_chain().
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "common/expected.h"
#include "common/net.h"

namespace xgw::ike {

using Bytes = std::vector<uint8_t>;

// §3.1 Exchange types.
enum class Exchange : uint8_t {
  IkeSaInit = 34,
  IkeAuth = 35,
  CreateChildSa = 36,
  Informational = 37
};

// §3.2 Payload types.
enum class PayloadType : uint8_t {
  None = 0,
  SA = 33,
  KE = 34,
  IDi = 35,
  IDr = 36,
  CERT = 37,
  CERTREQ = 38,
  AUTH = 39,
  Nonce = 40,
  Notify = 41,
  Delete = 42,
  Vendor = 43,
  TSi = 44,
  TSr = 45,
  SK = 46,
  CP = 47,
  EAP = 48,
  SKF = 53,  // RFC 7383 fragment
};

// §3.1 flags.
inline constexpr uint8_t kFlagInitiator = 0x08;
inline constexpr uint8_t kFlagVersion = 0x10;
inline constexpr uint8_t kFlagResponse = 0x20;
inline constexpr uint8_t kIkeV2 = 0x20;  // major 2, minor 0
inline constexpr size_t kHeaderSize = 28;

// §3.10.1 Notify message types xgw sends or acts on.
enum class Notify : uint16_t {
  UnsupportedCriticalPayload = 1,
  InvalidIkeSpi = 4,
  InvalidMajorVersion = 5,
  InvalidSyntax = 7,
  InvalidMessageId = 9,
  InvalidSpi = 11,
  NoProposalChosen = 14,
  InvalidKePayload = 17,
  AuthenticationFailed = 24,
  SinglePairRequired = 34,
  NoAdditionalSas = 35,
  InternalAddressFailure = 36,
  FailedCpRequired = 37,
  TsUnacceptable = 38,
  InvalidSelectors = 39,
  TemporaryFailure = 43,
  ChildSaNotFound = 44,
  InitialContact = 16384,
  SetWindowSize = 16385,
  AdditionalTsPossible = 16386,
  IpcompSupported = 16387,
  NatDetectionSourceIp = 16388,
  NatDetectionDestinationIp = 16389,
  Cookie = 16390,
  UseTransportMode = 16391,
  RekeySa = 16393,
  EspTfcPaddingNotSupported = 16394,
  NonFirstFragmentsAlso = 16395,
  MobikeSupported = 16396,
  Ikev2FragmentationSupported = 16430,
  SignatureHashAlgorithms = 16431,
};
const char* to_string(Notify n);
inline bool is_error(uint16_t notify) {
  return notify < 16384;
}

enum class Protocol : uint8_t { None = 0, Ike = 1, Ah = 2, Esp = 3 };

// §3.5 ID types.
enum class IdType : uint8_t { Ipv4 = 1, Fqdn = 2, Rfc822 = 3, Ipv6 = 5, DerAsn1Dn = 9, KeyId = 11 };
// §3.8 authentication methods.
enum class AuthMethod : uint8_t { Rsa = 1, Psk = 2, Dss = 3 };
// §3.13.1 TS types.
enum class TsType : uint8_t { Ipv4Range = 7, Ipv6Range = 8 };

struct Header {
  uint64_t spi_i = 0, spi_r = 0;
  PayloadType next = PayloadType::None;
  uint8_t version = kIkeV2;
  Exchange exchange = Exchange::IkeSaInit;
  uint8_t flags = 0;
  uint32_t message_id = 0;
  uint32_t length = 0;

  bool is_response() const { return flags & kFlagResponse; }
  bool from_initiator() const { return flags & kFlagInitiator; }
};

// §3.3 SA payload: proposals of transforms; the only attribute defined for
// IKEv2 is Key Length (§3.3.5).
struct Transform {
  uint8_t type = 0;  // ike::TransformType
  uint16_t id = 0;
  std::optional<uint16_t> key_bits;
  bool operator==(const Transform&) const = default;
};
struct Proposal {
  uint8_t number = 1;
  Protocol protocol = Protocol::Ike;
  Bytes spi;  // empty in IKE_SA_INIT, 8 for an IKE rekey, 4 for ESP
  std::vector<Transform> transforms;
};
struct SaPayload {
  std::vector<Proposal> proposals;
};
struct KePayload {
  uint16_t group = 0;
  Bytes data;
};
struct IdPayload {
  IdType type = IdType::Ipv4;
  Bytes data;
  // What the AUTH computation signs (§2.15): type, 3 reserved, data.
  Bytes body() const;
};
struct AuthPayload {
  AuthMethod method = AuthMethod::Psk;
  Bytes data;
};
struct NoncePayload {
  Bytes data;
};
struct NotifyPayload {
  Protocol protocol = Protocol::None;
  Bytes spi;
  uint16_t type = 0;
  Bytes data;
};
struct DeletePayload {
  Protocol protocol = Protocol::Esp;
  std::vector<uint32_t> spis;  // ESP/AH; empty for the IKE SA itself
};
struct TrafficSelector {
  TsType type = TsType::Ipv4Range;
  uint8_t ip_proto = 0;  // 0 = any
  uint16_t start_port = 0, end_port = 65535;
  net::IpAddr start, end;
  bool operator==(const TrafficSelector&) const = default;
};
struct TsPayload {
  std::vector<TrafficSelector> selectors;
};
struct VendorPayload {
  Bytes data;
};
// Payloads xgw does not interpret (CERTREQ, CP, non-critical unknowns...).
struct OpaquePayload {
  Bytes data;
};

struct Payload {
  PayloadType type = PayloadType::None;
  bool critical = false;
  std::variant<OpaquePayload, SaPayload, KePayload, IdPayload, AuthPayload, NoncePayload,
               NotifyPayload, DeletePayload, TsPayload, VendorPayload>
      body;
};

// A decoded message. For a protected message, `payloads` are those before
// the SK payload (normally none) and `sk_body` locates the SK payload's body
// (after its generic header) in the datagram.
struct Message {
  Header header;
  std::vector<Payload> payloads;
  std::optional<size_t> sk_offset;  // offset of the SK generic payload header
  PayloadType sk_first = PayloadType::None;

  const Payload* find(PayloadType t) const;
  std::vector<const Payload*> find_all(PayloadType t) const;
  const NotifyPayload* notify(Notify n) const;
  // The first error notify (type < 16384), if any.
  const NotifyPayload* error_notify() const;
  template <typename T>
  const T* get(PayloadType t) const {
    const Payload* p = find(t);
    return p ? std::get_if<T>(&p->body) : nullptr;
  }
};

// Why a datagram or payload chain could not be read, and what to answer:
// `notify` 0 means drop silently (§2.21: before authentication, or junk).
struct ParseError {
  std::string what;
  uint16_t notify = 0;
  uint8_t critical_type = 0;  // UNSUPPORTED_CRITICAL_PAYLOAD's data
};

// The header alone (for SA lookup before anything else is trusted).
Expected<Header, ParseError> parse_header(std::span<const uint8_t> datagram);
// The whole datagram: header, the plain payloads, the SK payload's place.
Expected<Message, ParseError> parse_message(std::span<const uint8_t> datagram);
// A chain of payloads starting with `first` (the decrypted SK contents).
Expected<std::vector<Payload>, ParseError> parse_chain(PayloadType first,
                                                       std::span<const uint8_t> bytes);

// Encodes payloads as a chain; the chain's first type is payloads[0].type.
// `last_next` is the Next Payload of the last one (None unless more follow).
Bytes encode_chain(const std::vector<Payload>& payloads, PayloadType last_next = PayloadType::None);
void encode_header(const Header& h, Bytes& out);  // appends 28 bytes

// Convenience constructors.
Payload make_notify(Notify type, Bytes data = {}, Protocol proto = Protocol::None, Bytes spi = {});
Payload make_payload(PayloadType t, auto body) {
  return Payload{t, false, std::move(body)};
}

// A selector covering a whole prefix, any protocol and port.
TrafficSelector ts_from_cidr(const net::Cidr& c);
// The prefix a selector covers exactly, if it is one (xgw's SPD is CIDRs).
std::optional<net::Cidr> ts_to_cidr(const TrafficSelector& ts);
std::string to_string(const TrafficSelector& ts);

}  // namespace xgw::ike
