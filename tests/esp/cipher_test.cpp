// EspCipher behaviour beyond the published vectors: every transform round
// trips, its sizes match the RFCs, the bytes it emits match an independent
// OpenSSL computation (HMAC over SPI..ciphertext, the cipher run directly),
// tampering anywhere fails the ICV, malformed input is refused without
// crashing, and extended sequence numbers (RFC 4303 §2.2.1, RFC 4304)
// authenticate the high half that is never sent.
#include "esp/cipher.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <random>
#include <set>
#include <string>

#include "esp/algorithms.h"
#include "esp/replay.h"
#include "test_util.h"

namespace xgw::esp {
namespace {

using test::be32;
using test::Bytes;
using test::cat;
using test::to_hex;

// Sizes as the RFCs define them, written out here rather than read from
// esp::info(): {key, iv, block, icv}.
struct EncrSizes {
  size_t key, iv, block, icv;
  const EVP_CIPHER* (*evp)();
};
EncrSizes expected(Encr e) {
  switch (e) {
    case Encr::Null:
      return {0, 0, 4, 0, nullptr};  // RFC 2410
    case Encr::DesCbc:
      return {8, 8, 8, 0, nullptr};  // RFC 2405
    case Encr::TripleDesCbc:
      return {24, 8, 8, 0, &EVP_des_ede3_cbc};  // RFC 2451
    case Encr::AesCbc128:
      return {16, 16, 16, 0, &EVP_aes_128_cbc};  // RFC 3602
    case Encr::AesCbc192:
      return {24, 16, 16, 0, &EVP_aes_192_cbc};  // RFC 3602
    case Encr::AesCbc256:
      return {32, 16, 16, 0, &EVP_aes_256_cbc};  // RFC 3602
    case Encr::Sm4Cbc:
      return {16, 16, 16, 0, nullptr};  // GB/T 32907
    case Encr::AesGcm16_128:
      return {20, 8, 4, 16, &EVP_aes_128_gcm};  // RFC 4106
    case Encr::AesGcm16_256:
      return {36, 8, 4, 16, &EVP_aes_256_gcm};  // RFC 4106
  }
  return {};
}
// DES and SM4 live outside the default provider / may be compiled out, so
// they are fetched by name when needed.
const char* evp_name(Encr e) {
  switch (e) {
    case Encr::DesCbc:
      return "DES-CBC";
    case Encr::Sm4Cbc:
      return "SM4-CBC";
    default:
      return nullptr;
  }
}

struct IntegSizes {
  size_t key, icv;
  const EVP_MD* (*md)();
};
IntegSizes expected(Integ i) {
  switch (i) {
    case Integ::None:
      return {0, 0, nullptr};
    case Integ::HmacMd5_96:
      return {16, 12, &EVP_md5};  // RFC 2403
    case Integ::HmacSha1_96:
      return {20, 12, &EVP_sha1};  // RFC 2404
    case Integ::HmacSha256_128:
      return {32, 16, &EVP_sha256};  // RFC 4868
    case Integ::HmacSha384_192:
      return {48, 24, &EVP_sha384};  // RFC 4868
    case Integ::HmacSha512_256:
      return {64, 32, &EVP_sha512};  // RFC 4868
    case Integ::HmacSm3_256:
      return {32, 32, &EVP_sm3};  // full SM3 output
  }
  return {};
}

constexpr Encr kAllEncr[] = {Encr::Null,      Encr::DesCbc,       Encr::TripleDesCbc,
                             Encr::AesCbc128, Encr::AesCbc192,    Encr::AesCbc256,
                             Encr::Sm4Cbc,    Encr::AesGcm16_128, Encr::AesGcm16_256};
constexpr Integ kAllInteg[] = {Integ::None,           Integ::HmacMd5_96,     Integ::HmacSha1_96,
                               Integ::HmacSha256_128, Integ::HmacSha384_192, Integ::HmacSha512_256,
                               Integ::HmacSm3_256};

struct Transform {
  Encr encr;
  Integ integ;
};
std::string name(const Transform& t) {
  return std::string(info(t.encr).keyword) + "_" + std::string(info(t.integ).keyword);
}

// Every combination create() accepts: AEAD with no integrity, the others
// with each integrity algorithm, minus NULL/NULL.
std::vector<Transform> all_transforms() {
  std::vector<Transform> out;
  for (Encr e : kAllEncr)
    for (Integ i : kAllInteg) {
      if (info(e).aead && i != Integ::None) continue;
      if (e == Encr::Null && i == Integ::None) continue;
      out.push_back({e, i});
    }
  return out;
}

Bytes key_bytes(size_t n, uint8_t seed) {
  Bytes k(n);
  for (size_t i = 0; i < n; ++i) k[i] = static_cast<uint8_t>(seed + 31 * i);
  return k;
}

uint32_t get32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}

struct Sa {
  Bytes ekey, ikey;
  std::unique_ptr<EspCipher> tx, rx;  // separate contexts, as two peers would have
};

// True, with the reason in *why (for GTEST_SKIP), when this OpenSSL cannot
// run the transform.
bool unavailable(const Transform& t, std::string* why) {
  if (!available(t.encr)) {
    *why = std::string(info(t.encr).ossl) +
           " not provided by this OpenSSL (legacy provider or "
           "algorithm compiled out)";
    return true;
  }
  if (!available(t.integ)) {
    *why = std::string(info(t.integ).digest) + " not provided by this OpenSSL";
    return true;
  }
  return false;
}

Sa make_sa(const Transform& t, bool esn) {
  Sa sa;
  sa.ekey = key_bytes(info(t.encr).key_len, 0x11);
  sa.ikey = key_bytes(info(t.integ).key_len, 0x77);
  auto tx = EspCipher::create(t.encr, t.integ, sa.ekey, sa.ikey, esn);
  auto rx = EspCipher::create(t.encr, t.integ, sa.ekey, sa.ikey, esn);
  if (!tx || !rx) {
    ADD_FAILURE() << (tx ? rx.error() : tx.error());
    return sa;
  }
  sa.tx = std::move(tx).value();
  sa.rx = std::move(rx).value();
  return sa;
}

Bytes payload_of(size_t n, uint8_t seed = 0) {
  Bytes p(n);
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(seed + i * 7 + (i >> 3));
  return p;
}

Bytes seal(EspCipher& c, uint32_t spi, uint64_t seq, const Bytes& payload, uint8_t nh = 4,
           const uint8_t* iv = nullptr) {
  Bytes out(payload.size() + 128);
  const size_t n = c.seal(spi, seq, payload, nh, out, iv);
  out.resize(n);
  return out;
}

// ---------------------------------------------------------------------------

class AllTransforms : public ::testing::TestWithParam<Transform> {
 protected:
  void SetUp() override {
    std::string why;
    if (unavailable(GetParam(), &why)) GTEST_SKIP() << why;
  }
};

TEST_P(AllTransforms, SizesMatchTheRfcs) {
  const auto [e, i] = GetParam();
  const EncrSizes es = expected(e);
  const IntegSizes is = expected(i);
  EXPECT_EQ(info(e).key_len, es.key);
  EXPECT_EQ(info(e).iv_len, es.iv);
  EXPECT_EQ(info(e).block, es.block);
  EXPECT_EQ(info(e).icv_len, es.icv);
  EXPECT_EQ(info(i).key_len, is.key);
  EXPECT_EQ(info(i).icv_len, is.icv);
  Sa sa = make_sa(GetParam(), false);
  ASSERT_TRUE(sa.tx);
  const size_t icv = info(e).aead ? es.icv : is.icv;
  EXPECT_EQ(sa.tx->icv_len(), icv);
  EXPECT_EQ(sa.tx->iv_len(), es.iv);
  for (size_t len = 0; len <= 70; ++len) {
    const size_t padded = (len + 2 + es.block - 1) / es.block * es.block;
    const size_t want = 8 + es.iv + (padded - len) + icv;
    EXPECT_EQ(sa.tx->overhead(len), want) << "len " << len;
    const Bytes pkt = seal(*sa.tx, 0x1234, len + 1, payload_of(len));
    EXPECT_EQ(pkt.size(), len + want) << "len " << len;
  }
}

TEST_P(AllTransforms, RoundTrip) {
  const auto [e, i] = GetParam();
  for (bool esn : {false, true}) {
    Sa sa = make_sa(GetParam(), esn);
    ASSERT_TRUE(sa.tx);
    for (size_t len : {0, 1, 2, 3, 13, 14, 15, 16, 17, 31, 32, 33, 64, 100, 1400}) {
      const uint64_t seq = esn ? (uint64_t{3} << 32) + len : len + 1;
      const Bytes payload = payload_of(len, static_cast<uint8_t>(len));
      const uint8_t nh = len % 2 ? 4 : 41;
      const Bytes pkt = seal(*sa.tx, 0xc0ffee01, seq, payload, nh);
      ASSERT_EQ(pkt.size(), len + sa.tx->overhead(len));
      EXPECT_EQ(get32(pkt.data()), 0xc0ffee01u);
      EXPECT_EQ(get32(pkt.data() + 4), static_cast<uint32_t>(seq));
      if (info(e).aead) {  // RFC 4106 §3.1: the IV is the 64-bit counter
        EXPECT_EQ(get32(pkt.data() + 8), static_cast<uint32_t>(seq >> 32));
        EXPECT_EQ(get32(pkt.data() + 12), static_cast<uint32_t>(seq));
      }
      Bytes out(pkt.size());
      size_t n = 999;
      uint8_t got_nh = 0;
      ASSERT_EQ(sa.rx->open(pkt, seq, out, &n, &got_nh), OpenStatus::Ok)
          << "len " << len << " esn " << esn;
      out.resize(n);
      EXPECT_EQ(out, payload) << "len " << len;
      EXPECT_EQ(got_nh, nh);
    }
  }
  (void)i;
}

// CBC transforms draw a fresh random IV per packet (RFC 3602 §2.3).
class CbcTransforms : public AllTransforms {};

TEST_P(CbcTransforms, IvsAreFreshPerPacket) {
  const auto [e, i] = GetParam();
  Sa sa = make_sa(GetParam(), false);
  ASSERT_TRUE(sa.tx);
  std::set<Bytes> ivs;
  for (uint64_t seq = 1; seq <= 300; ++seq) {  // crosses the IV pool refill
    const Bytes pkt = seal(*sa.tx, 0x1000, seq, payload_of(20));
    ivs.insert(Bytes(pkt.begin() + 8, pkt.begin() + 8 + info(e).iv_len));
  }
  EXPECT_EQ(ivs.size(), 300u);
  (void)i;
}

// The ICV is the truncated HMAC over SPI..ciphertext (plus seq_hi with ESN,
// RFC 4303 §3.3.2.2), computed here with OpenSSL's one-shot HMAC and the
// digest chosen from our own table.
class HmacTransforms : public AllTransforms {};

TEST_P(HmacTransforms, IcvIsTheTruncatedHmacOfThePacket) {
  const auto [e, i] = GetParam();
  for (bool esn : {false, true}) {
    Sa sa = make_sa(GetParam(), esn);
    ASSERT_TRUE(sa.tx);
    for (size_t len : {0, 7, 40, 333}) {
      const uint64_t seq = (uint64_t{0x01020304} << 32) | 0x0a0b0c0d;
      const Bytes pkt = seal(*sa.tx, 0x5a5a5a5a, seq, payload_of(len));
      const size_t icv = expected(i).icv;
      ASSERT_GT(pkt.size(), icv);
      Bytes covered(pkt.begin(), pkt.end() - icv);
      if (esn) covered = cat({covered, be32(0x01020304)});
      const Bytes mac = test::hmac(expected(i).md(), sa.ikey, covered);
      EXPECT_EQ(to_hex(std::span(pkt).last(icv)), to_hex(std::span(mac).first(icv)))
          << "len " << len << " esn " << esn;
    }
  }
  (void)e;
}

// The ciphertext decrypts, with OpenSSL driven directly, to payload |
// 1, 2, 3, … | pad length | next header (RFC 4303 §2.4).
TEST_P(AllTransforms, CiphertextIsTheStandardConstruction) {
  const auto [e, i] = GetParam();
  const EncrSizes es = expected(e);
  EVP_CIPHER* fetched = nullptr;
  const EVP_CIPHER* cipher = nullptr;
  if (e == Encr::Null) {
  } else if (es.evp) {
    cipher = es.evp();
  } else {
    fetched = EVP_CIPHER_fetch(nullptr, evp_name(e), nullptr);
    cipher = fetched;
  }
  if (e != Encr::Null) {
    ASSERT_NE(cipher, nullptr);
  }
  for (bool esn : {false, true}) {
    Sa sa = make_sa(GetParam(), esn);
    ASSERT_TRUE(sa.tx);
    for (size_t len : {0, 5, 16, 61}) {
      const uint64_t seq = (uint64_t{9} << 32) | 77;
      const Bytes payload = payload_of(len, 3);
      const Bytes pkt = seal(*sa.tx, 0x777, seq, payload, 41);
      const size_t icv = sa.tx->icv_len();
      const size_t ct_len = pkt.size() - 8 - es.iv - icv;
      const uint8_t* iv = pkt.data() + 8;
      const uint8_t* ct = iv + es.iv;
      Bytes plain(ct_len + 16);
      int n1 = 0, n2 = 0;
      if (e == Encr::Null) {
        plain.assign(ct, ct + ct_len);
      } else {
        EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
        if (info(e).aead) {
          uint8_t nonce[12];
          std::copy(sa.ekey.end() - 4, sa.ekey.end(), nonce);  // salt: RFC 4106 §8.1
          std::copy(iv, iv + 8, nonce + 4);
          ASSERT_EQ(EVP_DecryptInit_ex(ctx, cipher, nullptr, nullptr, nullptr), 1);
          ASSERT_EQ(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, nullptr), 1);
          ASSERT_EQ(EVP_DecryptInit_ex(ctx, nullptr, nullptr, sa.ekey.data(), nonce), 1);
          // RFC 4106 §5: AAD = SPI || seq (32) or SPI || seq_hi || seq_lo.
          const Bytes aad =
              esn ? cat({be32(0x777), be32(9), be32(77)}) : cat({be32(0x777), be32(77)});
          ASSERT_EQ(EVP_DecryptUpdate(ctx, nullptr, &n1, aad.data(), static_cast<int>(aad.size())),
                    1);
          ASSERT_EQ(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16,
                                        const_cast<uint8_t*>(pkt.data() + pkt.size() - 16)),
                    1);
        } else {
          ASSERT_EQ(EVP_DecryptInit_ex(ctx, cipher, nullptr, sa.ekey.data(), iv), 1);
          EVP_CIPHER_CTX_set_padding(ctx, 0);
        }
        ASSERT_EQ(EVP_DecryptUpdate(ctx, plain.data(), &n1, ct, static_cast<int>(ct_len)), 1);
        EXPECT_EQ(EVP_DecryptFinal_ex(ctx, plain.data() + n1, &n2), 1) << "tag or padding";
        EVP_CIPHER_CTX_free(ctx);
        plain.resize(n1 + n2);
      }
      ASSERT_EQ(plain.size(), ct_len);
      const size_t pad = ct_len - len - 2;
      Bytes want = payload;
      for (size_t k = 1; k <= pad; ++k) want.push_back(static_cast<uint8_t>(k));
      want.push_back(static_cast<uint8_t>(pad));
      want.push_back(41);
      EXPECT_EQ(to_hex(plain), to_hex(want)) << "len " << len;
      EXPECT_LT(pad, es.block);
    }
  }
  EVP_CIPHER_free(fetched);
  (void)i;
}

