// Which ESP data plane xgwd runs: `dataplane.backend` is userspace, xfrm,
// or auto — xfrm when this kernel can install an ESP SA (a throwaway SA is
// added and removed, xfrm_esp_available()), else userspace. The choice and
// its reason are logged (event=dataplane.backend) at start.
//
// choose_backend() resolves the name only (the XDP program's verdict for
// each tunnel depends on it); make_dataplane() also creates the backend
// the IKE runtime programs (xgwd's `ike:` block).
#pragma once

#include <memory>
#include <string>

#include "common/expected.h"
#include "dataplane/dataplane.h"
#include "xgwd/config.h"

namespace xgw::xgwd {

struct BackendChoice {
  std::string backend;  // "userspace" or "xfrm", never "auto"
  std::string reason;   // why: "configured", or the probe's outcome
};

BackendChoice choose_backend(const DataplaneConfig& cfg);

// Creates the backend ike_backend() (config.h) names, `auto` resolved by
// choose_backend(): userspace with the `ike:` section's device, MTU,
// workers and raw ESP; xfrm with its defaults (NAT-T socket on UDP 4500,
// owned by the backend). `chosen_reason`, when given, receives
// "<backend>: <reason>".
Expected<std::unique_ptr<dp::Dataplane>, std::string> make_dataplane(const Config& cfg,
                                                                     std::string* chosen_reason);

}  // namespace xgw::xgwd
