// Configuration of xgw-esp-static: manually keyed SAs (RFC 4301 §4.5,
// "manual keying") for labs, benchmarks and the kernel-interop VM. Keys
// live in this file only; production tunnels get their keys from IKE.
#pragma once

#include <string>
#include <vector>

#include "common/expected.h"
#include "dataplane/dataplane.h"
#include "dataplane/userspace_dataplane.h"
#include "dataplane/xfrm_dataplane.h"

namespace xgw::esp_static {

struct StaticConfig {
  // userspace: xgw's ESP path (TAP device, routes); xfrm: the kernel's,
  // programmed through XfrmDataplane — SAs and policies only, the
  // addresses and routes are the operator's (docs/xfrm.md).
  enum class Backend { Userspace, Xfrm } backend = Backend::Userspace;
  dp::UserspaceOptions dataplane;
  dp::XfrmOptions xfrm;        // udp_port and ipv6 shared with `dataplane`
  bool install_routes = true;  // a route to each policy's dst via the TUN device
  std::vector<dp::SaSpec> sas;
  std::vector<dp::PolicySpec> policies;
};

// Parses the YAML document; every error names the offending key.
Expected<StaticConfig, std::string> parse_static_config(const std::string& yaml);

}  // namespace xgw::esp_static