TEST_P(AllTransforms, TruncatedPacketsAreRefused) {
  const auto [e, i] = GetParam();
  Sa sa = make_sa(GetParam(), false);
  ASSERT_TRUE(sa.tx);
  const Bytes pkt = seal(*sa.tx, 0x4242, 5, payload_of(33));
  const size_t min = 8 + sa.rx->iv_len() + sa.rx->icv_len() + 2;
  const size_t block = expected(e).block;
  const bool authenticated = info(e).aead || i != Integ::None;
  Bytes out(pkt.size());
  for (size_t k = 0; k < pkt.size(); ++k) {
    size_t n = 0;
    uint8_t nh = 0;
    const OpenStatus st = sa.rx->open(std::span(pkt).first(k), 5, out, &n, &nh);
    if (k < min || (k - 8 - sa.rx->iv_len() - sa.rx->icv_len()) % block != 0) {
      EXPECT_EQ(st, OpenStatus::Short) << "length " << k;
    } else if (authenticated) {
      EXPECT_EQ(st, OpenStatus::IcvMismatch) << "length " << k;
    }
  }
  // An output buffer smaller than the ciphertext is refused, not overrun.
  size_t n = 0;
  uint8_t nh = 0;
  Bytes small(pkt.size() - 8 - sa.rx->iv_len() - sa.rx->icv_len() - 1);
  EXPECT_EQ(sa.rx->open(pkt, 5, small, &n, &nh), OpenStatus::Short);
  EXPECT_EQ(sa.rx->open(pkt, 5, out, &n, &nh), OpenStatus::Ok);
}

