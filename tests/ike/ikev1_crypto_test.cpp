// IKEv1 key derivation and message protection (ike/ikev1_crypto.h)
// against a captured session: two strongSwan 5.9.8 charons in main mode
// with PSK "capture-psk", 3des-md5-modp768 and ESP 3des-md5, captured by
// tests/ike/capture_strongswan.sh (CAPTURE_VERSION=1 SS_LOG_IKE=4). The
// messages are the wire bytes; the expected values (g^xy, SKEYID*, Ka,
// the first IV and the quick-mode hashes) are what charon logged. 3DES with
// MD5 needs the key expansion of RFC 2409 Appendix B (16-byte SKEYID_e,
// 24-byte key), and decrypting messages 5-9 checks the IV chains.
#include "ike/ikev1_crypto.h"

#include <gtest/gtest.h>

#include "common/bytes.h"
#include "ike/isakmp.h"

namespace xgw::ike::v1 {
namespace {

namespace k = isakmp;

Bytes hex(const char* s) {
  Bytes b;
  for (size_t i = 0; s[i] && s[i + 1]; i += 2)
    b.push_back(static_cast<uint8_t>(std::stoi(std::string(s + i, 2), nullptr, 16)));
  return b;
}

// Message 1.
const char* const kMsg1 =
    "e10b1ea1a9954dff00000000000000000110020000000000000000b00d00003400000001"
    "000000010000002801010001000000200101000080010005800200018004000180030001"
    "800b0001800c3de00d00000c09002689dfd6b7120d000014afcad71368a1f1c96b8696fc"
    "775701000d0000184048b7d56ebce88525e7de7f00d6c2d3800000000d0000144a131c81"
    "070358455c5728f20e95452f0000001490cb80913ebb696e086381b5ec427b1f";
// Message 3.
const char* const kMsg3 =
    "e10b1ea1a9954dfffe60868d87c20d630410020000000000000000cc0a000064441bfb43"
    "c7ea5a237fbcd6e6f488a76181f5af850b662912c7d08c73c9d6897f57e6c6812c080acc"
    "55821527fc35999e4b607fd9e52c722e90e03ee61f45a91e523983257050ed6eb68d7482"
    "88e113676228b56a377936fee2864fac2e20eb0e14000024b8ec469b2a5ada4dc260ce00"
    "93c012182fc4125fb3a5fae002e4eb82cfa68e7014000014ae35a6a47eb2dca57b250674"
    "070b90bd000000142be9b5557c2b9ffd1320d4b0ed6799d3";
// Message 4.
const char* const kMsg4 =
    "e10b1ea1a9954dfffe60868d87c20d630410020000000000000000cc0a000064a42cbec7"
    "62448db1d6a6c3f94dd3fd65e54328952d06fb73a49fc70dd8991ebbd3ab4d3f648f7534"
    "88db1f88495e5b74087714d5b3c7060a8408eee6222f26de3445830f5467d7c009a118f8"
    "13030bc85ec7df539c8c9179135c883f9597ebc6140000245c9e8804f4c7347687bac626"
    "f8cc583354d0f437a259258c56f253e35727b63e14000014a3b69ba544a5a8ba312375f6"
    "f277808c00000014fffd6d74cd5b94f411f15cd04fd96c76";
// Message 5.
const char* const kMsg5 =
    "e10b1ea1a9954dfffe60868d87c20d6305100201000000000000005c07aaa5701b06a3d6"
    "ca026a2e2715c53fd2c77ae407f79e3af993f74943a9343b96da609e531f72533feccd42"
    "c001a4657c67bfa865b89b4a42c6882f682c5fd3";
// Message 6.
const char* const kMsg6 =
    "e10b1ea1a9954dfffe60868d87c20d630510020100000000000000449717336820292621"
    "dda6dcb99c22d884a8356fea871dd12090de47d0c5b4e7679beb30ee8319617e";
// Message 7.
const char* const kQm1 =
    "e10b1ea1a9954dfffe60868d87c20d63081020010688e171000000ac2589705582fa7b48"
    "3be69f33280dfd3a365164fc1b43af8f15f297c8c1f0411d3b18ebf616f08272d3bd8254"
    "995ff371d8061370ff72bd30cf981f7feac1df2a321ed6f8fff159a76c2cab6e04ddae09"
    "b26752968ff782407358bab544a77141bf9b9bea90cfb7966c8a5c3ec7b73dc64e7abbc0"
    "98db994e1a48d9b201d587b28a58f19aa95a583962c5719661822c6f";
// Message 8.
const char* const kQm2 =
    "e10b1ea1a9954dfffe60868d87c20d63081020010688e171000000ac11cfb66cf276f3bf"
    "166f491f2d7f41629c271c5f96b1ad796fd66438bc13cca23cce8f89e75e1b9b27bf10b0"
    "6b047bc44d4e5c43a6b82d9b18e845725ad74505099128a974a2a4ff924727673378b6cf"
    "b700840c38f938ecb39a2a9af2d911680304c556603561caa737c3f72cfa8b92fa46694a"
    "ecfe2a49b32ad8cb40806fd2b83d4919fdb6d901cbc7248ad65fea43";
// Message 9.
const char* const kQm3 =
    "e10b1ea1a9954dfffe60868d87c20d63081020010688e171000000340f40a14a4a1aaf27"
    "218ff301531dc1ccc46773b713ebac76";

// strongSwan's aggressive mode answer (aes256-sha256-modp2048): SA, KE,
// nonce, ID, vendor IDs, NAT-D and HASH_R in the clear.
const char* const kAggr2 =
    "e2f39397927f5046e67efee1e40c7d0b0110040000000000000002400400003800000001"
    "000000010000002c01010001000000240101000080010007800e0100800200048004000e"
    "80030001800b0001800c3de00a00010492aa3485b8c0fd836e9d48ee33925609e28c7b82"
    "77e33024767b63505124978e62c52c0e267387feb97956df54748dde6c031b09a3d9c747"
    "8843669811e04cfcf532b124e5d23b08dfddd57b3ab582eb71f2d22a52480e095492f6ec"
    "979d51993146ef5f2ce4d45cb2bd51b1b128f8d8e08fd9c3d221a3bc3122ddfffe3e9f4b"
    "888b044f9da32b396bb729156294f0c2ec83bb97db87bb4ae75a5c7c72018142f17b7d18"
    "bb2ccad2b1fd583f09c56807876401338e12e7af0966513cde95c602d377150831683017"
    "7f46c60c2105420c0d769146b569f7deb823c9e0115e1f7dab697a0cab00ee400c190071"
    "f5f1057f43afcb76701b8429a2e2327adb8a801805000024df3adc8fc04b5b4d25914dea"
    "6b9fed3d0349ac55bf5807006cf9ec4fa0d91acc0d00000c01000000c00002020d00000c"
    "09002689dfd6b7120d000014afcad71368a1f1c96b8696fc775701000d0000184048b7d5"
    "6ebce88525e7de7f00d6c2d380000000140000144a131c81070358455c5728f20e95452f"
    "14000024cc8388ff8f7cf77b2c3214fae7f358df45f97d278eb07d6a4f50b70ba8c33ad3"
    "08000024919233ca0a214dc3e6c551e73d954413b2efdc854d48a9d0355455e81824edbf"
    "00000024dc55b252f9a1ecb0ea4f50eae38217938e4e06a8a970bc6d3bcd11c69c63d933";

// charon's log (ike level 4).
const char* const kGxy =
    "ef2dee62530b78739895fcb389aaf40e5a4d8f1f0246bf5ba9bb9429acc9fba5bfbf4397"
    "6a43a3f98b5776819a05fd3774d4f418c4a0b078d6c8ce3ab47f80054b0d8f115f76ae37"
    "566294e634cf016e8b8e2876a110a40402961201441c673a";
const char* const kSkeyid = "dbd5a86f627140f349ca7372eb024f71";
const char* const kSkeyidD = "2fecc11f6bc4a437c70c20adb90478b6";
const char* const kSkeyidA = "7486b68c5af5b2b1fec3bc422fbac6c1";
const char* const kSkeyidE = "c867a4615fb7ce6a7fce8797537429bc";
const char* const kKa = "7b1be7567aff6e108b2d4523d25331424977b60ce8ccf8e0";
const char* const kIv = "dce53d6177c2a4dc";
const char* const kHash1 = "85dbf35f96f5ae911c2b9c02557f28a2";
const char* const kHash2 = "a31623bb8df4e94bfeb6ddaffe9b1851";
const char* const kHash3 = "56bb3057e21ca30402849b4ef3693e67";

// The body of the first payload of type `t` in a plaintext chain.
Bytes body_of(k::PayloadType first, std::span<const uint8_t> chain, k::PayloadType t,
              size_t* off = nullptr) {
  size_t o = 0;
  uint8_t type = static_cast<uint8_t>(first);
  while (type != 0 && o + 4 <= chain.size()) {
    const size_t len = (size_t{chain[o + 2]} << 8) | chain[o + 3];
    if (type == static_cast<uint8_t>(t)) {
      if (off) *off = o;
      return Bytes(chain.begin() + o + 4, chain.begin() + o + len);
    }
    type = chain[o];
    o += len;
  }
  return {};
}

class CapturedMainMode : public ::testing::Test {
 protected:
  void SetUp() override {
    auto p = Prf::create(PrfId::HmacMd5);
    ASSERT_TRUE(p.has_value());
    prf.emplace(std::move(*p));
    m1 = hex(kMsg1);
    m3 = hex(kMsg3);
    m4 = hex(kMsg4);
    auto h = k::parse_header(m4);
    ASSERT_TRUE(h.has_value());
    cky_i = h->icookie;
    cky_r = h->rcookie;
    const std::span<const uint8_t> c3(m3.begin() + 28, m3.end()), c4(m4.begin() + 28, m4.end());
    g_xi = body_of(k::PayloadType::KE, c3, k::PayloadType::KE);
    g_xr = body_of(k::PayloadType::KE, c4, k::PayloadType::KE);
    ni = body_of(k::PayloadType::KE, c3, k::PayloadType::Nonce);
    nr = body_of(k::PayloadType::KE, c4, k::PayloadType::Nonce);
    sa_i_b = body_of(k::PayloadType::SA, std::span(m1).subspan(28), k::PayloadType::SA);
    ASSERT_EQ(g_xi.size(), 96u);  // MODP-768
    ASSERT_EQ(g_xr.size(), 96u);
    ASSERT_FALSE(ni.empty());
    ASSERT_FALSE(sa_i_b.empty());
    auto keys = derive_phase1(*prf, Bytes{'c', 'a', 'p', 't', 'u', 'r', 'e', '-', 'p', 's', 'k'},
                              ni, nr, hex(kGxy), cky_i, cky_r, g_xi, g_xr, 24, 8);
    ASSERT_TRUE(keys.has_value()) << keys.error();
    k1 = std::move(*keys);
    auto c = CbcCipher::create(EncrId::TripleDes, 0, k1.enc_key);
    ASSERT_TRUE(c.has_value()) << c.error();
    cipher.emplace(std::move(*c));
  }

