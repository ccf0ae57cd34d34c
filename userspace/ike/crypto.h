// IKEv2 cryptography on OpenSSL 3 (RFC 7296 §2.13–2.18, §3.14): the PRF
// and prf+, Diffie-Hellman in KE payload encoding, the IKE and CHILD_SA key
// derivations, protection of the Encrypted (SK) payload and the PSK AUTH
// value. Nothing here throws; OpenSSL failures become errors (or, where a
// function returns plain bytes, an empty result). Keys this module derives
// or holds are wiped (OPENSSL_cleanse) when released; bytes handed to the
// caller as std::vector are the caller's to wipe (see wipe()).
//
// Threads: Prf, DiffieHellman and SkCipher::open() may be used from several
// threads at once; SkCipher::seal() advances the GCM IV counter and must not
// run concurrently on one object (one SkCipher per IKE SA direction, owned
// by the thread that sends for that SA).
#pragma once

#include <openssl/types.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/expected.h"
#include "ike/transforms.h"

namespace xgw::ike {

namespace detail {
struct OsslFree {
  void operator()(EVP_MAC_CTX* p) const;
  void operator()(EVP_CIPHER_CTX* p) const;
  void operator()(EVP_PKEY* p) const;
  void operator()(BIGNUM* p) const;  // BN_clear_free
};
// The cipher `name` fetched once per process (a new reference each call,
// released by the caller with EVP_CIPHER_free); nullptr if unavailable.
EVP_CIPHER* fetch_cipher(const char* name);
}  // namespace detail

// Overwrites `v` (OPENSSL_cleanse) and empties it.
void wipe(std::vector<uint8_t>& v);

// ---------------------------------------------------------------------------
// PRF (§2.13): HMAC with the negotiated hash. The HMAC and digest are
// fetched once in create(); compute() only duplicates that context.
class Prf {
 public:
  static Expected<Prf, std::string> create(PrfId id);
  Prf(const Prf& o);
  Prf& operator=(const Prf& o);
  Prf(Prf&&) noexcept = default;
  Prf& operator=(Prf&&) noexcept = default;
  ~Prf() = default;

  PrfId id() const { return id_; }
  // Output size, which is also the preferred key size of an HMAC PRF
  // (§2.13) and the length of SK_d, SK_pi and SK_pr (§2.14).
  size_t out_size() const { return out_size_; }
  // prf(key, data); empty only if OpenSSL fails.
  std::vector<uint8_t> compute(std::span<const uint8_t> key, std::span<const uint8_t> data) const;
  // prf(key, data_1 | data_2 | …) into out[0, out_size()), without building
  // the concatenation; false if OpenSSL fails.
  bool compute(std::span<const uint8_t> key, std::initializer_list<std::span<const uint8_t>> data,
               uint8_t* out) const;

 private:
  Prf() = default;
  PrfId id_{};
  size_t out_size_ = 0;
  std::unique_ptr<EVP_MAC_CTX, detail::OsslFree> proto_;  // HMAC, digest set, no key
};

// prf+ (§2.13): T1 | T2 | … truncated to `len`, Tn = prf(K, Tn-1 | S | n).
// More than 255 blocks is an error (the counter is one octet).
Expected<std::vector<uint8_t>, std::string> prf_plus(const Prf& prf, std::span<const uint8_t> key,
                                                     std::span<const uint8_t> seed, size_t len);

// ---------------------------------------------------------------------------
// One Diffie-Hellman key pair and the exchange with a peer's KE payload data.
class DiffieHellman {
 public:
  // A fresh key pair for `id`.
  static Expected<std::unique_ptr<DiffieHellman>, std::string> create(DhId id);
  // The key pair of a given private value, for known-answer tests: a
  // big-endian exponent (MODP) or scalar (ECP), or X25519's 32-byte scalar
  // as RFC 7748 prints it.
  static Expected<std::unique_ptr<DiffieHellman>, std::string> create_with_private(
      DhId id, std::span<const uint8_t> priv);
  ~DiffieHellman();
  DiffieHellman(const DiffieHellman&) = delete;
  DiffieHellman& operator=(const DiffieHellman&) = delete;

  DhId id() const { return info_->id; }
  // Our KE payload data: MODP y left-padded to the prime's length (§3.4);
  // ECP x | y, each padded to the field size, no 0x04 prefix (RFC 5903
  // §7); X25519 the 32-byte u-coordinate (RFC 8031 §2).
  std::span<const uint8_t> public_value() const { return pub_; }

