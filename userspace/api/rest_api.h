// The xgw REST API (docs/openapi.yaml): /v1/vpn-gateways,
// /v1/customer-gateways, /v1/vpn-connections, bound to the control plane.
#pragma once

#include "api/router.h"
#include "control/service.h"

namespace xgw::api {

// Request bodies larger than this are refused with 413 before parsing.
inline constexpr size_t kMaxBodyBytes = 1 << 20;
// Deeper JSON nesting is refused (no object of the API nests this deep).
inline constexpr int kMaxJsonDepth = 16;

Router make_rest_api(control::ControlPlane& cp);

}  // namespace xgw::api
