// Every product rule of SPEC §3, in one place. Each check returns the first
// violation (with the field it concerns) or nothing. The service calls these
// inside the transaction that would store the change, so a violation leaves
// the store untouched.
#pragma once

#include <optional>
#include <span>
#include <string>

#include "control/error.h"
#include "control/model.h"

namespace xgw::control {

// SPEC §3 quotas. Defaults match the product; xgwd's config may override.
// One xgwd serves one protected network (the "VPC").
struct Quotas {
  uint32_t gateways_per_vpc = 10;
  uint32_t customer_gateways = 20;
  uint32_t connections_per_customer_gateway = 10;
  uint32_t connections_per_gateway = 20;
  uint32_t rules_per_connection = 10;
  uint32_t cidrs_per_rule = 50;
};

using Check = std::optional<Error>;

// --- single values ---------------------------------------------------------
Check check_name(const std::string& name, size_t max_len, const std::string& field = "name");
Check check_bandwidth(uint32_t mbps);
// A tier may change only within [5,100] or within [200,1000].
Check check_bandwidth_change(uint32_t from, uint32_t to);
// Usable public unicast address for a gateway endpoint (SPEC §3 list).
Check check_public_ip(const net::IpAddr& ip, const std::string& field);
Check check_psk(const std::string& psk);
std::string generate_psk();  // 16 random characters from the PSK alphabet
Check check_fqdn(const std::string& s, const std::string& field);
// A BGP tunnel CIDR: /30 inside 169.254.0.0/16, not a reserved one.
Check check_bgp_tunnel_cidr(const net::Cidr& c, const std::string& field);

// --- objects ---------------------------------------------------------------
Check check_gateway(const VpnGateway& g);
Check check_customer_gateway(const CustomerGateway& c);
// Policy ranges: lifetimes, DPD, algorithm combinations.
Check check_ike_policy(const IkePolicy& p);
Check check_ipsec_policy(const IpsecPolicy& p);

// A connection against its gateway, customer gateway and the other
// connections of that gateway (SPD overlap, BGP CIDR uniqueness).
Check check_connection(const VpnConnection& c, const VpnGateway& gw, const CustomerGateway& cgw,
                       std::span<const VpnConnection> others_on_gateway, const Quotas& q);

// SPD overlap: no two match relations of one gateway overlap in both local
// and remote CIDR. `others` are the gateway's other connections.
Check check_spd_overlap(const VpnConnection& c, std::span<const VpnConnection> others);

// SSL server: pool in 10/8, 172.16/12 or 192.168/16 with a /16-/24 mask,
// apart from the VPC CIDR; local CIDR inside it; max connections a tier.
// One pool per server is structural (SslServer holds one).
Check check_ssl_server(const SslServer& s, const VpnGateway& gw);

// --- changes ---------------------------------------------------------------
Check check_gateway_update(const VpnGateway& before, const VpnGateway& after,
                           std::span<const VpnConnection> connections);
Check check_customer_gateway_update(const CustomerGateway& after,
                                    std::span<const VpnConnection> connections);
Check check_connection_update(const VpnConnection& before, const VpnConnection& after);
Check check_gateway_delete(const VpnGateway& g, size_t connections);
Check check_customer_gateway_delete(const CustomerGateway& c, size_t connections);

// --- quotas and uniqueness on create ---------------------------------------
Check check_gateway_quota(size_t existing, const Quotas& q);
Check check_customer_gateway_quota(size_t existing, const Quotas& q);
Check check_customer_gateway_ip_unique(const CustomerGateway& c,
                                       std::span<const CustomerGateway> all);
Check check_connection_quota(const VpnConnection& c, std::span<const VpnConnection> on_gateway,
                             std::span<const VpnConnection> on_customer_gateway, const Quotas& q);

}  // namespace xgw::control
