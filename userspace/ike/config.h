// What the IKEv2 daemon is told about one connection: endpoints,
// identities, the PSK, proposals, the CHILD_SAs to negotiate (from the SPD
// rules), lifetimes and DPD. xgwd builds these from the object model
// (ike/from_model.h); tests build them by hand.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/net.h"
#include "ike/message.h"
#include "ike/proposals.h"

namespace xgw::ike {

struct Identity {
  IdType type = IdType::Ipv4;
  Bytes data;  // address bytes or the FQDN's text

  static Identity from_ip(const net::IpAddr& a);
  static Identity fqdn(const std::string& name);
  std::string str() const;
  bool operator==(const Identity&) const = default;
};

// One CHILD_SA as configured: all local × remote prefixes in one SA when
// the peer accepts them (SPEC §5), split per relation when it narrows.
struct ChildConfig {
  std::string name;
  std::vector<net::Cidr> local_ts, remote_ts;
};

struct DpdConfig {
  uint32_t interval_s = 30;  // idle time before a liveness check (0 = off)
  uint32_t timeout_s = 30;   // dead when the check stays unanswered this long
  uint32_t retries = 3;      // probes sent within the timeout
};

struct ConnConfig {
  std::string name;  // the connection's name (logs) — unique in the daemon
  std::string id;    // the connection's id (status lookups)
  net::IpAddr local, remote;
  uint16_t local_port = 500, remote_port = 500;
  Identity local_id, remote_id;
  std::string psk;
  std::vector<IkeAlgs> ike;
  std::vector<EspAlgs> esp;
  std::vector<ChildConfig> children;
  uint32_t ike_lifetime_s = 86400;
  uint32_t child_lifetime_s = 3600;
  uint64_t child_lifetime_bytes = 0;  // 0: no volume limit
  DpdConfig dpd;
  bool nat_t = true;
  bool start_immediately = true;  // else: on the data plane's acquire
  // A new IKE SA the peer authenticates for this connection and identity
  // replaces the older ones it initiated (strongSwan's uniqueids=yes).
  bool unique_ids = true;
  // IKEv1 (RFC 2409) instead of IKEv2: main or aggressive mode for phase 1,
  // one quick mode per local x remote relation, and the DPD payload order
  // (RFC 3706 R-U-THERE: HASH then Notify, or Notify then HASH, SPEC §4).
  uint8_t ike_version = 2;
  bool aggressive = false;
  bool dpd_notify_first = false;
  // Rekeys start this long before expiry, minus up to `jitter` percent of
  // it, so two peers rarely rekey at once (§2.8.1).
  uint32_t rekey_margin_percent = 10;
  uint32_t jitter_percent = 30;
};

// Retransmission (§2.1): a request is resent after `base_ms`, then the
// interval grows by `factor` until `tries` sends went unanswered.
struct RetransmitConfig {
  uint32_t base_ms = 4000;
  double factor = 1.8;
  uint32_t tries = 5;
};

}  // namespace xgw::ike
