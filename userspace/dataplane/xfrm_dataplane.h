// The kernel data path: the Dataplane interface over Linux XFRM (RFC 4303
// tunnel-mode ESP in the kernel), programmed through NETLINK_XFRM.
//
// Why plain netlink sockets and no library: the backend speaks a small,
// fixed set of messages (ALLOCSPI, NEWSA/UPDSA/DELSA/GETSA,
// UPDPOLICY/DELPOLICY and three multicast groups), each one fixed struct
// from <linux/xfrm.h> plus a handful of attributes. libmnl would only wrap
// the attribute loop and the ack matching (≈ 60 lines here); libnl-xfrm
// brings an object cache and its own error conventions we would translate
// anyway, and neither is needed by the rest of xgw. What matters — every
// kernel error with errno, the kernel's extended-ack text and what was
// attempted — is done once in NlSocket (xfrm_dataplane.cpp).
//
// How the interface maps onto XFRM (see docs/xfrm.md):
// - A tunnel id is the XFRM reqid: SAs carry it, and every policy's
//   template names it, so the kernel picks the tunnel's newest SA.
// - A PolicySpec becomes three XFRM policies: out (src → dst) and in + fwd
//   (dst → src), each with one tunnel-mode ESP template. Templates need the
//   tunnel's outer addresses, which PolicySpec does not carry: the backend
//   learns them from the tunnel's SAs. A policy added before any SA of its
//   tunnel gets a template with wildcard endpoints (matching traffic is
//   dropped, never sent in the clear); when an SA arrives (add_sa, or
//   update_sa with new addresses) the tunnel's policies are re-installed
//   with its endpoints. The last endpoints stay after the SAs are deleted,
//   so a rekey never opens a hole.
// - XFRM keys policies by selector and direction: two PolicySpecs with the
//   same src and dst are refused (SPEC §3 forbids such overlaps anyway).
// - Priorities: XFRM prefers the lowest value, we the highest
//   PolicySpec.priority and then the longest prefixes: see
//   xfrm_policy_priority().
// - Counters come from the kernel (XFRM_MSG_GETSA: curlft and stats); the
//   kernel's byte counts are its own (they include the outer headers on
//   output). Tunnel counters stay monotonic: a deleted or hard-expired SA's
//   last counts are kept per tunnel.
// - The kernel deletes an SA itself at a hard lifetime: its last counters
//   (from the EXPIRE message) remain readable, marked hard_expired, until
//   delete_sa.
// - UDP encapsulation (RFC 3948) needs a socket with the UDP_ENCAP option
//   on the NAT-T port: the kernel decapsulates ESP on it and hands
//   everything with the non-ESP marker (IKE) to the socket. The backend
//   owns that socket (owns_nat_t_port) and serves IKE on it through
//   set_ike_receiver/send_ike, like the userspace path; its traffic
//   bypasses IPsec policies (per-socket IP_XFRM_POLICY, as IKE daemons do).
//
// Threading: every method may be called from any thread (one mutex); the
// IKE receiver runs on the backend's reader thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "dataplane/dataplane.h"

namespace xgw::dp {

struct XfrmOptions {
  uint16_t udp_port = 4500;      // the NAT-T port (ESP-in-UDP and IKE)
  bool nat_t_socket = true;      // own the UDP_ENCAP socket; false: the IKE daemon does
  bool ipv6 = true;              // also an IPv6 NAT-T socket (skipped if IPv6 is off)
  bool flush_on_close = true;    // delete the SAs and policies we installed at destruction
  bool probe_transforms = true;  // capabilities(): try each transform once at create()
};

class XfrmDataplane final : public Dataplane {
 public:
  // Opens the netlink sockets (requests, and the ACQUIRE/EXPIRE/MAPPING
  // groups), the NAT-T sockets, and probes the transforms.
  static Expected<std::unique_ptr<XfrmDataplane>, std::string> create(const XfrmOptions& opts = {});
  ~XfrmDataplane() override;

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
  int event_fd() const override;  // the multicast netlink socket
  void set_ike_receiver(IkeReceiver r) override;
  Expected<void, std::string> send_ike(const Endpoint& from, const Endpoint& to,
                                       std::span<const uint8_t> msg) override;

  struct Impl;

 private:
  explicit XfrmDataplane(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Whether this network namespace's kernel can run ESP: installs (and
// removes) a throwaway ESP SA, AES-GCM then AES-CBC + HMAC-SHA-256. On
// false, `why` (if given) says what failed and the likely cause (no
// CONFIG_INET_ESP, no XFRM netlink, no CAP_NET_ADMIN).
bool xfrm_esp_available(std::string* why = nullptr);

// The kernel's algorithm names (crypto API templates).
const char* xfrm_encr_name(esp::Encr e);
const char* xfrm_integ_name(esp::Integ i);

// The XFRM priority of a PolicySpec (lower wins in XFRM): higher
// PolicySpec.priority first, then longer src + dst prefixes, so XFRM picks
// the policy the other backends would. Priorities above
// kMaxPolicyPriority are treated as kMaxPolicyPriority.
inline constexpr uint32_t kMaxPolicyPriority = 0xFFFF0000u / 257 - 1;
uint32_t xfrm_policy_priority(const PolicySpec& p);

// The XFRM_MSG_NEWSA/UPDSA request for `sa` (netlink header included,
// sequence 0), for tests of the encoding; no socket is touched.
Expected<std::vector<uint8_t>, std::string> xfrm_sa_request(const SaSpec& sa, uint16_t type);

}  // namespace xgw::dp
