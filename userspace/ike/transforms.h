// IKEv2 transform IDs (IANA "IKEv2 Parameters", RFC 7296 §3.3.2; RFC 5282
// for AES-GCM, RFC 4868 for HMAC-SHA-2, RFC 5903 / RFC 5114 / RFC 8031 for
// the ECP, 2048-bit subgroup and Curve25519 groups), with the sizes the key
// derivation and the Encrypted payload need, strongSwan's proposal keywords
// (so a proposal string reads the same on both sides) and whether this
// OpenSSL can run each one. Values are the wire values: a received ID that
// is not listed here still converts to the enum and simply has no info.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace xgw::ike {

enum class TransformType : uint8_t { Encr = 1, Prf = 2, Integ = 3, Dh = 4, Esn = 5 };

enum class EncrId : uint16_t {
  Des = 2,        // RFC 2405; OpenSSL legacy provider
  TripleDes = 3,  // RFC 2451
  Null = 11,      // RFC 2410: ESP only, never an IKE SA
  AesCbc = 12,    // RFC 3602; Key Length attribute 128/192/256
  AesGcm16 = 20,  // RFC 5282, 16-byte ICV; Key Length attribute 128/192/256
  Sm4Cbc = 1031,  // private use (RFC 7296 §3.3.2: 1024-65535); xgw<->xgw only
};

enum class PrfId : uint16_t {
  HmacMd5 = 1,  // RFC 2104
  HmacSha1 = 2,
  HmacSha2_256 = 5,  // RFC 4868
  HmacSha2_384 = 6,
  HmacSha2_512 = 7,
  HmacSm3 = 1032,  // private use
};

enum class IntegId : uint16_t {
  None = 0,
  HmacMd5_96 = 1,         // RFC 2403
  HmacSha1_96 = 2,        // RFC 2404
  HmacSha2_256_128 = 12,  // RFC 4868
  HmacSha2_384_192 = 13,
  HmacSha2_512_256 = 14,
  HmacSm3_256 = 1033,  // private use; full 256-bit tag, as esp::Integ::HmacSm3_256
};

enum class DhId : uint16_t {
  None = 0,
  Modp768 = 1,    // RFC 2409 §6.1
  Modp1024 = 2,   // RFC 2409 §6.2
  Modp1536 = 5,   // RFC 3526 §2
  Modp2048 = 14,  // RFC 3526 §3
  Modp3072 = 15,
  Modp4096 = 16,
  Ecp256 = 19,  // RFC 5903
  Ecp384 = 20,
  Ecp521 = 21,
  Modp2048s256 = 24,  // RFC 5114 §2.3: 2048-bit MODP, 256-bit prime-order subgroup
  Curve25519 = 31,    // RFC 8031
};

enum class EsnId : uint16_t { No = 0, Yes = 1 };  // RFC 7296 §3.3.2, Transform Type 5

// An encryption transform at one key length.
struct EncrInfo {
  EncrId id;
  uint16_t key_bits;         // Key Length attribute (§3.3.5); 0 when the ID has none
  std::string_view keyword;  // strongSwan: "aes128", "aes256gcm16", "3des"
  const char* ossl;          // OpenSSL cipher name; nullptr for NULL
  size_t key_len;            // bytes of SK_e* / ESP key material, GCM salt included
  size_t salt_len;           // RFC 5282 §4 (IKE) / RFC 4106 §8.1 (ESP): 4 for GCM
  size_t iv_len;             // IV carried in each Encrypted payload (§3.14)
  size_t block;              // padding alignment: cipher block, 1 for GCM
  size_t icv_len;            // AEAD tag, 0 for the others
  bool aead;
};

struct PrfInfo {
  PrfId id;
  std::string_view keyword;  // "prfsha256"
  const char* digest;        // OpenSSL digest for HMAC
  size_t out_len;            // output and preferred key size (§2.13)
};

struct IntegInfo {
  IntegId id;
  std::string_view keyword;  // "sha256"
  const char* digest;        // nullptr for None
  size_t key_len;            // SK_a* length: the digest size (RFC 4868 §2.1.1, RFC 2404 §3)
  size_t icv_len;            // truncated tag carried in the message
};

enum class DhKind : uint8_t { Modp, Ecp, X25519 };

struct DhInfo {
  DhId id;
  std::string_view keyword;  // "modp2048", "ecp256", "curve25519"
  DhKind kind;
  const char* ossl_group;  // OpenSSL group name; nullptr for groups 1, 2 (explicit p, g), X25519
  size_t public_len;       // KE payload data: prime length, 2 x field (RFC 5903 §7), 32
  size_t shared_len;       // g^ir: prime length, one coordinate (RFC 5903 §7), 32
};

// nullptr when the ID is not one xgw knows or, for encryption, when
// `key_bits` is not a length the ID allows. IDs without a Key Length
// attribute (DES, 3DES, SM4, NULL) take 0 (or their fixed size in bits).
const EncrInfo* encr_info(EncrId id, uint16_t key_bits);
const PrfInfo* prf_info(PrfId id);
const IntegInfo* integ_info(IntegId id);
const DhInfo* dh_info(DhId id);

// Whether the transform carries a Key Length attribute (§3.3.5: AES does,
// 3DES must not).
bool has_key_length(EncrId id);

// Proposal keywords, as strongSwan spells them: "aes128", "aes128gcm16",
// "sha256", "modp2048", "curve25519". to_string(PrfId) is the hash part
// only ("sha256"): proposal strings write it as "prf" + that, which is
// what prf_info()->keyword holds. Values xgw does not know print as
// "encr#13", "integ#4", "dh#29" and, for the PRF, "#9".
std::string to_string(EncrId id, uint16_t key_bits);
std::string to_string(PrfId id);
std::string to_string(IntegId id);
std::string to_string(DhId id);
std::string to_string(TransformType t);  // "ENCR", "PRF", "INTEG", "DH", "ESN"

// Keyword parsers, the inverse of the above; they also take strongSwan's
// aliases ("aes" = aes128, "aes128gcm128", "sha2_256", "x25519"), and
// parse_prf() takes "prfsha256" as well as "sha256".
std::optional<std::pair<EncrId, uint16_t>> parse_encr(std::string_view keyword);
std::optional<PrfId> parse_prf(std::string_view keyword);
std::optional<IntegId> parse_integ(std::string_view keyword);
std::optional<DhId> parse_dh(std::string_view keyword);

// Whether this OpenSSL can run the transform: the cipher, digest or group
// fetches (DES needs the legacy provider, loaded by esp::load_providers()).
bool available(EncrId id, uint16_t key_bits);
bool available(PrfId id);
bool available(IntegId id);
bool available(DhId id);

}  // namespace xgw::ike
