#include "dataplane/dataplane.h"

#include <openssl/crypto.h>

#include <cstdio>

namespace xgw::dp {

SaSpec::~SaSpec() {
  if (!encr_key.empty()) OPENSSL_cleanse(encr_key.data(), encr_key.size());
  if (!integ_key.empty()) OPENSSL_cleanse(integ_key.data(), integ_key.size());
}

std::string spi_hex(uint32_t spi) {
  char b[12];
  std::snprintf(b, sizeof b, "%08x", spi);
  return b;
}

const char* to_string(Event::Kind k) {
  switch (k) {
    case Event::Kind::Acquire:
      return "acquire";
    case Event::Kind::SoftExpire:
      return "soft_expire";
    case Event::Kind::HardExpire:
      return "hard_expire";
    case Event::Kind::NatMapping:
      return "nat_mapping";
    case Event::Kind::SeqWrapSoon:
      return "seq_wrap_soon";
  }
  return "unknown";
}

const char* to_string(Event::Limit l) {
  switch (l) {
    case Event::Limit::None:
      return "none";
    case Event::Limit::Time:
      return "time";
    case Event::Limit::Bytes:
      return "bytes";
    case Event::Limit::Packets:
      return "packets";
  }
  return "unknown";
}

Expected<void, std::string> validate_mutable(const SaSpec& sa) {
  if (sa.local.family != sa.remote.family)
    return unexpected(std::string("local and remote addresses are of different families"));
  if (sa.encap == Encap::Udp && (sa.local_port == 0 || sa.remote_port == 0))
    return unexpected(std::string("UDP encapsulation needs both ports"));
  if (sa.replay_window > 65536) return unexpected(std::string("replay window is at most 65536"));
  const auto& lt = sa.lifetime;
  if ((lt.soft_bytes && lt.hard_bytes && lt.soft_bytes > lt.hard_bytes) ||
      (lt.soft_packets && lt.hard_packets && lt.soft_packets > lt.hard_packets) ||
      (lt.soft_seconds && lt.hard_seconds && lt.soft_seconds > lt.hard_seconds))
    return unexpected(std::string("a soft lifetime exceeds its hard lifetime"));
  return {};
}

Expected<void, std::string> validate(const SaSpec& sa) {
  const std::string who = "SA " + (sa.name.empty() ? std::to_string(sa.spi) : sa.name) + ": ";
  // RFC 4303 §2.1: 1–255 are reserved by IANA, 0 is local-only.
  if (sa.spi < 256) return unexpected(who + "SPI must be at least 256");
  const auto& ei = esp::info(sa.encr);
  const auto& ii = esp::info(sa.integ);
  if (sa.encr_key.size() != ei.key_len)
    return unexpected(who + std::string(ei.keyword) + " needs a " + std::to_string(ei.key_len) +
                      "-byte encryption key" + (ei.salt_len ? " (salt included)" : "") + ", got " +
                      std::to_string(sa.encr_key.size()));
  if (sa.integ_key.size() != ii.key_len)
    return unexpected(who + "integrity " + std::string(ii.keyword) + " needs a " +
                      std::to_string(ii.key_len) + "-byte key, got " +
                      std::to_string(sa.integ_key.size()));
  if (ei.aead && sa.integ != esp::Integ::None)
    return unexpected(who + std::string(ei.keyword) + " is AEAD; integrity must be none");
  if (sa.encr == esp::Encr::Null && sa.integ == esp::Integ::None)
    return unexpected(who + "null encryption needs an integrity algorithm");
  if (auto r = validate_mutable(sa); !r) return unexpected(who + r.error());
  return {};
}

Expected<void, std::string> check_update(const SaSpec& installed, const SaSpec& next) {
  if (next.dir != installed.dir || next.spi != installed.spi)
    return unexpected(std::string("an update names the SA by its SPI and direction"));
  if (next.tunnel_id != installed.tunnel_id || next.encr != installed.encr ||
      next.integ != installed.integ || next.esn != installed.esn)
    return unexpected(
        std::string("an update may change addresses, ports, encapsulation and lifetimes only"));
  if (next.replay_window != installed.replay_window)
    return unexpected(std::string("the replay window of an installed SA cannot change"));
  return validate_mutable(next);
}

void apply_update(SaSpec& installed, const SaSpec& next) {
  installed.name = next.name;
  installed.local = next.local;
  installed.remote = next.remote;
  installed.encap = next.encap;
  installed.local_port = next.local_port;
  installed.remote_port = next.remote_port;
  installed.lifetime = next.lifetime;
  installed.keepalive_seconds = next.keepalive_seconds;
}

Expected<void, std::string> validate(const PolicySpec& p) {
  if (p.src.family() != p.dst.family())
    return unexpected("policy " + std::to_string(p.id) +
                      ": source and destination families differ");
  if (p.tunnel_id == 0) return unexpected("policy " + std::to_string(p.id) + ": tunnel id is 0");
  return {};
}

}  // namespace xgw::dp
