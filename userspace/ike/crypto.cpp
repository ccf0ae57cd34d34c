#include "ike/crypto.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/dh.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <cstring>
#include <map>
#include <mutex>

#include "common/bytes.h"
#include "esp/algorithms.h"

namespace xgw::ike {

namespace detail {
void OsslFree::operator()(EVP_MAC_CTX* p) const {
  EVP_MAC_CTX_free(p);
}
void OsslFree::operator()(EVP_CIPHER_CTX* p) const {
  EVP_CIPHER_CTX_free(p);
}
void OsslFree::operator()(EVP_PKEY* p) const {
  EVP_PKEY_free(p);
}
void OsslFree::operator()(BIGNUM* p) const {
  BN_clear_free(p);
}
}  // namespace detail

namespace {

struct Free {
  void operator()(EVP_MAC* p) const { EVP_MAC_free(p); }
  void operator()(EVP_CIPHER* p) const { EVP_CIPHER_free(p); }
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
  void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); }
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
  void operator()(BN_CTX* p) const { BN_CTX_free(p); }
  void operator()(EC_GROUP* p) const { EC_GROUP_free(p); }
  void operator()(EC_POINT* p) const { EC_POINT_clear_free(p); }
};
template <typename T>
using Ptr = std::unique_ptr<T, Free>;
using MacCtxPtr = std::unique_ptr<EVP_MAC_CTX, detail::OsslFree>;
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, detail::OsslFree>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, detail::OsslFree>;
using BnPtr = std::unique_ptr<BIGNUM, detail::OsslFree>;

using ByteVec = std::vector<uint8_t>;

// HMAC reads a null key as "keep the previous key"; an empty key must
// still be a key, so it gets a valid pointer.
const uint8_t kNoKey[1] = {0};

void store_be64(uint8_t* p, uint64_t v) {
  store_be32(p, static_cast<uint32_t>(v >> 32));
  store_be32(p + 4, static_cast<uint32_t>(v));
}

void append(ByteVec& out, std::span<const uint8_t> b) {
  out.insert(out.end(), b.begin(), b.end());
}

std::string num(size_t n) {
  return std::to_string(n);
}

// Fetched algorithms, once per process: an implicit fetch walks OpenSSL's
// provider tables on every call, which an IKE handshake does a dozen times.
// Each call returns a new reference (up_ref), so callers own what they get.
// The caches are built after the providers are loaded, so they are torn
// down (at exit) before the providers are unloaded.
EVP_MAC* fetch_hmac() {
  esp::load_providers();
  static Ptr<EVP_MAC> mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
  if (!mac || EVP_MAC_up_ref(mac.get()) != 1) return nullptr;
  return mac.get();
}

}  // namespace

namespace detail {
EVP_CIPHER* fetch_cipher(const char* name) {
  esp::load_providers();
  static std::mutex mu;
  static std::map<std::string, Ptr<EVP_CIPHER>> cache;
  std::lock_guard lk(mu);
  auto it = cache.find(name);
  if (it == cache.end()) {
    Ptr<EVP_CIPHER> c(EVP_CIPHER_fetch(nullptr, name, nullptr));
    if (!c) return nullptr;
    it = cache.emplace(name, std::move(c)).first;
  }
  if (EVP_CIPHER_up_ref(it->second.get()) != 1) return nullptr;
  return it->second.get();
}
}  // namespace detail

void wipe(std::vector<uint8_t>& v) {
  if (!v.empty()) OPENSSL_cleanse(v.data(), v.size());
  v.clear();
}

// ---------------------------------------------------------------------------
// Prf

Expected<Prf, std::string> Prf::create(PrfId id) {
  const PrfInfo* in = prf_info(id);
  if (in == nullptr)
    return unexpected("unknown PRF transform " + std::to_string(static_cast<uint16_t>(id)));
  esp::load_providers();
  Ptr<EVP_MAC> mac(fetch_hmac());
  if (!mac) return unexpected(std::string("OpenSSL does not provide HMAC"));
  Prf p;
  p.id_ = id;
  p.out_size_ = in->out_len;
  p.proto_.reset(EVP_MAC_CTX_new(mac.get()));  // holds its own reference to the EVP_MAC
  if (!p.proto_) return unexpected(std::string("out of memory"));
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(in->digest), 0),
      OSSL_PARAM_construct_end()};
  if (EVP_MAC_CTX_set_params(p.proto_.get(), params) != 1)
    return unexpected("OpenSSL does not provide HMAC-" + std::string(in->digest));
  return p;
}

Prf::Prf(const Prf& o)
    : id_(o.id_),
      out_size_(o.out_size_),
      proto_(o.proto_ ? EVP_MAC_CTX_dup(o.proto_.get()) : nullptr) {}

Prf& Prf::operator=(const Prf& o) {
  if (this != &o) *this = Prf(o);
  return *this;
}

bool Prf::compute(std::span<const uint8_t> key,
                  std::initializer_list<std::span<const uint8_t>> data, uint8_t* out) const {
  if (!proto_) return false;
  MacCtxPtr ctx(EVP_MAC_CTX_dup(proto_.get()));
  if (!ctx || EVP_MAC_init(ctx.get(), key.empty() ? kNoKey : key.data(), key.size(), nullptr) != 1)
    return false;
  for (auto d : data)
    if (!d.empty() && EVP_MAC_update(ctx.get(), d.data(), d.size()) != 1) return false;
  size_t n = 0;
  return EVP_MAC_final(ctx.get(), out, &n, out_size_) == 1 && n == out_size_;
}

