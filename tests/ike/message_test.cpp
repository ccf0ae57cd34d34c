// The IKEv2 message codec (ike/message.h): round trips for every payload
// type, exact bytes for structures built from the RFC 7296 §3 diagrams,
// traffic-selector <-> CIDR conversion, every rejection with the notify
// RFC 7296 says to answer with, and real strongSwan messages.
#include "ike/message.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cctype>
#include <string_view>

#include "common/bytes.h"

namespace xgw::ike {
namespace {

Bytes hex(std::string_view s) {
  Bytes out;
  int hi = -1;
  for (char c : s) {
    if (std::isspace(static_cast<unsigned char>(c))) continue;
    const int v =
        std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : std::tolower(c) - 'a' + 10;
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<uint8_t>(hi << 4 | v));
      hi = -1;
    }
  }
  EXPECT_EQ(hi, -1) << "odd number of hex digits";
  return out;
}

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes o;
  for (const auto& p : parts) o.insert(o.end(), p.begin(), p.end());
  return o;
}

net::IpAddr ip(const char* s) {
  auto a = net::IpAddr::parse(s);
  EXPECT_TRUE(a) << s;
  return a.value_or(net::IpAddr{});
}

net::Cidr cidr(const char* s) {
  auto c = net::Cidr::parse(s);
  EXPECT_TRUE(c) << s;
  return c ? *c : net::Cidr{};
}

Header test_header(PayloadType next) {
  Header h;
  h.spi_i = 0x0102030405060708;
  h.spi_r = 0x1112131415161718;
  h.next = next;
  h.exchange = Exchange::IkeAuth;
  h.flags = kFlagInitiator;
  h.message_id = 7;
  return h;
}

// A datagram: a header (length filled in) with `first` as its Next Payload,
// followed by `chain` verbatim.
Bytes datagram(PayloadType first, const Bytes& chain, uint8_t first_raw = 0) {
  Header h = test_header(first);
  h.length = static_cast<uint32_t>(kHeaderSize + chain.size());
  Bytes d;
  encode_header(h, d);
  if (first_raw) d[16] = first_raw;
  d.insert(d.end(), chain.begin(), chain.end());
  return d;
}

// One generic payload: Next Payload, flags, length (computed unless given).
Bytes gp(uint8_t next, const Bytes& body, uint8_t flags = 0, int length = -1) {
  const size_t len = length < 0 ? body.size() + 4 : static_cast<size_t>(length);
  Bytes o{next, flags, static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len)};
  o.insert(o.end(), body.begin(), body.end());
  return o;
}

constexpr uint8_t t(PayloadType p) {
  return static_cast<uint8_t>(p);
}

ParseError reject(const Bytes& d) {
  auto m = parse_message(d);
  EXPECT_FALSE(m) << "accepted";
  return m ? ParseError{"accepted", 0xffff, 0} : m.error();
}

ParseError reject_body(PayloadType type, const Bytes& body) {
  return reject(datagram(type, gp(0, body)));
}

// ---------------------------------------------------------------------------
// Round trips

