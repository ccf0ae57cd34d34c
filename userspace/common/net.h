// IPv4/IPv6 addresses and prefixes for the control plane: parsing (strict,
// canonical), containment and overlap. Families are never mixed: a v4
// prefix neither contains nor overlaps a v6 one.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/expected.h"

namespace xgw::net {

enum class Family : uint8_t { V4 = 4, V6 = 6 };

struct IpAddr {
  Family family = Family::V4;
  std::array<uint8_t, 16> bytes{};  // v4 uses bytes[0..3], network order

  static std::optional<IpAddr> parse(std::string_view s);
  std::string str() const;
  int bits() const { return family == Family::V4 ? 32 : 128; }
  uint32_t v4() const;  // host order; only for V4
  bool operator==(const IpAddr&) const = default;
};

struct Cidr {
  IpAddr addr;  // the network address: host bits are zero
  uint8_t len = 0;

  // Accepts "a.b.c.d/n" or "x::/n". Host bits set is an error (the message
  // names the network the user probably meant); a bare address is an error.
  static Expected<Cidr, std::string> parse(std::string_view s);
  std::string str() const;
  Family family() const { return addr.family; }
  bool contains(const IpAddr& a) const;
  bool contains(const Cidr& other) const;
  bool overlaps(const Cidr& other) const;
  bool operator==(const Cidr&) const = default;
};

}  // namespace xgw::net