std::vector<uint8_t> Prf::compute(std::span<const uint8_t> key,
                                  std::span<const uint8_t> data) const {
  ByteVec out(out_size_);
  if (!compute(key, {data}, out.data())) return {};
  return out;
}

Expected<std::vector<uint8_t>, std::string> prf_plus(const Prf& prf, std::span<const uint8_t> key,
                                                     std::span<const uint8_t> seed, size_t len) {
  const size_t n = prf.out_size();
  if (n == 0) return unexpected(std::string("prf+ without a PRF"));
  const size_t blocks = (len + n - 1) / n;
  // §2.13: the counter is one octet, so prf+ ends at T255.
  if (blocks > 255)
    return unexpected("prf+ yields at most 255 blocks (" + num(255 * n) + " bytes with " +
                      std::string(prf_info(prf.id())->keyword) + "); " + num(len) +
                      " asked (RFC 7296 §2.13)");
  ByteVec out(blocks * n);
  for (size_t i = 0; i < blocks; ++i) {
    const uint8_t counter = static_cast<uint8_t>(i + 1);
    std::span<const uint8_t> prev;
    if (i > 0) prev = std::span<const uint8_t>(out.data() + (i - 1) * n, n);
    if (!prf.compute(key, {prev, seed, std::span<const uint8_t>(&counter, 1)},
                     out.data() + i * n)) {
      wipe(out);
      return unexpected(std::string("HMAC failed"));
    }
  }
  OPENSSL_cleanse(out.data() + len, out.size() - len);
  out.resize(len);
  return out;
}

// ---------------------------------------------------------------------------
// DiffieHellman

namespace {

const char* key_type(const DhInfo& d) {
  switch (d.kind) {
    case DhKind::Modp:
      return "DH";
    case DhKind::Ecp:
      return "EC";
    case DhKind::X25519:
      return "X25519";
  }
  return "";
}

// A key (or domain parameters) for group `d` from its parts: the group by
// name, or RFC 2409's p and g = 2 for groups 1 and 2 (§6.1, §6.2; OpenSSL
// has those primes but no group names for them), and optionally the private
// value and the public value (a number for MODP, 0x04|x|y for ECP).
PkeyPtr from_data(const DhInfo& d, int selection, const BIGNUM* priv, const BIGNUM* pub,
                  std::span<const uint8_t> ec_pub) {
  Ptr<OSSL_PARAM_BLD> bld(OSSL_PARAM_BLD_new());
  if (!bld) return nullptr;
  BnPtr p, g;  // must outlive OSSL_PARAM_BLD_to_param()
  if (d.ossl_group != nullptr) {
    if (OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, d.ossl_group, 0) !=
        1)
      return nullptr;
  } else {
    p.reset(d.id == DhId::Modp768 ? BN_get_rfc2409_prime_768(nullptr)
                                  : BN_get_rfc2409_prime_1024(nullptr));
    g.reset(BN_new());
    if (!p || !g || BN_set_word(g.get(), 2) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_FFC_P, p.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_FFC_G, g.get()) != 1)
      return nullptr;
  }
  // Private exponents of 2x the group's strength (NIST SP 800-56A §5.6.1.1.4,
  // RFC 3526 §8), at least 256 bits, instead of OpenSSL's full-length default:
  // both of a handshake's exponentiations get ~6x cheaper. Group 24's
  // exponent is already below its 256-bit q.
  if (d.kind == DhKind::Modp && d.id != DhId::Modp2048s256 &&
      selection == EVP_PKEY_KEY_PARAMETERS) {
    const int bits = d.public_len >= 512 ? 320 : 256;  // 4096-bit: strength ~152
    if (OSSL_PARAM_BLD_push_int(bld.get(), OSSL_PKEY_PARAM_DH_PRIV_LEN, bits) != 1) return nullptr;
  }
  if (priv && OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, priv) != 1)
    return nullptr;
  if (pub && OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, pub) != 1) return nullptr;
  if (!ec_pub.empty() && OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY,
                                                          ec_pub.data(), ec_pub.size()) != 1)
    return nullptr;
  Ptr<OSSL_PARAM> params(OSSL_PARAM_BLD_to_param(bld.get()));
  Ptr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_name(nullptr, key_type(d), nullptr));
  EVP_PKEY* key = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &key, selection, params.get()) != 1)
    return nullptr;
  return PkeyPtr(key);
}

// The group's domain parameters, built once per group (building an EC
// group from its name is a measurable part of an ECP-256 handshake). The
// keys are shared read-only; OpenSSL reference-counts them.
EVP_PKEY* domain_params(const DhInfo& d) {
  static std::mutex mu;
  static std::map<DhId, PkeyPtr> cache;
  std::lock_guard lk(mu);
  auto it = cache.find(d.id);
  if (it != cache.end()) return it->second.get();
  PkeyPtr domain = from_data(d, EVP_PKEY_KEY_PARAMETERS, nullptr, nullptr, {});
  if (!domain) return nullptr;
  return cache.emplace(d.id, std::move(domain)).first->second.get();
}

BnPtr get_bn(const EVP_PKEY* key, const char* name) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &bn) != 1) return nullptr;
  return BnPtr(bn);
}

std::string kw(const DhInfo& d) {
  return std::string(d.keyword);
}

}  // namespace

