// One direction of one ESP SA's cryptography (RFC 4303 §2–3): builds and
// opens ESP packets from the SPI to the ICV. Each worker thread owns its own
// EspCipher for an SA (OpenSSL contexts are not shared between threads);
// the keys are set once, so the per-packet cost is an IV load and the
// cipher/MAC passes. No allocation after create().
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/expected.h"
#include "esp/algorithms.h"

namespace xgw::esp {

constexpr size_t kEspHeaderLen = 8;  // SPI + sequence number

enum class OpenStatus : uint8_t { Ok, Short, IcvMismatch, BadPadding, CryptoError };

class EspCipher {
 public:
  // Keys must have info(encr).key_len / info(integ).key_len bytes. AEAD
  // transforms take Integ::None.
  static Expected<std::unique_ptr<EspCipher>, std::string> create(
      Encr encr, Integ integ, std::span<const uint8_t> encr_key, std::span<const uint8_t> integ_key,
      bool esn);
  ~EspCipher();
  EspCipher(const EspCipher&) = delete;
  EspCipher& operator=(const EspCipher&) = delete;

  // Bytes an ESP packet adds to a payload of `len` bytes.
  size_t overhead(size_t len) const;
  size_t icv_len() const { return icv_len_; }

  // GCM's explicit IV is the sequence number plus this offset (0 by
  // default). An SA whose keys may outlive its sequence counter (manual
  // keys across a restart) sets a random offset, so a restarted counter
  // does not repeat a nonce under the same key (RFC 4106 §3.1, §8.1).
  void set_iv_offset(uint64_t offset) { iv_offset_ = offset; }
  size_t iv_len() const { return iv_len_; }

  // Writes SPI|seq|IV|E(payload|padding|pad length|next header)|ICV into
  // `out` and returns its length, or 0 when `out` is too small or OpenSSL
  // failed. `iv` overrides the IV (known-answer tests); otherwise GCM uses
  // the 64-bit sequence number (unique per SA, RFC 4106 §3.1) and CBC a
  // fresh random IV (RFC 3602 §2.3).
  size_t seal(uint32_t spi, uint64_t seq, std::span<const uint8_t> payload, uint8_t next_header,
              std::span<uint8_t> out, const uint8_t* iv = nullptr);

  // Verifies and decrypts `esp` (SPI..ICV) whose full sequence number is
  // `seq` (ESN-inferred by the caller); on Ok the inner payload is in
  // out[0, *len) and its protocol in *next_header. The ICV is checked
  // before anything is decrypted and compared in constant time.
  OpenStatus open(std::span<const uint8_t> esp, uint64_t seq, std::span<uint8_t> out, size_t* len,
                  uint8_t* next_header);

 private:
  EspCipher() = default;
  bool mac(std::span<const uint8_t> data, uint32_t seq_hi, uint8_t* icv);
  // Sets the GCM nonce and feeds the AAD for the packet starting at `spi`.
  bool gcm_begin(EVP_CIPHER_CTX* ctx, int enc, const uint8_t* spi, const uint8_t* iv, uint64_t seq);

  Encr encr_{};
  Integ integ_{};
  bool aead_ = false;
  bool esn_ = false;
  size_t iv_len_ = 0;
  size_t block_ = 4;
  size_t icv_len_ = 0;
  uint64_t iv_offset_ = 0;
  uint8_t salt_[4]{};
  EVP_CIPHER* cipher_ = nullptr;
  EVP_CIPHER_CTX* enc_ = nullptr;
  EVP_CIPHER_CTX* dec_ = nullptr;
  EVP_MAC* mac_alg_ = nullptr;
  EVP_MAC_CTX* mac_ = nullptr;
};

}  // namespace xgw::esp