TEST_P(AllTransforms, SealRefusesASmallBuffer) {
  Sa sa = make_sa(GetParam(), false);
  ASSERT_TRUE(sa.tx);
  const Bytes payload = payload_of(21);
  const size_t total = payload.size() + sa.tx->overhead(payload.size());
  Bytes out(total + 8, 0xee);
  for (size_t k = 0; k < total; ++k) {
    EXPECT_EQ(sa.tx->seal(1000, 1, payload, 4, std::span(out).first(k)), 0u) << k;
  }
  EXPECT_EQ(sa.tx->seal(1000, 1, payload, 4, std::span(out).first(total)), total);
  for (size_t k = total; k < out.size(); ++k) EXPECT_EQ(out[k], 0xee) << "wrote past the end";
}

TEST_P(AllTransforms, RandomBytesNeverCrashOrAuthenticate) {
  const auto [e, i] = GetParam();
  const bool authenticated = info(e).aead || i != Integ::None;
  Sa sa = make_sa(GetParam(), false);
  ASSERT_TRUE(sa.rx);
  std::mt19937 rng(1234);
  Bytes buf(100), out(100);
  for (size_t len = 0; len <= 100; ++len) {
    for (int rep = 0; rep < 20; ++rep) {
      for (auto& b : buf) b = static_cast<uint8_t>(rng());
      size_t n = 0;
      uint8_t nh = 0;
      const OpenStatus st = sa.rx->open(std::span(buf).first(len), rng(), out, &n, &nh);
      if (authenticated) {
        EXPECT_NE(st, OpenStatus::Ok) << "len " << len;
      }
      if (st == OpenStatus::Ok) {
        EXPECT_LE(n, len);
      }
    }
  }
  // The context still works afterwards.
  const Bytes pkt = seal(*sa.tx, 77, 1, payload_of(10));
  size_t n = 0;
  uint8_t nh = 0;
  EXPECT_EQ(sa.rx->open(pkt, 1, out, &n, &nh), OpenStatus::Ok);
}

