// The userspace ESP data path (RFC 4303 tunnel mode): plaintext from a
// multi-queue TUN device, ESP over UDP port 4500 (RFC 3948) or raw IP
// protocol 50, one io_uring worker thread per core.
//
// Threading contract:
// - Each worker owns one TUN queue, one UDP socket per family (SO_REUSEPORT
//   group) and one raw ESP socket per family. A classic BPF program steers
//   every inbound ESP packet to worker `SPI % workers` (reuseport selection
//   for UDP, a socket filter for raw), so an inbound SA's replay window and
//   NAT state have a single writer and need no lock.
// - Outbound packets of one SA may leave from any worker: the sequence
//   number is one atomic fetch-add per packet; counters are per-worker slots.
// - SA/policy tables are immutable snapshots swapped in by the control
//   thread and reclaimed once every worker has moved past them (quiescent
//   state), so the packet path takes no lock and allocates nothing.
// - UDP port 4500 is shared with IKE: packets carrying the non-ESP marker
//   are handed to the IKE receiver; IKE sends through send_ike().
#pragma once

#include <memory>
#include <string>

#include "dataplane/dataplane.h"

namespace xgw::dp {

struct UserspaceOptions {
  std::string tun_name = "xgw0";
  uint32_t mtu = 1400;   // inner MTU of the TUN device
  unsigned workers = 0;  // 0: one per online CPU
  uint16_t udp_port = 4500;
  bool raw_esp = true;  // also receive raw ESP (needs CAP_NET_RAW)
  bool ipv6 = true;     // also bind IPv6 sockets
  bool udp_gso = true;  // batch same-sized ESP packets with UDP_SEGMENT / UDP_GRO
  // TUN virtio-net header with TSO: read 64 KiB TCP super-packets and write
  // coalesced ones, segmenting and coalescing in the worker.
  bool tun_offload = true;
  // A TAP device (Ethernet frames, created NOARP) rather than TUN: the XDP
  // program can redirect LAN frames straight into a TAP device (devmap),
  // which the kernel does not allow for TUN devices.
  bool tap = true;
};

class UserspaceDataplane final : public Dataplane {
 public:
  // Creates the TUN device (brought up with the MTU), the sockets and the
  // workers, which start at once.
  static Expected<std::unique_ptr<UserspaceDataplane>, std::string> create(
      const UserspaceOptions& opts);
  ~UserspaceDataplane() override;

  Capabilities capabilities() const override;
  Expected<uint32_t, std::string> allocate_spi() override;
  Expected<void, std::string> add_sa(const SaSpec& sa) override;
  Expected<void, std::string> update_sa(const SaSpec& sa) override;
  Expected<void, std::string> delete_sa(Direction dir, uint32_t spi) override;
  Expected<void, std::string> add_policy(const PolicySpec& p) override;
  Expected<void, std::string> delete_policy(uint32_t id) override;
  std::optional<SaCounters> sa_counters(Direction dir, uint32_t spi) const override;
  std::optional<TunnelCounters> tunnel_counters(uint32_t tunnel_id) const override;
  GlobalCounters counters() const override;
  std::vector<Event> poll_events() override;
  int event_fd() const override;
  void set_ike_receiver(IkeReceiver r) override;
  Expected<void, std::string> send_ike(const Endpoint& from, const Endpoint& to,
                                       std::span<const uint8_t> msg) override;

  const std::string& tun_name() const;
  unsigned workers() const;

  struct Impl;

 private:
  explicit UserspaceDataplane(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace xgw::dp