  // g^ir from the peer's KE payload data: MODP padded to the prime's
  // length (§2.14), ECP the x coordinate only (RFC 5903 §7), X25519 32
  // bytes. The peer value is validated first (RFC 6989): exact length;
  // for MODP 1 < y < p-1 and y^q = 1 (q the prime order of g's subgroup,
  // (p-1)/2 for the safe primes); for ECP a point on the curve; for X25519
  // no all-zero result.
  Expected<std::vector<uint8_t>, std::string> shared_secret(
      std::span<const uint8_t> peer_public) const;

 private:
  DiffieHellman() = default;
  bool load_public();  // fills pub_ (and p_, q_) from key_
  const DhInfo* info_ = nullptr;
  std::unique_ptr<EVP_PKEY, detail::OsslFree> key_;
  std::unique_ptr<BIGNUM, detail::OsslFree> p_, q_;  // MODP only
  std::vector<uint8_t> pub_;
};

// KE payload data length for `id` (0 for None and unknown groups).
size_t public_size(DhId id);

// ---------------------------------------------------------------------------
// Key derivation. SPIs are the 8-byte header fields read big-endian.

struct IkeKeys {
  std::vector<uint8_t> sk_d, sk_ai, sk_ar, sk_ei, sk_er, sk_pi, sk_pr;
  IkeKeys() = default;
  IkeKeys(const IkeKeys&) = default;
  IkeKeys(IkeKeys&&) noexcept = default;
  IkeKeys& operator=(const IkeKeys& o);  // wipes what it replaces
  IkeKeys& operator=(IkeKeys&& o) noexcept;
  ~IkeKeys();
};

// §2.14: SKEYSEED = prf(Ni | Nr, g^ir), then
// {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}
//   = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr).
// SK_d/SK_pi/SK_pr are out_size() long; SK_e* `encr_key_len` (GCM salt
// included: EncrInfo::key_len), SK_a* `integ_key_len` (0 for AEAD). Every
// PRF here is HMAC, which takes the whole nonces as key; a fixed-key PRF
// (AES-XCBC/CMAC) would use the first half from each nonce (§2.14).
Expected<IkeKeys, std::string> derive_ike_keys(PrfId prf, std::span<const uint8_t> ni,
                                               std::span<const uint8_t> nr,
                                               std::span<const uint8_t> g_ir, uint64_t spi_i,
                                               uint64_t spi_r, size_t encr_key_len,
                                               size_t integ_key_len);

// Rekeying the IKE SA (§2.18): SKEYSEED = prf(SK_d (old), g^ir (new) | Ni |
// Nr) with the old SA's PRF; the new keys then come from prf+ of the new
// PRF as in §2.14, with the new SA's nonces and SPIs. g^ir is required (an
// IKE SA rekey always carries KE, §1.3.2).
Expected<IkeKeys, std::string> derive_rekeyed_ike_keys(
    PrfId old_prf, std::span<const uint8_t> old_sk_d, PrfId new_prf, std::span<const uint8_t> g_ir,
    std::span<const uint8_t> ni, std::span<const uint8_t> nr, uint64_t spi_i, uint64_t spi_r,
    size_t encr_key_len, size_t integ_key_len);

struct ChildKeys {
  // _i: initiator -> responder direction; _r: responder -> initiator.
  std::vector<uint8_t> encr_i, integ_i, encr_r, integ_r;
  ChildKeys() = default;
  ChildKeys(const ChildKeys&) = default;
  ChildKeys(ChildKeys&&) noexcept = default;
  ChildKeys& operator=(const ChildKeys& o);
  ChildKeys& operator=(ChildKeys&& o) noexcept;
  ~ChildKeys();
};

// §2.17: KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr), taken as the
// initiator->responder encryption then integrity key, then the
// responder->initiator ones. `g_ir` is empty without PFS; Ni and Nr are the
// nonces of the exchange that creates the CHILD_SA (IKE_SA_INIT's for the
// first one).
Expected<ChildKeys, std::string> derive_child_keys(const Prf& prf, std::span<const uint8_t> sk_d,
                                                   std::span<const uint8_t> g_ir,
                                                   std::span<const uint8_t> ni,
                                                   std::span<const uint8_t> nr, size_t encr_key_len,
                                                   size_t integ_key_len);

// ---------------------------------------------------------------------------
// The Encrypted payload (§3.14) for one direction of an IKE SA:
//
//   IKE header | ... | SK generic header | IV | E(inner payloads | Padding |
//   Pad Length) | ICV
//
// CBC ciphers: a random IV of one block (§3.14), zero padding to the block
// size, then an HMAC over everything from the IKE header through the
// ciphertext, truncated to the ICV size (§3.14: the checksum covers the
// whole message, IV included). AES-GCM (RFC 5282): an 8-byte explicit IV
// (§3; here a counter from a random start, so it never repeats under one
// key), nonce = the 4-byte salt that ends SK_e | IV (§4), no padding beyond
// the Pad Length octet, a 16-byte tag, and as associated data the message
// from the IKE header through the SK payload's generic header (§5).
class SkCipher {
 public:
  // `encr_key` is SK_ei or SK_er (encr_info(encr, key_bits)->key_len bytes,
  // salt included); `integ_key` SK_ai or SK_ar (empty for AEAD, whose
  // proposals carry no integrity transform).
  static Expected<SkCipher, std::string> create(EncrId encr, uint16_t key_bits, IntegId integ,
                                                std::span<const uint8_t> encr_key,
                                                std::span<const uint8_t> integ_key);
  SkCipher(SkCipher&&) noexcept = default;
  SkCipher& operator=(SkCipher&&) noexcept = default;
  ~SkCipher();