TEST(IkeMessage, RoundTripEveryPayloadType) {
  SaPayload sa;
  sa.proposals.push_back(
      Proposal{1, Protocol::Ike, {}, {{1, 12, 256}, {2, 5, {}}, {3, 12, {}}, {4, 14, {}}}});
  sa.proposals.push_back(
      Proposal{2, Protocol::Esp, {0xde, 0xad, 0xbe, 0xef}, {{1, 20, 128}, {5, 0, {}}}});
  TsPayload tsi{{ts_from_cidr(cidr("10.1.0.0/16")), ts_from_cidr(cidr("fd00:1::/64"))}};
  TsPayload tsr{
      {TrafficSelector{TsType::Ipv4Range, 17, 500, 4500, ip("192.0.2.1"), ip("192.0.2.9")}}};

  std::vector<Payload> ps;
  ps.push_back(make_payload(PayloadType::SA, sa));
  ps.push_back(make_payload(PayloadType::KE, KePayload{19, Bytes(64, 0x42)}));
  ps.push_back(make_payload(PayloadType::IDi, IdPayload{IdType::Fqdn, {'a', '.', 'b'}}));
  ps.push_back(make_payload(PayloadType::IDr, IdPayload{IdType::Ipv4, {192, 0, 2, 2}}));
  ps.push_back(make_payload(PayloadType::AUTH, AuthPayload{AuthMethod::Psk, Bytes(32, 0xa5)}));
  ps.push_back(make_payload(PayloadType::Nonce, NoncePayload{Bytes(32, 0x17)}));
  ps.push_back(make_notify(Notify::RekeySa, {}, Protocol::Esp, {1, 2, 3, 4}));
  ps.push_back(make_notify(Notify::Cookie, {9, 8, 7, 6, 5, 4, 3, 2}));
  ps.push_back(make_payload(PayloadType::Delete, DeletePayload{Protocol::Esp, {0x1000, 0x2000}}));
  ps.push_back(make_payload(PayloadType::Delete, DeletePayload{Protocol::Ike, {}}));
  ps.push_back(make_payload(PayloadType::TSi, tsi));
  ps.push_back(make_payload(PayloadType::TSr, tsr));
  ps.push_back(make_payload(PayloadType::Vendor, VendorPayload{{'x', 'g', 'w'}}));
  ps.push_back(make_payload(PayloadType::CERT, OpaquePayload{{4, 0x30, 0x82}}));
  ps.push_back(make_payload(PayloadType::CERTREQ, OpaquePayload{{4, 1, 2, 3}}));
  ps.push_back(make_payload(PayloadType::CP, OpaquePayload{{1, 0, 0, 0, 0, 1, 0, 0}}));
  ps.push_back(make_payload(PayloadType::EAP, OpaquePayload{{1, 1, 0, 5, 1}}));
  ps.back().critical = true;  // a known payload keeps its critical bit

  Header h = test_header(ps[0].type);
  const Bytes chain = encode_chain(ps);
  h.length = static_cast<uint32_t>(kHeaderSize + chain.size());
  Bytes d;
  encode_header(h, d);
  d.insert(d.end(), chain.begin(), chain.end());

  auto m = parse_message(d);
  ASSERT_TRUE(m) << m.error().what;
  EXPECT_EQ(m->header.spi_i, h.spi_i);
  EXPECT_EQ(m->header.spi_r, h.spi_r);
  EXPECT_EQ(m->header.message_id, 7u);
  EXPECT_FALSE(m->sk_offset);
  ASSERT_EQ(m->payloads.size(), ps.size());
  for (size_t i = 0; i < ps.size(); ++i) {
    EXPECT_EQ(m->payloads[i].type, ps[i].type) << i;
    EXPECT_EQ(m->payloads[i].critical, ps[i].critical) << i;
    EXPECT_EQ(m->payloads[i].body.index(), ps[i].body.index()) << i;
    EXPECT_EQ(encode_chain({m->payloads[i]}), encode_chain({ps[i]})) << i;
  }

  const auto* psa = m->get<SaPayload>(PayloadType::SA);
  ASSERT_TRUE(psa);
  ASSERT_EQ(psa->proposals.size(), 2u);
  EXPECT_EQ(psa->proposals[0].transforms, sa.proposals[0].transforms);
  EXPECT_EQ(psa->proposals[1].protocol, Protocol::Esp);
  EXPECT_EQ(psa->proposals[1].number, 2);
  EXPECT_EQ(psa->proposals[1].spi, (Bytes{0xde, 0xad, 0xbe, 0xef}));
  EXPECT_EQ(psa->proposals[1].transforms, sa.proposals[1].transforms);
  const auto* ke = m->get<KePayload>(PayloadType::KE);
  ASSERT_TRUE(ke);
  EXPECT_EQ(ke->group, 19);
  EXPECT_EQ(ke->data, Bytes(64, 0x42));
  const auto* idr = m->get<IdPayload>(PayloadType::IDr);
  ASSERT_TRUE(idr);
  EXPECT_EQ(idr->type, IdType::Ipv4);
  EXPECT_EQ(idr->data, (Bytes{192, 0, 2, 2}));
  const auto* auth = m->get<AuthPayload>(PayloadType::AUTH);
  ASSERT_TRUE(auth);
  EXPECT_EQ(auth->method, AuthMethod::Psk);
  EXPECT_EQ(auth->data, Bytes(32, 0xa5));
  const auto* rekey = m->notify(Notify::RekeySa);
  ASSERT_TRUE(rekey);
  EXPECT_EQ(rekey->protocol, Protocol::Esp);
  EXPECT_EQ(rekey->spi, (Bytes{1, 2, 3, 4}));
  ASSERT_TRUE(m->notify(Notify::Cookie));
  EXPECT_EQ(m->notify(Notify::Cookie)->data.size(), 8u);
  EXPECT_FALSE(m->notify(Notify::InitialContact));
  EXPECT_FALSE(m->error_notify());
  const auto dels = m->find_all(PayloadType::Delete);
  ASSERT_EQ(dels.size(), 2u);
  EXPECT_EQ(std::get<DeletePayload>(dels[0]->body).spis, (std::vector<uint32_t>{0x1000, 0x2000}));
  EXPECT_EQ(std::get<DeletePayload>(dels[1]->body).protocol, Protocol::Ike);
  EXPECT_TRUE(std::get<DeletePayload>(dels[1]->body).spis.empty());
  ASSERT_TRUE(m->get<TsPayload>(PayloadType::TSi));
  EXPECT_EQ(m->get<TsPayload>(PayloadType::TSi)->selectors, tsi.selectors);
  ASSERT_TRUE(m->get<TsPayload>(PayloadType::TSr));
  EXPECT_EQ(m->get<TsPayload>(PayloadType::TSr)->selectors, tsr.selectors);
  ASSERT_TRUE(m->get<VendorPayload>(PayloadType::Vendor));
  EXPECT_EQ(m->get<VendorPayload>(PayloadType::Vendor)->data, (Bytes{'x', 'g', 'w'}));
  ASSERT_TRUE(m->get<OpaquePayload>(PayloadType::CERTREQ));
  EXPECT_EQ(m->get<OpaquePayload>(PayloadType::CERTREQ)->data, (Bytes{4, 1, 2, 3}));
  EXPECT_TRUE(m->find(PayloadType::EAP)->critical);
  EXPECT_FALSE(m->find(PayloadType::SK));

  // The whole message re-encodes to the same bytes.
  Bytes again;
  encode_header(m->header, again);
  const Bytes c2 = encode_chain(m->payloads);
  again.insert(again.end(), c2.begin(), c2.end());
  EXPECT_EQ(again, d);

  // The same chain read as decrypted SK contents.
  auto inner = parse_chain(ps[0].type, chain);
  ASSERT_TRUE(inner) << inner.error().what;
  EXPECT_EQ(encode_chain(*inner), chain);
}

TEST(IkeMessage, ErrorNotifyIsTheFirstBelow16384) {
  std::vector<Payload> ps{make_notify(Notify::Ikev2FragmentationSupported),
                          make_notify(Notify::TsUnacceptable),
                          make_notify(Notify::NoProposalChosen)};
  auto m = parse_message(datagram(PayloadType::Notify, encode_chain(ps)));
  ASSERT_TRUE(m) << m.error().what;
  ASSERT_TRUE(m->error_notify());
  EXPECT_EQ(m->error_notify()->type, static_cast<uint16_t>(Notify::TsUnacceptable));
  EXPECT_TRUE(is_error(16383));
  EXPECT_FALSE(is_error(16384));
}

TEST(IkeMessage, EncodeChainLastNext) {
  const Bytes c = encode_chain({make_notify(Notify::InitialContact)}, PayloadType::SK);
  EXPECT_EQ(c, hex("2e000008 00004000"));
  EXPECT_TRUE(encode_chain({}).empty());
}

TEST(IkeMessage, EncryptedPayloadLocated) {
  // A Vendor ID, then SK whose contents start with IDi.
  const Bytes sk_body = Bytes(40, 0xee);
  const Bytes chain =
      cat({gp(t(PayloadType::SK), {'v', 'i', 'd', '!'}), gp(t(PayloadType::IDi), sk_body)});
  auto m = parse_message(datagram(PayloadType::Vendor, chain));
  ASSERT_TRUE(m) << m.error().what;
  ASSERT_EQ(m->payloads.size(), 1u);
  EXPECT_EQ(m->payloads[0].type, PayloadType::Vendor);
  ASSERT_TRUE(m->sk_offset);
  EXPECT_EQ(*m->sk_offset, kHeaderSize + 8);
  EXPECT_EQ(m->sk_first, PayloadType::IDi);

  auto m2 = parse_message(datagram(PayloadType::SK, gp(t(PayloadType::None), sk_body)));
  ASSERT_TRUE(m2) << m2.error().what;
  EXPECT_TRUE(m2->payloads.empty());
  EXPECT_EQ(m2->sk_offset, kHeaderSize);
  EXPECT_EQ(m2->sk_first, PayloadType::None);
}

// ---------------------------------------------------------------------------
// Exact bytes, from the RFC 7296 §3 diagrams

