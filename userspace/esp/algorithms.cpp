#include "esp/algorithms.h"

#include <openssl/evp.h>
#include <openssl/provider.h>

#include <array>
#include <cstdlib>
#include <mutex>

namespace xgw::esp {

namespace {

// Indexed by the enum's value.
constexpr std::array<EncrInfo, 9> kEncr{{
    {"null", nullptr, 0, 0, 0, 4, 0, false},
    {"des", "DES-CBC", 8, 0, 8, 8, 0, false},
    {"3des", "DES-EDE3-CBC", 24, 0, 8, 8, 0, false},
    {"aes128", "AES-128-CBC", 16, 0, 16, 16, 0, false},
    {"aes192", "AES-192-CBC", 24, 0, 16, 16, 0, false},
    {"aes256", "AES-256-CBC", 32, 0, 16, 16, 0, false},
    {"sm4", "SM4-CBC", 16, 0, 16, 16, 0, false},
    // RFC 4106 §3.1: 8-byte explicit IV; §8.1: 4-byte salt after the key.
    {"aes128gcm16", "AES-128-GCM", 20, 4, 8, 4, 16, true},
    {"aes256gcm16", "AES-256-GCM", 36, 4, 8, 4, 16, true},
}};

constexpr std::array<IntegInfo, 7> kInteg{{
    {"none", nullptr, 0, 0},
    {"md5", "MD5", 16, 12},
    {"sha1", "SHA1", 20, 12},
    {"sha256", "SHA2-256", 32, 16},
    {"sha384", "SHA2-384", 48, 24},
    {"sha512", "SHA2-512", 64, 32},
    {"sm3", "SM3", 32, 32},
}};

}  // namespace

const EncrInfo& info(Encr e) {
  return kEncr[static_cast<size_t>(e)];
}
const IntegInfo& info(Integ i) {
  return kInteg[static_cast<size_t>(i)];
}

std::optional<Encr> parse_encr(std::string_view keyword) {
  for (size_t i = 0; i < kEncr.size(); ++i)
    if (kEncr[i].keyword == keyword) return static_cast<Encr>(i);
  // strongSwan spells AES-GCM-16 both ways.
  if (keyword == "aes128gcm128") return Encr::AesGcm16_128;
  if (keyword == "aes256gcm128") return Encr::AesGcm16_256;
  return std::nullopt;
}

std::optional<Integ> parse_integ(std::string_view keyword) {
  for (size_t i = 0; i < kInteg.size(); ++i)
    if (kInteg[i].keyword == keyword) return static_cast<Integ>(i);
  if (keyword == "sha2_256") return Integ::HmacSha256_128;
  if (keyword == "sha2_384") return Integ::HmacSha384_192;
  if (keyword == "sha2_512") return Integ::HmacSha512_256;
  return std::nullopt;
}

namespace {
OSSL_PROVIDER* g_default = nullptr;
OSSL_PROVIDER* g_legacy = nullptr;
}  // namespace

void load_providers() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Loading any provider explicitly stops OpenSSL from loading "default"
    // implicitly, so load both. A missing legacy module only loses DES.
    g_default = OSSL_PROVIDER_load(nullptr, "default");
    g_legacy = OSSL_PROVIDER_load(nullptr, "legacy");
    // Give the references back at exit (before OpenSSL's own cleanup, which
    // registered its handler earlier), so leak checkers see no leak.
    std::atexit([] {
      if (g_legacy) OSSL_PROVIDER_unload(g_legacy);
      if (g_default) OSSL_PROVIDER_unload(g_default);
    });
  });
}

bool available(Encr e) {
  const auto& in = info(e);
  if (in.ossl == nullptr) return true;
  load_providers();
  EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, in.ossl, nullptr);
  EVP_CIPHER_free(c);
  return c != nullptr;
}

bool available(Integ i) {
  const auto& in = info(i);
  if (in.digest == nullptr) return true;
  load_providers();
  EVP_MD* md = EVP_MD_fetch(nullptr, in.digest, nullptr);
  EVP_MD_free(md);
  return md != nullptr;
}

}  // namespace xgw::esp
