#include "esp/cipher.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <cstring>

#include "common/bytes.h"

namespace xgw::esp {

namespace {

// Random IVs for CBC come from a per-thread pool refilled in 4 KiB chunks,
// one RAND_bytes call per ~250 packets instead of one per packet.
struct RandomPool {
  uint8_t buf[4096];
  size_t pos = sizeof(buf);
  bool take(uint8_t* out, size_t n) {
    if (pos + n > sizeof(buf)) {
      if (RAND_bytes(buf, sizeof(buf)) != 1) return false;
      pos = 0;
    }
    std::memcpy(out, buf + pos, n);
    pos += n;
    return true;
  }
};
thread_local RandomPool t_random;

}  // namespace

Expected<std::unique_ptr<EspCipher>, std::string> EspCipher::create(
    Encr encr, Integ integ, std::span<const uint8_t> encr_key, std::span<const uint8_t> integ_key,
    bool esn) {
  const EncrInfo& ei = info(encr);
  const IntegInfo& ii = info(integ);
  if (encr_key.size() != ei.key_len)
    return unexpected("encryption key for " + std::string(ei.keyword) + " must be " +
                      std::to_string(ei.key_len) + " bytes, got " +
                      std::to_string(encr_key.size()));
  if (integ_key.size() != ii.key_len)
    return unexpected("integrity key for " + std::string(ii.keyword) + " must be " +
                      std::to_string(ii.key_len) + " bytes, got " +
                      std::to_string(integ_key.size()));
  if (ei.aead && integ != Integ::None)
    return unexpected(std::string(ei.keyword) + " is an AEAD transform; integrity must be none");
  if (encr == Encr::Null && integ == Integ::None)
    return unexpected(
        std::string("ESP with neither encryption nor integrity is not allowed (RFC 4303 §3.2)"));
  load_providers();

  std::unique_ptr<EspCipher> c(new EspCipher());
  c->encr_ = encr;
  c->integ_ = integ;
  c->aead_ = ei.aead;
  c->esn_ = esn;
  c->iv_len_ = ei.iv_len;
  c->block_ = ei.block;
  c->icv_len_ = ei.aead ? ei.icv_len : ii.icv_len;

  if (ei.ossl != nullptr) {
    c->cipher_ = EVP_CIPHER_fetch(nullptr, ei.ossl, nullptr);
    if (c->cipher_ == nullptr)
      return unexpected("OpenSSL does not provide " + std::string(ei.ossl));
    const size_t klen = ei.key_len - ei.salt_len;
    if (ei.salt_len) std::memcpy(c->salt_, encr_key.data() + klen, ei.salt_len);
    c->enc_ = EVP_CIPHER_CTX_new();
    c->dec_ = EVP_CIPHER_CTX_new();
    if (!c->enc_ || !c->dec_) return unexpected(std::string("out of memory"));
    for (EVP_CIPHER_CTX* ctx : {c->enc_, c->dec_}) {
      const int enc = ctx == c->enc_ ? 1 : 0;
      if (EVP_CipherInit_ex2(ctx, c->cipher_, nullptr, nullptr, enc, nullptr) != 1)
        return unexpected("cannot initialise " + std::string(ei.ossl));
      if (ei.aead) {
        // RFC 4106 §4: the nonce is salt (4) || explicit IV (8).
        if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, nullptr) != 1)
          return unexpected(std::string("cannot set the GCM nonce length"));
      }
      if (EVP_CipherInit_ex2(ctx, nullptr, encr_key.data(), nullptr, enc, nullptr) != 1)
        return unexpected("cannot key " + std::string(ei.ossl));
      EVP_CIPHER_CTX_set_padding(ctx, 0);  // ESP pads itself (§2.4)
    }
  }
  if (ii.digest != nullptr) {
    c->mac_alg_ = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (c->mac_alg_ == nullptr) return unexpected(std::string("OpenSSL does not provide HMAC"));
    c->mac_ = EVP_MAC_CTX_new(c->mac_alg_);
    if (c->mac_ == nullptr) return unexpected(std::string("out of memory"));
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(ii.digest), 0),
        OSSL_PARAM_construct_end()};
    if (EVP_MAC_init(c->mac_, integ_key.data(), integ_key.size(), params) != 1)
      return unexpected("OpenSSL does not provide HMAC-" + std::string(ii.digest));
  }
  return c;
}

EspCipher::~EspCipher() {
  EVP_CIPHER_CTX_free(enc_);
  EVP_CIPHER_CTX_free(dec_);
  EVP_CIPHER_free(cipher_);
  EVP_MAC_CTX_free(mac_);
  EVP_MAC_free(mac_alg_);
}

