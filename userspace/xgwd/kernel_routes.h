// Kernel routes over rtnetlink (RTM_NEWROUTE / RTM_DELROUTE, rtnetlink(7)):
// the remote subnets of userspace-ESP tunnels routed into the ESP engine's
// device, without starting an `ip` process per subnet. Each call waits for
// the kernel's acknowledgement and returns its error with context.
#pragma once

#include <string>

#include "common/expected.h"
#include "common/net.h"

namespace xgw::xgwd {

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

 private:
  explicit KernelRoutes(int fd) : fd_(fd) {}
  Expected<void, std::string> request(int type, int flags, const net::Cidr& dst,
                                      const std::string& dev);
  int fd_ = -1;
  uint32_t seq_ = 0;
};

}  // namespace xgw::xgwd
