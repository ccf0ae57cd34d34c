// IKEv1 cryptography (RFC 2409) on the IKEv2 module's primitives: the
// PRF (HMAC with the negotiated hash), Diffie-Hellman and key wiping come
// from crypto.h; what differs in IKEv1 is here — SKEYID and its three
// derived keys for pre-shared keys (§5), the encryption key expansion
// (Appendix B), the phase-1 and phase-2 IVs and CBC chaining across
// messages (Appendix B), HASH_I/HASH_R (§5), the quick mode and
// informational hashes (§5.5, §5.7) and KEYMAT (§5.5).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/expected.h"
#include "ike/crypto.h"
#include "ike/transforms.h"

namespace xgw::ike::v1 {

using Bytes = std::vector<uint8_t>;

struct Phase1Keys {
  Bytes skeyid, skeyid_d, skeyid_a, skeyid_e;
  Bytes enc_key;  // SKEYID_e expanded or cut to the cipher's key length
  Bytes iv;       // hash(g^xi | g^xr) cut to the cipher's block size
  Phase1Keys() = default;
  Phase1Keys(Phase1Keys&&) noexcept = default;
  Phase1Keys& operator=(Phase1Keys&&) noexcept;
  ~Phase1Keys();
};

// §5 (pre-shared key): SKEYID = prf(PSK, Ni_b | Nr_b);
// SKEYID_d = prf(SKEYID, g^xy | CKY-I | CKY-R | 0),
// SKEYID_a = prf(SKEYID, SKEYID_d | g^xy | CKY-I | CKY-R | 1),
// SKEYID_e = prf(SKEYID, SKEYID_a | g^xy | CKY-I | CKY-R | 2);
// Appendix B: the key is SKEYID_e when long enough, else K1 | K2 | … with
// K1 = prf(SKEYID_e, 0), Kn = prf(SKEYID_e, Kn-1); the first IV is
// hash(g^xi | g^xr) with the PRF's hash.
Expected<Phase1Keys, std::string> derive_phase1(
    const Prf& prf, std::span<const uint8_t> psk, std::span<const uint8_t> ni_b,
    std::span<const uint8_t> nr_b, std::span<const uint8_t> g_xy, uint64_t cky_i, uint64_t cky_r,
    std::span<const uint8_t> g_xi, std::span<const uint8_t> g_xr, size_t key_len, size_t block);

// The PRF's underlying hash over `parts` (IVs, NAT-D); empty if OpenSSL
// fails.
Bytes hash(const Prf& prf, std::initializer_list<std::span<const uint8_t>> parts);

// §5: HASH_I = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b),
// HASH_R = prf(SKEYID, g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b).
// `g_own`/`cky_own` are the sender's: pass (g^xi, g^xr, CKY-I, CKY-R) for
// HASH_I and (g^xr, g^xi, CKY-R, CKY-I) for HASH_R.
Bytes phase1_hash(const Prf& prf, std::span<const uint8_t> skeyid, std::span<const uint8_t> g_own,
                  std::span<const uint8_t> g_peer, uint64_t cky_own, uint64_t cky_peer,
                  std::span<const uint8_t> sa_i_b, std::span<const uint8_t> id_b);

// Appendix B: a phase-2 (quick mode, informational) exchange starts with
// IV = hash(last phase-1 CBC block | M-ID), cut to the block size.
Bytes phase2_iv(const Prf& prf, std::span<const uint8_t> phase1_last_block, uint32_t message_id,
                size_t block);

// §5.5: KEYMAT for one SA direction, `len` bytes:
// K1 = prf(SKEYID_d, [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b),
// Kn = prf(SKEYID_d, Kn-1 | [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b).
// `spi` is the SPI of that direction (the receiver's choice).
Expected<Bytes, std::string> keymat(const Prf& prf, std::span<const uint8_t> skeyid_d,
                                    std::span<const uint8_t> g_qm, uint8_t protocol, uint32_t spi,
                                    std::span<const uint8_t> ni_b, std::span<const uint8_t> nr_b,
                                    size_t len);

// CBC encryption of an ISAKMP message body with an explicit IV chain
// (Appendix B): each message's IV is the previous message's last
// ciphertext block, so encrypt/decrypt return the new IV with the result.
class CbcCipher {
 public:
  static Expected<CbcCipher, std::string> create(EncrId encr, uint16_t key_bits,
                                                 std::span<const uint8_t> key);
  CbcCipher(CbcCipher&&) noexcept = default;
  CbcCipher& operator=(CbcCipher&&) noexcept = default;
  ~CbcCipher() = default;

  size_t block_size() const { return block_; }
  // Pads `plain` with zeros to a whole number of blocks (RFC 2408 §3.5:
  // the header's length then covers the padding) and encrypts it under
  // `iv`; `iv` becomes the last ciphertext block.
  Expected<Bytes, std::string> encrypt(Bytes& iv, std::span<const uint8_t> plain) const;
  // Decrypts a whole number of blocks; `iv` becomes the last ciphertext
  // block. Fails on a length that is not a multiple of the block size.
  Expected<Bytes, std::string> decrypt(Bytes& iv, std::span<const uint8_t> cipher) const;

 private:
  CbcCipher() = default;
  size_t block_ = 8;
  std::unique_ptr<EVP_CIPHER_CTX, detail::OsslFree> enc_, dec_;  // keyed, no IV
};

}  // namespace xgw::ike::v1