size_t public_size(DhId id) {
  const DhInfo* d = dh_info(id);
  return d ? d->public_len : 0;
}

DiffieHellman::~DiffieHellman() = default;

bool DiffieHellman::load_public() {
  const DhInfo& d = *info_;
  pub_.assign(d.public_len, 0);
  switch (d.kind) {
    case DhKind::Modp: {
      p_ = get_bn(key_.get(), OSSL_PKEY_PARAM_FFC_P);
      q_ = get_bn(key_.get(), OSSL_PKEY_PARAM_FFC_Q);
      if (p_ && !q_) {
        // Groups 1 and 2 are built without q; their primes are safe (RFC
        // 2409 §6), so q = (p-1)/2.
        q_.reset(BN_new());
        if (!q_ || BN_rshift1(q_.get(), p_.get()) != 1) return false;
      }
      BnPtr y = get_bn(key_.get(), OSSL_PKEY_PARAM_PUB_KEY);
      // §3.4: the value is padded with zeros on the left to the prime's length.
      return p_ && y && static_cast<size_t>(BN_num_bytes(p_.get())) == d.public_len &&
             BN_bn2binpad(y.get(), pub_.data(), static_cast<int>(pub_.size())) ==
                 static_cast<int>(d.public_len);
    }
    case DhKind::Ecp: {
      // OpenSSL encodes 0x04 | x | y, coordinates padded to the field size;
      // RFC 5903 §7 sends x | y.
      uint8_t buf[1 + 2 * 66];
      size_t len = 0;
      if (EVP_PKEY_get_octet_string_param(key_.get(), OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, buf,
                                          sizeof(buf), &len) != 1 ||
          len != 1 + d.public_len || buf[0] != 0x04)
        return false;
      std::memcpy(pub_.data(), buf + 1, d.public_len);
      return true;
    }
    case DhKind::X25519: {
      size_t len = pub_.size();
      return EVP_PKEY_get_raw_public_key(key_.get(), pub_.data(), &len) == 1 && len == d.public_len;
    }
  }
  return false;
}

Expected<std::unique_ptr<DiffieHellman>, std::string> DiffieHellman::create(DhId id) {
  const DhInfo* d = dh_info(id);
  if (d == nullptr)
    return unexpected("unknown Diffie-Hellman group " + std::to_string(static_cast<uint16_t>(id)));
  esp::load_providers();
  Ptr<EVP_PKEY_CTX> ctx;
  if (d->kind == DhKind::X25519) {
    ctx.reset(EVP_PKEY_CTX_new_from_name(nullptr, "X25519", nullptr));
  } else {
    EVP_PKEY* domain = domain_params(*d);
    if (!domain) return unexpected("OpenSSL does not provide " + kw(*d));
    ctx.reset(EVP_PKEY_CTX_new_from_pkey(nullptr, domain, nullptr));
  }
  EVP_PKEY* key = nullptr;
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_keygen(ctx.get(), &key) != 1)
    return unexpected("cannot generate a " + kw(*d) + " key pair");
  std::unique_ptr<DiffieHellman> dh(new DiffieHellman());
  dh->info_ = d;
  dh->key_.reset(key);
  if (!dh->load_public()) return unexpected("cannot encode the " + kw(*d) + " public value");
  return dh;
}

Expected<std::unique_ptr<DiffieHellman>, std::string> DiffieHellman::create_with_private(
    DhId id, std::span<const uint8_t> priv) {
  const DhInfo* d = dh_info(id);
  if (d == nullptr)
    return unexpected("unknown Diffie-Hellman group " + std::to_string(static_cast<uint16_t>(id)));
  if (priv.empty()) return unexpected(std::string("empty private value"));
  esp::load_providers();
  PkeyPtr key;
  if (d->kind == DhKind::X25519) {
    if (priv.size() != 32) return unexpected(std::string("an X25519 private value is 32 bytes"));
    key.reset(EVP_PKEY_new_raw_private_key_ex(nullptr, "X25519", nullptr, priv.data(), 32));
  } else {
    BnPtr x(BN_bin2bn(priv.data(), static_cast<int>(priv.size()), BN_secure_new()));
    Ptr<BN_CTX> bn_ctx(BN_CTX_new());
    if (!x || !bn_ctx) return unexpected(std::string("out of memory"));
    if (d->kind == DhKind::Modp) {
      PkeyPtr domain = from_data(*d, EVP_PKEY_KEY_PARAMETERS, nullptr, nullptr, {});
      if (!domain) return unexpected("OpenSSL does not provide " + kw(*d));
      BnPtr p = get_bn(domain.get(), OSSL_PKEY_PARAM_FFC_P);
      BnPtr g = get_bn(domain.get(), OSSL_PKEY_PARAM_FFC_G);
      BnPtr y(BN_new());
      if (!p || !g || !y || BN_mod_exp(y.get(), g.get(), x.get(), p.get(), bn_ctx.get()) != 1)
        return unexpected("cannot compute the " + kw(*d) + " public value");
      key = from_data(*d, EVP_PKEY_KEYPAIR, x.get(), y.get(), {});
    } else {
      Ptr<EC_GROUP> group(EC_GROUP_new_by_curve_name(EC_curve_nist2nid(d->ossl_group)));
      Ptr<EC_POINT> point(group ? EC_POINT_new(group.get()) : nullptr);
      uint8_t buf[1 + 2 * 66];
      size_t len = 0;
      if (point &&
          EC_POINT_mul(group.get(), point.get(), x.get(), nullptr, nullptr, bn_ctx.get()) == 1)
        len = EC_POINT_point2oct(group.get(), point.get(), POINT_CONVERSION_UNCOMPRESSED, buf,
                                 sizeof(buf), bn_ctx.get());
      if (len == 0) return unexpected("cannot compute the " + kw(*d) + " public value");
      key = from_data(*d, EVP_PKEY_KEYPAIR, x.get(), nullptr, std::span<const uint8_t>(buf, len));
    }
  }
  if (!key) return unexpected("OpenSSL rejects this " + kw(*d) + " private value");
  std::unique_ptr<DiffieHellman> dh(new DiffieHellman());
  dh->info_ = d;
  dh->key_ = std::move(key);
  if (!dh->load_public()) return unexpected("cannot encode the " + kw(*d) + " public value");
  return dh;
}

