#include "ike/runtime.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <mutex>

#include "common/log.h"

namespace xgw::ike {

namespace {

class SteadyClock : public Clock {
 public:
  uint64_t now_ms() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

Expected<int, std::string> open_udp(int family, uint16_t port, const std::string& bind_v4) {
  const int fd = ::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return unexpected(std::string("socket: ") + std::strerror(errno));
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int rc;
  if (family == AF_INET) {
    ::setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    if (inet_pton(AF_INET, bind_v4.c_str(), &a.sin_addr) != 1) {
      ::close(fd);
      return unexpected("bad bind address " + bind_v4);
    }
    rc = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  } else {
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one);
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(port);
    rc = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  if (rc != 0) {
    const int e = errno;
    ::close(fd);
    return unexpected("bind UDP port " + std::to_string(port) +
                      (family == AF_INET6 ? " (IPv6)" : "") + ": " + std::strerror(e));
  }
  return fd;
}

dp::Endpoint from_sockaddr(const sockaddr_storage& ss) {
  dp::Endpoint e;
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    e.addr.family = net::Family::V4;
    std::memcpy(e.addr.bytes.data(), &a->sin_addr, 4);
    e.port = ntohs(a->sin_port);
  } else {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    e.addr.family = net::Family::V6;
    std::memcpy(e.addr.bytes.data(), &a->sin6_addr, 16);
    e.port = ntohs(a->sin6_port);
  }
  return e;
}

}  // namespace

// Port-4500 datagrams on their way from data-plane threads to the io
// thread. One drain task is posted per batch, not one per datagram, and the
// queue is bounded in count and bytes.
struct NatTQueue {
  struct Item {
    Bytes msg;
    dp::Endpoint from, to;
  };
  std::mutex mu;
  std::deque<Item> items;
  size_t bytes = 0;
  bool scheduled = false;
  std::atomic<uint64_t> drops{0};
};

struct Runtime::Impl : Transport {
  boost::asio::io_context& io;
  dp::Dataplane& dp;
  RuntimeOptions opts;
  SteadyClock clock;
  std::unique_ptr<Daemon> daemon;
  std::unique_ptr<boost::asio::posix::stream_descriptor> s4, s6, events;
  uint16_t port4 = 0, port6 = 0;
  boost::asio::steady_timer timer;
  bool owns_nat_t = false;
  bool stopped = false;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  std::shared_ptr<NatTQueue> natq = std::make_shared<NatTQueue>();

  Impl(boost::asio::io_context& i, dp::Dataplane& d, RuntimeOptions o)
      : io(i), dp(d), opts(std::move(o)), timer(i) {}

  ~Impl() override { *alive = false; }

  void send(const dp::Endpoint& from, const dp::Endpoint& to,
            std::span<const uint8_t> msg) override {
    if (from.port != opts.port && owns_nat_t) {
      if (auto r = dp.send_ike(from, to, msg); !r)
        log::warn("ike.send_failed", {{"to", to.addr.str()}, {"error", r.error()}});
      return;
    }
    const bool v6 = to.addr.family == net::Family::V6;
    auto* s = v6 ? s6.get() : s4.get();
    if (!s) return;
    sockaddr_storage ss{};
    socklen_t sl;
    alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(in6_pktinfo))]{};
    msghdr mh{};
    iovec iov{const_cast<uint8_t*>(msg.data()), msg.size()};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf;
    cmsghdr* cm;
    if (!v6) {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      a->sin_family = AF_INET;
      a->sin_port = htons(to.port);
      std::memcpy(&a->sin_addr, to.addr.bytes.data(), 4);
      sl = sizeof *a;
      mh.msg_controllen = CMSG_SPACE(sizeof(in_pktinfo));
      cm = CMSG_FIRSTHDR(&mh);
      cm->cmsg_level = IPPROTO_IP;
      cm->cmsg_type = IP_PKTINFO;
      cm->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
      in_pktinfo pi{};
      std::memcpy(&pi.ipi_spec_dst, from.addr.bytes.data(), 4);
      std::memcpy(CMSG_DATA(cm), &pi, sizeof pi);
    } else {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      a->sin6_family = AF_INET6;
      a->sin6_port = htons(to.port);
      std::memcpy(&a->sin6_addr, to.addr.bytes.data(), 16);
      sl = sizeof *a;
      mh.msg_controllen = CMSG_SPACE(sizeof(in6_pktinfo));
      cm = CMSG_FIRSTHDR(&mh);
      cm->cmsg_level = IPPROTO_IPV6;
      cm->cmsg_type = IPV6_PKTINFO;
      cm->cmsg_len = CMSG_LEN(sizeof(in6_pktinfo));
      in6_pktinfo pi{};
      std::memcpy(&pi.ipi6_addr, from.addr.bytes.data(), 16);
      std::memcpy(CMSG_DATA(cm), &pi, sizeof pi);
    }
    mh.msg_name = &ss;
    mh.msg_namelen = sl;
    if (::sendmsg(s->native_handle(), &mh, 0) < 0)
      log::warn("ike.send_failed", {{"to", to.addr.str()}, {"error", std::strerror(errno)}});
  }

  void read_loop(boost::asio::posix::stream_descriptor& s, uint16_t local_port) {
    s.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                 [this, &s, local_port, alive = alive](const boost::system::error_code& ec) {
                   if (ec || !*alive || stopped) return;
                   drain(s.native_handle(), local_port);
                   kick();
                   read_loop(s, local_port);
                 });
  }

  void drain(int fd, uint16_t local_port) {
    uint8_t buf[65536];
    for (int n = 0; n < 256; ++n) {
      sockaddr_storage ss{};
      alignas(cmsghdr) char cbuf[256];
      iovec iov{buf, sizeof buf};
      msghdr mh{};
      mh.msg_name = &ss;
      mh.msg_namelen = sizeof ss;
      mh.msg_iov = &iov;
      mh.msg_iovlen = 1;
      mh.msg_control = cbuf;
      mh.msg_controllen = sizeof cbuf;
      const ssize_t len = ::recvmsg(fd, &mh, MSG_DONTWAIT);
      if (len < 0) return;
      dp::Endpoint from = from_sockaddr(ss), to;
      to.port = local_port;
      for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
          in_pktinfo pi;
          std::memcpy(&pi, CMSG_DATA(c), sizeof pi);
          to.addr.family = net::Family::V4;
          std::memcpy(to.addr.bytes.data(), &pi.ipi_addr, 4);
        } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
          in6_pktinfo pi;
          std::memcpy(&pi, CMSG_DATA(c), sizeof pi);
          to.addr.family = net::Family::V6;
          std::memcpy(to.addr.bytes.data(), &pi.ipi6_addr, 16);
        }
      }
      daemon->receive(std::span(buf, static_cast<size_t>(len)), from, to);
    }
  }

  void event_loop() {
    if (!events) return;
    events->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                       [this, alive = alive](const boost::system::error_code& ec) {
                         if (ec || !*alive || stopped) return;
                         for (const auto& e : dp.poll_events()) daemon->on_event(e);
                         kick();
                         event_loop();
                       });
  }

  void kick() {
    if (stopped) return;
    const uint64_t next = daemon->tick();
    // Wake at the next timer, and at least once a second (DPD checks).
    const uint64_t ms = std::clamp<uint64_t>(next, 10, 1000);
    timer.expires_after(std::chrono::milliseconds(ms));
    timer.async_wait([this, alive = alive](const boost::system::error_code& ec) {
      if (ec || !*alive || stopped) return;
      kick();
    });
  }
};

