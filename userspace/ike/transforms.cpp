#include "ike/transforms.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <array>

#include "esp/algorithms.h"

namespace xgw::ike {

namespace {

constexpr std::array<EncrInfo, 10> kEncr{{
    {EncrId::Des, 0, "des", "DES-CBC", 8, 0, 8, 8, 0, false},
    {EncrId::TripleDes, 0, "3des", "DES-EDE3-CBC", 24, 0, 8, 8, 0, false},
    {EncrId::Null, 0, "null", nullptr, 0, 0, 0, 1, 0, false},
    {EncrId::AesCbc, 128, "aes128", "AES-128-CBC", 16, 0, 16, 16, 0, false},
    {EncrId::AesCbc, 192, "aes192", "AES-192-CBC", 24, 0, 16, 16, 0, false},
    {EncrId::AesCbc, 256, "aes256", "AES-256-CBC", 32, 0, 16, 16, 0, false},
    // RFC 5282 §3: 8-byte explicit IV, 16-byte ICV; §4: the key material is
    // the AES key followed by a 4-byte salt. GCM is a counter mode, so no
    // block alignment: the padding is only the Pad Length octet.
    {EncrId::AesGcm16, 128, "aes128gcm16", "AES-128-GCM", 20, 4, 8, 1, 16, true},
    {EncrId::AesGcm16, 192, "aes192gcm16", "AES-192-GCM", 28, 4, 8, 1, 16, true},
    {EncrId::AesGcm16, 256, "aes256gcm16", "AES-256-GCM", 36, 4, 8, 1, 16, true},
    {EncrId::Sm4Cbc, 0, "sm4", "SM4-CBC", 16, 0, 16, 16, 0, false},
}};

// Fixed key sizes in bits, accepted in place of 0 for IDs without a Key
// Length attribute.
uint16_t fixed_bits(EncrId id) {
  switch (id) {
    case EncrId::Des:
      return 64;
    case EncrId::TripleDes:
      return 192;
    case EncrId::Sm4Cbc:
      return 128;
    default:
      return 0;
  }
}

constexpr std::array<PrfInfo, 6> kPrf{{
    {PrfId::HmacMd5, "prfmd5", "MD5", 16},
    {PrfId::HmacSha1, "prfsha1", "SHA1", 20},
    {PrfId::HmacSha2_256, "prfsha256", "SHA2-256", 32},
    {PrfId::HmacSha2_384, "prfsha384", "SHA2-384", 48},
    {PrfId::HmacSha2_512, "prfsha512", "SHA2-512", 64},
    {PrfId::HmacSm3, "prfsm3", "SM3", 32},
}};

constexpr std::array<IntegInfo, 7> kInteg{{
    {IntegId::None, "none", nullptr, 0, 0},
    {IntegId::HmacMd5_96, "md5", "MD5", 16, 12},
    {IntegId::HmacSha1_96, "sha1", "SHA1", 20, 12},
    {IntegId::HmacSha2_256_128, "sha256", "SHA2-256", 32, 16},
    {IntegId::HmacSha2_384_192, "sha384", "SHA2-384", 48, 24},
    {IntegId::HmacSha2_512_256, "sha512", "SHA2-512", 64, 32},
    {IntegId::HmacSm3_256, "sm3", "SM3", 32, 32},
}};

// OpenSSL has no names for groups 1 and 2: they are built from RFC 2409's
// p and g. The others are OpenSSL's named groups (its "modp_*" are RFC
// 3526's, "dh_2048_256" RFC 5114 §2.3's; checked against the RFC vectors
// in tests/ike/crypto_test.cpp).
constexpr std::array<DhInfo, 11> kDh{{
    {DhId::Modp768, "modp768", DhKind::Modp, nullptr, 96, 96},
    {DhId::Modp1024, "modp1024", DhKind::Modp, nullptr, 128, 128},
    {DhId::Modp1536, "modp1536", DhKind::Modp, "modp_1536", 192, 192},
    {DhId::Modp2048, "modp2048", DhKind::Modp, "modp_2048", 256, 256},
    {DhId::Modp3072, "modp3072", DhKind::Modp, "modp_3072", 384, 384},
    {DhId::Modp4096, "modp4096", DhKind::Modp, "modp_4096", 512, 512},
    {DhId::Ecp256, "ecp256", DhKind::Ecp, "P-256", 64, 32},
    {DhId::Ecp384, "ecp384", DhKind::Ecp, "P-384", 96, 48},
    {DhId::Ecp521, "ecp521", DhKind::Ecp, "P-521", 132, 66},
    {DhId::Modp2048s256, "modp2048s256", DhKind::Modp, "dh_2048_256", 256, 256},
    {DhId::Curve25519, "curve25519", DhKind::X25519, nullptr, 32, 32},
}};

std::string numbered(const char* prefix, uint16_t v) {
  return std::string(prefix) + "#" + std::to_string(v);
}

}  // namespace

const EncrInfo* encr_info(EncrId id, uint16_t key_bits) {
  if (!has_key_length(id) && key_bits == fixed_bits(id)) key_bits = 0;
  for (const auto& e : kEncr)
    if (e.id == id && e.key_bits == key_bits) return &e;
  return nullptr;
}

const PrfInfo* prf_info(PrfId id) {
  for (const auto& p : kPrf)
    if (p.id == id) return &p;
  return nullptr;
}

const IntegInfo* integ_info(IntegId id) {
  for (const auto& i : kInteg)
    if (i.id == id) return &i;
  return nullptr;
}

const DhInfo* dh_info(DhId id) {
  for (const auto& d : kDh)
    if (d.id == id) return &d;
  return nullptr;
}

bool has_key_length(EncrId id) {
  return id == EncrId::AesCbc || id == EncrId::AesGcm16;
}

std::string to_string(EncrId id, uint16_t key_bits) {
  if (const EncrInfo* e = encr_info(id, key_bits)) return std::string(e->keyword);
  // A length the ID does not allow, or none where one is required.
  if (id == EncrId::AesCbc) return "aes" + std::to_string(key_bits) + "?";
  if (id == EncrId::AesGcm16) return "aes" + std::to_string(key_bits) + "gcm16?";
  return numbered("encr", static_cast<uint16_t>(id));
}

std::string to_string(PrfId id) {
  if (const PrfInfo* p = prf_info(id)) return std::string(p->keyword.substr(3));
  return numbered("", static_cast<uint16_t>(id));
}

std::string to_string(IntegId id) {
  if (const IntegInfo* i = integ_info(id)) return std::string(i->keyword);
  return numbered("integ", static_cast<uint16_t>(id));
}

std::string to_string(DhId id) {
  if (id == DhId::None) return "none";
  if (const DhInfo* d = dh_info(id)) return std::string(d->keyword);
  return numbered("dh", static_cast<uint16_t>(id));
}

std::string to_string(TransformType t) {
  switch (t) {
    case TransformType::Encr:
      return "ENCR";
    case TransformType::Prf:
      return "PRF";
    case TransformType::Integ:
      return "INTEG";
    case TransformType::Dh:
      return "DH";
    case TransformType::Esn:
      return "ESN";
  }
  return numbered("TYPE", static_cast<uint16_t>(t));
}

std::optional<std::pair<EncrId, uint16_t>> parse_encr(std::string_view keyword) {
  for (const auto& e : kEncr)
    if (e.keyword == keyword) return std::pair{e.id, e.key_bits};
  // strongSwan: "aes" is AES-128-CBC; GCM with a 16-byte ICV is also
  // written with the ICV in bits.
  if (keyword == "aes") return std::pair{EncrId::AesCbc, uint16_t{128}};
  if (keyword == "aes128gcm128") return std::pair{EncrId::AesGcm16, uint16_t{128}};
  if (keyword == "aes192gcm128") return std::pair{EncrId::AesGcm16, uint16_t{192}};
  if (keyword == "aes256gcm128") return std::pair{EncrId::AesGcm16, uint16_t{256}};
  return std::nullopt;
}

std::optional<PrfId> parse_prf(std::string_view keyword) {
  if (keyword.starts_with("prf")) keyword.remove_prefix(3);
  if (keyword == "sha2_256") return PrfId::HmacSha2_256;
  if (keyword == "sha2_384") return PrfId::HmacSha2_384;
  if (keyword == "sha2_512") return PrfId::HmacSha2_512;
  for (const auto& p : kPrf)
    if (p.keyword.substr(3) == keyword) return p.id;
  return std::nullopt;
}

std::optional<IntegId> parse_integ(std::string_view keyword) {
  if (keyword == "sha2_256") return IntegId::HmacSha2_256_128;
  if (keyword == "sha2_384") return IntegId::HmacSha2_384_192;
  if (keyword == "sha2_512") return IntegId::HmacSha2_512_256;
  for (const auto& i : kInteg)
    if (i.id != IntegId::None && i.keyword == keyword) return i.id;
  return std::nullopt;
}

std::optional<DhId> parse_dh(std::string_view keyword) {
  if (keyword == "x25519") return DhId::Curve25519;
  for (const auto& d : kDh)
    if (d.keyword == keyword) return d.id;
  return std::nullopt;
}

bool available(EncrId id, uint16_t key_bits) {
  const EncrInfo* e = encr_info(id, key_bits);
  if (e == nullptr) return false;
  if (e->ossl == nullptr) return true;
  esp::load_providers();
  EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, e->ossl, nullptr);
  EVP_CIPHER_free(c);
  return c != nullptr;
}