TEST(IkeMessageBytes, Header) {
  // §3.1: SPIs, Next Payload, MjVer|MnVer, Exchange Type, Flags (R, V, I at
  // bits 2, 3, 4 from the left), Message ID, Length.
  Header h = test_header(PayloadType::SA);
  h.flags = kFlagInitiator | kFlagResponse;
  h.message_id = 0x01020304;
  h.length = kHeaderSize;
  Bytes d;
  encode_header(h, d);
  EXPECT_EQ(d, hex("0102030405060708 1112131415161718 21 20 23 28 01020304 0000001c"));

  auto p = parse_header(d);
  ASSERT_TRUE(p) << p.error().what;
  EXPECT_EQ(p->spi_i, 0x0102030405060708u);
  EXPECT_EQ(p->spi_r, 0x1112131415161718u);
  EXPECT_EQ(p->next, PayloadType::SA);
  EXPECT_EQ(p->version, kIkeV2);
  EXPECT_EQ(p->exchange, Exchange::IkeAuth);
  EXPECT_TRUE(p->is_response());
  EXPECT_TRUE(p->from_initiator());
  EXPECT_EQ(p->message_id, 0x01020304u);
  EXPECT_EQ(p->length, kHeaderSize);

  // Flags are independent bits; an empty message parses.
  d[19] = kFlagVersion;
  d[16] = 0;
  auto q = parse_message(d);
  ASSERT_TRUE(q) << q.error().what;
  EXPECT_FALSE(q->header.is_response());
  EXPECT_FALSE(q->header.from_initiator());
  EXPECT_EQ(q->header.flags, kFlagVersion);
  EXPECT_TRUE(q->payloads.empty());
}

TEST(IkeMessageBytes, SaTwoProposalsWithKeyLength) {
  SaPayload sa;
  sa.proposals.push_back(
      Proposal{1, Protocol::Ike, {}, {{1, 12, 256}, {2, 5, {}}, {3, 12, {}}, {4, 14, {}}}});
  sa.proposals.push_back(
      Proposal{2, Protocol::Esp, {0x11, 0x22, 0x33, 0x44}, {{1, 20, 128}, {5, 0, {}}}});
  // Generic payload header (last, length 80); §3.3.1 proposal 1 (more
  // follow: 2, length 44, #1, IKE, SPI size 0, 4 transforms); §3.3.2
  // transforms, the first with a §3.3.5 Key Length attribute (AF=1, type
  // 14); proposal 2 (last: 0, length 32, #2, ESP, SPI size 4, 2
  // transforms, SPI).
  const Bytes want =
      hex("00000050"
          "0200002c 01010004"
          "0300000c 0100000c 800e0100"  // ENCR AES-CBC, Key Length 256
          "03000008 02000005"           // PRF HMAC-SHA2-256
          "03000008 0300000c"           // INTEG HMAC-SHA2-256-128
          "00000008 0400000e"           // D-H MODP-2048, last transform
          "00000020 02030402 11223344"
          "0300000c 01000014 800e0080"  // ENCR AES-GCM-16, Key Length 128
          "00000008 05000000");         // ESN none
  EXPECT_EQ(encode_chain({make_payload(PayloadType::SA, sa)}), want);

  auto m = parse_chain(PayloadType::SA, want);
  ASSERT_TRUE(m) << m.error().what;
  ASSERT_EQ(m->size(), 1u);
  const auto& got = std::get<SaPayload>((*m)[0].body);
  ASSERT_EQ(got.proposals.size(), 2u);
  EXPECT_EQ(got.proposals[0].transforms, sa.proposals[0].transforms);
  EXPECT_EQ(got.proposals[1].spi, sa.proposals[1].spi);
  EXPECT_EQ(got.proposals[1].transforms, sa.proposals[1].transforms);
}

TEST(IkeMessageBytes, KeyExchange) {
  // §3.4: D-H Group Num, RESERVED, Key Exchange Data.
  const Bytes want = hex("0000000c 000e0000 aabbccdd");
  EXPECT_EQ(encode_chain({make_payload(PayloadType::KE, KePayload{14, {0xaa, 0xbb, 0xcc, 0xdd}})}),
            want);
  auto m = parse_chain(PayloadType::KE, want);
  ASSERT_TRUE(m) << m.error().what;
  const auto& ke = std::get<KePayload>((*m)[0].body);
  EXPECT_EQ(ke.group, 14);
  EXPECT_EQ(ke.data, (Bytes{0xaa, 0xbb, 0xcc, 0xdd}));
}

TEST(IkeMessageBytes, NotifyWithSpi) {
  // §3.10: Protocol ID, SPI Size, Notify Message Type, SPI, data.
  const Bytes want = hex("0000000c 03044009 11223344");
  EXPECT_EQ(
      encode_chain({make_notify(Notify::RekeySa, {}, Protocol::Esp, {0x11, 0x22, 0x33, 0x44})}),
      want);
  const Bytes with_data = hex("0000000a 00004006 c00c");  // COOKIE, no SPI
  EXPECT_EQ(encode_chain({make_notify(Notify::Cookie, {0xc0, 0x0c})}), with_data);

  auto m = parse_chain(PayloadType::Notify,
                       cat({hex("29"), Bytes(want.begin() + 1, want.end()), with_data}));
  ASSERT_TRUE(m) << m.error().what;
  ASSERT_EQ(m->size(), 2u);
  const auto& n = std::get<NotifyPayload>((*m)[0].body);
  EXPECT_EQ(n.protocol, Protocol::Esp);
  EXPECT_EQ(n.type, 16393);
  EXPECT_EQ(n.spi, (Bytes{0x11, 0x22, 0x33, 0x44}));
  EXPECT_TRUE(n.data.empty());
  const auto& c = std::get<NotifyPayload>((*m)[1].body);
  EXPECT_TRUE(c.spi.empty());
  EXPECT_EQ(c.data, (Bytes{0xc0, 0x0c}));
}

TEST(IkeMessageBytes, DeleteEspAndIke) {
  // §3.11: Protocol ID, SPI Size, Num of SPIs, SPIs.
  const Bytes esp = hex("00000010 03040002 c0000001 c0000002");
  const Bytes ike = hex("00000008 01000000");
  EXPECT_EQ(encode_chain({make_payload(PayloadType::Delete,
                                       DeletePayload{Protocol::Esp, {0xc0000001, 0xc0000002}})}),
            esp);
  EXPECT_EQ(encode_chain({make_payload(PayloadType::Delete, DeletePayload{Protocol::Ike, {}})}),
            ike);
  auto e = parse_chain(PayloadType::Delete, esp);
  ASSERT_TRUE(e) << e.error().what;
  EXPECT_EQ(std::get<DeletePayload>((*e)[0].body).spis,
            (std::vector<uint32_t>{0xc0000001, 0xc0000002}));
  auto i = parse_chain(PayloadType::Delete, ike);
  ASSERT_TRUE(i) << i.error().what;
  EXPECT_EQ(std::get<DeletePayload>((*i)[0].body).protocol, Protocol::Ike);
}

