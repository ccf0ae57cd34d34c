// The data-plane interface the IKE daemons program, whatever carries the
// packets: xgw's userspace ESP path (userspace_dataplane.h), the kernel's
// XFRM (its own backend), or the in-memory mock used by protocol tests.
//
// Model (the same as XFRM's reqid): a *tunnel* id ties together the SPD
// relations (policies) and the SAs negotiated for them. Outbound, a packet
// matching a policy goes out on the newest outbound SA of the policy's
// tunnel, so installing a rekeyed SA switches traffic to it and the old one
// keeps decrypting until it is deleted (make-before-break, RFC 7296 §2.8).
// Inbound, an SA found by SPI must carry inner packets that match one of its
// tunnel's policies in reverse (RFC 4301 §5.2). Counters are kept per SA and
// per tunnel; the tunnel's are monotonic across rekeys.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/expected.h"
#include "common/net.h"
#include "esp/algorithms.h"

namespace xgw::dp {

enum class Direction : uint8_t { In, Out };
enum class Encap : uint8_t { None, Udp };  // raw ESP (IP 50) or RFC 3948 UDP

// 0 = no limit. Soft limits raise SoftExpire; hard limits raise HardExpire
// and stop the SA (its packets are dropped and counted).
struct Lifetime {
  uint64_t soft_bytes = 0, hard_bytes = 0;
  uint64_t soft_packets = 0, hard_packets = 0;
  uint32_t soft_seconds = 0, hard_seconds = 0;
};

struct SaSpec {
  std::string name;  // for logs and status only
  // The IKE connection (daemon name) the SA was negotiated for. Backends
  // ignore it; xgwd's XDP bridge maps it to the connection's XDP tunnel.
  std::string conn;
  uint32_t spi = 0;
  Direction dir = Direction::Out;
  uint32_t tunnel_id = 0;
  net::IpAddr local, remote;  // outer addresses (tunnel mode)
  Encap encap = Encap::Udp;
  uint16_t local_port = 4500, remote_port = 4500;  // UDP encapsulation only
  esp::Encr encr = esp::Encr::AesGcm16_128;
  esp::Integ integ = esp::Integ::None;
  std::vector<uint8_t> encr_key;  // GCM: key then 4-byte salt
  std::vector<uint8_t> integ_key;
  bool esn = false;               // RFC 4304 extended sequence numbers
  uint32_t replay_window = 1024;  // inbound; 0 disables anti-replay
  Lifetime lifetime;
  uint32_t keepalive_seconds = 20;  // RFC 3948 §2.3 NAT keepalives (out, UDP); 0 = off

  ~SaSpec();  // wipes the keys
  SaSpec() = default;
  SaSpec(const SaSpec&) = default;
  SaSpec& operator=(const SaSpec&) = default;
};

struct PolicySpec {
  uint32_t id = 0;
  net::Cidr src, dst;     // outbound direction: local subnet → remote subnet
  uint32_t priority = 0;  // higher wins when relations of different tunnels overlap
  uint32_t tunnel_id = 0;
  std::string conn;  // the IKE connection (daemon name); see SaSpec::conn
};

struct SaCounters {
  uint64_t packets = 0, bytes = 0;  // inner bytes
  uint64_t replay_drops = 0, icv_failures = 0, pad_errors = 0, policy_mismatch = 0;
  uint64_t expired_drops = 0;
  uint64_t seq = 0;  // out: last sequence number used; in: highest accepted
  uint64_t age_seconds = 0;
  bool soft_expired = false, hard_expired = false;
};

struct TunnelCounters {
  uint64_t rx_packets = 0, rx_bytes = 0, tx_packets = 0, tx_bytes = 0;
};

// Drops and packets not tied to one SA.
struct GlobalCounters {
  uint64_t unknown_spi = 0;      // inbound SPI with no SA
  uint64_t no_policy = 0;        // plaintext matching no policy
  uint64_t no_sa = 0;            // matched a policy whose tunnel has no SA (acquire)
  uint64_t malformed = 0;        // truncated or unparsable packets
  uint64_t bad_next_header = 0;  // decrypted payload neither IPv4 nor IPv6
  uint64_t dummy_packets = 0;    // next header 59 (TFC dummy, RFC 4303 §2.6)
  uint64_t too_big = 0;          // did not fit a buffer
  uint64_t no_buffer = 0;        // transmit buffers exhausted (output backlog)
  uint64_t encap_mismatch = 0;   // ESP for a UDP-encapsulated SA came raw, or vice versa
  uint64_t keepalives_rx = 0, keepalives_tx = 0;
  uint64_t ike_rx = 0;       // non-ESP-marker packets handed to IKE
  uint64_t send_errors = 0;  // socket or TUN write failures
};

struct Event {
  enum class Kind : uint8_t { Acquire, SoftExpire, HardExpire, NatMapping, SeqWrapSoon };
  enum class Limit : uint8_t { None, Time, Bytes, Packets };
  Kind kind{};
  Limit limit = Limit::None;       // expiry events
  Direction dir = Direction::Out;  // SA events
  uint32_t spi = 0;
  uint32_t tunnel_id = 0;
  uint32_t policy_id = 0;  // Acquire
  net::IpAddr src, dst;    // Acquire: the packet that triggered it
  net::IpAddr new_addr;    // NatMapping: the peer's new address/port
  uint16_t new_port = 0;
};

struct Capabilities {
  std::string backend;
  std::vector<esp::Encr> encr;
  std::vector<esp::Integ> integ;
  bool udp_encap = false, raw_esp = false, esn = false;
  uint32_t max_replay_window = 0;
  // Whether this backend reads UDP port 4500 itself and hands IKE packets
  // (non-ESP marker, RFC 3948 §2.2) to the receiver below; when false the
  // IKE daemon owns the port.
  bool owns_nat_t_port = false;
};

struct Endpoint {
  net::IpAddr addr;
  uint16_t port = 0;
};

class Dataplane {
 public:
  virtual ~Dataplane() = default;