INSTANTIATE_TEST_SUITE_P(Esp, AllTransforms, ::testing::ValuesIn(all_transforms()),
                         [](const auto& info) { return name(info.param); });

std::vector<Transform> cbc_transforms() {
  std::vector<Transform> out;
  for (const auto& t : all_transforms())
    if (!info(t.encr).aead && info(t.encr).iv_len > 0) out.push_back(t);
  return out;
}
INSTANTIATE_TEST_SUITE_P(Esp, CbcTransforms, ::testing::ValuesIn(cbc_transforms()),
                         [](const auto& info) { return name(info.param); });

std::vector<Transform> hmac_transforms() {
  std::vector<Transform> out;
  for (const auto& t : all_transforms())
    if (t.integ != Integ::None) out.push_back(t);
  return out;
}
INSTANTIATE_TEST_SUITE_P(Esp, HmacTransforms, ::testing::ValuesIn(hmac_transforms()),
                         [](const auto& info) { return name(info.param); });

// ---------------------------------------------------------------------------
// Tampering: one flipped bit in any byte of SPI, seq, IV, ciphertext or ICV
// must fail the ICV (GCM tag or HMAC), and the context must keep working.

const Transform kAuthenticated[] = {
    {Encr::AesGcm16_128, Integ::None},        {Encr::AesGcm16_256, Integ::None},
    {Encr::AesCbc128, Integ::HmacSha1_96},    {Encr::AesCbc256, Integ::HmacSha256_128},
    {Encr::AesCbc192, Integ::HmacSha384_192}, {Encr::TripleDesCbc, Integ::HmacSha512_256},
    {Encr::AesCbc128, Integ::HmacMd5_96},     {Encr::Null, Integ::HmacSha256_128},
    {Encr::Sm4Cbc, Integ::HmacSm3_256},
};