TEST(IkeMessageBytes, TrafficSelectorsV4AndV6) {
  TsPayload ts;
  ts.selectors.push_back(
      TrafficSelector{TsType::Ipv4Range, 6, 80, 80, ip("10.0.0.0"), ip("10.0.0.255")});
  ts.selectors.push_back(ts_from_cidr(cidr("2001:db8::/48")));
  // §3.13: Number of TSs, RESERVED; §3.13.1: TS Type, IP Protocol ID,
  // Selector Length, Start Port, End Port, Starting Address, Ending Address.
  const Bytes want =
      hex("00000040 02000000"
          "07060010 00500050 0a000000 0a0000ff"
          "08000028 0000ffff"
          "20010db8000000000000000000000000"
          "20010db80000ffffffffffffffffffff");
  EXPECT_EQ(encode_chain({make_payload(PayloadType::TSi, ts)}), want);
  auto m = parse_chain(PayloadType::TSi, want);
  ASSERT_TRUE(m) << m.error().what;
  EXPECT_EQ(std::get<TsPayload>((*m)[0].body).selectors, ts.selectors);
}

TEST(IkeMessageBytes, IdentificationBody) {
  // §3.5: ID Type, RESERVED (3), data; body() is what §2.15 signs.
  const IdPayload id{IdType::Fqdn, {'v', 'p', 'n', '.', 'e', 'x'}};
  EXPECT_EQ(id.body(), hex("02000000 76706e2e6578"));
  EXPECT_EQ((IdPayload{IdType::Ipv4, {192, 0, 2, 1}}).body(), hex("01000000 c0000201"));
  EXPECT_EQ(encode_chain({make_payload(PayloadType::IDi, id)}),
            hex("0000000e 02000000 76706e2e6578"));
  // AUTH (§3.8): Auth Method, RESERVED (3), data.
  EXPECT_EQ(encode_chain({make_payload(PayloadType::AUTH, AuthPayload{AuthMethod::Psk, {1, 2}})}),
            hex("0000000a 02000000 0102"));
}

// ---------------------------------------------------------------------------
// Traffic selectors and CIDRs

TEST(IkeTrafficSelector, FromAndToCidr) {
  struct Case {
    const char* cidr;
    const char* start;
    const char* end;
  };
  const Case cases[] = {
      {"0.0.0.0/0", "0.0.0.0", "255.255.255.255"},
      {"10.0.0.0/8", "10.0.0.0", "10.255.255.255"},
      {"172.16.0.0/16", "172.16.0.0", "172.16.255.255"},
      {"192.168.1.0/24", "192.168.1.0", "192.168.1.255"},
      {"192.0.2.7/32", "192.0.2.7", "192.0.2.7"},
      {"10.1.2.0/23", "10.1.2.0", "10.1.3.255"},
      {"10.1.0.128/25", "10.1.0.128", "10.1.0.255"},
      {"::/0", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
      {"2001:db8:1::/48", "2001:db8:1::", "2001:db8:1:ffff:ffff:ffff:ffff:ffff"},
      {"fd00:1:2:3::/64", "fd00:1:2:3::", "fd00:1:2:3:ffff:ffff:ffff:ffff"},
      {"2001:db8::1/128", "2001:db8::1", "2001:db8::1"},
      {"2001:db8::/33", "2001:db8::", "2001:db8:7fff:ffff:ffff:ffff:ffff:ffff"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.cidr);
    const net::Cidr n = cidr(c.cidr);
    const TrafficSelector ts = ts_from_cidr(n);
    EXPECT_EQ(ts.type, n.family() == net::Family::V4 ? TsType::Ipv4Range : TsType::Ipv6Range);
    EXPECT_EQ(ts.ip_proto, 0);
    EXPECT_EQ(ts.start_port, 0);
    EXPECT_EQ(ts.end_port, 65535);
    EXPECT_EQ(ts.start, ip(c.start));
    EXPECT_EQ(ts.end, ip(c.end));
    const auto back = ts_to_cidr(ts);
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, n);
    EXPECT_EQ(to_string(ts), c.cidr);
  }
}

TEST(IkeTrafficSelector, RangesThatAreNotPrefixes) {
  auto range = [](const char* a, const char* b) {
    return TrafficSelector{ip(a).family == net::Family::V4 ? TsType::Ipv4Range : TsType::Ipv6Range,
                           0,
                           0,
                           65535,
                           ip(a),
                           ip(b)};
  };
  EXPECT_FALSE(ts_to_cidr(range("10.0.0.1", "10.0.0.2")));
  EXPECT_FALSE(ts_to_cidr(range("10.0.0.0", "10.0.0.2")));       // not 2^n - 1 wide
  EXPECT_FALSE(ts_to_cidr(range("10.0.0.128", "10.0.1.127")));   // unaligned /24
  EXPECT_FALSE(ts_to_cidr(range("10.0.0.5", "10.0.0.1")));       // start > end
  EXPECT_FALSE(ts_to_cidr(range("10.0.0.1", "10.0.0.255")));     // host bits in start
  EXPECT_FALSE(ts_to_cidr(range("2001:db8::", "2001:db8::2")));  // v6
  EXPECT_FALSE(ts_to_cidr(range("2001:db8::1", "2001:db8::ffff")));
  TrafficSelector mixed = range("10.0.0.0", "10.0.0.255");
  mixed.end = ip("::");
  EXPECT_FALSE(ts_to_cidr(mixed));

  // A prefix with a protocol or ports is not a plain CIDR either.
  TrafficSelector tcp = ts_from_cidr(cidr("10.0.0.0/24"));
  tcp.ip_proto = 6;
  EXPECT_FALSE(ts_to_cidr(tcp));
  TrafficSelector port = ts_from_cidr(cidr("10.0.0.0/24"));
  port.start_port = port.end_port = 443;
  EXPECT_FALSE(ts_to_cidr(port));
  TrafficSelector low = ts_from_cidr(cidr("10.0.0.0/24"));
  low.end_port = 1023;
  EXPECT_FALSE(ts_to_cidr(low));
}

TEST(IkeTrafficSelector, ToString) {
  EXPECT_EQ(to_string(ts_from_cidr(cidr("10.1.0.0/16"))), "10.1.0.0/16");
  EXPECT_EQ(
      to_string(TrafficSelector{TsType::Ipv4Range, 0, 0, 65535, ip("10.0.0.1"), ip("10.0.0.9")}),
      "10.0.0.1..10.0.0.9");
  EXPECT_EQ(
      to_string(TrafficSelector{TsType::Ipv4Range, 6, 80, 80, ip("10.0.0.0"), ip("10.0.0.255")}),
      "10.0.0.0..10.0.0.255 proto 6 ports 80-80");
  EXPECT_EQ(to_string(TrafficSelector{TsType::Ipv6Range, 17, 0, 65535, ip("2001:db8::"),
                                      ip("2001:db8::ff")}),
            "2001:db8::..2001:db8::ff proto 17");
  EXPECT_EQ(
      to_string(TrafficSelector{TsType::Ipv4Range, 0, 500, 4500, ip("192.0.2.1"), ip("192.0.2.1")}),
      "192.0.2.1..192.0.2.1 ports 500-4500");
  EXPECT_STREQ(to_string(Notify::NatDetectionSourceIp), "NAT_DETECTION_SOURCE_IP");
  EXPECT_STREQ(to_string(Notify::InvalidSyntax), "INVALID_SYNTAX");
  EXPECT_STREQ(to_string(static_cast<Notify>(12345)), "UNKNOWN_NOTIFY");
}

