// ESP transform cost per packet: EspCipher::seal/open against OpenSSL's
// bare EVP AES-GCM on the same payload (the floor any ESP built on OpenSSL
// pays), single thread, 1400-byte payloads. Prints a table.
#include <openssl/evp.h>

#include <chrono>
#include <cstdio>
#include <vector>

#include "esp/cipher.h"

using namespace xgw::esp;

namespace {

double now_ns() {
  return std::chrono::duration<double, std::nano>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Bare EVP: one GCM seal of `len` bytes with 8 bytes of AAD, tag out.
double evp_gcm_ns(size_t len, int iters) {
  EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, "AES-128-GCM", nullptr);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  unsigned char key[16] = {1}, iv[12] = {2}, aad[8] = {3}, tag[16];
  std::vector<unsigned char> in(len, 7), out(len + 32);
  EVP_EncryptInit_ex2(ctx, c, key, iv, nullptr);
  int n = 0;
  const double t0 = now_ns();
  for (int i = 0; i < iters; ++i) {
    iv[11] = static_cast<unsigned char>(i);
    EVP_EncryptInit_ex2(ctx, nullptr, nullptr, iv, nullptr);
    EVP_EncryptUpdate(ctx, nullptr, &n, aad, 8);
    EVP_EncryptUpdate(ctx, out.data(), &n, in.data(), static_cast<int>(len));
    EVP_EncryptFinal_ex(ctx, out.data() + n, &n);
    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag);
  }
  const double t = (now_ns() - t0) / iters;
  EVP_CIPHER_CTX_free(ctx);
  EVP_CIPHER_free(c);
  return t;
}

struct Row {
  const char* name;
  Encr e;
  Integ i;
};

}  // namespace

int main(int argc, char** argv) {
  const size_t len = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 1400;
  const int iters = 200000;
  std::printf("ESP transform cost, %zu-byte payload, %d packets, one thread\n\n", len, iters);
  std::printf("%-24s %12s %12s %12s %12s\n", "transform", "seal ns/pkt", "open ns/pkt",
              "seal Gbit/s", "open Gbit/s");
  std::printf("%-24s %12.0f %12s %12.2f %12s\n", "OpenSSL EVP AES-128-GCM", evp_gcm_ns(len, iters),
              "-", len * 8 / evp_gcm_ns(len, iters), "-");
  const Row rows[] = {
      {"aes128gcm16", Encr::AesGcm16_128, Integ::None},
      {"aes256gcm16", Encr::AesGcm16_256, Integ::None},
      {"aes128-sha256", Encr::AesCbc128, Integ::HmacSha256_128},
      {"aes256-sha512", Encr::AesCbc256, Integ::HmacSha512_256},
      {"3des-sha1", Encr::TripleDesCbc, Integ::HmacSha1_96},
      {"sm4-sm3", Encr::Sm4Cbc, Integ::HmacSm3_256},
  };
  for (const Row& r : rows) {
    if (!available(r.e) || !available(r.i)) {
      std::printf("%-24s %12s\n", r.name, "unavailable");
      continue;
    }
    std::vector<uint8_t> ek(info(r.e).key_len, 0x11), ik(info(r.i).key_len, 0x22);
    auto c = EspCipher::create(r.e, r.i, ek, ik, false);
    if (!c) {
      std::printf("%-24s %s\n", r.name, c.error().c_str());
      continue;
    }
    const int n = r.e == Encr::TripleDesCbc ? iters / 20 : iters;
    std::vector<uint8_t> payload(len, 0x45), pkt(len + 128), out(len + 128);
    size_t plen = 0;
    const double t0 = now_ns();
    for (int k = 1; k <= n; ++k)
      plen = (*c)->seal(0x1234, static_cast<uint64_t>(k), payload, 4, pkt);
    const double seal = (now_ns() - t0) / n;
    size_t ol = 0;
    uint8_t nh = 0;
    const double t1 = now_ns();
    for (int k = 0; k < n; ++k)
      (*c)->open({pkt.data(), plen}, static_cast<uint64_t>(n), out, &ol, &nh);
    const double open = (now_ns() - t1) / n;
    std::printf("%-24s %12.0f %12.0f %12.2f %12.2f\n", r.name, seal, open, len * 8 / seal,
                len * 8 / open);
  }
  return 0;
}
