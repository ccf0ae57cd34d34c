#include "ike/ikev1_crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "esp/algorithms.h"
#include "ike/wire.h"

namespace xgw::ike::v1 {

namespace {

using wire::put32;

Bytes be64(uint64_t v) {
  Bytes b;
  wire::put64(b, v);
  return b;
}

Expected<Bytes, std::string> prf_of(const Prf& prf, std::span<const uint8_t> key,
                                    std::initializer_list<std::span<const uint8_t>> parts) {
  Bytes out(prf.out_size());
  if (!prf.compute(key, parts, out.data())) return unexpected(std::string("PRF failed"));
  return out;
}

}  // namespace

Phase1Keys& Phase1Keys::operator=(Phase1Keys&& o) noexcept {
  if (this != &o) {
    for (auto [dst, src] : {std::pair{&skeyid, &o.skeyid},
                            {&skeyid_d, &o.skeyid_d},
                            {&skeyid_a, &o.skeyid_a},
                            {&skeyid_e, &o.skeyid_e},
                            {&enc_key, &o.enc_key},
                            {&iv, &o.iv}}) {
      wipe(*dst);  // what it replaces
      *dst = std::move(*src);
    }
  }
  return *this;
}

Phase1Keys::~Phase1Keys() {
  wipe(skeyid);
  wipe(skeyid_d);
  wipe(skeyid_a);
  wipe(skeyid_e);
  wipe(enc_key);
}

Bytes hash(const Prf& prf, std::initializer_list<std::span<const uint8_t>> parts) {
  const PrfInfo* in = prf_info(prf.id());
  if (!in) return {};
  esp::load_providers();
  EVP_MD* md = EVP_MD_fetch(nullptr, in->digest, nullptr);
  if (!md) return {};
  Bytes out(static_cast<size_t>(EVP_MD_get_size(md)));
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = ctx && EVP_DigestInit_ex2(ctx, md, nullptr) == 1;
  for (auto p : parts) ok = ok && EVP_DigestUpdate(ctx, p.data(), p.size()) == 1;
  unsigned len = 0;
  ok = ok && EVP_DigestFinal_ex(ctx, out.data(), &len) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_MD_free(md);
  if (!ok) return {};
  return out;
}

Expected<Phase1Keys, std::string> derive_phase1(
    const Prf& prf, std::span<const uint8_t> psk, std::span<const uint8_t> ni_b,
    std::span<const uint8_t> nr_b, std::span<const uint8_t> g_xy, uint64_t cky_i, uint64_t cky_r,
    std::span<const uint8_t> g_xi, std::span<const uint8_t> g_xr, size_t key_len, size_t block) {
  Phase1Keys k;
  const Bytes ci = be64(cky_i), cr = be64(cky_r);
  const uint8_t n0 = 0, n1 = 1, n2 = 2;
  auto skeyid = prf_of(prf, psk, {ni_b, nr_b});
  if (!skeyid) return unexpected(skeyid.error());
  k.skeyid = std::move(*skeyid);
  auto d = prf_of(prf, k.skeyid, {g_xy, ci, cr, {&n0, 1}});
  if (!d) return unexpected(d.error());
  k.skeyid_d = std::move(*d);
  auto a = prf_of(prf, k.skeyid, {k.skeyid_d, g_xy, ci, cr, {&n1, 1}});
  if (!a) return unexpected(a.error());
  k.skeyid_a = std::move(*a);
  auto e = prf_of(prf, k.skeyid, {k.skeyid_a, g_xy, ci, cr, {&n2, 1}});
  if (!e) return unexpected(e.error());
  k.skeyid_e = std::move(*e);
  if (k.skeyid_e.size() >= key_len) {
    k.enc_key.assign(k.skeyid_e.begin(), k.skeyid_e.begin() + static_cast<ptrdiff_t>(key_len));
  } else {
    // Appendix B: Ka = K1 | K2 | …, K1 = prf(SKEYID_e, 0), Kn = prf(SKEYID_e, Kn-1).
    auto kn = prf_of(prf, k.skeyid_e, {{&n0, 1}});
    if (!kn) return unexpected(kn.error());
    while (true) {
      k.enc_key.insert(k.enc_key.end(), kn->begin(), kn->end());
      if (k.enc_key.size() >= key_len) break;
      auto next = prf_of(prf, k.skeyid_e, {*kn});
      if (!next) return unexpected(next.error());
      wipe(*kn);
      *kn = std::move(*next);
    }
    wipe(*kn);
    k.enc_key.resize(key_len);
  }
  k.iv = hash(prf, {g_xi, g_xr});
  if (k.iv.size() < block) return unexpected(std::string("hash failed or shorter than a block"));
  k.iv.resize(block);
  return k;
}

Bytes phase1_hash(const Prf& prf, std::span<const uint8_t> skeyid, std::span<const uint8_t> g_own,
                  std::span<const uint8_t> g_peer, uint64_t cky_own, uint64_t cky_peer,
                  std::span<const uint8_t> sa_i_b, std::span<const uint8_t> id_b) {
  const Bytes co = be64(cky_own), cp = be64(cky_peer);
  auto r = prf_of(prf, skeyid, {g_own, g_peer, co, cp, sa_i_b, id_b});
  return r ? std::move(*r) : Bytes{};
}

Bytes phase2_iv(const Prf& prf, std::span<const uint8_t> phase1_last_block, uint32_t message_id,
                size_t block) {
  Bytes mid;
  put32(mid, message_id);
  Bytes iv = hash(prf, {phase1_last_block, mid});
  if (iv.size() < block) return {};
  iv.resize(block);
  return iv;
}

Expected<Bytes, std::string> keymat(const Prf& prf, std::span<const uint8_t> skeyid_d,
                                    std::span<const uint8_t> g_qm, uint8_t protocol, uint32_t spi,
                                    std::span<const uint8_t> ni_b, std::span<const uint8_t> nr_b,
                                    size_t len) {
  Bytes spi_b;
  put32(spi_b, spi);
  Bytes out;
  Bytes prev;
  while (out.size() < len) {
    auto k = prf_of(prf, skeyid_d, {prev, g_qm, {&protocol, 1}, spi_b, ni_b, nr_b});
    if (!k) return unexpected(k.error());
    out.insert(out.end(), k->begin(), k->end());
    wipe(prev);
    prev = std::move(*k);
  }
  wipe(prev);
  out.resize(len);
  return out;
}

// ---------------------------------------------------------------------------

Expected<CbcCipher, std::string> CbcCipher::create(EncrId encr, uint16_t key_bits,
                                                   std::span<const uint8_t> key) {
  const EncrInfo* e = encr_info(encr, key_bits);
  if (!e || e->aead || !e->ossl)
    return unexpected("IKEv1 cannot encrypt with " + to_string(encr, key_bits) +
                      " (CBC ciphers only)");
  if (key.size() != e->key_len)
    return unexpected("key for " + std::string(e->keyword) + " is " + std::to_string(e->key_len) +
                      " bytes, got " + std::to_string(key.size()));
  EVP_CIPHER* cipher = detail::fetch_cipher(e->ossl);
  if (!cipher) return unexpected("OpenSSL does not provide " + std::string(e->ossl));
  CbcCipher c;
  c.block_ = e->block;
  for (int enc : {1, 0}) {
    std::unique_ptr<EVP_CIPHER_CTX, detail::OsslFree> ctx(EVP_CIPHER_CTX_new());
    if (!ctx || EVP_CipherInit_ex2(ctx.get(), cipher, key.data(), nullptr, enc, nullptr) != 1) {
      EVP_CIPHER_free(cipher);
      return unexpected("cannot key " + std::string(e->ossl));
    }
    EVP_CIPHER_CTX_set_padding(ctx.get(), 0);
    (enc ? c.enc_ : c.dec_) = std::move(ctx);
  }
  EVP_CIPHER_free(cipher);
  return c;
}

namespace {
Expected<Bytes, std::string> run(EVP_CIPHER_CTX* tmpl, Bytes& iv, std::span<const uint8_t> in,
                                 bool enc) {
  std::unique_ptr<EVP_CIPHER_CTX, detail::OsslFree> ctx(EVP_CIPHER_CTX_new());
  if (!ctx || EVP_CIPHER_CTX_copy(ctx.get(), tmpl) != 1 ||
      EVP_CipherInit_ex2(ctx.get(), nullptr, nullptr, iv.data(), enc, nullptr) != 1)
    return unexpected(std::string("cipher setup failed"));
  Bytes out(in.size());
  int n = 0;
  if (!in.empty() &&
      EVP_CipherUpdate(ctx.get(), out.data(), &n, in.data(), static_cast<int>(in.size())) != 1)
    return unexpected(std::string("cipher failed"));
  const auto& last = enc ? out : Bytes(in.end() - static_cast<ptrdiff_t>(iv.size()), in.end());
  iv.assign(last.end() - static_cast<ptrdiff_t>(iv.size()), last.end());
  return out;
}
}  // namespace

Expected<Bytes, std::string> CbcCipher::encrypt(Bytes& iv, std::span<const uint8_t> plain) const {
  if (iv.size() != block_) return unexpected(std::string("IV is not one block"));
  Bytes padded(plain.begin(), plain.end());
  padded.resize((plain.size() + block_ - 1) / block_ * block_ + (plain.empty() ? block_ : 0), 0);
  auto r = run(enc_.get(), iv, padded, true);
  OPENSSL_cleanse(padded.data(), padded.size());
  return r;
}

Expected<Bytes, std::string> CbcCipher::decrypt(Bytes& iv, std::span<const uint8_t> cipher) const {
  if (iv.size() != block_) return unexpected(std::string("IV is not one block"));
  if (cipher.empty() || cipher.size() % block_ != 0)
    return unexpected("encrypted body of " + std::to_string(cipher.size()) +
                      " bytes is not a whole number of " + std::to_string(block_) + "-byte blocks");
  return run(dec_.get(), iv, cipher, false);
}

}  // namespace xgw::ike::v1