  size_t iv_size() const { return iv_len_; }
  size_t icv_size() const { return icv_len_; }
  size_t block_size() const { return block_; }
  // What the SK payload body adds to `plaintext_len` bytes of inner
  // payloads: IV + padding + Pad Length + ICV. The caller needs it to write
  // the final lengths into the IKE and SK headers before seal().
  size_t overhead_for(size_t plaintext_len) const;

  // `msg` holds exactly the IKE header, any unencrypted payloads and the SK
  // generic header, all with their final lengths ([0, aad_len)); seal
  // appends IV | ciphertext | ICV. `plaintext` (the inner payloads) must
  // not point into `msg`. If `msg` is not `aad_len` long it is an error and
  // `msg` is untouched; after any other error it is cut back to `aad_len`.
  Expected<void, std::string> seal(std::vector<uint8_t>& msg, size_t aad_len,
                                   std::span<const uint8_t> plaintext) const;

  // `msg` is the whole received message and `body_off` where the SK
  // payload body (the IV) starts, right after its generic header; the body
  // runs to the end of `msg`. Checks the ICV (constant time) before
  // decrypting and returns the inner payloads, padding removed. Errors:
  // "truncated" (too short for IV, Pad Length and ICV), "integrity check
  // failed", "bad padding" (CBC ciphertext not a whole number of blocks, or
  // a Pad Length beyond the plaintext).
  Expected<std::vector<uint8_t>, std::string> open(std::span<const uint8_t> msg,
                                                   size_t body_off) const;

 private:
  SkCipher() = default;
  bool mac(std::span<const uint8_t> data, uint8_t* icv) const;  // truncated HMAC
  bool aead_ = false;
  size_t iv_len_ = 0;
  size_t block_ = 1;
  size_t icv_len_ = 0;
  uint8_t salt_[4]{};
  mutable uint64_t next_iv_ = 0;                                 // GCM explicit IV counter
  std::unique_ptr<EVP_CIPHER_CTX, detail::OsslFree> enc_, dec_;  // keyed templates
  std::unique_ptr<EVP_MAC_CTX, detail::OsslFree> mac_;           // keyed HMAC (CBC)
};

// ---------------------------------------------------------------------------
// AUTH with a pre-shared key (§2.15).

// The octets the AUTH payload covers: the sender's whole first message
// (IKE_SA_INIT request or response, as sent) | the peer's nonce data |
// prf(SK_px, IDx'), where IDx' is the sender's ID payload body (ID Type,
// 3 reserved octets, identification data) and SK_px the sender's SK_pi or
// SK_pr.
std::vector<uint8_t> signed_octets(std::span<const uint8_t> real_message,
                                   std::span<const uint8_t> peer_nonce, const Prf& prf,
                                   std::span<const uint8_t> sk_p,
                                   std::span<const uint8_t> id_payload_body);

// AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"), <signed octets>).
// Empty only if OpenSSL fails.
std::vector<uint8_t> psk_auth(const Prf& prf, std::span<const uint8_t> psk,
                              std::span<const uint8_t> signed_octets);

// Whether a received AUTH equals the expected one; constant time.
bool psk_auth_matches(const Prf& prf, std::span<const uint8_t> psk,
                      std::span<const uint8_t> signed_octets, std::span<const uint8_t> received);

}  // namespace xgw::ike
