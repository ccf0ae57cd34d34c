// Runs the IKEv2 daemon core (daemon.h) on a Boost.Asio io_context: UDP
// port 500 sockets (IPv4 and IPv6, with PKTINFO so replies leave from the
// address the peer used), port 4500 through the data plane when it owns
// that port (RFC 3948 non-ESP marker), the data plane's events, and a
// timer that drives retransmissions, rekeys and DPD. Everything runs on
// the io_context's thread; the data plane's IKE receiver only posts.
#pragma once

#include <boost/asio/io_context.hpp>
#include <memory>

#include "dataplane/dataplane.h"
#include "ike/daemon.h"

namespace xgw::ike {

// The hand-over queue from data-plane threads: at most this many datagrams
// and bytes wait for the io thread; more are dropped and counted.
inline constexpr size_t kNatTQueueMax = 1024;
inline constexpr size_t kNatTQueueBytes = 2u << 20;

struct RuntimeOptions {
  uint16_t port = 500;
  bool ipv6 = true;
  std::string bind_v4 = "0.0.0.0";
  DaemonOptions daemon;
};

class Runtime {
 public:
  static Expected<std::unique_ptr<Runtime>, std::string> create(boost::asio::io_context& io,
                                                                dp::Dataplane& dataplane,
                                                                RuntimeOptions opts = {});
  ~Runtime();

  Daemon& daemon();
  // Runs due timers now; call after changing connections.
  void kick();
  void stop();
  // IKE datagrams from the data plane (port 4500) dropped because the
  // hand-over queue to this thread was full (kNatTQueue*): a flood on 4500
  // costs bounded memory, counted here.
  uint64_t nat_t_queue_drops() const;

  struct Impl;

 private:
  explicit Runtime(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace xgw::ike