  virtual Capabilities capabilities() const = 0;
  // A fresh inbound SPI (≥ 256, RFC 4303 §2.1) no SA uses or was handed out.
  virtual Expected<uint32_t, std::string> allocate_spi() = 0;

  virtual Expected<void, std::string> add_sa(const SaSpec& sa) = 0;
  // Same SPI and direction; changes what apply_update() copies (NAT
  // mapping change, lifetime from a responder) after check_update() agreed;
  // keys in `sa` are ignored (callers have usually wiped them), counters,
  // keys and replay state stay.
  virtual Expected<void, std::string> update_sa(const SaSpec& sa) = 0;
  virtual Expected<void, std::string> delete_sa(Direction dir, uint32_t spi) = 0;

  // Adds or replaces (same id) a policy.
  virtual Expected<void, std::string> add_policy(const PolicySpec& p) = 0;
  virtual Expected<void, std::string> delete_policy(uint32_t id) = 0;

  virtual std::optional<SaCounters> sa_counters(Direction dir, uint32_t spi) const = 0;
  virtual std::optional<TunnelCounters> tunnel_counters(uint32_t tunnel_id) const = 0;
  virtual GlobalCounters counters() const = 0;

  // Drains pending events; event_fd() (an eventfd, or -1) turns readable
  // when there are some.
  virtual std::vector<Event> poll_events() = 0;
  virtual int event_fd() const = 0;

  // IKE over the NAT-T port when owns_nat_t_port: `send_ike` prepends the
  // non-ESP marker; the receiver gets IKE messages without it. The receiver
  // runs on a data-plane thread: copy and hand over, do not block.
  using IkeReceiver =
      std::function<void(std::span<const uint8_t> msg, const Endpoint& from, const Endpoint& to)>;
  virtual void set_ike_receiver(IkeReceiver r) = 0;
  virtual Expected<void, std::string> send_ike(const Endpoint& from, const Endpoint& to,
                                               std::span<const uint8_t> msg) = 0;
};

const char* to_string(Event::Kind k);
// An SPI as logs and status print it: eight hex digits.
std::string spi_hex(uint32_t spi);
const char* to_string(Event::Limit l);

// Checks an SaSpec against what the transforms need (key lengths, AEAD
// without integrity, SPI range, address families); one message per problem.
Expected<void, std::string> validate(const SaSpec& sa);
Expected<void, std::string> validate(const PolicySpec& p);
// The checks on the fields update_sa may change (addresses, ports,
// encapsulation, lifetimes); part of validate(const SaSpec&).
Expected<void, std::string> validate_mutable(const SaSpec& sa);

// The one definition of update_sa, shared by every backend: `next` may
// change the name, addresses, ports, encapsulation, lifetimes and keepalive
// interval of `installed`. Its keys are ignored; its transforms, ESN,
// tunnel and replay window must equal the installed SA's (a different
// replay window or transform is a new SA, negotiated as one).
Expected<void, std::string> check_update(const SaSpec& installed, const SaSpec& next);
// Copies exactly the fields check_update() lets change.
void apply_update(SaSpec& installed, const SaSpec& next);

}  // namespace xgw::dp