class Tamper : public ::testing::TestWithParam<Transform> {
 protected:
  void SetUp() override {
    std::string why;
    if (unavailable(GetParam(), &why)) GTEST_SKIP() << why;
  }
};

TEST_P(Tamper, AnyFlippedBitFailsTheIcv) {
  for (bool esn : {false, true}) {
    Sa sa = make_sa(GetParam(), esn);
    ASSERT_TRUE(sa.tx);
    const uint64_t seq = esn ? (uint64_t{2} << 32) | 0x10 : 0x10;
    const Bytes pkt = seal(*sa.tx, 0xabcdef01, seq, payload_of(45));
    const size_t iv = sa.tx->iv_len(), icv = sa.tx->icv_len();
    struct Region {
      const char* name;
      size_t begin, end;
    };
    const Region regions[] = {{"spi", 0, 4},
                              {"seq", 4, 8},
                              {"iv", 8, 8 + iv},
                              {"ciphertext", 8 + iv, pkt.size() - icv},
                              {"icv", pkt.size() - icv, pkt.size()}};
    Bytes out(pkt.size());
    for (const auto& r : regions) {
      for (size_t k = r.begin; k < r.end; ++k) {
        for (uint8_t bit : {uint8_t{0x01}, uint8_t{0x80}}) {
          Bytes bad = pkt;
          bad[k] ^= bit;
          // The receiver infers the full sequence number from the (tampered)
          // low half it reads from the packet.
          const uint64_t rseq = (seq & ~uint64_t{0xffffffff}) | get32(bad.data() + 4);
          size_t n = 0;
          uint8_t nh = 0;
          EXPECT_EQ(sa.rx->open(bad, rseq, out, &n, &nh), OpenStatus::IcvMismatch)
              << r.name << " byte " << k << " esn " << esn;
        }
      }
    }
    size_t n = 0;
    uint8_t nh = 0;
    ASSERT_EQ(sa.rx->open(pkt, seq, out, &n, &nh), OpenStatus::Ok);
    EXPECT_EQ(Bytes(out.begin(), out.begin() + n), payload_of(45));
  }
}

