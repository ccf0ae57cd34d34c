// Kernel routes over rtnetlink (RTM_NEWROUTE / RTM_DELROUTE, rtnetlink(7)):
// the remote subnets of userspace-ESP tunnels routed into the ESP engine's
// device, without starting an `ip` process per subnet, and the fail-closed
// routes under them: `unreachable` routes for the same subnets with a high
// metric and protocol kFailClosedProto, which outlive xgwd (the device
// routes vanish with its TAP device when it stops or crashes; these then
// take over, so a configured remote subnet never falls back to the default
// route in plaintext). Each call waits for the kernel's acknowledgement
// and returns its error with context.
#pragma once

#include <string>
#include <vector>

#include "common/expected.h"
#include "common/net.h"

namespace xgw::xgwd {

// Route protocol (rtnetlink(7) rtm_protocol) and metric of fail-closed
// routes: `ip route show proto 88` lists them, `ip route flush proto 88`
// removes them by hand.
inline constexpr uint8_t kFailClosedProto = 88;
inline constexpr uint32_t kFailClosedMetric = 1000000;

class KernelRoutes {
 public:
  static Expected<KernelRoutes, std::string> open();
  KernelRoutes(KernelRoutes&& o) noexcept : fd_(o.fd_), seq_(o.seq_) { o.fd_ = -1; }
  KernelRoutes& operator=(KernelRoutes&&) = delete;
  KernelRoutes(const KernelRoutes&) = delete;
  ~KernelRoutes();

  // `dst` via device `dev` (scope link, main table), added or replaced.
  Expected<void, std::string> replace(const net::Cidr& dst, const std::string& dev);
  // Removes that route; a route already gone is not an error.
  Expected<void, std::string> remove(const net::Cidr& dst, const std::string& dev);

  // The fail-closed route for `dst` (unreachable, kFailClosedMetric,
  // kFailClosedProto, main table), added or kept; and removed.
  Expected<void, std::string> add_fail_closed(const net::Cidr& dst);
  Expected<void, std::string> remove_fail_closed(const net::Cidr& dst);
  // Every fail-closed route in the main table (IPv4 and IPv6), as a
  // restarted xgwd finds them.
  Expected<std::vector<net::Cidr>, std::string> list_fail_closed();

 private:
  struct Spec {
    net::Cidr dst;
    std::string dev;  // empty: no device (unreachable)
    uint8_t type = 0, proto = 0, scope = 0;
    uint32_t metric = 0;  // 0: no RTA_PRIORITY
  };
  explicit KernelRoutes(int fd) : fd_(fd) {}
  Expected<void, std::string> request(int type, int flags, const Spec& s);
  Expected<void, std::string> send(std::vector<uint8_t>& m, int type, int flags,
                                   const std::string& what);
  int fd_ = -1;
  uint32_t seq_ = 0;
};

}  // namespace xgw::xgwd
