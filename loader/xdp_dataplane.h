// The XDP data plane as the control plane sees it: loads bpf/xgw_dp.bpf.c
// through its skeleton, pins maps and programs under a directory in bpffs
// (default /sys/fs/bpf/xgw/<instance>), attaches the LAN and WAN programs
// (native, falling back to generic), and programs the maps: gateways and
// tiers, whole-SPD swaps, connections and their active tunnel, tunnels,
// inbound SAs. Reads per-CPU counters summed, and acquire events.
//
// A second open() of the same pin directory (an xgwd restart) reuses the
// pinned maps, so counters and tables survive, and attach() replaces the
// running program atomically (no traffic gap). detach_all() undoes
// everything an instance pinned or attached.
//
// Indexes (gateway, connection, tunnel) are the caller's: small integers
// below the capacities in xgw_dp_abi.h, stable across restarts.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "common/expected.h"
#include "common/net.h"
#include "xgw_dp_abi.h"

namespace xgw::loader {

template <typename T>
using Result = Expected<T, SysError>;

struct LoadOptions {
  // bpffs directory for pins; empty: nothing pinned (tests, benchmarks).
  std::string pin_dir = "/sys/fs/bpf/xgw/default";
  bool tier_percpu = false;  // per-CPU shares instead of the shared bucket
  bool flow_cache = true;    // false: classify every packet (benchmarks)
};

enum class AttachMode { Native, Generic };
enum class IfRole : uint32_t { Lan = XGW_IF_LAN, Wan = XGW_IF_WAN };
enum class Backend : uint32_t { Xfrm = XGW_BACKEND_XFRM, Userspace = XGW_BACKEND_USERSPACE };

struct GatewayConfig {
  bool drop_unmatched = false;  // plaintext outside every SPD rule: drop, else pass
  bool drop_no_sa = false;      // matched but no SA yet: drop, else pass
  uint64_t tier_bps = 0;        // bits per second per direction; 0 = unlimited
  uint64_t burst_bytes = 0;     // 0: a default derived from the rate
};

// One match relation: local and remote CIDR of the same family.
struct SpdRelation {
  net::Cidr local;
  net::Cidr remote;
  uint32_t conn_idx;
};

struct ConnectionEntry {
  uint32_t gw_idx = 0;
  uint32_t active = 0;  // 0 master, 1 standby
  std::array<uint32_t, 2> tunnels{};
  uint32_t ntunnels = 1;
};

struct TunnelEntry {
  uint32_t conn_idx = 0;
  Backend backend = Backend::Xfrm;
  bool sa_ready = false;
  uint32_t out_spi = 0;  // the active outbound SA (shown by bpftool); 0 none
};

struct Traffic {
  uint64_t tx_packets = 0, tx_bytes = 0, rx_packets = 0, rx_bytes = 0;
};

struct Reasons {
  std::array<uint64_t, XGW_DROP__MAX> drop{};
  std::array<uint64_t, XGW_PASS__MAX> pass{};
};

struct AcquireEvent {
  uint32_t gw_idx = 0, conn_idx = 0, tunnel_idx = 0;
  net::IpAddr src, dst;
};

// Metric labels from the X-macro lists in xgw_dp_abi.h.
std::string_view drop_reason_name(size_t reason);
std::string_view pass_reason_name(size_t reason);

// The default token-bucket depth for a tier: 50 ms of traffic, at least
// 64 KiB, so TCP is not starved at low tiers.
uint64_t default_burst_bytes(uint64_t tier_bps);

class XdpDataplane {
 public:
  static Result<XdpDataplane> open(const LoadOptions& opts);
  XdpDataplane(XdpDataplane&&) noexcept;
  XdpDataplane& operator=(XdpDataplane&&) noexcept;
  ~XdpDataplane();  // closes fds; pins and attachments stay (restart)

  // Marks `ifindex` as the gateway's LAN or WAN side and attaches the
  // matching program, replacing any xgw program already there.
  Result<AttachMode> attach(int ifindex, uint32_t gw_idx, IfRole role, bool allow_generic = true);
  Result<void> detach(int ifindex);
  // Only records the interface's gateway and role (BPF_PROG_TEST_RUN uses
  // ingress_ifindex without attaching).
  Result<void> set_interface(int ifindex, uint32_t gw_idx, IfRole role);
  // Detaches every interface the pinned instance serves and removes its
  // pins; refuses (EXDEV) when some of them live in another network
  // namespace.
  static Result<void> detach_all(const std::string& pin_dir);

  Result<void> set_gateway(uint32_t gw_idx, const GatewayConfig& cfg);
  Result<void> remove_gateway(uint32_t gw_idx);
  // Replaces the gateway's whole SPD (both families): new tries are built
  // aside, then swapped in; no packet sees a half-built table. Returns the
  // new generation.
  Result<uint32_t> replace_spd(uint32_t gw_idx, std::span<const SpdRelation> relations);
  Result<void> set_connection(uint32_t conn_idx, const ConnectionEntry& c);
  Result<void> remove_connection(uint32_t conn_idx);
  Result<void> set_active_tunnel(uint32_t conn_idx, uint32_t active);
  // The userspace ESP path's TAP device for a gateway: matched plaintext
  // that fits `mtu` is redirected into it by XDP (xgw_dp_abi.h). ifindex 0
  // removes it (plaintext then reaches the device through routing).
  Result<void> set_userspace_tun(uint32_t gw_idx, uint32_t ifindex, uint32_t mtu);
  Result<void> set_tunnel(uint32_t tunnel_idx, const TunnelEntry& t);
  Result<void> add_sa(uint32_t spi, uint32_t tunnel_idx, uint32_t gw_idx);  // spi in host order
  Result<void> remove_sa(uint32_t spi);
  // Removes every inbound SA (a restarted control plane holds none yet, so
  // SPIs left in the pinned map by the previous run must not pass).
  Result<size_t> clear_sas();

  // Zero a reused index's counters so a new object does not inherit them.
  Result<void> reset_gateway_counters(uint32_t gw_idx);
  Result<void> reset_tunnel_counters(uint32_t tunnel_idx);

  Result<Traffic> gateway_traffic(uint32_t gw_idx) const;
  Result<Traffic> tunnel_traffic(uint32_t tunnel_idx) const;
  Result<Reasons> reasons(uint32_t gw_idx) const;
  Result<size_t> sa_count() const;
  // Whether an xgw program runs on the interface (any instance).
  static bool xgw_attached(int ifindex);
  // Calls `f` for each pending acquire event, waiting up to timeout_ms
  // (0: only what is queued). Returns how many were delivered.
  Result<size_t> poll_events(int timeout_ms, const std::function<void(const AcquireEvent&)>& f);

  int lan_prog_fd() const;
  int wan_prog_fd() const;
  int map_fd(std::string_view name) const;  // -1 if unknown
  const std::string& pin_dir() const;

 private:
  Result<AttachMode> attach_program(int ifindex, uint32_t gw_idx, IfRole role, bool allow_generic);
  struct Impl;
  explicit XdpDataplane(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace xgw::loader