// ---------------------------------------------------------------------------
// Rejections: notify 0 = drop, 1 = UNSUPPORTED_CRITICAL_PAYLOAD,
// 5 = INVALID_MAJOR_VERSION, 7 = INVALID_SYNTAX.

const Bytes kNonce16(16, 0x33);

TEST(IkeMessageReject, TruncatedHeader) {
  Bytes d = datagram(PayloadType::None, {});
  d.resize(kHeaderSize - 1);
  EXPECT_EQ(parse_header(d).error().notify, 0);
  EXPECT_EQ(reject(d).notify, 0);
  EXPECT_EQ(reject({}).notify, 0);
}

TEST(IkeMessageReject, LengthFieldNotDatagramSize) {
  Bytes d = datagram(PayloadType::Nonce, gp(0, kNonce16));
  ASSERT_TRUE(parse_message(d));
  Bytes longer = d;
  longer.push_back(0);  // one byte more than the length field says
  EXPECT_EQ(reject(longer).notify, 0);
  Bytes shorter = d;
  shorter[27] += 1;  // the field claims a byte more than there is
  EXPECT_EQ(reject(shorter).notify, 0);
  EXPECT_EQ(parse_header(shorter).error().notify, 0);
}

TEST(IkeMessageReject, MajorVersion) {
  Bytes d = datagram(PayloadType::None, {});
  d[17] = 0x30;
  EXPECT_EQ(parse_header(d).error().notify, 5);
  EXPECT_EQ(reject(d).notify, 5);
  d[17] = 0x10;
  EXPECT_EQ(reject(d).notify, 5);
  d[17] = 0x21;  // a higher minor version is accepted (§2.5)
  EXPECT_TRUE(parse_message(d));
}

TEST(IkeMessageReject, PayloadLength) {
  EXPECT_EQ(reject(datagram(PayloadType::Notify, gp(0, {}, 0, 3))).notify, 7);
  EXPECT_EQ(reject(datagram(PayloadType::Notify, gp(0, {}, 0, 0))).notify, 7);
  // Past the end of the datagram.
  EXPECT_EQ(reject(datagram(PayloadType::Nonce, gp(0, kNonce16, 0, 21))).notify, 7);
  // The second payload's header is cut short.
  EXPECT_EQ(
      reject(datagram(PayloadType::Nonce, cat({gp(t(PayloadType::Notify), kNonce16), Bytes{0, 0}})))
          .notify,
      7);
  // The chain names a next payload but the datagram ends.
  EXPECT_EQ(reject(datagram(PayloadType::Nonce, gp(t(PayloadType::Notify), kNonce16))).notify, 7);
  // The header names a first payload but there is none.
  EXPECT_EQ(reject(datagram(PayloadType::SA, {})).notify, 7);
}

// An SA body with one IKE proposal: `prop` is everything after the
// proposal's 4-byte substructure header.
Bytes sa_body(uint8_t last, uint16_t plen, const Bytes& prop) {
  return cat({Bytes{last, 0, static_cast<uint8_t>(plen >> 8), static_cast<uint8_t>(plen)}, prop});
}

TEST(IkeMessageReject, SaProposalAndTransformLengths) {
  const Bytes tr_last = hex("00000008 0400000e");
  const Bytes good = sa_body(0, 16, cat({hex("01010001"), tr_last}));
  ASSERT_TRUE(parse_message(datagram(PayloadType::SA, gp(0, good))));

  EXPECT_EQ(reject_body(PayloadType::SA, {}).notify, 7);                              // no proposal
  EXPECT_EQ(reject_body(PayloadType::SA, hex("00000008 010100")).notify, 7);          // truncated
  EXPECT_EQ(reject_body(PayloadType::SA, sa_body(0, 7, hex("01010000"))).notify, 7);  // < 8
  EXPECT_EQ(reject_body(PayloadType::SA, sa_body(0, 17, cat({hex("01010001"), tr_last}))).notify,
            7);  // proposal past the payload
  EXPECT_EQ(reject_body(PayloadType::SA, sa_body(1, 16, cat({hex("01010001"), tr_last}))).notify,
            7);  // Last Substruc neither 0 nor 2
  EXPECT_EQ(reject_body(PayloadType::SA, sa_body(2, 16, cat({hex("01010001"), tr_last}))).notify,
            7);  // "more proposals" but none follows
  EXPECT_EQ(reject_body(PayloadType::SA, cat({good, Bytes{0, 0, 0, 0}})).notify, 7);  // trailer
  // SPI size past the proposal.
  EXPECT_EQ(reject_body(PayloadType::SA, sa_body(0, 8, hex("01030800"))).notify, 7);
  // Transform length < 8, past the proposal, and bytes after the last one.
  EXPECT_EQ(reject_body(PayloadType::SA, sa_body(0, 16, hex("01010001 00000007 0400000e"))).notify,
            7);
  EXPECT_EQ(reject_body(PayloadType::SA, sa_body(0, 16, hex("01010001 00000009 0400000e"))).notify,
            7);
  EXPECT_EQ(reject_body(PayloadType::SA, sa_body(0, 20, hex("01010001 00000008 0400000e 00000000")))
                .notify,
            7);
  EXPECT_EQ(reject_body(PayloadType::SA, sa_body(0, 16, hex("01010001 02000008 0400000e"))).notify,
            7);  // transform Last Substruc not 0 or 3
  // Attributes: truncated, and a TLV attribute past the transform.
  EXPECT_EQ(
      reject_body(PayloadType::SA, sa_body(0, 18, hex("01010001 0000000a 0100000c 800e"))).notify,
      7);
  EXPECT_EQ(reject_body(PayloadType::SA, sa_body(0, 20, hex("01010001 0000000c 0100000c 00100004")))
                .notify,
            7);
}

TEST(IkeMessageReject, SaTransformCountMismatch) {
  // Two transforms counted, the first already marked last.
  EXPECT_EQ(reject_body(PayloadType::SA,
                        sa_body(0, 24, hex("01010002 00000008 0400000e 00000008 02000005")))
                .notify,
            7);
  // One transform counted, but it says more follow.
  EXPECT_EQ(reject_body(PayloadType::SA,
                        sa_body(0, 24, hex("01010001 03000008 0400000e 00000008 02000005")))
                .notify,
            7);
  // Three counted, two present.
  EXPECT_EQ(reject_body(PayloadType::SA,
                        sa_body(0, 24, hex("01010003 03000008 0400000e 03000008 02000005")))
                .notify,
            7);
  // None counted, one present.
  EXPECT_EQ(reject_body(PayloadType::SA, sa_body(0, 16, hex("01010000 00000008 0400000e"))).notify,
            7);
}

