#include "ike/isakmp.h"

#include "ike/wire.h"

namespace xgw::ike::isakmp {

namespace {

using wire::append;
using wire::put16;
using wire::put32;
using wire::put8;
using wire::Reader;

Unexpected<std::string> bad(std::string what) {
  return unexpected(std::move(what));
}

/* §3.3 Data Attributes
   |A|       Attribute Type        |    AF=0  Attribute Length     |
   |                               |    AF=1  Attribute Value      |
   .                   AF=0  Attribute Value                       .  */
Expected<std::vector<Attribute>, std::string> parse_attributes(Reader& r) {
  std::vector<Attribute> out;
  while (r.left()) {
    if (!r.has(4)) return bad("attribute truncated");
    Attribute a;
    const uint16_t t = r.u16();
    a.tv = t & 0x8000;
    a.type = t & 0x7fff;
    if (a.tv) {
      a.value = r.u16();
    } else {
      const uint16_t len = r.u16();
      if (!r.has(len)) return bad("attribute value overruns its transform");
      a.data = r.take(len);
    }
    out.push_back(std::move(a));
  }
  return out;
}

/* §3.5 Proposal and §3.6 Transform payloads (each with a generic header:
   Next Payload = 2 or 3 while more follow, else 0).
   | Proposal #    |  Protocol-Id  |    SPI Size   |# of Transforms|
   | Transform #   |  Transform-Id |           RESERVED2           |  */
Expected<SaPayload, std::string> parse_sa(std::span<const uint8_t> body) {
  Reader r(body);
  if (!r.has(8)) return bad("SA truncated");
  SaPayload sa;
  sa.doi = r.u32();
  sa.situation = r.u32();
  if (sa.doi != kDoiIpsec) return bad("SA DOI " + std::to_string(sa.doi) + " is not IPsec");
  uint8_t next = r.left() ? static_cast<uint8_t>(PayloadType::Proposal) : 0;
  while (next != 0) {
    if (next != static_cast<uint8_t>(PayloadType::Proposal)) return bad("SA: expected a proposal");
    if (!r.has(8)) return bad("proposal truncated");
    next = r.u8();
    r.skip(1);
    const uint16_t len = r.u16();
    if (len < 8 || !r.has(len - 4)) return bad("proposal length out of bounds");
    Reader p(r.span(len - 4));
    Proposal prop;
    prop.number = p.u8();
    prop.protocol = p.u8();
    const uint8_t spi_size = p.u8();
    const uint8_t n = p.u8();
    if (!p.has(spi_size)) return bad("proposal SPI overruns the proposal");
    prop.spi = p.take(spi_size);
    uint8_t tnext = n ? static_cast<uint8_t>(PayloadType::Transform) : 0;
    for (unsigned i = 0; i < n; ++i) {
      if (tnext != static_cast<uint8_t>(PayloadType::Transform) || !p.has(8))
        return bad("transform truncated or count mismatch");
      tnext = p.u8();
      p.skip(1);
      const uint16_t tlen = p.u16();
      if (tlen < 8 || !p.has(tlen - 4)) return bad("transform length out of bounds");
      Reader t(p.span(tlen - 4));
      Transform tr;
      tr.number = t.u8();
      tr.id = t.u8();
      t.skip(2);
      auto attrs = parse_attributes(t);
      if (!attrs) return unexpected(attrs.error());
      tr.attributes = std::move(*attrs);
      prop.transforms.push_back(std::move(tr));
    }
    if (tnext != 0) return bad("transform count mismatch");
    if (p.left()) return bad("bytes after the last transform");
    sa.proposals.push_back(std::move(prop));
  }
  if (r.left()) return bad("bytes after the last proposal");
  return sa;
}

void encode_sa(const SaPayload& sa, Bytes& o) {
  put32(o, sa.doi);
  put32(o, sa.situation);
  for (size_t i = 0; i < sa.proposals.size(); ++i) {
    const Proposal& p = sa.proposals[i];
    Bytes pb;
    put8(pb, p.number);
    put8(pb, p.protocol);
    put8(pb, static_cast<uint8_t>(p.spi.size()));
    put8(pb, static_cast<uint8_t>(p.transforms.size()));
    append(pb, p.spi);
    for (size_t j = 0; j < p.transforms.size(); ++j) {
      const Transform& t = p.transforms[j];
      Bytes tb;
      put8(tb, t.number);
      put8(tb, t.id);
      put16(tb, 0);
      for (const auto& a : t.attributes) {
        if (a.tv) {
          put16(tb, 0x8000 | a.type);
          put16(tb, a.value);
        } else {
          put16(tb, a.type & 0x7fff);
          put16(tb, static_cast<uint16_t>(a.data.size()));
          append(tb, a.data);
        }
      }
      put8(pb, j + 1 < p.transforms.size() ? static_cast<uint8_t>(PayloadType::Transform) : 0);
      put8(pb, 0);
      put16(pb, static_cast<uint16_t>(tb.size() + 4));
      append(pb, tb);
    }
    put8(o, i + 1 < sa.proposals.size() ? static_cast<uint8_t>(PayloadType::Proposal) : 0);
    put8(o, 0);
    put16(o, static_cast<uint16_t>(pb.size() + 4));
    append(o, pb);
  }
}

}  // namespace

Expected<std::vector<Attribute>, std::string> parse_attributes(std::span<const uint8_t> bytes) {
  Reader r(bytes);
  return parse_attributes(r);
}

namespace {

Expected<Payload, std::string> parse_body(PayloadType type, std::span<const uint8_t> body) {
  Payload p{type, RawPayload{}};
  Reader r(body);
  switch (type) {
    case PayloadType::SA: {
      auto sa = parse_sa(body);
      if (!sa) return unexpected(sa.error());
      p.body = std::move(*sa);
      break;
    }
    case PayloadType::ID: {
      if (!r.has(4)) return bad("ID truncated");
      IdPayload id;
      id.type = r.u8();
      id.protocol = r.u8();
      id.port = r.u16();
      id.data = r.take(r.left());
      p.body = std::move(id);
      break;
    }
    case PayloadType::Notify: {
      if (!r.has(8)) return bad("Notify truncated");
      NotifyPayload n;
      n.doi = r.u32();
      n.protocol = r.u8();
      const uint8_t spi_size = r.u8();
      n.type = r.u16();
      if (!r.has(spi_size)) return bad("Notify SPI overruns the payload");
      n.spi = r.take(spi_size);
      n.data = r.take(r.left());
      p.body = std::move(n);
      break;
    }
    case PayloadType::Delete: {
      if (!r.has(8)) return bad("Delete truncated");
      DeletePayload d;
      d.doi = r.u32();
      d.protocol = r.u8();
      d.spi_size = r.u8();
      const uint16_t n = r.u16();
      if (d.spi_size == 0 || r.left() != size_t{d.spi_size} * n)
        return bad("Delete SPI count does not match its length");
      for (unsigned i = 0; i < n; ++i) d.spis.push_back(r.take(d.spi_size));
      p.body = std::move(d);
      break;
    }
    case PayloadType::Nonce:
      // RFC 2409 §5: 8 to 256 bytes.
      if (body.size() < 8 || body.size() > 256) return bad("Nonce length outside 8..256");
      p.body = RawPayload{Bytes(body.begin(), body.end())};
      break;
    default:
      p.body = RawPayload{Bytes(body.begin(), body.end())};
  }
  return p;
}

bool known(uint8_t t) {
  return (t >= 1 && t <= 13) || t == 20 || t == 21;
}

}  // namespace

Bytes IdPayload::body() const {
  Bytes o;
  put8(o, type);
  put8(o, protocol);
  put16(o, port);
  append(o, data);
  return o;
}

/* §3.1 ISAKMP header
   |                          Initiator Cookie                     |
   |                          Responder Cookie                     |
   |  Next Payload | MjVer | MnVer | Exchange Type |     Flags     |
   |                          Message ID                           |
   |                            Length                             |  */
Expected<Header, std::string> parse_header(std::span<const uint8_t> d) {
  if (d.size() < kHeaderSize) return bad("shorter than the ISAKMP header");
  Reader r(d);
  Header h;
  h.icookie = (uint64_t{r.u32()} << 32) | r.u32();
  h.rcookie = (uint64_t{r.u32()} << 32) | r.u32();
  h.next = static_cast<PayloadType>(r.u8());
  h.version = r.u8();
  h.exchange = static_cast<Exchange>(r.u8());
  h.flags = r.u8();
  h.message_id = r.u32();
  h.length = r.u32();
  if (h.length != d.size())
    return bad("length field " + std::to_string(h.length) + " but datagram has " +
               std::to_string(d.size()));
  if ((h.version >> 4) != 1) return bad("major version " + std::to_string(h.version >> 4));
  return h;
}

Expected<std::vector<Payload>, std::string> parse_chain(PayloadType first,
                                                        std::span<const uint8_t> bytes,
                                                        bool trailing_padding) {
  std::vector<Payload> out;
  uint8_t next = static_cast<uint8_t>(first);
  size_t pos = 0;
  while (next != 0) {
    if (bytes.size() - pos < 4) return bad("payload header truncated");
    const uint8_t type = next;
    next = bytes[pos];
    if (bytes[pos + 1] != 0) return bad("payload RESERVED field not zero");  // §3.2
    const uint16_t len = load_be16(&bytes[pos + 2]);
    if (len < 4 || len > bytes.size() - pos)
      return bad("payload length " + std::to_string(len) + " out of bounds");
    if (!known(type) || type == 2 || type == 3)
      return bad("unexpected payload type " + std::to_string(type));  // INVALID-PAYLOAD-TYPE
    auto p = parse_body(static_cast<PayloadType>(type), bytes.subspan(pos + 4, len - 4));
    if (!p) return unexpected(p.error());
    out.push_back(std::move(*p));
    pos += len;
  }
  if (pos != bytes.size() && !trailing_padding) return bad("bytes after the last payload");
  return out;
}

Bytes encode_chain(const std::vector<Payload>& payloads) {
  Bytes o;
  for (size_t i = 0; i < payloads.size(); ++i) {
    const size_t at = o.size();
    put8(o,
         static_cast<uint8_t>(i + 1 < payloads.size() ? payloads[i + 1].type : PayloadType::None));
    put8(o, 0);
    put16(o, 0);
    std::visit(
        [&](const auto& b) {
          using T = std::decay_t<decltype(b)>;
          if constexpr (std::is_same_v<T, RawPayload>) {
            append(o, b.data);
          } else if constexpr (std::is_same_v<T, SaPayload>) {
            encode_sa(b, o);
          } else if constexpr (std::is_same_v<T, IdPayload>) {
            append(o, b.body());
          } else if constexpr (std::is_same_v<T, NotifyPayload>) {
            put32(o, b.doi);
            put8(o, b.protocol);
            put8(o, static_cast<uint8_t>(b.spi.size()));
            put16(o, b.type);
            append(o, b.spi);
            append(o, b.data);
          } else if constexpr (std::is_same_v<T, DeletePayload>) {
            put32(o, b.doi);
            put8(o, b.protocol);
            put8(o, b.spi_size);
            put16(o, static_cast<uint16_t>(b.spis.size()));
            for (const auto& s : b.spis) append(o, s);
          }
        },
        payloads[i].body);
    store_be16(&o[at + 2], static_cast<uint16_t>(o.size() - at));
  }
  return o;
}

void encode_header(const Header& h, Bytes& o) {
  wire::put_header(o, h.icookie, h.rcookie, static_cast<uint8_t>(h.next), h.version,
                   static_cast<uint8_t>(h.exchange), h.flags, h.message_id, h.length);
}

}  // namespace xgw::ike::isakmp
