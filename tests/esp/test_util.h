// Helpers shared by the ESP tests: hex decoding of vectors as the RFCs print
// them (whitespace ignored), byte concatenation and an independent HMAC.
#pragma once

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace xgw::esp::test {

using Bytes = std::vector<uint8_t>;

inline Bytes hex(std::string_view s) {
  Bytes out;
  int hi = -1;
  for (char c : s) {
    int v;
    if (c >= '0' && c <= '9')
      v = c - '0';
    else if (c >= 'a' && c <= 'f')
      v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      v = c - 'A' + 10;
    else if (c == ' ' || c == '\n' || c == '\t')
      continue;
    else
      throw std::invalid_argument("bad hex digit");
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<uint8_t>(hi << 4 | v));
      hi = -1;
    }
  }
  if (hi >= 0) throw std::invalid_argument("odd number of hex digits");
  return out;
}

inline std::string to_hex(std::span<const uint8_t> b) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (uint8_t x : b) {
    s += d[x >> 4];
    s += d[x & 15];
  }
  return s;
}

inline Bytes ascii(std::string_view s) {
  return Bytes(s.begin(), s.end());
}

inline Bytes cat(std::initializer_list<std::span<const uint8_t>> parts) {
  Bytes out;
  for (auto p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

inline Bytes be32(uint32_t v) {
  return {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
          static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
}

// Zero-extends `b` to `n` bytes.
inline Bytes zero_pad(Bytes b, size_t n) {
  b.resize(n, 0);
  return b;
}

// OpenSSL's one-shot HMAC with an explicitly chosen digest, independent of
// the EspCipher code path and of esp::info()'s digest names.
inline Bytes hmac(const EVP_MD* md, std::span<const uint8_t> key, std::span<const uint8_t> data) {
  uint8_t out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(md, key.data(), static_cast<int>(key.size()), data.data(), data.size(), out, &len) ==
      nullptr)
    throw std::runtime_error("HMAC failed");
  return Bytes(out, out + len);
}

}  // namespace xgw::esp::test
