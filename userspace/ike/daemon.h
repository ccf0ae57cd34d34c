// The IKEv2 daemon core (RFC 7296): IKE SAs and their exchanges, driven by
// calls — a datagram arrived, time passed, the data plane raised an event,
// the configuration changed. It owns no sockets, threads or clocks: a
// Transport sends, a Clock tells the time (simulated in tests, so rekeys
// and DPD run in milliseconds), and the data plane installs SAs.
//
// Structure (after strongSwan's task manager): each IKE SA runs one
// request at a time (window size 1, §2.3) taken from a queue of tasks —
// initiate, create/rekey/delete a CHILD_SA, rekey/delete the IKE SA, DPD —
// and answers the peer's requests as they come, replaying the cached
// response to a retransmitted request. Timers name an IKE SA by its unique
// id and look it up when they fire.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "dataplane/dataplane.h"
#include "ike/config.h"

namespace xgw::ike {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual uint64_t now_ms() const = 0;
};

class Transport {
 public:
  virtual ~Transport() = default;
  virtual void send(const dp::Endpoint& from, const dp::Endpoint& to,
                    std::span<const uint8_t> msg) = 0;
};

// Why negotiation failed, named as SPEC §7 and seed 001 list them.
enum class Failure : uint8_t {
  None,
  PskMismatch,
  IdMismatch,
  IkeVersionMismatch,
  ModeMismatch,      // IKEv1: main mode on one side, aggressive on the other
  ProposalMismatch,  // phase 1 (IKE SA) encryption/integrity/PRF
  DhGroupMismatch,
  PeerNotResponding,
  TsMismatch,
  PfsMismatch,
  ChildProposalMismatch,  // phase 2 (ESP) encryption/integrity
  AuthFailed,             // peer answered AUTHENTICATION_FAILED: PSK or id on its side
  DataplaneError,
  PeerDeleted,
  DeadPeer,
  Internal,
};
const char* to_string(Failure f);

enum class IkeState : uint8_t { Connecting, Established, Rekeying, Deleting, Dead };
const char* to_string(IkeState s);

struct ChildStatus {
  std::string name;
  uint32_t spi_in = 0, spi_out = 0;
  uint32_t tunnel_id = 0;
  std::string algorithms;
  std::vector<std::string> local_ts, remote_ts;
  uint64_t installed_at_ms = 0, rekey_at_ms = 0;
  uint64_t installed_for_s = 0, rekey_in_s = 0;  // relative to now (0: no rekey scheduled)
  bool encap = false;                            // ESP in UDP (RFC 3948)
  bool out_installed = true;
  uint64_t bytes_in = 0, bytes_out = 0, packets_in = 0, packets_out = 0;
  bool rekeying = false;
};

struct IkeSaStatus {
  uint64_t unique_id = 0;
  uint8_t version = 2;      // IKEv1 or IKEv2
  bool aggressive = false;  // IKEv1 phase 1 in aggressive mode
  std::string conn;
  IkeState state = IkeState::Connecting;
  bool initiator = false;
  uint64_t spi_i = 0, spi_r = 0;
  std::string local, remote;  // addr:port
  std::string local_id, remote_id;
  std::string algorithms;
  bool nat_local = false, nat_remote = false;
  uint64_t established_at_ms = 0, rekey_at_ms = 0;
  uint64_t established_for_s = 0, rekey_in_s = 0;
  std::vector<ChildStatus> children;
};

struct ConnStatus {
  std::string name;
  bool up = false;    // an established IKE SA with every configured CHILD_SA installed
  std::string state;  // "down", "connecting", "established", "partial"
  Failure failure = Failure::None;
  std::string failure_detail;  // e.g. which proposals each side offered
  uint64_t failure_at_ms = 0;
  uint32_t established_children = 0;
  // Monotonic, for metrics: since the connection was added.
  uint64_t ike_rekeys = 0, child_rekeys = 0, dpd_timeouts = 0;
  std::map<Failure, uint64_t> failures_total;
  // Failures recorded from input no peer had authenticated yet (IKE_SA_INIT,
  // the first IKEv1 message, a rejected AUTH): anyone who can spoof the
  // peer's address can cause them, so they never override the status of an
  // established connection and are counted apart (issue 15, item 8).
  std::map<Failure, uint64_t> unauthenticated_failures_total;
  std::vector<uint32_t> tunnel_ids;  // the data-plane tunnels (reqids) of its CHILD_SAs
  // "child: peer narrowed A===B to C===D ..." for each narrowed plan.
  std::vector<std::string> narrowed;
  // "child local===remote" for each plan without a CHILD_SA while the IKE
  // SA is established (what "partial" is missing).
  std::vector<std::string> without_sa;
};

