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
  return request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE,
                 Spec{dst, dev, RTN_UNICAST, RTPROT_STATIC, RT_SCOPE_LINK, 0});
}

Expected<void, std::string> KernelRoutes::remove(const net::Cidr& dst, const std::string& dev) {
  auto r = request(RTM_DELROUTE, 0, Spec{dst, dev, RTN_UNICAST, RTPROT_STATIC, RT_SCOPE_LINK, 0});
  if (!r && r.error().find(std::strerror(ESRCH)) != std::string::npos) return {};
  return r;
}

Expected<void, std::string> KernelRoutes::add_fail_closed(const net::Cidr& dst) {
  // NLM_F_REPLACE matches (dst, metric): it never touches the device route.
  return request(
      RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE,
      Spec{dst, "", RTN_UNREACHABLE, kFailClosedProto, RT_SCOPE_UNIVERSE, kFailClosedMetric});
}

Expected<void, std::string> KernelRoutes::remove_fail_closed(const net::Cidr& dst) {
  auto r = request(
      RTM_DELROUTE, 0,
      Spec{dst, "", RTN_UNREACHABLE, kFailClosedProto, RT_SCOPE_UNIVERSE, kFailClosedMetric});
  if (!r && r.error().find(std::strerror(ESRCH)) != std::string::npos) return {};
  return r;
}

Expected<void, std::string> KernelRoutes::request(int type, int flags, const Spec& s) {
  std::string what = std::string(type == RTM_NEWROUTE ? "add" : "delete") + " route " +
                     (s.type == RTN_UNREACHABLE ? "unreachable " : "") + s.dst.str();
  if (!s.dev.empty()) what += " dev " + s.dev;
  std::vector<uint8_t> m(NLMSG_SPACE(sizeof(rtmsg)), 0);
  rtmsg rt{};
  rt.rtm_family = s.dst.family() == net::Family::V4 ? AF_INET : AF_INET6;
  rt.rtm_dst_len = s.dst.len;
  rt.rtm_table = RT_TABLE_MAIN;
  rt.rtm_protocol = s.proto;
  rt.rtm_scope = s.scope;
  rt.rtm_type = s.type;
  std::memcpy(m.data() + NLMSG_LENGTH(0), &rt, sizeof rt);
  put_attr(m, RTA_DST, s.dst.addr.bytes.data(), s.dst.family() == net::Family::V4 ? 4 : 16);
  if (!s.dev.empty()) {
    const unsigned ifindex = ::if_nametoindex(s.dev.c_str());
    if (ifindex == 0) return unexpected(err(what, errno));
    const uint32_t oif = ifindex;
    put_attr(m, RTA_OIF, &oif, sizeof oif);
  }
  if (s.metric) put_attr(m, RTA_PRIORITY, &s.metric, sizeof s.metric);
  return send(m, type, flags, what);
}

Expected<void, std::string> KernelRoutes::send(std::vector<uint8_t>& m, int type, int flags,
                                               const std::string& what) {
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

Expected<std::vector<net::Cidr>, std::string> KernelRoutes::list_fail_closed() {
  std::vector<net::Cidr> out;
  for (const int family : {AF_INET, AF_INET6}) {
    const std::string what = family == AF_INET ? "dump IPv4 routes" : "dump IPv6 routes";
    std::vector<uint8_t> m(NLMSG_SPACE(sizeof(rtmsg)), 0);
    rtmsg rt{};
    rt.rtm_family = static_cast<unsigned char>(family);
    std::memcpy(m.data() + NLMSG_LENGTH(0), &rt, sizeof rt);
    nlmsghdr h{};
    h.nlmsg_len = static_cast<uint32_t>(m.size());
    h.nlmsg_type = RTM_GETROUTE;
    h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    h.nlmsg_seq = ++seq_;
    std::memcpy(m.data(), &h, sizeof h);
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (::sendto(fd_, m.data(), m.size(), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) <
        0)
      return unexpected(err(what, errno));
    // A dump arrives in several datagrams, ended by NLMSG_DONE.
    std::vector<uint8_t> buf(32768);
    for (bool done = false; !done;) {
      const ssize_t got = ::recv(fd_, buf.data(), buf.size(), 0);
      if (got < 0) {
        if (errno == EINTR) continue;
        return unexpected(err(what, errno));
      }
      int len = static_cast<int>(got);
      for (auto* r = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(r, len);
           r = NLMSG_NEXT(r, len)) {
        if (r->nlmsg_seq != seq_) continue;
        if (r->nlmsg_type == NLMSG_DONE) {
          done = true;
          break;
        }
        if (r->nlmsg_type == NLMSG_ERROR) {
          nlmsgerr e{};
          if (r->nlmsg_len >= NLMSG_LENGTH(sizeof(nlmsgerr)))
            std::memcpy(&e, NLMSG_DATA(r), sizeof e);
          return unexpected(err(what, e.error ? -e.error : EPROTO));
        }
        if (r->nlmsg_type != RTM_NEWROUTE || r->nlmsg_len < NLMSG_LENGTH(sizeof(rtmsg))) continue;
        rtmsg got_rt;
        std::memcpy(&got_rt, NLMSG_DATA(r), sizeof got_rt);
        if (got_rt.rtm_protocol != kFailClosedProto || got_rt.rtm_type != RTN_UNREACHABLE ||
            got_rt.rtm_table != RT_TABLE_MAIN)
          continue;
        net::Cidr c;
        c.addr.family = family == AF_INET ? net::Family::V4 : net::Family::V6;
        c.len = got_rt.rtm_dst_len;
        int alen = static_cast<int>(RTM_PAYLOAD(r));
        for (auto* a = RTM_RTA(NLMSG_DATA(r)); RTA_OK(a, alen); a = RTA_NEXT(a, alen))
          if (a->rta_type == RTA_DST && RTA_PAYLOAD(a) == (family == AF_INET ? 4u : 16u))
            std::memcpy(c.addr.bytes.data(), RTA_DATA(a), RTA_PAYLOAD(a));
        out.push_back(c);
      }
    }
  }
  return out;
}

}  // namespace xgw::xgwd
