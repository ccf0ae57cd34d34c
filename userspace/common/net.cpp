#include "common/net.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace xgw::net {

std::optional<IpAddr> IpAddr::parse(std::string_view s) {
  if (s.empty() || s.size() > INET6_ADDRSTRLEN) return std::nullopt;
  char buf[INET6_ADDRSTRLEN + 1];
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = '\0';
  IpAddr a;
  if (s.find(':') == std::string_view::npos) {
    a.family = Family::V4;
    if (inet_pton(AF_INET, buf, a.bytes.data()) != 1) return std::nullopt;
  } else {
    a.family = Family::V6;
    if (inet_pton(AF_INET6, buf, a.bytes.data()) != 1) return std::nullopt;
  }
  return a;
}

std::string IpAddr::str() const {
  char buf[INET6_ADDRSTRLEN];
  const int af = family == Family::V4 ? AF_INET : AF_INET6;
  if (inet_ntop(af, bytes.data(), buf, sizeof buf) == nullptr) return "?";
  return buf;
}

uint32_t IpAddr::v4() const {
  return (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) | (uint32_t{bytes[2]} << 8) |
         bytes[3];
}

namespace {

// Keeps the first `len` bits of `a`, zeroing the rest.
IpAddr mask(const IpAddr& a, int len) {
  IpAddr m = a;
  for (int i = 0; i < 16; ++i) {
    const int lo = i * 8;
    if (len >= lo + 8) continue;
    if (len <= lo) {
      m.bytes[i] = 0;
    } else {
      m.bytes[i] &= static_cast<uint8_t>(0xff << (8 - (len - lo)));
    }
  }
  return m;
}

}  // namespace

Expected<Cidr, std::string> Cidr::parse(std::string_view s) {
  const auto slash = s.find('/');
  if (slash == std::string_view::npos) {
    return unexpected(std::string("'") + std::string(s) +
                      "' is not a CIDR (expected address/prefix-length)");
  }
  auto addr = IpAddr::parse(s.substr(0, slash));
  if (!addr) return unexpected("'" + std::string(s) + "' has an invalid address");
  const auto lens = s.substr(slash + 1);
  unsigned len = 0;
  auto [p, ec] = std::from_chars(lens.data(), lens.data() + lens.size(), len);
  if (lens.empty() || ec != std::errc() || p != lens.data() + lens.size() ||
      len > static_cast<unsigned>(addr->bits()) || (lens.size() > 1 && lens[0] == '0')) {
    return unexpected("'" + std::string(s) + "' has an invalid prefix length");
  }
  Cidr c{mask(*addr, static_cast<int>(len)), static_cast<uint8_t>(len)};
  if (!(c.addr == *addr)) {
    return unexpected("'" + std::string(s) + "' has host bits set; did you mean " + c.str() + "?");
  }
  return c;
}

std::string Cidr::str() const {
  return addr.str() + "/" + std::to_string(len);
}

bool Cidr::contains(const IpAddr& a) const {
  return a.family == addr.family && mask(a, len) == addr;
}

bool Cidr::contains(const Cidr& o) const {
  return o.family() == family() && o.len >= len && mask(o.addr, len) == addr;
}

bool Cidr::overlaps(const Cidr& o) const {
  return contains(o) || o.contains(*this);
}

}  // namespace xgw::net