bool EspCipher::gcm_begin(EVP_CIPHER_CTX* ctx, int enc, const uint8_t* spi, const uint8_t* iv,
                          uint64_t seq) {
  // RFC 4106 §4: the nonce is salt || explicit IV.
  uint8_t nonce[12];
  std::memcpy(nonce, salt_, 4);
  std::memcpy(nonce + 4, iv, 8);
  if (EVP_CipherInit_ex2(ctx, nullptr, nullptr, nonce, enc, nullptr) != 1) return false;
  // RFC 4106 §5: AAD is SPI || seq (32 bits), or SPI || seq_hi || seq_lo
  // with ESN. The packet's own seq field equals the low half (seal writes
  // it, open checks it).
  uint8_t aad[12];
  std::memcpy(aad, spi, 4);
  size_t aad_len = 4;
  if (esn_) {
    store_be32(aad + aad_len, static_cast<uint32_t>(seq >> 32));
    aad_len += 4;
  }
  store_be32(aad + aad_len, static_cast<uint32_t>(seq));
  aad_len += 4;
  int n = 0;
  return EVP_CipherUpdate(ctx, nullptr, &n, aad, static_cast<int>(aad_len)) == 1;
}

size_t EspCipher::overhead(size_t len) const {
  const size_t body = len + 2;
  const size_t padded = (body + block_ - 1) / block_ * block_;
  return kEspHeaderLen + iv_len_ + (padded - len) + icv_len_;
}

bool EspCipher::mac(std::span<const uint8_t> data, uint32_t seq_hi, uint8_t* icv) {
  uint8_t full[EVP_MAX_MD_SIZE];
  size_t out_len = 0;
  if (EVP_MAC_init(mac_, nullptr, 0, nullptr) != 1) return false;  // same key, fresh state
  if (EVP_MAC_update(mac_, data.data(), data.size()) != 1) return false;
  if (esn_) {
    // RFC 4303 §3.3.2.2: the high-order 32 bits are appended for the ICV
    // only, never sent.
    uint8_t hi[4];
    store_be32(hi, seq_hi);
    if (EVP_MAC_update(mac_, hi, 4) != 1) return false;
  }
  if (EVP_MAC_final(mac_, full, &out_len, sizeof(full)) != 1 || out_len < icv_len_) return false;
  std::memcpy(icv, full, icv_len_);
  return true;
}

size_t EspCipher::seal(uint32_t spi, uint64_t seq, std::span<const uint8_t> payload,
                       uint8_t next_header, std::span<uint8_t> out, const uint8_t* iv) {
  const size_t body = payload.size() + 2;
  const size_t padded = (body + block_ - 1) / block_ * block_;
  const size_t pad = padded - body;
  const size_t total = kEspHeaderLen + iv_len_ + padded + icv_len_;
  if (out.size() < total) return 0;

  uint8_t* p = out.data();
  store_be32(p, spi);
  store_be32(p + 4, static_cast<uint32_t>(seq));
  uint8_t* ivp = p + kEspHeaderLen;
  uint8_t* ct = ivp + iv_len_;
  if (iv != nullptr) {
    std::memcpy(ivp, iv, iv_len_);
  } else if (aead_) {
    const uint64_t v = seq + iv_offset_;
    store_be32(ivp, static_cast<uint32_t>(v >> 32));
    store_be32(ivp + 4, static_cast<uint32_t>(v));
  } else if (iv_len_ && !t_random.take(ivp, iv_len_)) {
    return 0;
  }
  // The trailer goes right after the payload; the cipher then runs over the
  // whole padded body in one pass (payload copied by the cipher itself).
  uint8_t trailer[16 + 2];
  for (size_t i = 0; i < pad; ++i) trailer[i] = static_cast<uint8_t>(i + 1);  // §2.4
  trailer[pad] = static_cast<uint8_t>(pad);
  trailer[pad + 1] = next_header;

  int n = 0;
  if (cipher_ == nullptr) {  // NULL encryption
    if (!payload.empty()) std::memcpy(ct, payload.data(), payload.size());
    std::memcpy(ct + payload.size(), trailer, pad + 2);
  } else {
    if (aead_) {
      if (!gcm_begin(enc_, 1, p, ivp, seq)) return 0;
    } else if (EVP_EncryptInit_ex2(enc_, nullptr, nullptr, ivp, nullptr) != 1) {
      return 0;
    }
    // CBC consumes whole blocks: encrypt the block-aligned head of the
    // payload, then the tail joined with the trailer.
    const size_t head = aead_ ? payload.size() : payload.size() / block_ * block_;
    if (head && EVP_EncryptUpdate(enc_, ct, &n, payload.data(), static_cast<int>(head)) != 1)
      return 0;
    uint8_t tail[32 + 18];
    const size_t rest = payload.size() - head;
    if (rest) std::memcpy(tail, payload.data() + head, rest);  // an empty span may be null
    std::memcpy(tail + rest, trailer, pad + 2);
    if (EVP_EncryptUpdate(enc_, ct + head, &n, tail, static_cast<int>(rest + pad + 2)) != 1)
      return 0;
    if (EVP_EncryptFinal_ex(enc_, ct + padded, &n) != 1) return 0;
    // The tag through the provider's params directly: the ctrl() wrapper
    // costs ~30 ns more per packet (OpenSSL 3.0).
    if (aead_) {
      OSSL_PARAM tag[] = {
          OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, ct + padded, icv_len_),
          OSSL_PARAM_construct_end()};
      if (EVP_CIPHER_CTX_get_params(enc_, tag) != 1) return 0;
    }
  }
  if (!aead_ && mac_ != nullptr &&
      !mac({p, kEspHeaderLen + iv_len_ + padded}, static_cast<uint32_t>(seq >> 32), ct + padded))
    return 0;
  return total;
}

