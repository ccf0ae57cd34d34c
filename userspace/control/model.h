// The control-plane objects of SPEC §2: VPN gateway, customer gateway and
// VPN connection (with SPD rules, IKE/IPsec policy, DPD, tunnels). Plain
// values; the rules that bind them live in control/rules.h, the JSON shape
// in control/codec.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/net.h"

namespace xgw::control {

// String <-> enum tables, one per enum, used by the codec and error messages.
template <typename E>
struct EnumName {
  E value;
  std::string_view name;
};

enum class GatewayType { Ipsec, Ssl };
enum class RouteStyle { Policy, Static, Bgp };
enum class IkeVersion { V1, V2 };
enum class NegotiationMode { Main, Aggressive };
enum class IdType { Ip, Fqdn };
enum class DpdMsg { SeqHashNotify, SeqNotifyHash };
enum class HaRole { Master, Slave };
enum class Encryption { Des, TripleDes, Aes128, Aes192, Aes256, Aes128Gcm16, Aes256Gcm16, Sm4 };
enum class Integrity { None, Md5, Sha1, Sha2_256, Sha2_384, Sha2_512, Sm3 };
// DH groups by IANA number; 0 is "disable" where PFS allows it.
enum class DhGroup : int {
  Disable = 0,
  G1 = 1,
  G2 = 2,
  G5 = 5,
  G14 = 14,
  G15 = 15,
  G16 = 16,
  G19 = 19,
  G20 = 20,
  G21 = 21,
  G24 = 24
};

inline constexpr EnumName<GatewayType> kGatewayTypes[] = {{GatewayType::Ipsec, "ipsec"},
                                                          {GatewayType::Ssl, "ssl"}};
inline constexpr EnumName<RouteStyle> kRouteStyles[] = {
    {RouteStyle::Policy, "POLICY"}, {RouteStyle::Static, "STATIC"}, {RouteStyle::Bgp, "BGP"}};
inline constexpr EnumName<IkeVersion> kIkeVersions[] = {{IkeVersion::V1, "v1"},
                                                        {IkeVersion::V2, "v2"}};
inline constexpr EnumName<NegotiationMode> kNegotiationModes[] = {
    {NegotiationMode::Main, "main"}, {NegotiationMode::Aggressive, "aggressive"}};
inline constexpr EnumName<IdType> kIdTypes[] = {{IdType::Ip, "ip"}, {IdType::Fqdn, "fqdn"}};
inline constexpr EnumName<DpdMsg> kDpdMsgs[] = {{DpdMsg::SeqHashNotify, "seq-hash-notify"},
                                                {DpdMsg::SeqNotifyHash, "seq-notify-hash"}};
inline constexpr EnumName<HaRole> kHaRoles[] = {{HaRole::Master, "master"},
                                                {HaRole::Slave, "slave"}};
inline constexpr EnumName<Encryption> kEncryptions[] = {{Encryption::Des, "des"},
                                                        {Encryption::TripleDes, "3des"},
                                                        {Encryption::Aes128, "aes-128"},
                                                        {Encryption::Aes192, "aes-192"},
                                                        {Encryption::Aes256, "aes-256"},
                                                        {Encryption::Aes128Gcm16, "aes-128-gcm-16"},
                                                        {Encryption::Aes256Gcm16, "aes-256-gcm-16"},
                                                        {Encryption::Sm4, "sm4"}};
inline constexpr EnumName<Integrity> kIntegrities[] = {{Integrity::None, "none"},
                                                       {Integrity::Md5, "md5"},
                                                       {Integrity::Sha1, "sha1"},
                                                       {Integrity::Sha2_256, "sha2-256"},
                                                       {Integrity::Sha2_384, "sha2-384"},
                                                       {Integrity::Sha2_512, "sha2-512"},
                                                       {Integrity::Sm3, "sm3"}};
inline constexpr EnumName<DhGroup> kDhGroups[] = {
    {DhGroup::Disable, "disable"}, {DhGroup::G1, "group1"},   {DhGroup::G2, "group2"},
    {DhGroup::G5, "group5"},       {DhGroup::G14, "group14"}, {DhGroup::G15, "group15"},
    {DhGroup::G16, "group16"},     {DhGroup::G19, "group19"}, {DhGroup::G20, "group20"},
    {DhGroup::G21, "group21"},     {DhGroup::G24, "group24"}};

template <typename E, size_t N>
constexpr std::optional<E> enum_from(const EnumName<E> (&table)[N], std::string_view s) {
  for (const auto& e : table)
    if (e.name == s) return e.value;
  return std::nullopt;
}
template <typename E, size_t N>
constexpr std::string_view enum_name(const EnumName<E> (&table)[N], E v) {
  for (const auto& e : table)
    if (e.value == v) return e.name;
  return "?";
}
// "a, b, c": the accepted values, for error messages.
template <typename E, size_t N>
std::string enum_choices(const EnumName<E> (&table)[N]) {
  std::string out;
  for (const auto& e : table) {
    if (!out.empty()) out += ", ";
    out += e.name;
  }
  return out;
}

inline bool is_aead(Encryption e) {
  return e == Encryption::Aes128Gcm16 || e == Encryption::Aes256Gcm16;
}

struct VpnGateway {
  std::string id;
  std::string name;
  GatewayType type = GatewayType::Ipsec;
  uint32_t bandwidth = 5;  // Mbit/s, one of the tiers
  net::Cidr local_cidr;    // the protected (VPC) network, IPv4
  std::optional<net::Cidr> local_cidr_v6;
  std::vector<net::IpAddr> public_ips;  // 1 or 2; two enable dual-tunnel mode
  std::string status = "pending";
  std::string created_at;
  std::string updated_at;
};

struct CustomerGateway {
  std::string id;
  std::string name;
  net::IpAddr ip;
  std::optional<uint32_t> bgp_asn;
  std::string created_at;
  std::string updated_at;
};

// One SPD rule: a local CIDR and the remote CIDRs it may talk to. Each
// (source, destination[i]) pair is one match relation.
struct PolicyRule {
  net::Cidr source;
  std::vector<net::Cidr> destination;
};

struct Dpd {
  uint32_t interval = 30;  // idle seconds before a probe
  uint32_t timeout = 15;   // seconds between retransmitted probes
  DpdMsg msg = DpdMsg::SeqHashNotify;
};

struct IkePolicy {
  IkeVersion ike_version = IkeVersion::V1;
  NegotiationMode phase1_negotiation_mode = NegotiationMode::Main;
  Integrity authentication_algorithm = Integrity::Md5;
  Encryption encryption_algorithm = Encryption::TripleDes;
  DhGroup dh_group = DhGroup::G1;
  uint32_t lifetime_seconds = 86400;
  IdType local_id_type = IdType::Ip;
  std::string local_id;  // empty: the tunnel's gateway IP
  IdType peer_id_type = IdType::Ip;
  std::string peer_id;  // empty: the customer gateway's IP
  Dpd dpd;
};

struct IpsecPolicy {
  Integrity authentication_algorithm = Integrity::Md5;
  Encryption encryption_algorithm = Encryption::Aes128;
  DhGroup pfs = DhGroup::Disable;
  uint32_t lifetime_seconds = 3600;
  uint64_t lifetime_kilobytes = 1843200;
};

// One tunnel of a connection. Tunnel i uses the gateway's public_ips[i];
// roles are fixed: tunnel 0 is the master, tunnel 1 the standby (slave).
struct Tunnel {
  HaRole ha_role = HaRole::Master;
  std::optional<net::Cidr> tunnel_cidr;     // BGP: a /30 in 169.254.0.0/16
  std::optional<net::IpAddr> local_bgp_ip;  // BGP: our address inside it
};

struct VpnConnection {
  std::string id;
  std::string name;
  std::string vgw_id;
  std::string cgw_id;
  std::string psk;  // write-only: never serialized into API views or logs
  RouteStyle style = RouteStyle::Policy;
  std::vector<PolicyRule> policy_rules;  // POLICY
  std::vector<net::Cidr> peer_subnets;   // STATIC: routes into the tunnel
  IkePolicy ikepolicy;
  IpsecPolicy ipsecpolicy;
  bool enable_nat_traversal = true;
  bool start_immediately = false;
  uint32_t local_asn = 45104;  // BGP
  std::vector<Tunnel> tunnels;
  std::string status = "down";
  std::string created_at;
  std::string updated_at;
};

// The SSL VPN endpoint of an `ssl` gateway (SPEC §2, §9). Its API arrives
// with the SSL VPN; its rules are enforced here with the others.
struct SslServer {
  net::Cidr local_cidr;   // what clients may reach; inside the VPC CIDR
  net::Cidr client_pool;  // addresses handed to clients
  uint32_t max_connections = 5;
};

inline constexpr uint32_t kBandwidthTiers[] = {5, 10, 20, 50, 100, 200, 500, 1000};

}  // namespace xgw::control