  // Decrypts an encrypted message under `iv` (advanced to its last block).
  Bytes open(const Bytes& msg, Bytes& iv) {
    auto pt = cipher->decrypt(iv, std::span(msg).subspan(28));
    EXPECT_TRUE(pt.has_value());
    return pt ? *pt : Bytes{};
  }

  std::optional<Prf> prf;
  std::optional<CbcCipher> cipher;
  Phase1Keys k1;
  Bytes m1, m3, m4, g_xi, g_xr, ni, nr, sa_i_b;
  uint64_t cky_i = 0, cky_r = 0;
};

TEST_F(CapturedMainMode, KeysMatchCharon) {
  EXPECT_EQ(k1.skeyid, hex(kSkeyid));
  EXPECT_EQ(k1.skeyid_d, hex(kSkeyidD));
  EXPECT_EQ(k1.skeyid_a, hex(kSkeyidA));
  EXPECT_EQ(k1.skeyid_e, hex(kSkeyidE));
  EXPECT_EQ(k1.enc_key, hex(kKa)) << "Appendix B expansion of a 16-byte SKEYID_e to 24 bytes";
  EXPECT_EQ(k1.iv, hex(kIv));
}

TEST_F(CapturedMainMode, MessagesFiveAndSixDecryptAndTheirHashesVerify) {
  Bytes iv = k1.iv;
  const Bytes m5 = hex(kMsg5), m6 = hex(kMsg6);
  const auto h5 = k::parse_header(m5);
  ASSERT_TRUE(h5 && (h5->flags & k::kFlagEncryption));
  const Bytes p5 = open(m5, iv);
  auto ps5 = k::parse_chain(h5->next, p5, true);
  ASSERT_TRUE(ps5.has_value()) << ps5.error();
  ASSERT_GE(ps5->size(), 2u);
  const auto* id = std::get_if<k::IdPayload>(&(*ps5)[0].body);
  const auto* hash_i = std::get_if<k::RawPayload>(&(*ps5)[1].body);
  ASSERT_TRUE(id && hash_i);
  EXPECT_EQ(phase1_hash(*prf, k1.skeyid, g_xi, g_xr, cky_i, cky_r, sa_i_b, id->body()),
            hash_i->data);
  // Message 6 chains on message 5's last ciphertext block.
  EXPECT_EQ(iv, Bytes(m5.end() - 8, m5.end()));
  const auto h6 = k::parse_header(m6);
  ASSERT_TRUE(h6.has_value());
  const Bytes p6 = open(m6, iv);
  auto ps6 = k::parse_chain(h6->next, p6, true);
  ASSERT_TRUE(ps6.has_value()) << ps6.error();
  const auto* idr = std::get_if<k::IdPayload>(&(*ps6)[0].body);
  const auto* hash_r = std::get_if<k::RawPayload>(&(*ps6)[1].body);
  ASSERT_TRUE(idr && hash_r);
  EXPECT_EQ(phase1_hash(*prf, k1.skeyid, g_xr, g_xi, cky_r, cky_i, sa_i_b, idr->body()),
            hash_r->data);
  // A wrong PSK gives other keys: the same message no longer parses.
  auto bad = derive_phase1(*prf, Bytes{'x'}, ni, nr, hex(kGxy), cky_i, cky_r, g_xi, g_xr, 24, 8);
  ASSERT_TRUE(bad.has_value());
  auto bc = CbcCipher::create(EncrId::TripleDes, 0, bad->enc_key);
  Bytes biv = bad->iv;
  auto garbage = bc->decrypt(biv, std::span(m5).subspan(28));
  ASSERT_TRUE(garbage.has_value());
  EXPECT_FALSE(k::parse_chain(h5->next, *garbage, true).has_value() &&
               std::equal(garbage->begin(), garbage->end(), p5.begin()));
}

TEST_F(CapturedMainMode, QuickModeIvsAndHashesMatchCharon) {
  // The phase-1 CBC chain ends with message 6's last block.
  const Bytes m6 = hex(kMsg6), q1 = hex(kQm1), q2 = hex(kQm2), q3 = hex(kQm3);
  const auto h = k::parse_header(q1);
  ASSERT_TRUE(h.has_value());
  const uint32_t mid = h->message_id;
  Bytes iv = phase2_iv(*prf, Bytes(m6.end() - 8, m6.end()), mid, 8);
  const Bytes mb = {uint8_t(mid >> 24), uint8_t(mid >> 16), uint8_t(mid >> 8), uint8_t(mid)};
  // QM1: HASH(1) = prf(SKEYID_a, M-ID | SA | Ni | IDci | IDcr).
  const Bytes p1 = open(q1, iv);
  size_t hlen = (size_t{p1[2]} << 8) | p1[3];
  ASSERT_EQ(Bytes(p1.begin() + 4, p1.begin() + hlen), hex(kHash1));
  auto ps1 = k::parse_chain(h->next, p1, true);
  ASSERT_TRUE(ps1.has_value()) << ps1.error();
  size_t end1 = 0;
  for (const auto& p : *ps1) end1 += 4 + k::encode_chain({p}).size() - 4;
  Bytes data = mb;
  data.insert(data.end(), p1.begin() + hlen, p1.begin() + end1);
  EXPECT_EQ(prf->compute(k1.skeyid_a, data), hex(kHash1));
  const Bytes ni_b = body_of(h->next, p1, k::PayloadType::Nonce);
  ASSERT_FALSE(ni_b.empty());
  // QM2: HASH(2) = prf(SKEYID_a, M-ID | Ni_b | SA | Nr | IDci | IDcr).
  const Bytes p2 = open(q2, iv);
  hlen = (size_t{p2[2]} << 8) | p2[3];
  EXPECT_EQ(Bytes(p2.begin() + 4, p2.begin() + hlen), hex(kHash2));
  auto ps2 = k::parse_chain(h->next, p2, true);
  ASSERT_TRUE(ps2.has_value());
  size_t end2 = 0;
  for (const auto& p : *ps2) end2 += k::encode_chain({p}).size();
  data = mb;
  data.insert(data.end(), ni_b.begin(), ni_b.end());
  data.insert(data.end(), p2.begin() + hlen, p2.begin() + end2);
  EXPECT_EQ(prf->compute(k1.skeyid_a, data), hex(kHash2));
  const Bytes nr_b = body_of(h->next, p2, k::PayloadType::Nonce);
  // QM3: HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b).
  const Bytes p3 = open(q3, iv);
  hlen = (size_t{p3[2]} << 8) | p3[3];
  EXPECT_EQ(Bytes(p3.begin() + 4, p3.begin() + hlen), hex(kHash3));
  data = {0};
  data.insert(data.end(), mb.begin(), mb.end());
  data.insert(data.end(), ni_b.begin(), ni_b.end());
  data.insert(data.end(), nr_b.begin(), nr_b.end());
  EXPECT_EQ(prf->compute(k1.skeyid_a, data), hex(kHash3));
}

// The codec on strongSwan's plaintext messages: every payload is read and
// the chain re-encodes to the same bytes.
TEST(Ikev1Codec, CapturedMessagesReencodeByteForByte) {
  for (const char* m : {kMsg1, kMsg3, kMsg4, kAggr2}) {
    const Bytes raw = hex(m);
    auto h = k::parse_header(raw);
    ASSERT_TRUE(h.has_value());
    EXPECT_EQ(h->length, raw.size());
    auto ps = k::parse_chain(h->next, std::span(raw).subspan(28));
    ASSERT_TRUE(ps.has_value()) << ps.error();
    EXPECT_EQ(k::encode_chain(*ps), Bytes(raw.begin() + 28, raw.end()));
    Bytes hb;
    k::encode_header(*h, hb);
    EXPECT_EQ(hb, Bytes(raw.begin(), raw.begin() + 28));
  }
  // The aggressive answer: one ISAKMP proposal with the chosen transform,
  // a 256-byte MODP-2048 KE, and RFC 3947's vendor ID among the others.
  const Bytes a = hex(kAggr2);
  auto ps = k::parse_chain(k::parse_header(a)->next, std::span(a).subspan(28));
  ASSERT_TRUE(ps.has_value());
  const auto* sa = std::get_if<k::SaPayload>(&(*ps)[0].body);
  ASSERT_TRUE(sa);
  ASSERT_EQ(sa->proposals.size(), 1u);
  EXPECT_EQ(sa->proposals[0].transforms.size(), 1u);
  size_t natd = 0, ke = 0;
  bool rfc3947 = false;
  for (const auto& p : *ps) {
    if (p.type == k::PayloadType::NatD) ++natd;
    if (p.type == k::PayloadType::KE) ke = std::get<k::RawPayload>(p.body).data.size();
    if (p.type == k::PayloadType::Vendor)
      rfc3947 |= std::get<k::RawPayload>(p.body).data == hex("4a131c81070358455c5728f20e95452f");
  }
  EXPECT_EQ(natd, 2u);
  EXPECT_EQ(ke, 256u);
  EXPECT_TRUE(rfc3947);
}

TEST(Ikev1Crypto, KeymatExpandsWithThePreviousBlock) {
  auto prf = Prf::create(PrfId::HmacSha1);
  ASSERT_TRUE(prf.has_value());
  const Bytes d(20, 0x11), ni(16, 0x22), nr(16, 0x33), g(96, 0x44);
  auto km = keymat(*prf, d, g, 3, 0x01020304, ni, nr, 44);  // 3DES key + MD5... 24 + 20
  ASSERT_TRUE(km.has_value());
  ASSERT_EQ(km->size(), 44u);
  // K1 = prf(SKEYID_d, g | 3 | SPI | Ni | Nr); K2 = prf(SKEYID_d, K1 | g | 3 | SPI | Ni | Nr).
  Bytes seed = g;
  seed.insert(seed.end(), {3, 1, 2, 3, 4});
  seed.insert(seed.end(), ni.begin(), ni.end());
  seed.insert(seed.end(), nr.begin(), nr.end());
  const Bytes k1 = prf->compute(d, seed);
  Bytes s2 = k1;
  s2.insert(s2.end(), seed.begin(), seed.end());
  const Bytes k2 = prf->compute(d, s2);
  EXPECT_EQ(Bytes(km->begin(), km->begin() + 20), k1);
  EXPECT_EQ(Bytes(km->begin() + 20, km->begin() + 40), k2);
  // Another SPI (the other direction) gives other keys.
  auto other = keymat(*prf, d, g, 3, 0x01020305, ni, nr, 44);
  EXPECT_NE(*other, *km);
}

TEST(Ikev1Crypto, CbcRejectsPartialBlocksAndChainsIvs) {
  auto c = CbcCipher::create(EncrId::AesCbc, 128, Bytes(16, 7));
  ASSERT_TRUE(c.has_value());
  Bytes iv(16, 1), iv2 = iv;
  auto ct = c->encrypt(iv, Bytes(20, 9));
  ASSERT_TRUE(ct.has_value());
  EXPECT_EQ(ct->size(), 32u) << "zero-padded to whole blocks";
  EXPECT_EQ(iv, Bytes(ct->end() - 16, ct->end()));
  auto pt = c->decrypt(iv2, *ct);
  ASSERT_TRUE(pt.has_value());
  EXPECT_EQ(Bytes(pt->begin(), pt->begin() + 20), Bytes(20, 9));
  EXPECT_EQ(iv2, iv);
  Bytes iv3(16, 1);
  EXPECT_FALSE(c->decrypt(iv3, Bytes(17, 0)).has_value());
  EXPECT_FALSE(CbcCipher::create(EncrId::AesGcm16, 128, Bytes(20, 0)).has_value());
}

}  // namespace
}  // namespace xgw::ike::v1
