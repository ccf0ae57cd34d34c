#include "dataplane/tun.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace xgw::dp {

Expected<std::vector<int>, SysError> open_tun_queues(const std::string& name, unsigned queues,
                                                     bool offload, bool tap) {
  if (name.empty() || name.size() >= IFNAMSIZ)
    return unexpected(SysError{"TUN name '" + name + "' is empty or too long", EINVAL});
  std::vector<int> fds;
  for (unsigned i = 0; i < queues; ++i) {
    int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      int e = errno;
      for (int f : fds) ::close(f);
      return unexpected(SysError{"open /dev/net/tun", e});
    }
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
    ifr.ifr_flags = static_cast<short>((tap ? IFF_TAP : IFF_TUN) | IFF_NO_PI | IFF_MULTI_QUEUE |
                                       (offload ? IFF_VNET_HDR : 0));
    const char* step = nullptr;
    if (::ioctl(fd, TUNSETIFF, &ifr) < 0) step = "TUNSETIFF";
    if (!step && offload) {
      int hdr = 10;  // struct virtio_net_hdr
      if (::ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0)
        step = "TUNSETVNETHDRSZ";
      else if (::ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) < 0)
        step = "TUNSETOFFLOAD";
    }
    if (step) {
      int e = errno;
      ::close(fd);
      for (int f : fds) ::close(f);
      return unexpected(SysError{std::string(step) + " " + name, e});
    }
    fds.push_back(fd);
  }
  return fds;
}

Expected<void, SysError> set_link_up(const std::string& name, unsigned mtu, bool noarp) {
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return unexpected(SysError{"socket", errno});
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  ifr.ifr_mtu = static_cast<int>(mtu);
  if (::ioctl(s, SIOCSIFMTU, &ifr) < 0) {
    int e = errno;
    ::close(s);
    return unexpected(SysError{"set MTU " + std::to_string(mtu) + " on " + name, e});
  }
  if (::ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
    int e = errno;
    ::close(s);
    return unexpected(SysError{"get flags of " + name, e});
  }
  ifr.ifr_flags |= IFF_UP;
  if (noarp) ifr.ifr_flags |= IFF_NOARP;
  if (::ioctl(s, SIOCSIFFLAGS, &ifr) < 0) {
    int e = errno;
    ::close(s);
    return unexpected(SysError{"bring up " + name, e});
  }
  ::close(s);
  return {};
}

}  // namespace xgw::dp

namespace xgw::dp {

Expected<std::array<uint8_t, 6>, SysError> link_mac(const std::string& name) {
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return unexpected(SysError{"socket", errno});
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  const int rc = ::ioctl(s, SIOCGIFHWADDR, &ifr);
  const int e = errno;
  ::close(s);
  if (rc < 0) return unexpected(SysError{"get MAC of " + name, e});
  std::array<uint8_t, 6> mac{};
  std::memcpy(mac.data(), ifr.ifr_hwaddr.sa_data, 6);
  return mac;
}

}  // namespace xgw::dp