TEST_P(Tamper, WrongKeyFailsTheIcv) {
  const auto [e, i] = GetParam();
  Sa sa = make_sa(GetParam(), false);
  ASSERT_TRUE(sa.tx);
  const Bytes pkt = seal(*sa.tx, 0x100, 1, payload_of(30));
  Bytes ek = sa.ekey, ik = sa.ikey;
  if (i != Integ::None)
    ik[0] ^= 1;
  else
    ek[0] ^= 1;
  auto other = EspCipher::create(e, i, ek, ik, false);
  ASSERT_TRUE(other);
  Bytes out(pkt.size());
  size_t n = 0;
  uint8_t nh = 0;
  EXPECT_EQ((*other)->open(pkt, 1, out, &n, &nh), OpenStatus::IcvMismatch);
}

INSTANTIATE_TEST_SUITE_P(Esp, Tamper, ::testing::ValuesIn(kAuthenticated),
                         [](const auto& info) { return name(info.param); });

// ---------------------------------------------------------------------------
// create() refuses what cannot work, with a message that says why.

TEST(Create, WrongEncryptionKeyLength) {
  auto c = EspCipher::create(Encr::AesCbc128, Integ::HmacSha256_128, Bytes(15), Bytes(32), false);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("aes128"), std::string::npos) << c.error();
  EXPECT_NE(c.error().find("16 bytes, got 15"), std::string::npos) << c.error();
  // GCM keying material includes the 4-byte salt: a bare AES key is short.
  auto g = EspCipher::create(Encr::AesGcm16_128, Integ::None, Bytes(16), {}, false);
  ASSERT_FALSE(g);
  EXPECT_NE(g.error().find("20 bytes, got 16"), std::string::npos) << g.error();
  auto g2 = EspCipher::create(Encr::AesGcm16_256, Integ::None, Bytes(32), {}, false);
  ASSERT_FALSE(g2);
  EXPECT_NE(g2.error().find("36 bytes, got 32"), std::string::npos) << g2.error();
  auto n = EspCipher::create(Encr::Null, Integ::HmacSha1_96, Bytes(1), Bytes(20), false);
  ASSERT_FALSE(n);
  EXPECT_NE(n.error().find("0 bytes, got 1"), std::string::npos) << n.error();
}

TEST(Create, WrongIntegrityKeyLength) {
  auto c = EspCipher::create(Encr::AesCbc128, Integ::HmacSha256_128, Bytes(16), Bytes(20), false);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("sha256"), std::string::npos) << c.error();
  EXPECT_NE(c.error().find("32 bytes, got 20"), std::string::npos) << c.error();
  auto d = EspCipher::create(Encr::AesCbc128, Integ::None, Bytes(16), Bytes(20), false);
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().find("0 bytes, got 20"), std::string::npos) << d.error();
}

TEST(Create, AeadWithIntegrityIsRefused) {
  auto c =
      EspCipher::create(Encr::AesGcm16_128, Integ::HmacSha256_128, Bytes(20), Bytes(32), false);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("AEAD"), std::string::npos) << c.error();
}

TEST(Create, NullWithoutIntegrityIsRefused) {
  auto c = EspCipher::create(Encr::Null, Integ::None, {}, {}, false);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().find("neither"), std::string::npos) << c.error();
}