Expected<std::vector<uint8_t>, std::string> DiffieHellman::shared_secret(
    std::span<const uint8_t> peer_public) const {
  const DhInfo& d = *info_;
  if (peer_public.size() != d.public_len)
    return unexpected("wrong length: " + kw(d) + " KE data is " + num(d.public_len) +
                      " bytes, got " + num(peer_public.size()));
  // Validation of the peer's value as RFC 6989 asks (and NIST SP 800-56A
  // §5.6.2.3): reusing our key with an unchecked value can leak it.
  PkeyPtr peer;
  switch (d.kind) {
    case DhKind::Modp: {
      BnPtr y(BN_bin2bn(peer_public.data(), static_cast<int>(peer_public.size()), nullptr));
      BnPtr p_minus_1(BN_dup(p_.get()));
      if (!y || !p_minus_1 || BN_sub_word(p_minus_1.get(), 1) != 1)
        return unexpected(std::string("out of memory"));
      // §2.1: 1 < y < p-1 (0, 1 and p-1 give a secret the attacker knows).
      if (BN_cmp(y.get(), BN_value_one()) <= 0 || BN_cmp(y.get(), p_minus_1.get()) >= 0)
        return unexpected("peer's " + kw(d) +
                          " public value is out of range (1 < y < p-1, RFC 6989 §2.1)");
      // §2.2: group 24's prime is not safe, so a value in a small subgroup
      // would reveal the private exponent modulo its order: require y^q = 1.
      // For the safe primes of the other MODP groups the range check is
      // all §2.1 asks; the full check would double the responder's cost of
      // an IKE_SA_INIT (a second 2048-bit exponentiation).
      if (d.id == DhId::Modp2048s256) {
        Ptr<BN_CTX> bn_ctx(BN_CTX_new());
        BnPtr r(BN_new());
        if (!bn_ctx || !r || BN_mod_exp(r.get(), y.get(), q_.get(), p_.get(), bn_ctx.get()) != 1)
          return unexpected(std::string("cannot check the subgroup"));
        if (!BN_is_one(r.get()))
          return unexpected("peer's " + kw(d) +
                            " public value is not in the prime-order subgroup (y^q != 1, RFC "
                            "6989 §2.2)");
      }
      // The cached group plus the peer's value (big-endian, as sent): no
      // group built from its name per handshake.
      EVP_PKEY* domain = domain_params(d);
      peer.reset(EVP_PKEY_new());
      if (!domain || !peer || EVP_PKEY_copy_parameters(peer.get(), domain) != 1 ||
          EVP_PKEY_set1_encoded_public_key(peer.get(), peer_public.data(), peer_public.size()) != 1)
        return unexpected("OpenSSL rejects the peer's " + kw(d) + " public value");
      break;
    }
    case DhKind::Ecp: {
      // §2.3: the point must be on the curve and not the point at
      // infinity; with cofactor 1 (P-256/384/521) that is the whole check
      // (the quick check: no multiplication by the order).
      uint8_t buf[1 + 2 * 66];
      buf[0] = 0x04;
      std::memcpy(buf + 1, peer_public.data(), peer_public.size());
      EVP_PKEY* domain = domain_params(d);
      peer.reset(EVP_PKEY_new());
      if (!domain || !peer || EVP_PKEY_copy_parameters(peer.get(), domain) != 1 ||
          EVP_PKEY_set1_encoded_public_key(peer.get(), buf, 1 + peer_public.size()) != 1)
        return unexpected("peer's " + kw(d) + " public value is not a point on the curve (RFC " +
                          "6989 §2.3)");
      Ptr<EVP_PKEY_CTX> check(EVP_PKEY_CTX_new_from_pkey(nullptr, peer.get(), nullptr));
      if (!check || EVP_PKEY_public_check_quick(check.get()) != 1)
        return unexpected("peer's " + kw(d) + " public value is not a point on the curve (RFC " +
                          "6989 §2.3)");
      break;
    }
    case DhKind::X25519:
      peer.reset(EVP_PKEY_new_raw_public_key_ex(nullptr, "X25519", nullptr, peer_public.data(),
                                                peer_public.size()));
      if (!peer) return unexpected(std::string("OpenSSL rejects the peer's curve25519 value"));
      break;
  }

  Ptr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key_.get(), nullptr));
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1)
    return unexpected("cannot set up " + kw(d) + " key agreement");
  // §2.14: g^ir is as long as the prime, leading zeros included.
  if (d.kind == DhKind::Modp && EVP_PKEY_CTX_set_dh_pad(ctx.get(), 1) != 1)
    return unexpected(std::string("cannot ask OpenSSL for a padded DH secret"));
  ByteVec secret;
  size_t len = 0;
  // MODP and ECP values were checked above; OpenSSL checks X25519's.
  const int validate = d.kind == DhKind::X25519 ? 1 : 0;
  bool ok = EVP_PKEY_derive_set_peer_ex(ctx.get(), peer.get(), validate) == 1 &&
            EVP_PKEY_derive(ctx.get(), nullptr, &len) == 1;
  if (ok) {
    secret.resize(len);
    ok = EVP_PKEY_derive(ctx.get(), secret.data(), &len) == 1 && len == d.shared_len;
    secret.resize(len);
  }
  bool zero = true;
  for (uint8_t b : secret) zero = zero && b == 0;
  if (d.kind == DhKind::X25519 && (!ok || zero)) {
    // OpenSSL refuses the all-zero result itself; either way RFC 8031 §2
    // (after RFC 7748 §6.1) says to abort: the peer sent a low-order point.
    wipe(secret);
    return unexpected(std::string(
        "peer's curve25519 value gives the all-zero shared secret (low-order point, RFC 8031 §2)"));
  }
  if (!ok) {
    wipe(secret);
    return unexpected("cannot compute the " + kw(d) + " shared secret");
  }
  return secret;
}

