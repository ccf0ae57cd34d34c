#include "xgwd/kernel_routes.h"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace xgw::xgwd {

namespace {

std::string err(const std::string& what, int e) {
  return what + ": " + std::strerror(e);
}

void put_attr(std::vector<uint8_t>& m, uint16_t type, const void* data, size_t len) {
  rtattr a{};
  a.rta_type = type;
  a.rta_len = static_cast<unsigned short>(RTA_LENGTH(len));
  const size_t at = m.size();
  m.resize(at + RTA_SPACE(len), 0);
  std::memcpy(m.data() + at, &a, sizeof a);
  std::memcpy(m.data() + at + RTA_LENGTH(0), data, len);
}

}  // namespace

Expected<KernelRoutes, std::string> KernelRoutes::open() {
  const int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return unexpected(err("rtnetlink socket", errno));
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    const int e = errno;
    ::close(fd);
    return unexpected(err("bind rtnetlink socket", e));
  }
  return KernelRoutes(fd);
}

KernelRoutes::~KernelRoutes() {
  if (fd_ >= 0) ::close(fd_);
}

Expected<void, std::string> KernelRoutes::replace(const net::Cidr& dst, const std::string& dev) {
  return request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, dst, dev);
}

Expected<void, std::string> KernelRoutes::remove(const net::Cidr& dst, const std::string& dev) {
  auto r = request(RTM_DELROUTE, 0, dst, dev);
  if (!r && r.error().find(std::strerror(ESRCH)) != std::string::npos) return {};
  return r;
}

Expected<void, std::string> KernelRoutes::request(int type, int flags, const net::Cidr& dst,
                                                  const std::string& dev) {
  const std::string what =
      std::string(type == RTM_NEWROUTE ? "add" : "delete") + " route " + dst.str() + " dev " + dev;
  const unsigned ifindex = ::if_nametoindex(dev.c_str());
  if (ifindex == 0) return unexpected(err(what, errno));
  std::vector<uint8_t> m(NLMSG_SPACE(sizeof(rtmsg)), 0);
  rtmsg rt{};
  rt.rtm_family = dst.family() == net::Family::V4 ? AF_INET : AF_INET6;
  rt.rtm_dst_len = dst.len;
  rt.rtm_table = RT_TABLE_MAIN;
  rt.rtm_protocol = RTPROT_STATIC;
  rt.rtm_scope = RT_SCOPE_LINK;
  rt.rtm_type = RTN_UNICAST;
  std::memcpy(m.data() + NLMSG_LENGTH(0), &rt, sizeof rt);
  put_attr(m, RTA_DST, dst.addr.bytes.data(), dst.family() == net::Family::V4 ? 4 : 16);
  const uint32_t oif = ifindex;
  put_attr(m, RTA_OIF, &oif, sizeof oif);
  nlmsghdr h{};
  h.nlmsg_len = static_cast<uint32_t>(m.size());
  h.nlmsg_type = static_cast<uint16_t>(type);
  h.nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | NLM_F_ACK | flags);
  h.nlmsg_seq = ++seq_;
  std::memcpy(m.data(), &h, sizeof h);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd_, m.data(), m.size(), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0)
    return unexpected(err(what, errno));
  // The acknowledgement: an NLMSG_ERROR carrying 0 or -errno (netlink(7)).
  alignas(nlmsghdr) uint8_t buf[4096];
  for (;;) {
    const ssize_t got = ::recv(fd_, buf, sizeof buf, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return unexpected(err(what, errno));
    }
    int len = static_cast<int>(got);
    for (auto* r = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(r, len); r = NLMSG_NEXT(r, len)) {
      if (r->nlmsg_seq != seq_ || r->nlmsg_type != NLMSG_ERROR) continue;
      if (r->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) return unexpected(what + ": short reply");
      nlmsgerr e;
      std::memcpy(&e, NLMSG_DATA(r), sizeof e);
      if (e.error == 0) return {};
      return unexpected(err(what, -e.error));
    }
  }
}

}  // namespace xgw::xgwd
