// xgwd's daemon settings: defaults, then the YAML file (--config), then
// command-line flags. Unknown keys and bad values are errors, so a typo
// never silently falls back to a default.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "common/expected.h"
#include "control/rules.h"

namespace xgw::xgwd {

// The XDP data plane (present in the file: enabled). Interfaces are named
// per gateway, by the gateway's name.
struct DataplaneGateway {
  std::string lan_interface;
  std::string wan_interface;
};
struct DataplaneConfig {
  bool enabled = false;
  std::string pin_dir = "/sys/fs/bpf/xgw/default";
  bool tier_percpu = false;  // tier: shared (default) | percpu
  // xfrm | userspace | auto (xfrm when the kernel can install an ESP SA,
  // else userspace: dataplane_factory.h)
  std::string backend = "userspace";
  // How XDP hands matched plaintext to the userspace ESP engine, after tier
  // and counters: `route` (default) passes it to the stack, which GROs it
  // and routes it into the engine's TAP device as TSO super-packets;
  // `devmap` redirects each frame into that device, skipping the kernel's
  // forwarding. route measured 930 Mbit/s against devmap's 820-850 at a
  // 1000 Mbit/s tier (scripts/bench-esp, docs/dataplane.md).
  std::string userspace_path = "route";
  bool drop_unmatched = false;
  bool drop_no_sa = false;
  std::map<std::string, DataplaneGateway> gateways;
};

// The IKEv2 daemon and the ESP data plane its SAs go into
// (present in the file with enabled: true).
struct IkeConfig {
  bool enabled = false;
  uint16_t port = 500;
  // The ESP backend the SAs are installed in: userspace | xfrm | auto.
  // Empty (the default): dataplane.backend, itself userspace by default.
  // Lets IKE use the kernel's XFRM without the XDP data plane (a
  // `dataplane:` section attaches XDP); with both sections the two must
  // agree (parse_config refuses a mismatch).
  std::string backend;
  std::string tun = "xgw0";  // TAP device of the userspace ESP path
  uint32_t mtu = 1400;
  uint32_t workers = 0;        // 0: one per CPU
  bool raw_esp = true;         // also raw ESP (IP 50) when no NAT is seen
  bool install_routes = true;  // route the remote subnets into `tun`
  // Fail closed (userspace path with install_routes): each configured
  // remote subnet also gets an `unreachable` route under the device route
  // (kernel_routes.h). It outlives xgwd, so while xgwd restarts or after a
  // crash that traffic is dropped instead of leaving in plaintext by the
  // default route; after a connection is deleted it stays for
  // `fail_closed_drain_s` seconds, then goes.
  bool fail_closed = true;
  uint32_t fail_closed_drain_s = 60;
};

struct Config {
  std::string state_dir = "/var/lib/xgw";
  std::string api_listen = "127.0.0.1:9740";
  std::string api_token_file;                     // empty: <state_dir>/api-token
  std::string metrics_listen = "127.0.0.1:9741";  // "off": no /metrics
  std::string log_level = "info";
  control::Quotas quotas;
  DataplaneConfig dataplane;
  IkeConfig ike;
};

// Applies the YAML document in `path` on top of `base`.
Expected<Config, std::string> load_config_file(const std::string& path, Config base);
// Same, from YAML text (for tests).
Expected<Config, std::string> parse_config(const std::string& yaml, Config base);

// The ESP backend of the IKE daemon's SAs: ike.backend, else
// dataplane.backend (userspace | xfrm | auto).
std::string ike_backend(const Config& cfg);

}  // namespace xgw::xgwd