// ---------------------------------------------------------------------------
// Key derivation

namespace {

// Where each key goes in the keying material, in order.
using Slices = std::initializer_list<std::pair<std::vector<uint8_t>*, size_t>>;

void wipe_all(std::initializer_list<std::vector<uint8_t>*> vs) {
  for (auto* v : vs) wipe(*v);
}

// §2.14: {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}
//   = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr).
Expected<IkeKeys, std::string> split_ike_keys(const Prf& prf, std::span<const uint8_t> skeyseed,
                                              std::span<const uint8_t> ni,
                                              std::span<const uint8_t> nr, uint64_t spi_i,
                                              uint64_t spi_r, size_t encr_key_len,
                                              size_t integ_key_len) {
  ByteVec seed;
  seed.reserve(ni.size() + nr.size() + 16);
  append(seed, ni);
  append(seed, nr);
  seed.resize(seed.size() + 16);
  store_be64(seed.data() + seed.size() - 16, spi_i);
  store_be64(seed.data() + seed.size() - 8, spi_r);
  const size_t np = prf.out_size();
  auto km = prf_plus(prf, skeyseed, seed, 3 * np + 2 * integ_key_len + 2 * encr_key_len);
  if (!km) return unexpected(km.error());
  IkeKeys k;
  const uint8_t* p = km->data();
  for (auto [v, n] : Slices{{&k.sk_d, np},
                            {&k.sk_ai, integ_key_len},
                            {&k.sk_ar, integ_key_len},
                            {&k.sk_ei, encr_key_len},
                            {&k.sk_er, encr_key_len},
                            {&k.sk_pi, np},
                            {&k.sk_pr, np}}) {
    v->assign(p, p + n);
    p += n;
  }
  wipe(*km);
  return k;
}

}  // namespace

IkeKeys& IkeKeys::operator=(const IkeKeys& o) {
  if (this == &o) return *this;
  wipe_all({&sk_d, &sk_ai, &sk_ar, &sk_ei, &sk_er, &sk_pi, &sk_pr});
  sk_d = o.sk_d;
  sk_ai = o.sk_ai;
  sk_ar = o.sk_ar;
  sk_ei = o.sk_ei;
  sk_er = o.sk_er;
  sk_pi = o.sk_pi;
  sk_pr = o.sk_pr;
  return *this;
}

IkeKeys& IkeKeys::operator=(IkeKeys&& o) noexcept {
  if (this == &o) return *this;
  wipe_all({&sk_d, &sk_ai, &sk_ar, &sk_ei, &sk_er, &sk_pi, &sk_pr});
  sk_d = std::move(o.sk_d);
  sk_ai = std::move(o.sk_ai);
  sk_ar = std::move(o.sk_ar);
  sk_ei = std::move(o.sk_ei);
  sk_er = std::move(o.sk_er);
  sk_pi = std::move(o.sk_pi);
  sk_pr = std::move(o.sk_pr);
  return *this;
}

IkeKeys::~IkeKeys() {
  wipe_all({&sk_d, &sk_ai, &sk_ar, &sk_ei, &sk_er, &sk_pi, &sk_pr});
}

ChildKeys& ChildKeys::operator=(const ChildKeys& o) {
  if (this == &o) return *this;
  wipe_all({&encr_i, &integ_i, &encr_r, &integ_r});
  encr_i = o.encr_i;
  integ_i = o.integ_i;
  encr_r = o.encr_r;
  integ_r = o.integ_r;
  return *this;
}

ChildKeys& ChildKeys::operator=(ChildKeys&& o) noexcept {
  if (this == &o) return *this;
  wipe_all({&encr_i, &integ_i, &encr_r, &integ_r});
  encr_i = std::move(o.encr_i);
  integ_i = std::move(o.integ_i);
  encr_r = std::move(o.encr_r);
  integ_r = std::move(o.integ_r);
  return *this;
}

ChildKeys::~ChildKeys() {
  wipe_all({&encr_i, &integ_i, &encr_r, &integ_r});
}