TEST(Create, KeywordsParse) {
  EXPECT_EQ(parse_encr("aes128"), Encr::AesCbc128);
  EXPECT_EQ(parse_encr("aes256gcm16"), Encr::AesGcm16_256);
  EXPECT_EQ(parse_encr("aes128gcm128"), Encr::AesGcm16_128);
  EXPECT_EQ(parse_encr("3des"), Encr::TripleDesCbc);
  EXPECT_EQ(parse_encr("rot13"), std::nullopt);
  EXPECT_EQ(parse_integ("sha2_256"), Integ::HmacSha256_128);
  EXPECT_EQ(parse_integ("sha1"), Integ::HmacSha1_96);
  EXPECT_EQ(parse_integ("sm3"), Integ::HmacSm3_256);
  EXPECT_EQ(parse_integ("crc32"), std::nullopt);
  for (Encr e : kAllEncr) EXPECT_EQ(parse_encr(info(e).keyword), e);
  for (Integ i : kAllInteg) EXPECT_EQ(parse_integ(info(i).keyword), i);
  // The mandatory-to-implement transforms are always there.
  EXPECT_TRUE(available(Encr::AesGcm16_128));
  EXPECT_TRUE(available(Encr::AesCbc128));
  EXPECT_TRUE(available(Integ::HmacSha256_128));
}

// ---------------------------------------------------------------------------
// Padding: a NULL+HMAC SA lets the test write the plaintext trailer itself
// and sign it (independent HMAC), so only the padding check can object.

class Padding : public ::testing::Test {
 protected:
  void SetUp() override {
    ikey_ = key_bytes(32, 0x42);
    auto c = EspCipher::create(Encr::Null, Integ::HmacSha256_128, {}, ikey_, false);
    ASSERT_TRUE(c) << c.error();
    c_ = std::move(c).value();
  }
  OpenStatus open_body(const Bytes& body, size_t* len, uint8_t* nh) {
    const Bytes covered = cat({be32(0x900), be32(3), body});
    const Bytes mac = test::hmac(EVP_sha256(), ikey_, covered);
    const Bytes pkt = cat({covered, std::span(mac).first(16)});
    out_.assign(pkt.size(), 0);
    return c_->open(pkt, 3, out_, len, nh);
  }
  Bytes ikey_, out_;
  std::unique_ptr<EspCipher> c_;
};

TEST_F(Padding, WrongPaddingBytes) {
  size_t len = 0;
  uint8_t nh = 0;
  EXPECT_EQ(open_body(test::hex("aabbccdd 0103 02 04"), &len, &nh), OpenStatus::BadPadding);
  EXPECT_EQ(open_body(test::hex("aabbccdd 0000 02 04"), &len, &nh), OpenStatus::BadPadding);
  EXPECT_EQ(open_body(test::hex("aa 0102030405 05 04"), &len, &nh), OpenStatus::Ok);
  EXPECT_EQ(open_body(test::hex("aa 0102030406 05 04"), &len, &nh), OpenStatus::BadPadding);
  EXPECT_EQ(open_body(test::hex("000000000000 06 04"), &len, &nh), OpenStatus::BadPadding);
}

TEST_F(Padding, PadLengthBeyondTheBody) {
  size_t len = 0;
  uint8_t nh = 0;
  EXPECT_EQ(open_body(test::hex("010203040506 07 04"), &len, &nh), OpenStatus::BadPadding);
  EXPECT_EQ(open_body(test::hex("010203040506 ff 04"), &len, &nh), OpenStatus::BadPadding);
  EXPECT_EQ(open_body(test::hex("0102 03 04"), &len, &nh), OpenStatus::BadPadding);
}

TEST_F(Padding, LongerThanMinimalPaddingIsAccepted) {
  // RFC 4303 §2.4: up to 255 bytes of padding may be used (e.g. to hide the
  // payload length); a receiver takes whatever the pad length says.
  size_t len = 99;
  uint8_t nh = 0;
  ASSERT_EQ(open_body(test::hex("aabb 01020304 04 29"), &len, &nh), OpenStatus::Ok);
  EXPECT_EQ(len, 2u);
  EXPECT_EQ(nh, 41);
  EXPECT_EQ(out_[0], 0xaa);
  EXPECT_EQ(out_[1], 0xbb);
  ASSERT_EQ(open_body(test::hex("010203040506 06 3b"), &len, &nh), OpenStatus::Ok);
  EXPECT_EQ(len, 0u);
  EXPECT_EQ(nh, 59);  // RFC 4303 §2.6 dummy packet
  Bytes big;
  for (int i = 1; i <= 254; ++i) big.push_back(static_cast<uint8_t>(i));
  big.push_back(254);
  big.push_back(4);
  big.insert(big.begin(), {1, 2});  // 2 bytes of payload: 2 + 254 + 2 = 258, not aligned
  big.insert(big.begin(), {9, 9});  // 260
  ASSERT_EQ(open_body(big, &len, &nh), OpenStatus::Ok);
  EXPECT_EQ(len, 4u);
}

