// ESP transforms: the encryption and integrity algorithms xgw's userspace
// ESP path offers, their key/IV/ICV sizes and whether this OpenSSL build
// provides them. Names follow strongSwan's proposal keywords so a proposal
// string reads the same on both sides.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace xgw::esp {

enum class Encr : uint8_t {
  Null,          // RFC 2410 (integrity only)
  DesCbc,        // RFC 2405; OpenSSL legacy provider
  TripleDesCbc,  // RFC 2451
  AesCbc128,     // RFC 3602
  AesCbc192,
  AesCbc256,
  Sm4Cbc,        // GB/T 32907, where OpenSSL offers it
  AesGcm16_128,  // RFC 4106, 16-byte ICV
  AesGcm16_256,
};

enum class Integ : uint8_t {
  None,
  HmacMd5_96,      // RFC 2403
  HmacSha1_96,     // RFC 2404
  HmacSha256_128,  // RFC 4868
  HmacSha384_192,
  HmacSha512_256,
  HmacSm3_256,  // GM/T 0022; full 256-bit tag as Linux's hmac(sm3)
};

struct EncrInfo {
  std::string_view keyword;  // strongSwan proposal keyword
  const char* ossl;          // OpenSSL cipher name (nullptr for NULL)
  size_t key_len;            // bytes of keying material, salt included
  size_t salt_len;           // RFC 4106 §8.1: 4 for GCM
  size_t iv_len;             // bytes carried in each packet
  size_t block;              // payload alignment (RFC 4303 §2.4)
  size_t icv_len;            // AEAD tag length, 0 otherwise
  bool aead;
};

struct IntegInfo {
  std::string_view keyword;
  const char* digest;  // OpenSSL digest name (nullptr for none)
  size_t key_len;
  size_t icv_len;  // truncated output carried in the packet
};

const EncrInfo& info(Encr e);
const IntegInfo& info(Integ i);

std::optional<Encr> parse_encr(std::string_view keyword);
std::optional<Integ> parse_integ(std::string_view keyword);

// Loads OpenSSL's default and legacy providers once (DES lives in legacy);
// safe to call from any thread, any number of times.
void load_providers();

// Whether this OpenSSL can run the transform (fetch succeeds).
bool available(Encr e);
bool available(Integ i);

}  // namespace xgw::esp