Expected<IkeKeys, std::string> derive_ike_keys(PrfId prf_id, std::span<const uint8_t> ni,
                                               std::span<const uint8_t> nr,
                                               std::span<const uint8_t> g_ir, uint64_t spi_i,
                                               uint64_t spi_r, size_t encr_key_len,
                                               size_t integ_key_len) {
  auto prf = Prf::create(prf_id);
  if (!prf) return unexpected(prf.error());
  if (ni.empty() || nr.empty() || g_ir.empty())
    return unexpected(std::string("IKE key derivation needs both nonces and g^ir"));
  // SKEYSEED = prf(Ni | Nr, g^ir): for HMAC the nonces together are the key.
  ByteVec nonces;
  append(nonces, ni);
  append(nonces, nr);
  ByteVec skeyseed = prf->compute(nonces, g_ir);
  if (skeyseed.empty()) return unexpected(std::string("HMAC failed"));
  auto keys = split_ike_keys(*prf, skeyseed, ni, nr, spi_i, spi_r, encr_key_len, integ_key_len);
  wipe(skeyseed);
  return keys;
}

Expected<IkeKeys, std::string> derive_rekeyed_ike_keys(
    PrfId old_prf, std::span<const uint8_t> old_sk_d, PrfId new_prf, std::span<const uint8_t> g_ir,
    std::span<const uint8_t> ni, std::span<const uint8_t> nr, uint64_t spi_i, uint64_t spi_r,
    size_t encr_key_len, size_t integ_key_len) {
  auto oldp = Prf::create(old_prf);
  if (!oldp) return unexpected(oldp.error());
  auto newp = Prf::create(new_prf);
  if (!newp) return unexpected(newp.error());
  if (g_ir.empty())
    return unexpected(std::string("an IKE SA rekey needs a new g^ir (RFC 7296 §1.3.2)"));
  if (old_sk_d.empty() || ni.empty() || nr.empty())
    return unexpected(std::string("IKE SA rekey needs the old SK_d and both nonces"));
  // §2.18: SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr), old SA's PRF.
  ByteVec skeyseed(oldp->out_size());
  if (!oldp->compute(old_sk_d, {g_ir, ni, nr}, skeyseed.data()))
    return unexpected(std::string("HMAC failed"));
  auto keys = split_ike_keys(*newp, skeyseed, ni, nr, spi_i, spi_r, encr_key_len, integ_key_len);
  wipe(skeyseed);
  return keys;
}

Expected<ChildKeys, std::string> derive_child_keys(const Prf& prf, std::span<const uint8_t> sk_d,
                                                   std::span<const uint8_t> g_ir,
                                                   std::span<const uint8_t> ni,
                                                   std::span<const uint8_t> nr, size_t encr_key_len,
                                                   size_t integ_key_len) {
  if (sk_d.empty() || ni.empty() || nr.empty())
    return unexpected(std::string("CHILD_SA key derivation needs SK_d and both nonces"));
  ByteVec seed;  // [g^ir (new) |] Ni | Nr
  seed.reserve(g_ir.size() + ni.size() + nr.size());
  append(seed, g_ir);
  append(seed, ni);
  append(seed, nr);
  auto km = prf_plus(prf, sk_d, seed, 2 * (encr_key_len + integ_key_len));
  wipe(seed);
  if (!km) return unexpected(km.error());
  ChildKeys k;
  const uint8_t* p = km->data();
  for (auto [v, n] : Slices{{&k.encr_i, encr_key_len},
                            {&k.integ_i, integ_key_len},
                            {&k.encr_r, encr_key_len},
                            {&k.integ_r, integ_key_len}}) {
    v->assign(p, p + n);
    p += n;
  }
  wipe(*km);
  return k;
}

// ---------------------------------------------------------------------------
// SkCipher