// ---------------------------------------------------------------------------
// Extended sequence numbers: the high 32 bits are authenticated but never
// sent, so a receiver that infers them wrongly fails the ICV.

const Transform kEsnTransforms[] = {
    {Encr::AesGcm16_128, Integ::None},
    {Encr::AesGcm16_256, Integ::None},
    {Encr::AesCbc128, Integ::HmacSha256_128},
    {Encr::Null, Integ::HmacSha1_96},
};

class Esn : public ::testing::TestWithParam<Transform> {};

TEST_P(Esn, HighBitsAreAuthenticated) {
  Sa sa = make_sa(GetParam(), true);
  ASSERT_TRUE(sa.tx);
  for (uint64_t seq : {(uint64_t{1} << 32), (uint64_t{1} << 32) + 5,
                       (uint64_t{0x1234} << 32) | 0xfffffffe, uint64_t{0xffffffffffffffff}}) {
    const Bytes pkt = seal(*sa.tx, 0x3000, seq, payload_of(50));
    EXPECT_EQ(get32(pkt.data() + 4), static_cast<uint32_t>(seq)) << "only seq_lo is sent";
    Bytes out(pkt.size());
    size_t n = 0;
    uint8_t nh = 0;
    EXPECT_EQ(sa.rx->open(pkt, seq, out, &n, &nh), OpenStatus::Ok) << std::hex << seq;
    for (uint64_t wrong : {seq + (uint64_t{1} << 32), seq - (uint64_t{1} << 32),
                           static_cast<uint64_t>(static_cast<uint32_t>(seq))}) {
      if (wrong == seq) continue;
      EXPECT_EQ(sa.rx->open(pkt, wrong, out, &n, &nh), OpenStatus::IcvMismatch)
          << std::hex << seq << " opened as " << wrong;
    }
  }
}

TEST_P(Esn, WithoutEsnTheHighBitsAreNotAuthenticated) {
  // A non-ESN SA sends and authenticates 32 bits only: the same packet
  // opens whatever the caller's high half is.
  Sa sa = make_sa(GetParam(), false);
  ASSERT_TRUE(sa.tx);
  const Bytes pkt = seal(*sa.tx, 0x3000, 77, payload_of(50));
  Bytes out(pkt.size());
  size_t n = 0;
  uint8_t nh = 0;
  EXPECT_EQ(sa.rx->open(pkt, 77, out, &n, &nh), OpenStatus::Ok);
  EXPECT_EQ(sa.rx->open(pkt, (uint64_t{1} << 32) | 77, out, &n, &nh), OpenStatus::Ok);
}

TEST_P(Esn, ReceiverFollowsTheSenderAcrossTheBoundary) {
  // The sender counts through 2^32; the receiver infers each packet's high
  // half with its replay window (RFC 4303 App. A2.2), including packets
  // reordered across the boundary, and every one opens.
  Sa sa = make_sa(GetParam(), true);
  ASSERT_TRUE(sa.tx);
  ReplayWindow win(64, true);
  std::vector<std::pair<uint64_t, Bytes>> sent;
  for (uint64_t seq = (uint64_t{1} << 32) - 20; seq < (uint64_t{1} << 32) + 20; ++seq)
    sent.emplace_back(seq, seal(*sa.tx, 0x3000, seq, payload_of(10, static_cast<uint8_t>(seq))));
  // Deliver in order, except that every fourth packet is held back and
  // delivered three packets later.
  std::vector<size_t> order;
  for (size_t k = 0; k < sent.size(); k += 4) {
    for (size_t d : {1, 2, 3, 0})
      if (k + d < sent.size()) order.push_back(k + d);
  }
  for (size_t idx : order) {
    const auto& [seq, pkt] = sent[idx];
    const uint64_t inferred = win.infer(get32(pkt.data() + 4));
    EXPECT_EQ(inferred, seq);
    ASSERT_EQ(win.check(inferred), ReplayWindow::Check::Ok) << seq;
    Bytes out(pkt.size());
    size_t n = 0;
    uint8_t nh = 0;
    ASSERT_EQ(sa.rx->open(pkt, inferred, out, &n, &nh), OpenStatus::Ok) << std::hex << seq;
    EXPECT_TRUE(win.update(inferred));
  }
  EXPECT_EQ(win.top(), (uint64_t{1} << 32) + 19);
}

INSTANTIATE_TEST_SUITE_P(Esp, Esn, ::testing::ValuesIn(kEsnTransforms),
                         [](const auto& info) { return name(info.param); });

}  // namespace
}  // namespace xgw::esp