namespace {
bool digest_available(const char* name) {
  esp::load_providers();
  EVP_MD* md = EVP_MD_fetch(nullptr, name, nullptr);
  EVP_MD_free(md);
  return md != nullptr;
}
}  // namespace

bool available(PrfId id) {
  const PrfInfo* p = prf_info(id);
  return p != nullptr && digest_available(p->digest);
}

bool available(IntegId id) {
  const IntegInfo* i = integ_info(id);
  if (i == nullptr) return false;
  return i->digest == nullptr || digest_available(i->digest);
}

bool available(DhId id) {
  const DhInfo* d = dh_info(id);
  if (d == nullptr) return false;
  esp::load_providers();
  // Groups 1 and 2 only need DH itself; named groups must be known by name
  // (parameter generation by name is a table lookup, no prime search).
  const char* alg = d->kind == DhKind::Modp ? "DH" : d->kind == DhKind::Ecp ? "EC" : "X25519";
  const char* group = d->ossl_group;
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, alg, nullptr);
  if (ctx == nullptr) return false;
  bool ok = true;
  if (group != nullptr) {
    EVP_PKEY* params = nullptr;
    OSSL_PARAM p[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, const_cast<char*>(group), 0),
        OSSL_PARAM_construct_end()};
    ok = EVP_PKEY_paramgen_init(ctx) == 1 && EVP_PKEY_CTX_set_params(ctx, p) == 1 &&
         EVP_PKEY_paramgen(ctx, &params) == 1;
    EVP_PKEY_free(params);
  }
  EVP_PKEY_CTX_free(ctx);
  return ok;
}

}  // namespace xgw::ike
