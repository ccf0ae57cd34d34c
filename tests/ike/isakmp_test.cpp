// The IKEv1 (ISAKMP, RFC 2408 §3) codec: exact bytes of hand-built
// structures, round trips, and every rejection.
#include "ike/isakmp.h"

#include <gtest/gtest.h>

namespace xgw::ike::isakmp {
namespace {

Bytes hex(std::string_view h) {
  Bytes b;
  for (size_t i = 0; i + 1 < h.size(); i += 2)
    b.push_back(std::stoi(std::string(h.substr(i, 2)), nullptr, 16));
  return b;
}

// Main mode message 1 as RFC 2409 Appendix A spells a TCE default
// proposal: 3DES, MD5, PSK, group 1, lifetime 86400 s (TLV: 4 bytes).
SaPayload tce_default() {
  SaPayload sa;
  Proposal p;
  p.number = 1;
  p.protocol = 1;  // PROTO_ISAKMP
  Transform t;
  t.number = 1;
  t.id = 1;  // KEY_IKE
  t.attributes = {{1, true, 5, {}}, {2, true, 1, {}},  {3, true, 1, {}},
                  {4, true, 1, {}}, {11, true, 1, {}}, {12, false, 0, {0x00, 0x01, 0x51, 0x80}}};
  p.transforms = {t};
  sa.proposals = {p};
  return sa;
}

TEST(Isakmp, SaPayloadExactBytes) {
  const Bytes chain = encode_chain({Payload{PayloadType::SA, tce_default()}});
  // generic header (next 0, len 56) | DOI 1 | SIT 1 |
  // proposal (next 0, len 44, #1, proto 1, spi 0, 1 transform) |
  // transform (next 0, len 36, #1, KEY_IKE, 0) | 5 TV attrs | 1 TLV attr
  EXPECT_EQ(chain, hex("00000038"
                       "00000001"
                       "00000001"
                       "0000002c"
                       "01010001"
                       "00000024"
                       "01010000"
                       "80010005"
                       "80020001"
                       "80030001"
                       "80040001"
                       "800b0001"
                       "000c0004"
                       "00015180"));
  auto back = parse_chain(PayloadType::SA, chain);
  ASSERT_TRUE(back.has_value()) << back.error();
  ASSERT_EQ(back->size(), 1u);
  EXPECT_EQ(std::get<SaPayload>((*back)[0].body), tce_default());
}

TEST(Isakmp, HeaderAndEveryPayloadRoundTrip) {
  std::vector<Payload> ps;
  SaPayload esp = tce_default();
  esp.proposals[0].protocol = 3;  // ESP
  esp.proposals[0].spi = {0xc0, 0x00, 0x01, 0x00};
  esp.proposals.push_back(esp.proposals[0]);
  esp.proposals[1].number = 2;
  ps.push_back({PayloadType::SA, esp});
  ps.push_back({PayloadType::KE, RawPayload{Bytes(128, 0x5a)}});
  ps.push_back({PayloadType::Nonce, RawPayload{Bytes(32, 0x11)}});
  ps.push_back({PayloadType::ID, IdPayload{4, 0, 0, {10, 1, 0, 0, 255, 255, 255, 0}}});
  ps.push_back({PayloadType::HASH, RawPayload{Bytes(20, 0x22)}});
  ps.push_back({PayloadType::Notify, NotifyPayload{1, 3, {1, 2, 3, 4}, 24576, {0, 0, 0, 7}}});
  ps.push_back({PayloadType::Delete, DeletePayload{1, 3, 4, {{1, 2, 3, 4}, {5, 6, 7, 8}}}});
  ps.push_back({PayloadType::Vendor, RawPayload{hex("4a131c81070358455c5728f20e95452f")}});
  ps.push_back({PayloadType::NatD, RawPayload{Bytes(20, 0x33)}});
  const Bytes chain = encode_chain(ps);
  Header h;
  h.icookie = 0x0102030405060708;
  h.rcookie = 0;
  h.next = PayloadType::SA;
  h.exchange = Exchange::Aggressive;
  h.flags = kFlagCommit;
  h.message_id = 0;
  h.length = static_cast<uint32_t>(kHeaderSize + chain.size());
  Bytes msg;
  encode_header(h, msg);
  msg.insert(msg.end(), chain.begin(), chain.end());
  auto hb = parse_header(msg);
  ASSERT_TRUE(hb.has_value()) << hb.error();
  EXPECT_EQ(hb->icookie, h.icookie);
  EXPECT_EQ(hb->exchange, Exchange::Aggressive);
  EXPECT_EQ(hb->flags, kFlagCommit);
  auto back = parse_chain(hb->next, std::span(msg).subspan(kHeaderSize));
  ASSERT_TRUE(back.has_value()) << back.error();
  EXPECT_EQ(*back, ps);
  EXPECT_EQ(encode_chain(*back), chain);
  // What HASH_I signs of an ID payload: type, protocol, port, data.
  EXPECT_EQ(std::get<IdPayload>(ps[3].body).body(), hex("040000000a010000ffffff00"));
}

TEST(Isakmp, EncryptedBodiesMayCarryPadding) {
  Bytes chain = encode_chain({{PayloadType::HASH, RawPayload{Bytes(16, 1)}}});
  chain.insert(chain.end(), {0, 0, 0, 0});  // CBC padding after the last payload
  EXPECT_FALSE(parse_chain(PayloadType::HASH, chain).has_value());
  EXPECT_TRUE(parse_chain(PayloadType::HASH, chain, /*trailing_padding=*/true).has_value());
}

TEST(Isakmp, Rejections) {
  const Bytes good = encode_chain({Payload{PayloadType::SA, tce_default()}});
  auto fails = [](PayloadType first, const Bytes& b, std::string_view why) {
    auto r = parse_chain(first, b);
    ASSERT_FALSE(r.has_value()) << why;
    EXPECT_NE(r.error().find(why), std::string::npos) << r.error();
  };
  fails(PayloadType::SA, Bytes(good.begin(), good.begin() + 3), "header truncated");
  Bytes b = good;
  b[3] = 0xff;  // payload length past the end
  fails(PayloadType::SA, b, "out of bounds");
  b = good;
  b[1] = 1;  // RESERVED must be zero (§3.2)
  fails(PayloadType::SA, b, "RESERVED");
  b = good;
  b[7] = 2;  // DOI 2
  fails(PayloadType::SA, b, "DOI");
  b = good;
  b[19] = 2;  // two transforms announced, one present
  fails(PayloadType::SA, b, "count mismatch");
  b = good;
  b[good.size() - 6] = 0x10;  // TLV attribute length overruns the transform
  fails(PayloadType::SA, b, "overruns");
  fails(PayloadType::Proposal, good, "unexpected payload type");
  fails(static_cast<PayloadType>(99), good, "unexpected payload type");
  fails(PayloadType::Nonce, encode_chain({{PayloadType::Nonce, RawPayload{Bytes(4, 1)}}}), "Nonce");
  Bytes del = encode_chain({{PayloadType::Delete, DeletePayload{1, 3, 4, {{1, 2, 3, 4}}}}});
  del[11] = 2;  // two SPIs announced
  fails(PayloadType::Delete, del, "SPI count");
  // Header checks.
  Bytes msg;
  Header h;
  h.length = kHeaderSize;
  encode_header(h, msg);
  EXPECT_TRUE(parse_header(msg).has_value());
  msg[17] = 0x20;  // IKEv2's version in an IKEv1 parser
  EXPECT_FALSE(parse_header(msg).has_value());
  msg[17] = 0x10;
  msg[27] = 29;
  EXPECT_FALSE(parse_header(msg).has_value());
  EXPECT_FALSE(parse_header(Bytes(27, 0)).has_value());
}

}  // namespace
}  // namespace xgw::ike::isakmp