Expected<SkCipher, std::string> SkCipher::create(EncrId encr, uint16_t key_bits, IntegId integ,
                                                 std::span<const uint8_t> encr_key,
                                                 std::span<const uint8_t> integ_key) {
  const EncrInfo* e = encr_info(encr, key_bits);
  if (e == nullptr)
    return unexpected("unsupported encryption transform " + to_string(encr, key_bits));
  if (encr == EncrId::Null)
    return unexpected(std::string("ENCR_NULL cannot protect an IKE SA (RFC 2410 is for ESP)"));
  const IntegInfo* i = integ_info(integ);
  if (i == nullptr) return unexpected("unsupported integrity transform " + to_string(integ));
  const std::string name(e->keyword);
  if (e->aead && integ != IntegId::None)
    return unexpected(name +
                      " is an AEAD transform: no integrity transform goes with it (RFC 5282)");
  if (!e->aead && integ == IntegId::None)
    return unexpected(name + " needs an integrity transform (RFC 7296 §3.3)");
  if (encr_key.size() != e->key_len)
    return unexpected("SK_e for " + name + " is " + num(e->key_len) + " bytes, got " +
                      num(encr_key.size()));
  if (integ_key.size() != i->key_len)
    return unexpected("SK_a for " + std::string(i->keyword) + " is " + num(i->key_len) +
                      " bytes, got " + num(integ_key.size()));
  esp::load_providers();
  Ptr<EVP_CIPHER> cipher(detail::fetch_cipher(e->ossl));
  if (!cipher) return unexpected("OpenSSL does not provide " + std::string(e->ossl));

  SkCipher c;
  c.aead_ = e->aead;
  c.iv_len_ = e->iv_len;
  c.block_ = e->block;
  c.icv_len_ = e->aead ? e->icv_len : i->icv_len;
  const size_t klen = e->key_len - e->salt_len;
  if (e->salt_len) std::memcpy(c.salt_, encr_key.data() + klen, e->salt_len);  // RFC 5282 §4
  for (int enc : {1, 0}) {
    CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
    if (!ctx || EVP_CipherInit_ex2(ctx.get(), cipher.get(), nullptr, nullptr, enc, nullptr) != 1)
      return unexpected("cannot initialise " + std::string(e->ossl));
    // RFC 5282 §4: the nonce is salt (4) | explicit IV (8).
    if (e->aead && EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_SET_IVLEN, 12, nullptr) != 1)
      return unexpected(std::string("cannot set the GCM nonce length"));
    if (EVP_CipherInit_ex2(ctx.get(), nullptr, encr_key.data(), nullptr, enc, nullptr) != 1)
      return unexpected("cannot key " + std::string(e->ossl));
    EVP_CIPHER_CTX_set_padding(ctx.get(), 0);  // §3.14 padding is ours
    (enc ? c.enc_ : c.dec_) = std::move(ctx);
  }
  if (e->aead) {
    if (RAND_bytes(reinterpret_cast<uint8_t*>(&c.next_iv_), sizeof(c.next_iv_)) != 1)
      return unexpected(std::string("no randomness for the IV counter"));
  } else {
    Ptr<EVP_MAC> mac(fetch_hmac());
    if (mac) c.mac_.reset(EVP_MAC_CTX_new(mac.get()));
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(i->digest), 0),
        OSSL_PARAM_construct_end()};
    if (!c.mac_ || EVP_MAC_init(c.mac_.get(), integ_key.data(), integ_key.size(), params) != 1 ||
        EVP_MAC_CTX_get_mac_size(c.mac_.get()) < c.icv_len_)
      return unexpected("OpenSSL does not provide HMAC-" + std::string(i->digest));
  }
  return c;
}

SkCipher::~SkCipher() {
  OPENSSL_cleanse(salt_, sizeof(salt_));
}

size_t SkCipher::overhead_for(size_t plaintext_len) const {
  const size_t pad = (block_ - (plaintext_len + 1) % block_) % block_;
  return iv_len_ + pad + 1 + icv_len_;
}

bool SkCipher::mac(std::span<const uint8_t> data, uint8_t* icv) const {
  if (!mac_) return false;                     // moved from
  MacCtxPtr ctx(EVP_MAC_CTX_dup(mac_.get()));  // keyed once in create()
  uint8_t full[EVP_MAX_MD_SIZE];
  size_t n = 0;
  if (!ctx || EVP_MAC_update(ctx.get(), data.data(), data.size()) != 1 ||
      EVP_MAC_final(ctx.get(), full, &n, sizeof(full)) != 1 || n < icv_len_)
    return false;
  std::memcpy(icv, full, icv_len_);  // §3.14 / RFC 4868 §2.3: truncated tag
  return true;
}

Expected<void, std::string> SkCipher::seal(std::vector<uint8_t>& msg, size_t aad_len,
                                           std::span<const uint8_t> plaintext) const {
  if (msg.size() != aad_len)
    return unexpected(std::string("seal: the message must end with the SK payload header"));
  // §3.14: Padding then Pad Length make the plaintext a whole number of
  // blocks; the minimum is sent (any value is allowed, zeros here).
  const size_t pad = (block_ - (plaintext.size() + 1) % block_) % block_;
  const size_t body = plaintext.size() + pad + 1;
  msg.resize(aad_len + iv_len_ + body + icv_len_);
  uint8_t* iv = msg.data() + aad_len;
  uint8_t* ct = iv + iv_len_;
  auto fail = [&](const char* what) {
    OPENSSL_cleanse(msg.data() + aad_len, msg.size() - aad_len);
    msg.resize(aad_len);
    return unexpected(std::string(what));
  };
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!enc_ || !ctx || EVP_CIPHER_CTX_copy(ctx.get(), enc_.get()) != 1)
    return fail("cannot copy the cipher context");
  int n = 0;
  if (aead_) {
    store_be64(iv, next_iv_++);
    uint8_t nonce[12];
    std::memcpy(nonce, salt_, 4);
    std::memcpy(nonce + 4, iv, 8);
    if (EVP_EncryptInit_ex2(ctx.get(), nullptr, nullptr, nonce, nullptr) != 1 ||
        EVP_EncryptUpdate(ctx.get(), nullptr, &n, msg.data(), static_cast<int>(aad_len)) != 1)
      return fail("cannot start AES-GCM");
  } else if (RAND_bytes(iv, static_cast<int>(iv_len_)) != 1 ||
             EVP_EncryptInit_ex2(ctx.get(), nullptr, nullptr, iv, nullptr) != 1) {
    return fail("cannot start the cipher");
  }
  uint8_t trailer[256] = {};
  trailer[pad] = static_cast<uint8_t>(pad);
  size_t off = 0;
  if (!plaintext.empty()) {
    if (EVP_EncryptUpdate(ctx.get(), ct, &n, plaintext.data(),
                          static_cast<int>(plaintext.size())) != 1)
      return fail("encryption failed");
    off += static_cast<size_t>(n);
  }
  if (EVP_EncryptUpdate(ctx.get(), ct + off, &n, trailer, static_cast<int>(pad + 1)) != 1)
    return fail("encryption failed");
  off += static_cast<size_t>(n);
  if (EVP_EncryptFinal_ex(ctx.get(), ct + off, &n) != 1) return fail("encryption failed");
  off += static_cast<size_t>(n);
  if (off != body) return fail("encryption failed");
  uint8_t* icv = ct + body;
  if (aead_) {
    if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_GET_TAG, static_cast<int>(icv_len_), icv) != 1)
      return fail("cannot read the GCM tag");
  } else if (!mac(std::span<const uint8_t>(msg.data(), static_cast<size_t>(icv - msg.data())),
                  icv)) {
    return fail("HMAC failed");
  }
  return {};
}