OpenStatus EspCipher::open(std::span<const uint8_t> esp, uint64_t seq, std::span<uint8_t> out,
                           size_t* len, uint8_t* next_header) {
  if (esp.size() < kEspHeaderLen + iv_len_ + icv_len_ + 2) return OpenStatus::Short;
  const size_t ct_len = esp.size() - kEspHeaderLen - iv_len_ - icv_len_;
  if (ct_len % block_ != 0) return OpenStatus::Short;
  if (out.size() < ct_len) return OpenStatus::Short;
  const uint8_t* p = esp.data();
  // The caller's 64-bit number must extend the packet's own low 32 bits, so
  // GCM and CBC+HMAC reject the same inputs.
  if (load_be32(p + 4) != static_cast<uint32_t>(seq)) return OpenStatus::IcvMismatch;
  const uint8_t* ivp = p + kEspHeaderLen;
  const uint8_t* ct = ivp + iv_len_;
  const uint8_t* icv = ct + ct_len;

  if (!aead_ && mac_ != nullptr) {
    uint8_t want[EVP_MAX_MD_SIZE];
    if (!mac({p, kEspHeaderLen + iv_len_ + ct_len}, static_cast<uint32_t>(seq >> 32), want))
      return OpenStatus::CryptoError;
    if (CRYPTO_memcmp(want, icv, icv_len_) != 0) return OpenStatus::IcvMismatch;
  }
  int n = 0;
  if (cipher_ == nullptr) {
    std::memcpy(out.data(), ct, ct_len);
  } else {
    if (aead_) {
      if (!gcm_begin(dec_, 0, p, ivp, seq)) return OpenStatus::CryptoError;
      OSSL_PARAM tag[] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG,
                                                            const_cast<uint8_t*>(icv), icv_len_),
                          OSSL_PARAM_construct_end()};
      if (EVP_CIPHER_CTX_set_params(dec_, tag) != 1) return OpenStatus::CryptoError;
    } else if (EVP_DecryptInit_ex2(dec_, nullptr, nullptr, ivp, nullptr) != 1) {
      return OpenStatus::CryptoError;
    }
    if (EVP_DecryptUpdate(dec_, out.data(), &n, ct, static_cast<int>(ct_len)) != 1)
      return OpenStatus::CryptoError;
    // For GCM the tag is verified here (constant time inside OpenSSL); the
    // plaintext written above is discarded by the caller on failure.
    if (EVP_DecryptFinal_ex(dec_, out.data() + ct_len, &n) != 1)
      return aead_ ? OpenStatus::IcvMismatch : OpenStatus::CryptoError;
  }
  const uint8_t pad = out[ct_len - 2];
  if (static_cast<size_t>(pad) + 2 > ct_len) return OpenStatus::BadPadding;
  const size_t payload_len = ct_len - 2 - pad;
  // RFC 4303 §2.4: default padding is 1, 2, 3, …; check it.
  for (size_t i = 0; i < pad; ++i)
    if (out[payload_len + i] != static_cast<uint8_t>(i + 1)) return OpenStatus::BadPadding;
  *len = payload_len;
  *next_header = out[ct_len - 1];
  return OpenStatus::Ok;
}

}  // namespace xgw::esp
