#include "ike/message.h"

#include <algorithm>

#include "common/bytes.h"
#include "ike/wire.h"

namespace xgw::ike {

namespace {

ParseError syntax(std::string what) {
  return ParseError{std::move(what), 7, 0};
}

using wire::append;
using wire::put16;
using wire::put32;
using wire::put8;
using wire::Reader;

/* §3.3.1 Proposal substructure
                        1                   2                   3
    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
   | Last Substruc |   RESERVED    |         Proposal Length       |
   | Proposal Num  |  Protocol ID  |    SPI Size   |Num  Transforms|
   ~                        SPI (variable)                         ~
   ~                        <Transforms>                           ~

   §3.3.2 Transform substructure
   | Last Substruc |   RESERVED    |        Transform Length       |
   |Transform Type |   RESERVED    |          Transform ID         |
   ~                      Transform Attributes                     ~

   §3.3.5 Attribute (TV when AF=1): |A|  Attribute Type | Attribute Value | */
Expected<SaPayload, ParseError> parse_sa(std::span<const uint8_t> body) {
  SaPayload sa;
  Reader r(body);
  uint8_t last = 2;
  while (last == 2) {
    if (!r.has(8)) return unexpected(syntax("SA: truncated proposal"));
    last = r.u8();
    if (last != 0 && last != 2) return unexpected(syntax("SA: bad last-substructure value"));
    r.skip(1);
    const uint16_t plen = r.u16();
    if (plen < 8 || !r.has(plen - 4)) return unexpected(syntax("SA: bad proposal length"));
    Reader p(r.span(plen - 4));
    Proposal prop;
    prop.number = p.u8();
    prop.protocol = static_cast<Protocol>(p.u8());
    const uint8_t spi_size = p.u8();
    const uint8_t ntrans = p.u8();
    if (!p.has(spi_size)) return unexpected(syntax("SA: SPI overruns proposal"));
    prop.spi = p.take(spi_size);
    uint8_t tlast = ntrans ? 3 : 0;
    for (unsigned i = 0; i < ntrans; ++i) {
      if (tlast != 3 || !p.has(8)) return unexpected(syntax("SA: truncated transform"));
      tlast = p.u8();
      if (tlast != 0 && tlast != 3) return unexpected(syntax("SA: bad transform last value"));
      p.skip(1);
      const uint16_t tlen = p.u16();
      if (tlen < 8 || !p.has(tlen - 4)) return unexpected(syntax("SA: bad transform length"));
      Reader t(p.span(tlen - 4));
      Transform tr;
      tr.type = t.u8();
      t.skip(1);
      tr.id = t.u16();
      // Other attributes are undefined in IKEv2 (TV or TLV): the transform
      // stays, with a key length that matches none of ours (§3.3.6), in
      // whichever order the attributes come.
      bool unknown_attr = false;
      while (t.left()) {
        if (!t.has(4)) return unexpected(syntax("SA: truncated attribute"));
        const uint16_t at = t.u16();
        if (at & 0x8000) {
          const uint16_t v = t.u16();
          if ((at & 0x7fff) == 14)
            tr.key_bits = v;
          else
            unknown_attr = true;
        } else {
          const uint16_t alen = t.u16();
          if (!t.has(alen)) return unexpected(syntax("SA: attribute overruns transform"));
          t.skip(alen);
          unknown_attr = true;
        }
      }
      if (unknown_attr) tr.key_bits = 0xffff;
      prop.transforms.push_back(tr);
    }
    if (tlast != 0) return unexpected(syntax("SA: transform count mismatch"));
    if (p.left()) return unexpected(syntax("SA: bytes after the last transform"));
    sa.proposals.push_back(std::move(prop));
  }
  if (r.left()) return unexpected(syntax("SA: bytes after the last proposal"));
  return sa;
}

void encode_sa(const SaPayload& sa, Bytes& o) {
  for (size_t i = 0; i < sa.proposals.size(); ++i) {
    const Proposal& p = sa.proposals[i];
    Bytes pb;
    put8(pb, p.number);
    put8(pb, static_cast<uint8_t>(p.protocol));
    put8(pb, static_cast<uint8_t>(p.spi.size()));
    put8(pb, static_cast<uint8_t>(p.transforms.size()));
    append(pb, p.spi);
    for (size_t j = 0; j < p.transforms.size(); ++j) {
      const Transform& t = p.transforms[j];
      put8(pb, j + 1 < p.transforms.size() ? 3 : 0);
      put8(pb, 0);
      put16(pb, t.key_bits ? 12 : 8);
      put8(pb, t.type);
      put8(pb, 0);
      put16(pb, t.id);
      if (t.key_bits) {
        put16(pb, 0x8000 | 14);
        put16(pb, *t.key_bits);
      }
    }
    put8(o, i + 1 < sa.proposals.size() ? 2 : 0);
    put8(o, 0);
    put16(o, static_cast<uint16_t>(pb.size() + 4));
    append(o, pb);
  }
}

/* §3.13.1 Traffic selector
   |   TS Type     |IP Protocol ID*|       Selector Length         |
   |           Start Port*         |           End Port*           |
   ~                         Starting Address*                     ~
   ~                         Ending Address*                       ~ */
Expected<TsPayload, ParseError> parse_ts(std::span<const uint8_t> body) {
  Reader r(body);
  if (!r.has(4)) return unexpected(syntax("TS: truncated"));
  const uint8_t n = r.u8();
  r.skip(3);
  TsPayload ts;
  for (unsigned i = 0; i < n; ++i) {
    if (!r.has(8)) return unexpected(syntax("TS: truncated selector"));
    TrafficSelector s;
    const uint8_t type = r.u8();
    s.ip_proto = r.u8();
    const uint16_t len = r.u16();
    s.start_port = r.u16();
    s.end_port = r.u16();
    size_t alen;
    if (type == 7) {
      s.type = TsType::Ipv4Range;
      alen = 4;
    } else if (type == 8) {
      s.type = TsType::Ipv6Range;
      alen = 16;
    } else {
      // Unknown TS types (e.g. RFC 9478 security labels) cannot be honoured.
      return unexpected(syntax("TS: unsupported selector type " + std::to_string(type)));
    }
    if (len != 8 + 2 * alen || !r.has(2 * alen))
      return unexpected(syntax("TS: bad selector length"));
    s.start.family = s.end.family = alen == 4 ? net::Family::V4 : net::Family::V6;
    auto a = r.span(alen);
    std::copy(a.begin(), a.end(), s.start.bytes.begin());
    a = r.span(alen);
    std::copy(a.begin(), a.end(), s.end.bytes.begin());
    ts.selectors.push_back(s);
  }
  if (r.left()) return unexpected(syntax("TS: bytes after the last selector"));
  return ts;
}

void encode_ts(const TsPayload& ts, Bytes& o) {
  put8(o, static_cast<uint8_t>(ts.selectors.size()));
  put8(o, 0);
  put16(o, 0);
  for (const auto& s : ts.selectors) {
    const size_t alen = s.type == TsType::Ipv4Range ? 4 : 16;
    put8(o, static_cast<uint8_t>(s.type));
    put8(o, s.ip_proto);
    put16(o, static_cast<uint16_t>(8 + 2 * alen));
    put16(o, s.start_port);
    put16(o, s.end_port);
    append(o, std::span(s.start.bytes.data(), alen));
    append(o, std::span(s.end.bytes.data(), alen));
  }
}

Expected<Payload, ParseError> parse_body(PayloadType type, bool critical,
                                         std::span<const uint8_t> body) {
  Payload p{type, critical, OpaquePayload{}};
  Reader r(body);
  switch (type) {
    case PayloadType::SA: {
      auto sa = parse_sa(body);
      if (!sa) return unexpected(sa.error());
      p.body = std::move(*sa);
      break;
    }
    case PayloadType::KE: {  // §3.4: group, reserved, data
      if (!r.has(4)) return unexpected(syntax("KE: truncated"));
      KePayload ke;
      ke.group = r.u16();
      r.skip(2);
      ke.data = r.take(r.left());
      p.body = std::move(ke);
      break;
    }
    case PayloadType::IDi:
    case PayloadType::IDr: {  // §3.5
      if (!r.has(4)) return unexpected(syntax("ID: truncated"));
      IdPayload id;
      id.type = static_cast<IdType>(r.u8());
      r.skip(3);
      id.data = r.take(r.left());
      p.body = std::move(id);
      break;
    }
    case PayloadType::AUTH: {  // §3.8
      if (!r.has(4)) return unexpected(syntax("AUTH: truncated"));
      AuthPayload a;
      a.method = static_cast<AuthMethod>(r.u8());
      r.skip(3);
      a.data = r.take(r.left());
      p.body = std::move(a);
      break;
    }
    case PayloadType::Nonce:  // §3.9: 16..256 octets
      if (body.size() < 16 || body.size() > 256)
        return unexpected(syntax("Nonce: length outside 16..256"));
      p.body = NoncePayload{Bytes(body.begin(), body.end())};
      break;
    case PayloadType::Notify: {  // §3.10
      if (!r.has(4)) return unexpected(syntax("Notify: truncated"));
      NotifyPayload n;
      n.protocol = static_cast<Protocol>(r.u8());
      const uint8_t spi_size = r.u8();
      n.type = r.u16();
      if (!r.has(spi_size)) return unexpected(syntax("Notify: SPI overruns payload"));
      n.spi = r.take(spi_size);
      n.data = r.take(r.left());
      p.body = std::move(n);
      break;
    }
    case PayloadType::Delete: {  // §3.11
      if (!r.has(4)) return unexpected(syntax("Delete: truncated"));
      DeletePayload d;
      d.protocol = static_cast<Protocol>(r.u8());
      const uint8_t spi_size = r.u8();
      const uint16_t n = r.u16();
      if (d.protocol == Protocol::Ike) {
        if (spi_size != 0 || n != 0) return unexpected(syntax("Delete: IKE with SPIs"));
      } else if (spi_size != 4) {
        return unexpected(syntax("Delete: SPI size not 4"));
      }
      if (r.left() != size_t{spi_size} * n) return unexpected(syntax("Delete: SPI count mismatch"));
      for (unsigned i = 0; i < n; ++i) d.spis.push_back(r.u32());
      p.body = std::move(d);
      break;
    }
    case PayloadType::TSi:
    case PayloadType::TSr: {
      auto ts = parse_ts(body);
      if (!ts) return unexpected(ts.error());
      p.body = std::move(*ts);
      break;
    }
    case PayloadType::Vendor:
      p.body = VendorPayload{Bytes(body.begin(), body.end())};
      break;
    default:
      p.body = OpaquePayload{Bytes(body.begin(), body.end())};
      break;
  }
  return p;
}

bool known_type(uint8_t t) {
  return (t >= 33 && t <= 48) || t == 53;
}

// Walks a chain; stops at an SK payload (which must be last, §3.14) and
// reports where it starts.
Expected<std::vector<Payload>, ParseError> walk(PayloadType first, std::span<const uint8_t> bytes,
                                                size_t base, std::optional<size_t>* sk_offset,
                                                PayloadType* sk_first) {
  std::vector<Payload> out;
  uint8_t next = static_cast<uint8_t>(first);
  size_t pos = 0;
  while (next != 0) {
    if (bytes.size() - pos < 4) return unexpected(syntax("payload header truncated"));
    const uint8_t type = next;
    next = bytes[pos];
    const bool critical = bytes[pos + 1] & 0x80;
    const uint16_t len = load_be16(&bytes[pos + 2]);
    if (len < 4 || len > bytes.size() - pos)
      return unexpected(syntax("payload length " + std::to_string(len) + " out of bounds"));
    if (type == static_cast<uint8_t>(PayloadType::SK)) {
      if (!sk_offset) return unexpected(syntax("nested Encrypted payload"));
      if (pos + len != bytes.size()) return unexpected(syntax("Encrypted payload is not last"));
      *sk_offset = base + pos;
      *sk_first = static_cast<PayloadType>(next);
      return out;
    }
    const auto body = bytes.subspan(pos + 4, len - 4);
    if (!known_type(type) || type == static_cast<uint8_t>(PayloadType::SKF)) {
      // §2.5: an unknown payload with the critical bit set rejects the
      // whole message; otherwise it is skipped.
      if (critical)
        return unexpected(
            ParseError{"unsupported critical payload " + std::to_string(type), 1, type});
    } else {
      auto p = parse_body(static_cast<PayloadType>(type), critical, body);
      if (!p) return unexpected(p.error());
      out.push_back(std::move(*p));
    }
    pos += len;
  }
  if (pos != bytes.size()) return unexpected(syntax("bytes after the last payload"));
  return out;
}

void encode_body(const Payload& p, Bytes& o) {
  std::visit(
      [&](const auto& b) {
        using T = std::decay_t<decltype(b)>;
        if constexpr (std::is_same_v<T, OpaquePayload> || std::is_same_v<T, NoncePayload> ||
                      std::is_same_v<T, VendorPayload>) {
          append(o, b.data);
        } else if constexpr (std::is_same_v<T, SaPayload>) {
          encode_sa(b, o);
        } else if constexpr (std::is_same_v<T, KePayload>) {
          put16(o, b.group);
          put16(o, 0);
          append(o, b.data);
        } else if constexpr (std::is_same_v<T, IdPayload>) {
          append(o, b.body());
        } else if constexpr (std::is_same_v<T, AuthPayload>) {
          put8(o, static_cast<uint8_t>(b.method));
          put8(o, 0);
          put16(o, 0);
          append(o, b.data);
        } else if constexpr (std::is_same_v<T, NotifyPayload>) {
          put8(o, static_cast<uint8_t>(b.protocol));
          put8(o, static_cast<uint8_t>(b.spi.size()));
          put16(o, b.type);
          append(o, b.spi);
          append(o, b.data);
        } else if constexpr (std::is_same_v<T, DeletePayload>) {
          put8(o, static_cast<uint8_t>(b.protocol));
          put8(o, b.protocol == Protocol::Ike ? 0 : 4);
          put16(o, static_cast<uint16_t>(b.spis.size()));
          for (uint32_t s : b.spis) put32(o, s);
        } else if constexpr (std::is_same_v<T, TsPayload>) {
          encode_ts(b, o);
        }
      },
      p.body);
}

}  // namespace

Bytes IdPayload::body() const {
  Bytes o;
  put8(o, static_cast<uint8_t>(type));
  put8(o, 0);
  put16(o, 0);
  append(o, data);
  return o;
}

const Payload* Message::find(PayloadType t) const {
  for (const auto& p : payloads)
    if (p.type == t) return &p;
  return nullptr;
}

std::vector<const Payload*> Message::find_all(PayloadType t) const {
  std::vector<const Payload*> v;
  for (const auto& p : payloads)
    if (p.type == t) v.push_back(&p);
  return v;
}

const NotifyPayload* Message::notify(Notify n) const {
  for (const auto& p : payloads)
    if (auto* np = std::get_if<NotifyPayload>(&p.body); np && np->type == static_cast<uint16_t>(n))
      return np;
  return nullptr;
}

const NotifyPayload* Message::error_notify() const {
  for (const auto& p : payloads)
    if (auto* np = std::get_if<NotifyPayload>(&p.body); np && is_error(np->type)) return np;
  return nullptr;
}

/* §3.1 IKE header
   |                       IKE SA Initiator's SPI                  |
   |                       IKE SA Responder's SPI                  |
   |  Next Payload | MjVer | MnVer | Exchange Type |     Flags     |
   |                          Message ID                           |
   |                            Length                             | */
Expected<Header, ParseError> parse_header(std::span<const uint8_t> d) {
  if (d.size() < kHeaderSize) return unexpected(ParseError{"shorter than the IKE header", 0, 0});
  Header h;
  h.spi_i = (uint64_t{load_be32(&d[0])} << 32) | load_be32(&d[4]);
  h.spi_r = (uint64_t{load_be32(&d[8])} << 32) | load_be32(&d[12]);
  h.next = static_cast<PayloadType>(d[16]);
  h.version = d[17];
  h.exchange = static_cast<Exchange>(d[18]);
  h.flags = d[19];
  h.message_id = load_be32(&d[20]);
  h.length = load_be32(&d[24]);
  if (h.length != d.size())
    return unexpected(ParseError{"length field " + std::to_string(h.length) + " but datagram has " +
                                     std::to_string(d.size()),
                                 0, 0});
  if ((h.version >> 4) != 2)
    return unexpected(ParseError{"major version " + std::to_string(h.version >> 4), 5, 0});
  return h;
}

Expected<Message, ParseError> parse_message(std::span<const uint8_t> d) {
  auto h = parse_header(d);
  if (!h) return unexpected(h.error());
  Message m;
  m.header = *h;
  auto ps = walk(h->next, d.subspan(kHeaderSize), kHeaderSize, &m.sk_offset, &m.sk_first);
  if (!ps) return unexpected(ps.error());
  m.payloads = std::move(*ps);
  return m;
}

Expected<std::vector<Payload>, ParseError> parse_chain(PayloadType first,
                                                       std::span<const uint8_t> bytes) {
  return walk(first, bytes, 0, nullptr, nullptr);
}

Bytes encode_chain(const std::vector<Payload>& payloads, PayloadType last_next) {
  Bytes o;
  for (size_t i = 0; i < payloads.size(); ++i) {
    const size_t at = o.size();
    put8(o, static_cast<uint8_t>(i + 1 < payloads.size() ? payloads[i + 1].type : last_next));
    put8(o, payloads[i].critical ? 0x80 : 0);
    put16(o, 0);
    encode_body(payloads[i], o);
    store_be16(&o[at + 2], static_cast<uint16_t>(o.size() - at));
  }
  return o;
}

void encode_header(const Header& h, Bytes& o) {
  wire::put_header(o, h.spi_i, h.spi_r, static_cast<uint8_t>(h.next), h.version,
                   static_cast<uint8_t>(h.exchange), h.flags, h.message_id, h.length);
}

Payload make_notify(Notify type, Bytes data, Protocol proto, Bytes spi) {
  return Payload{
      PayloadType::Notify, false,
      NotifyPayload{proto, std::move(spi), static_cast<uint16_t>(type), std::move(data)}};
}

TrafficSelector ts_from_cidr(const net::Cidr& c) {
  TrafficSelector ts;
  ts.type = c.family() == net::Family::V4 ? TsType::Ipv4Range : TsType::Ipv6Range;
  ts.start = c.addr;
  ts.end = c.addr;
  const int bytes = c.addr.bits() / 8;
  for (int i = 0; i < bytes; ++i) {
    const int bit0 = i * 8;
    if (bit0 >= c.len) {
      ts.end.bytes[i] = 0xff;
    } else if (bit0 + 8 > c.len) {
      ts.end.bytes[i] |= static_cast<uint8_t>(0xff >> (c.len - bit0));
    }
  }
  return ts;
}

std::optional<net::Cidr> ts_to_cidr(const TrafficSelector& ts) {
  if (ts.ip_proto != 0 || ts.start_port != 0 || ts.end_port != 65535) return std::nullopt;
  if (ts.start.family != ts.end.family) return std::nullopt;
  const int bits = ts.start.bits();
  for (int len = 0; len <= bits; ++len) {
    // The start must have no host bits at this length.
    bool host_bits = false;
    for (int i = 0; i < bits / 8 && !host_bits; ++i) {
      const int keep = std::clamp(len - i * 8, 0, 8);
      const uint8_t mask = keep == 0 ? 0 : static_cast<uint8_t>(0xff << (8 - keep));
      host_bits = (ts.start.bytes[i] & ~mask) != 0;
    }
    if (host_bits) continue;
    net::Cidr c{ts.start, static_cast<uint8_t>(len)};
    if (ts_from_cidr(c).end == ts.end) return c;
  }
  return std::nullopt;
}

std::string to_string(const TrafficSelector& ts) {
  if (auto c = ts_to_cidr(ts)) return c->str();
  std::string s = ts.start.str() + ".." + ts.end.str();
  if (ts.ip_proto) s += " proto " + std::to_string(ts.ip_proto);
  if (ts.start_port != 0 || ts.end_port != 65535)
    s += " ports " + std::to_string(ts.start_port) + "-" + std::to_string(ts.end_port);
  return s;
}

const char* to_string(Notify n) {
  switch (n) {
    case Notify::UnsupportedCriticalPayload:
      return "UNSUPPORTED_CRITICAL_PAYLOAD";
    case Notify::InvalidIkeSpi:
      return "INVALID_IKE_SPI";
    case Notify::InvalidMajorVersion:
      return "INVALID_MAJOR_VERSION";
    case Notify::InvalidSyntax:
      return "INVALID_SYNTAX";
    case Notify::InvalidMessageId:
      return "INVALID_MESSAGE_ID";
    case Notify::InvalidSpi:
      return "INVALID_SPI";
    case Notify::NoProposalChosen:
      return "NO_PROPOSAL_CHOSEN";
    case Notify::InvalidKePayload:
      return "INVALID_KE_PAYLOAD";
    case Notify::AuthenticationFailed:
      return "AUTHENTICATION_FAILED";
    case Notify::SinglePairRequired:
      return "SINGLE_PAIR_REQUIRED";
    case Notify::NoAdditionalSas:
      return "NO_ADDITIONAL_SAS";
    case Notify::InternalAddressFailure:
      return "INTERNAL_ADDRESS_FAILURE";
    case Notify::FailedCpRequired:
      return "FAILED_CP_REQUIRED";
    case Notify::TsUnacceptable:
      return "TS_UNACCEPTABLE";
    case Notify::InvalidSelectors:
      return "INVALID_SELECTORS";
    case Notify::TemporaryFailure:
      return "TEMPORARY_FAILURE";
    case Notify::ChildSaNotFound:
      return "CHILD_SA_NOT_FOUND";
    case Notify::InitialContact:
      return "INITIAL_CONTACT";
    case Notify::SetWindowSize:
      return "SET_WINDOW_SIZE";
    case Notify::AdditionalTsPossible:
      return "ADDITIONAL_TS_POSSIBLE";
    case Notify::IpcompSupported:
      return "IPCOMP_SUPPORTED";
    case Notify::NatDetectionSourceIp:
      return "NAT_DETECTION_SOURCE_IP";
    case Notify::NatDetectionDestinationIp:
      return "NAT_DETECTION_DESTINATION_IP";
    case Notify::Cookie:
      return "COOKIE";
    case Notify::UseTransportMode:
      return "USE_TRANSPORT_MODE";
    case Notify::RekeySa:
      return "REKEY_SA";
    case Notify::EspTfcPaddingNotSupported:
      return "ESP_TFC_PADDING_NOT_SUPPORTED";
    case Notify::NonFirstFragmentsAlso:
      return "NON_FIRST_FRAGMENTS_ALSO";
    case Notify::MobikeSupported:
      return "MOBIKE_SUPPORTED";
    case Notify::Ikev2FragmentationSupported:
      return "IKEV2_FRAGMENTATION_SUPPORTED";
    case Notify::SignatureHashAlgorithms:
      return "SIGNATURE_HASH_ALGORITHMS";
  }
  return "UNKNOWN_NOTIFY";
}

}  // namespace xgw::ike