TEST(IkeMessageReject, SaUnknownAttributeNeverMatches) {
  // A transform with an attribute IKEv2 does not define keeps a key length
  // that matches nothing (§3.3.6: such a proposal is not acceptable),
  // whichever order the attributes come in.
  for (const char* attrs : {"800e0080 80060001", "80060001 800e0080", "800e0080 00070002abcd"}) {
    SCOPED_TRACE(attrs);
    const Bytes tr = cat({hex("0100000c"), hex(attrs)});
    const Bytes body =
        cat({hex("01010001"), Bytes{0, 0, 0, static_cast<uint8_t>(4 + tr.size())}, tr});
    auto m = parse_message(
        datagram(PayloadType::SA, gp(0, sa_body(0, static_cast<uint16_t>(4 + body.size()), body))));
    ASSERT_TRUE(m) << m.error().what;
    const auto& tf = m->get<SaPayload>(PayloadType::SA)->proposals.at(0).transforms.at(0);
    EXPECT_EQ(tf.key_bits, 0xffff);
  }
}

TEST(IkeMessageReject, NonceLength) {
  EXPECT_EQ(reject_body(PayloadType::Nonce, Bytes(15, 1)).notify, 7);
  EXPECT_EQ(reject_body(PayloadType::Nonce, Bytes(257, 1)).notify, 7);
  EXPECT_EQ(reject_body(PayloadType::Nonce, {}).notify, 7);
  EXPECT_TRUE(parse_message(datagram(PayloadType::Nonce, gp(0, Bytes(16, 1)))));
  EXPECT_TRUE(parse_message(datagram(PayloadType::Nonce, gp(0, Bytes(256, 1)))));
}

TEST(IkeMessageReject, FixedPartsTruncated) {
  for (PayloadType p :
       {PayloadType::KE, PayloadType::IDi, PayloadType::IDr, PayloadType::AUTH, PayloadType::Notify,
        PayloadType::Delete, PayloadType::TSi, PayloadType::TSr}) {
    SCOPED_TRACE(static_cast<int>(p));
    EXPECT_EQ(reject_body(p, hex("010203")).notify, 7);
  }
  // A Notify SPI past the payload.
  EXPECT_EQ(reject_body(PayloadType::Notify, hex("03044009 112233")).notify, 7);
}

TEST(IkeMessageReject, DeleteSpiSizeAndCount) {
  EXPECT_EQ(reject_body(PayloadType::Delete, hex("03080001 0102030405060708")).notify, 7);
  EXPECT_EQ(reject_body(PayloadType::Delete, hex("03000001")).notify, 7);
  EXPECT_EQ(reject_body(PayloadType::Delete, hex("03040002 01020304")).notify, 7);    // 2 != 1
  EXPECT_EQ(reject_body(PayloadType::Delete, hex("03040001 0102030405")).notify, 7);  // extra
  EXPECT_EQ(reject_body(PayloadType::Delete, hex("01040001 01020304")).notify, 7);    // IKE+SPI
  EXPECT_EQ(reject_body(PayloadType::Delete, hex("01080001 0102030405060708")).notify, 7);
  EXPECT_EQ(reject_body(PayloadType::Delete, hex("01000001")).notify, 7);  // IKE, count 1
}

TEST(IkeMessageReject, TrafficSelectors) {
  const Bytes v4 = hex("07000010 0000ffff 0a000000 0a0000ff");
  ASSERT_TRUE(parse_message(datagram(PayloadType::TSi, gp(0, cat({hex("01000000"), v4})))));
  // Selector length 40 on an IPv4 selector, 16 on an IPv6 one.
  EXPECT_EQ(
      reject_body(PayloadType::TSi, hex("01000000 07000028 0000ffff 0a000000 0a0000ff")).notify, 7);
  EXPECT_EQ(
      reject_body(PayloadType::TSr, cat({hex("01000000 08000010 0000ffff"), Bytes(32, 0)})).notify,
      7);
  // Unknown TS type (RFC 9478's security label is 10).
  EXPECT_EQ(
      reject_body(PayloadType::TSi, hex("01000000 0a000010 0000ffff 0a000000 0a0000ff")).notify, 7);
  // Truncated selector; count larger than the selectors present; a trailer.
  EXPECT_EQ(reject_body(PayloadType::TSi, hex("01000000 07000010 0000ffff 0a000000")).notify, 7);
  EXPECT_EQ(reject_body(PayloadType::TSi, cat({hex("02000000"), v4})).notify, 7);
  EXPECT_EQ(reject_body(PayloadType::TSi, cat({hex("01000000"), v4, Bytes{0}})).notify, 7);
}

TEST(IkeMessageReject, UnknownCriticalPayload) {
  // Type 99 with the critical bit, before a Nonce.
  const Bytes d = datagram(PayloadType::None,
                           cat({gp(t(PayloadType::Nonce), {1, 2, 3}, 0x80), gp(0, kNonce16)}), 99);
  const ParseError e = reject(d);
  EXPECT_EQ(e.notify, 1);
  EXPECT_EQ(e.critical_type, 99);
  // So is an SKF (RFC 7383) fragment xgw never negotiated, in a chain too.
  auto c = parse_chain(PayloadType::SKF, gp(0, {1, 2, 3, 4}, 0x80));
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().notify, 1);
  EXPECT_EQ(c.error().critical_type, 53);
}

TEST(IkeMessageReject, UnknownNonCriticalPayloadSkipped) {
  const Bytes d = datagram(PayloadType::None,
                           cat({gp(t(PayloadType::Nonce), {1, 2, 3}, 0x00), gp(0, kNonce16)}), 99);
  auto m = parse_message(d);
  ASSERT_TRUE(m) << m.error().what;
  ASSERT_EQ(m->payloads.size(), 1u);
  EXPECT_EQ(m->payloads[0].type, PayloadType::Nonce);
  // Also an IKEv1 payload type (1..32) and an unknown one after known ones.
  auto m2 = parse_message(
      datagram(PayloadType::Nonce, cat({gp(13, kNonce16), gp(200, {1}, 0x7f), gp(0, {})})));
  ASSERT_TRUE(m2) << m2.error().what;
  ASSERT_EQ(m2->payloads.size(), 1u);
}

TEST(IkeMessageReject, EncryptedPayloadNotLast) {
  const Bytes d =
      datagram(PayloadType::SK, cat({gp(t(PayloadType::Nonce), Bytes(20, 0)), gp(0, kNonce16)}));
  EXPECT_EQ(reject(d).notify, 7);
  // Nor inside decrypted contents.
  auto c = parse_chain(PayloadType::SK, gp(0, Bytes(20, 0)));
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().notify, 7);
}

TEST(IkeMessageReject, GarbageAfterLastPayload) {
  EXPECT_EQ(reject(datagram(PayloadType::Nonce, cat({gp(0, kNonce16), Bytes{0xde, 0xad}}))).notify,
            7);
  EXPECT_EQ(reject(datagram(PayloadType::None, Bytes{0})).notify, 7);
  auto c = parse_chain(PayloadType::Nonce, cat({gp(0, kNonce16), Bytes{1}}));
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().notify, 7);
}

