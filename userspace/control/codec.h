// JSON shape of the control-plane objects (after seed 003: snake_case,
// `ikepolicy`, `ipsecpolicy`, `policy_rules`, `dpd`). Parsing is strict:
// unknown fields, wrong types and read-only fields are errors naming the
// field's path. Parsing checks form (types, enum values, CIDR syntax);
// cross-object rules live in control/rules.h.
#pragma once

#include <nlohmann/json.hpp>

#include "common/expected.h"
#include "control/error.h"
#include "control/model.h"

namespace xgw::control {

using Json = nlohmann::json;

// Which column of SPEC §4's defaults an omitted policy field takes.
enum class PolicyDefaults { Single /* TCE */, DualTunnel };

Expected<VpnGateway, Error> gateway_from_json(const Json& obj);
Expected<CustomerGateway, Error> customer_gateway_from_json(const Json& obj);
// The PSK is returned in the object only when the body carries one.
Expected<VpnConnection, Error> connection_from_json(const Json& obj, PolicyDefaults defaults);

// with_meta=false gives only the fields a client may set (the base for a
// JSON merge patch); true adds id, status and timestamps. Never the PSK.
Json to_json(const VpnGateway& g, bool with_meta = true);
Json to_json(const CustomerGateway& c, bool with_meta = true);
// `gw` (optional) adds each tunnel's derived local_ip to the view.
Json to_json(const VpnConnection& c, bool with_meta = true, const VpnGateway* gw = nullptr);

// The policy defaults of SPEC §4 for the given column.
IkePolicy default_ike_policy(PolicyDefaults d);
IpsecPolicy default_ipsec_policy(PolicyDefaults d);

}  // namespace xgw::control