Expected<std::vector<uint8_t>, std::string> SkCipher::open(std::span<const uint8_t> msg,
                                                           size_t body_off) const {
  const auto err = [](const char* what) { return unexpected(std::string(what)); };
  if (body_off > msg.size()) return err("truncated");
  const size_t body = msg.size() - body_off;
  if (body < iv_len_ + (aead_ ? 1 : block_) + icv_len_) return err("truncated");
  const uint8_t* iv = msg.data() + body_off;
  const uint8_t* ct = iv + iv_len_;
  const size_t ct_len = body - iv_len_ - icv_len_;
  const uint8_t* icv = ct + ct_len;

  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!dec_ || !ctx || EVP_CIPHER_CTX_copy(ctx.get(), dec_.get()) != 1)
    return err("cannot copy the cipher context");
  ByteVec pt(ct_len);
  int n = 0;
  if (!aead_) {
    // The checksum first, over everything up to it, compared in constant
    // time; nothing is decrypted unless it matches.
    uint8_t want[EVP_MAX_MD_SIZE];
    if (!mac(msg.first(msg.size() - icv_len_), want)) return err("HMAC failed");
    if (CRYPTO_memcmp(want, icv, icv_len_) != 0) return err("integrity check failed");
    if (ct_len % block_ != 0) return err("bad padding");
    int m = 0;
    if (EVP_DecryptInit_ex2(ctx.get(), nullptr, nullptr, iv, nullptr) != 1 ||
        EVP_DecryptUpdate(ctx.get(), pt.data(), &n, ct, static_cast<int>(ct_len)) != 1 ||
        EVP_DecryptFinal_ex(ctx.get(), pt.data() + n, &m) != 1 ||
        static_cast<size_t>(n + m) != ct_len) {
      wipe(pt);
      return err("decryption failed");
    }
  } else {
    uint8_t nonce[12];
    std::memcpy(nonce, salt_, 4);
    std::memcpy(nonce + 4, iv, 8);
    int m = 0;
    // RFC 5282 §5: the associated data is everything before the IV.
    const bool ok =
        EVP_DecryptInit_ex2(ctx.get(), nullptr, nullptr, nonce, nullptr) == 1 &&
        EVP_DecryptUpdate(ctx.get(), nullptr, &n, msg.data(), static_cast<int>(body_off)) == 1 &&
        EVP_DecryptUpdate(ctx.get(), pt.data(), &n, ct, static_cast<int>(ct_len)) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_SET_TAG, static_cast<int>(icv_len_),
                            const_cast<uint8_t*>(icv)) == 1 &&
        EVP_DecryptFinal_ex(ctx.get(), pt.data() + n, &m) == 1;
    if (!ok) {
      wipe(pt);
      return err("integrity check failed");
    }
  }
  // §3.14: the receiver accepts any Pad Length that fits.
  const size_t pad = pt.back();
  if (pad + 1 > pt.size()) {
    wipe(pt);
    return err("bad padding");
  }
  OPENSSL_cleanse(pt.data() + pt.size() - pad - 1, pad + 1);
  pt.resize(pt.size() - pad - 1);
  return pt;
}

// ---------------------------------------------------------------------------
// AUTH

std::vector<uint8_t> signed_octets(std::span<const uint8_t> real_message,
                                   std::span<const uint8_t> peer_nonce, const Prf& prf,
                                   std::span<const uint8_t> sk_p,
                                   std::span<const uint8_t> id_payload_body) {
  ByteVec maced_id = prf.compute(sk_p, id_payload_body);
  if (maced_id.empty()) return {};
  ByteVec out;
  out.reserve(real_message.size() + peer_nonce.size() + maced_id.size());
  append(out, real_message);
  append(out, peer_nonce);
  append(out, maced_id);
  return out;
}

std::vector<uint8_t> psk_auth(const Prf& prf, std::span<const uint8_t> psk,
                              std::span<const uint8_t> signed_octets) {
  // §2.15: the 17 ASCII characters, no terminating NUL.
  static constexpr char kKeyPad[] = "Key Pad for IKEv2";
  ByteVec k = prf.compute(psk, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(kKeyPad),
                                                        sizeof(kKeyPad) - 1));
  if (k.empty()) return {};
  ByteVec auth = prf.compute(k, signed_octets);
  wipe(k);
  return auth;
}

bool psk_auth_matches(const Prf& prf, std::span<const uint8_t> psk,
                      std::span<const uint8_t> signed_octets, std::span<const uint8_t> received) {
  ByteVec want = psk_auth(prf, psk, signed_octets);
  const bool ok = !want.empty() && want.size() == received.size() &&
                  CRYPTO_memcmp(want.data(), received.data(), want.size()) == 0;
  wipe(want);
  return ok;
}

}  // namespace xgw::ike