// ---------------------------------------------------------------------------
// strongSwan 5.9.8 (Debian 5.9.8-5+deb12u6), captured 2026-11-22 with
// tests/ike/capture_strongswan.sh: two charons in network namespaces,
// IKEv2, PSK, proposals aes128-sha256-modp2048 / esp aes128gcm16, the
// initiator at 192.0.2.1 and the responder at 192.0.2.2 (UDP 500; IKE_AUTH
// moved to 4500, non-ESP marker stripped). tshark on the initiator's veth.

const char* const kStrongswanInitRequest =
    "ffd168bae1f24b9400000000000000002120220800000000000001d022000030"
    "0000002c010100040300000c0100000c800e0080030000080300000c03000008"
    "02000005000000080400000e28000108000e0000e885cc37fa6fd63e9048594f"
    "81eca8893c3154b3af0700469770c12367a2081c9b5dce52bcbac88a69b89027"
    "7fbf6befab224ddcd813078545262e0d872f93de323d12dba033ad2601d0d1f3"
    "e7a9b66465e41a08a5a84468866e3aa2e4c028cbe9e979acc4e3bfac2c08f1f4"
    "8fde7237614993971fc767addf7cc1d5afbb92be03bb6405aec088fc054c9de0"
    "9ec3eca60c050de573fa40d7f1e49948eec47fd28fc3d9fe9153c441eed19f35"
    "bc7e719008cece050d7ff26e8fbf8911fad8b0137f60bb9b85b6417a04db6f5a"
    "29f170d8541699d732167713a45961e78be2350ba0e07fe6733ddc6a97871ed8"
    "3001432576d5645d1a7422f12f2eb6d604101dd82900002443559a361799e46c"
    "50e710b6c94d0b25e1676b5aada9db664b3fb205ef7d5d502900001c00004004"
    "16fe42420d10e5f96a5206dac474a5f8abcb11d72900001c000040059aa64745"
    "17f67536567b6861061e186c9a54bc36290000080000402e290000100000402f"
    "00020003000400050000000800004016";

const char* const kStrongswanInitResponse =
    "ffd168bae1f24b94f7b27766307a6f7f2120222000000000000001d822000030"
    "0000002c010100040300000c0100000c800e0080030000080300000c03000008"
    "02000005000000080400000e28000108000e00000e7954730af088a7cbb3b86a"
    "5faf5f4d2722cd6a1fe82ae9fca809fc220640f544e27f06999837a648975c64"
    "c50b868f88dce0571e80795486947b0fbb8a019a9b288029f53454b24fcb4935"
    "a921f8c6e75da42dac27c384eb165d0ccd24bb432b5557957bb35e8efbb64d58"
    "32b651ebbdb2f8395108362ee9b1f33f650db294b75d98d9cb6276f74016f6d9"
    "ad5fc4abd366493b415154c727f25fdc47c3cc959a299fd2e400067c8c0092b4"
    "9d041dbcb049e08407f3a5351cae408d2cd4b19e7e0bf75b88eda48b71c16ef7"
    "4a7cc5a9099c8a37f38df691661e40ee3d9840c1ec58acee6a637ec6dbecfd60"
    "c9fc35c299da6b037fe9b2f3fa28306879af5de329000024d5599b2a85042dce"
    "e8181dc9af55cc268f54d494407c78ab5e24d1a2198a62832900001c00004004"
    "6a5ce58b278234776ec961ae5e95b839241384b82900001c000040056bbe83cf"
    "f5aee705773eb238229a82e0ab9c8bd0290000080000402e290000100000402f"
    "000200030004000529000008000040220000000800004014";

// IKE_AUTH (message ID 1): the header and an SK payload only.
const char* const kStrongswanAuthRequest =
    "ffd168bae1f24b94f7b27766307a6f7f2e2023080000000100000110230000f4"
    "5f563a2e3a6cf5a6a9499d81ab3a667392ff038275c7263dce5254201fbb1392"
    "f998932521810c6b643fe86b89288255a79c75cf2a65cc1678cb3cb96481d31a"
    "cbe3d2c23e10ad945e3711ddd19a33c1ba49a59ae9f9a98efab94c4fe7a0a1f7"
    "3eb0aa60111b9c04abb2a61c51dbd71d487d672ff74257699d96e67c0c64fcba"
    "125e03a403797d0c3b427275f3b7d5cef8fba5c3c45ca8c50b4e38b3957da63d"
    "6de713e4d98f3745c8b24ded88f91019d2a77c20b694fbf343fe1ae550476cf6"
    "73dd5ee1637d8070cca0d287df17f54e7b4bb5bffac2b917b2eed35eb3497304"
    "beaeb953ae91a935d1018bac736e92ce";

const char* const kStrongswanAuthResponse =
    "ffd168bae1f24b94f7b27766307a6f7f2e20232000000001000000e0240000c4"
    "eb75c92508fb2b2aa8a585753f8995fec38a80693520d78bf2906643a5ed9e82"
    "e883e3f16288b4ad375f9b4777d05e33523b54d6c2bce18f621b9f7560a0e24f"
    "cf71cced50aab57ce02bb952030e04a4cce23e12d5e627ba9547333004d15dc4"
    "1a18862a66f7543519f553edae24328fca18a61ed9cc57c9c15c2559efbef65e"
    "7cebe4cf48ef2978220eac4704d6f2a59d207759956daaacaa3c686b98e5eac7"
    "88ed9948dbd89233847eb48998a8e6d396ad595663f080f1020e1bf5372b4e31";

// Notify types strongSwan sends that xgw does not name.
constexpr uint16_t kRedirectSupported = 16406;        // RFC 5685
constexpr uint16_t kMultipleAuthSupported = 16404;    // RFC 4739
constexpr uint16_t kChildlessIkev2Supported = 16418;  // RFC 6023

Bytes sha1(const Bytes& in) {
  Bytes out(20);
  unsigned len = 0;
  EXPECT_EQ(EVP_Digest(in.data(), in.size(), out.data(), &len, EVP_sha1(), nullptr), 1);
  return out;
}