struct DaemonCounters {
  uint64_t rx = 0, tx = 0, retransmits = 0;
  // By exchange (IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL) and
  // direction; messages with another exchange type count in rx only.
  uint64_t rx_by_exchange[4] = {}, tx_by_exchange[4] = {};
  // IKEv1 by exchange: main mode (ID_PROT), aggressive, quick mode,
  // informational.
  uint64_t v1_rx_by_exchange[4] = {}, v1_tx_by_exchange[4] = {};
  uint64_t malformed = 0;         // unparsable, dropped
  uint64_t bad_spi = 0;           // no IKE SA for the SPIs, dropped or INVALID_IKE_SPI
  uint64_t integrity_failed = 0;  // SK payload failed to verify
  uint64_t unsupported_critical = 0;
  uint64_t invalid_message_id = 0;
  uint64_t cookies_sent = 0, half_open_refused = 0;
  // First messages from addresses no connection is configured for: not
  // answered (a flood from random sources costs no replies, no state).
  uint64_t unknown_peer = 0;
  uint64_t ike_established = 0, child_established = 0;
  uint64_t ike_rekeyed = 0, child_rekeyed = 0;
  uint64_t auth_failures = 0, dead_peers = 0;
  uint64_t duplicates_replaced = 0;
  uint64_t invalid_ike_spi_sent = 0;  // §2.21.4 answers to requests for unknown IKE SAs  // older
                                      // IKE SAs replaced by a new one (unique_ids)
};

struct DaemonOptions {
  RetransmitConfig retransmit;
  // Cookies (§2.6) once this many half-open SAs exist; 0 = always.
  uint32_t cookie_threshold = 20;
  // Half-open SAs per source address; beyond it an IKEv2 initiator must
  // return a cookie (which a blind spoofer of that address cannot), an
  // IKEv1 one is refused.
  uint32_t half_open_per_source = 20;
  // Half-open SAs in all: beyond it every new first message is refused.
  // Bounds the memory a flood can take (docs/ike.md: about 10 KB each).
  uint32_t half_open_max = 2000;
  uint32_t nonce_len = 32;
  uint32_t replay_window = 1024;
  // First tunnel id the daemon hands out for CHILD_SA lineages (dp reqid).
  uint32_t first_tunnel_id = 1000;
  uint32_t first_policy_id = 100000;
};

class Daemon {
 public:
  Daemon(Clock& clock, Transport& transport, dp::Dataplane& dataplane, DaemonOptions opts = {});
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Adds a connection or changes one (same name). A change in anything the
  // SAs were negotiated with tears them down and negotiates again; DPD and
  // lifetime changes apply in place.
  Expected<void, std::string> upsert(const ConnConfig& c);
  void remove(const std::string& name);
  // Starts negotiating now (no-op when an IKE SA is up or connecting).
  Expected<void, std::string> initiate(const std::string& name);
  // Deletes the connection's SAs (with notification to the peer).
  void terminate(const std::string& name);

  // An IKE datagram from the network (without the non-ESP marker).
  void receive(std::span<const uint8_t> msg, const dp::Endpoint& from, const dp::Endpoint& to);
  void on_event(const dp::Event& ev);
  // Runs due timers; returns the milliseconds until the next one (or
  // UINT64_MAX when none).
  uint64_t tick();

  std::vector<IkeSaStatus> sas() const;
  std::optional<ConnStatus> status(const std::string& name) const;
  std::vector<std::string> connections() const;
  const DaemonCounters& counters() const;
  // Responder IKE SAs between IKE_SA_INIT and IKE_AUTH.
  size_t half_open() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace xgw::ike