Expected<std::unique_ptr<Runtime>, std::string> Runtime::create(boost::asio::io_context& io,
                                                                dp::Dataplane& dataplane,
                                                                RuntimeOptions opts) {
  auto impl = std::make_unique<Impl>(io, dataplane, opts);
  Impl& I = *impl;
  I.daemon = std::make_unique<Daemon>(I.clock, I, dataplane, opts.daemon);
  I.owns_nat_t = dataplane.capabilities().owns_nat_t_port;
  auto fd4 = open_udp(AF_INET, opts.port, opts.bind_v4);
  if (!fd4) return unexpected(fd4.error());
  I.s4 = std::make_unique<boost::asio::posix::stream_descriptor>(io, *fd4);
  if (opts.ipv6) {
    auto fd6 = open_udp(AF_INET6, opts.port, "");
    if (fd6)
      I.s6 = std::make_unique<boost::asio::posix::stream_descriptor>(io, *fd6);
    else
      log::warn("ike.no_ipv6", {{"error", fd6.error()}});
  }
  if (dataplane.event_fd() >= 0) {
    const int efd = ::dup(dataplane.event_fd());
    if (efd >= 0) I.events = std::make_unique<boost::asio::posix::stream_descriptor>(io, efd);
  }
  if (I.owns_nat_t) {
    // Port 4500 arrives on a data-plane thread: copy into the bounded
    // queue; the io thread drains it in batches.
    dataplane.set_ike_receiver(
        [&io, impl_ptr = &I, alive = I.alive, q = I.natq](
            std::span<const uint8_t> msg, const dp::Endpoint& from, const dp::Endpoint& to) {
          {
            std::lock_guard lk(q->mu);
            if (q->items.size() >= kNatTQueueMax || q->bytes + msg.size() > kNatTQueueBytes) {
              q->drops.fetch_add(1, std::memory_order_relaxed);
              return;
            }
            q->items.push_back({Bytes(msg.begin(), msg.end()), from, to});
            q->bytes += msg.size();
            if (q->scheduled) return;
            q->scheduled = true;
          }
          boost::asio::post(io, [impl_ptr, alive, q] {
            std::deque<NatTQueue::Item> batch;
            {
              std::lock_guard lk(q->mu);
              batch.swap(q->items);
              q->bytes = 0;
              q->scheduled = false;
            }
            if (!*alive || impl_ptr->stopped) return;
            for (const auto& it : batch) impl_ptr->daemon->receive(it.msg, it.from, it.to);
            impl_ptr->kick();
          });
        });
  }
  I.read_loop(*I.s4, opts.port);
  if (I.s6) I.read_loop(*I.s6, opts.port);
  I.event_loop();
  I.kick();
  log::info("ike.listening", {{"port", opts.port}, {"nat_t", I.owns_nat_t ? "dataplane" : "none"}});
  return std::unique_ptr<Runtime>(new Runtime(std::move(impl)));
}

Runtime::Runtime(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Runtime::~Runtime() {
  stop();
}
uint64_t Runtime::nat_t_queue_drops() const {
  return impl_->natq->drops.load(std::memory_order_relaxed);
}
Daemon& Runtime::daemon() {
  return *impl_->daemon;
}
void Runtime::kick() {
  impl_->kick();
}
void Runtime::stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->dp.set_ike_receiver(nullptr);
  impl_->timer.cancel();
  if (impl_->s4) impl_->s4->cancel();
  if (impl_->s6) impl_->s6->cancel();
  if (impl_->events) impl_->events->cancel();
}

}  // namespace xgw::ike