// The IKE_SA_INIT contents both sides send: SA, KE, Nonce, then notifies.
void check_strongswan_init(const Message& m, const Bytes& raw,
                           const std::vector<uint16_t>& notifies) {
  // SA: one IKE proposal, transforms in strongSwan's order.
  ASSERT_GE(m.payloads.size(), 3u);
  EXPECT_EQ(m.payloads[0].type, PayloadType::SA);
  const auto* sa = m.get<SaPayload>(PayloadType::SA);
  ASSERT_TRUE(sa);
  ASSERT_EQ(sa->proposals.size(), 1u);
  const Proposal& p = sa->proposals[0];
  EXPECT_EQ(p.number, 1);
  EXPECT_EQ(p.protocol, Protocol::Ike);
  EXPECT_TRUE(p.spi.empty());
  const std::vector<Transform> want{
      {1, 12, 128},  // ENCR_AES_CBC, Key Length 128
      {3, 12, {}},   // AUTH_HMAC_SHA2_256_128
      {2, 5, {}},    // PRF_HMAC_SHA2_256
      {4, 14, {}},   // 2048-bit MODP group
  };
  EXPECT_EQ(p.transforms, want);

  EXPECT_EQ(m.payloads[1].type, PayloadType::KE);
  const auto* ke = m.get<KePayload>(PayloadType::KE);
  ASSERT_TRUE(ke);
  EXPECT_EQ(ke->group, 14);
  EXPECT_EQ(ke->data.size(), 256u);

  EXPECT_EQ(m.payloads[2].type, PayloadType::Nonce);
  const auto* nonce = m.get<NoncePayload>(PayloadType::Nonce);
  ASSERT_TRUE(nonce);
  EXPECT_EQ(nonce->data.size(), 32u);

  std::vector<uint16_t> got;
  for (size_t i = 3; i < m.payloads.size(); ++i) {
    const auto* n = std::get_if<NotifyPayload>(&m.payloads[i].body);
    ASSERT_TRUE(n) << "payload " << i << " is not a Notify";
    EXPECT_EQ(n->protocol, Protocol::None);
    EXPECT_TRUE(n->spi.empty());
    EXPECT_FALSE(m.payloads[i].critical);
    got.push_back(n->type);
  }
  EXPECT_EQ(got, notifies);
  EXPECT_FALSE(m.error_notify());
  ASSERT_TRUE(m.notify(Notify::NatDetectionSourceIp));
  EXPECT_EQ(m.notify(Notify::NatDetectionSourceIp)->data.size(), 20u);
  ASSERT_TRUE(m.notify(Notify::NatDetectionDestinationIp));
  EXPECT_EQ(m.notify(Notify::NatDetectionDestinationIp)->data.size(), 20u);
  ASSERT_TRUE(m.notify(Notify::Ikev2FragmentationSupported));
  EXPECT_TRUE(m.notify(Notify::Ikev2FragmentationSupported)->data.empty());
  // RFC 7427 hash algorithms: SHA2-256, SHA2-384, SHA2-512, Identity.
  ASSERT_TRUE(m.notify(Notify::SignatureHashAlgorithms));
  EXPECT_EQ(m.notify(Notify::SignatureHashAlgorithms)->data, hex("0002 0003 0004 0005"));

  // Re-encoding the parsed header and chain gives back the datagram.
  Bytes again;
  encode_header(m.header, again);
  const Bytes chain = encode_chain(m.payloads);
  again.insert(again.end(), chain.begin(), chain.end());
  EXPECT_EQ(again, raw);
}

TEST(IkeMessageStrongswan, InitRequest) {
  const Bytes raw = hex(kStrongswanInitRequest);
  ASSERT_EQ(raw.size(), 464u);
  auto m = parse_message(raw);
  ASSERT_TRUE(m) << m.error().what;
  EXPECT_EQ(m->header.spi_i, 0xffd168bae1f24b94u);
  EXPECT_EQ(m->header.spi_r, 0u);
  EXPECT_EQ(m->header.exchange, Exchange::IkeSaInit);
  EXPECT_EQ(m->header.flags, kFlagInitiator);
  EXPECT_EQ(m->header.message_id, 0u);
  EXPECT_EQ(m->header.length, 464u);
  EXPECT_FALSE(m->sk_offset);
  check_strongswan_init(*m, raw, {16388, 16389, 16430, 16431, kRedirectSupported});

  // NAT_DETECTION_DESTINATION_IP = SHA-1(SPIi | SPIr | 192.0.2.2 | 500)
  // (§2.23). The source hash is deliberately wrong: kernel-libipsec makes
  // charon fake a NAT to force UDP encapsulation.
  const Bytes natd = sha1(cat({Bytes(raw.begin(), raw.begin() + 16), hex("c0000202 01f4")}));
  EXPECT_EQ(m->notify(Notify::NatDetectionDestinationIp)->data, natd);
}

TEST(IkeMessageStrongswan, InitResponse) {
  const Bytes raw = hex(kStrongswanInitResponse);
  ASSERT_EQ(raw.size(), 472u);
  auto m = parse_message(raw);
  ASSERT_TRUE(m) << m.error().what;
  EXPECT_EQ(m->header.spi_i, 0xffd168bae1f24b94u);
  EXPECT_EQ(m->header.spi_r, 0xf7b27766307a6f7fu);
  EXPECT_EQ(m->header.exchange, Exchange::IkeSaInit);
  EXPECT_EQ(m->header.flags, kFlagResponse);
  EXPECT_TRUE(m->header.is_response());
  EXPECT_FALSE(m->header.from_initiator());
  EXPECT_EQ(m->header.message_id, 0u);
  EXPECT_FALSE(m->sk_offset);
  check_strongswan_init(
      *m, raw, {16388, 16389, 16430, 16431, kChildlessIkev2Supported, kMultipleAuthSupported});
  // The responder's NAT_DETECTION_DESTINATION_IP names the initiator.
  const Bytes natd = sha1(cat({Bytes(raw.begin(), raw.begin() + 16), hex("c0000201 01f4")}));
  EXPECT_EQ(m->notify(Notify::NatDetectionDestinationIp)->data, natd);
}

TEST(IkeMessageStrongswan, AuthHeaderAndEncryptedPayload) {
  struct Case {
    const char* hex;
    size_t size;
    uint8_t flags;
    PayloadType first;
  };
  for (const Case& c : {Case{kStrongswanAuthRequest, 272, kFlagInitiator, PayloadType::IDi},
                        Case{kStrongswanAuthResponse, 224, kFlagResponse, PayloadType::IDr}}) {
    SCOPED_TRACE(c.size);
    const Bytes raw = hex(c.hex);
    ASSERT_EQ(raw.size(), c.size);
    auto m = parse_message(raw);
    ASSERT_TRUE(m) << m.error().what;
    EXPECT_EQ(m->header.exchange, Exchange::IkeAuth);
    EXPECT_EQ(m->header.spi_i, 0xffd168bae1f24b94u);
    EXPECT_EQ(m->header.spi_r, 0xf7b27766307a6f7fu);
    EXPECT_EQ(m->header.flags, c.flags);
    EXPECT_EQ(m->header.message_id, 1u);
    EXPECT_EQ(m->header.next, PayloadType::SK);
    EXPECT_TRUE(m->payloads.empty());
    ASSERT_TRUE(m->sk_offset);
    EXPECT_EQ(*m->sk_offset, kHeaderSize);
    EXPECT_EQ(m->sk_first, c.first);
    EXPECT_EQ(load_be16(&raw[kHeaderSize + 2]), c.size - kHeaderSize);  // SK length
  }
}

}  // namespace
}  // namespace xgw::ike
