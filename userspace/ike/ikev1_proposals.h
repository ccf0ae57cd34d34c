// IKEv1 proposals: the same IkeAlgs/EspAlgs the IKEv2 daemon negotiates,
// written as ISAKMP transforms with attributes (RFC 2409 Appendix A for
// phase 1, RFC 2407 §4.5 for ESP in phase 2, RFC 3947 §5.1 for the
// UDP-encapsulated modes), and the responder's choice among a peer's.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ike/isakmp.h"
#include "ike/proposals.h"

namespace xgw::ike::v1 {

// RFC 2407 §4.5 Encapsulation Mode values, RFC 3947 §5.1 for UDP.
inline constexpr uint16_t kModeTunnel = 1;
inline constexpr uint16_t kModeUdpTunnel = 3;
inline constexpr uint16_t kModeUdpTunnelDraft = 61443;  // draft-ietf-ipsec-nat-t-ike-0x
inline constexpr uint8_t kProtoIsakmp = 1, kProtoEsp = 3;

// Phase 1 (§5, Appendix A): one proposal, one KEY_IKE transform per entry,
// pre-shared key authentication, lifetime in seconds.
isakmp::SaPayload phase1_sa(const std::vector<IkeAlgs>& ours, uint32_t lifetime_s);

struct Phase1Choice {
  IkeAlgs algs;
  isakmp::Transform transform;  // as the peer sent it (the responder echoes it)
  uint32_t lifetime_s = 0;      // 0: the peer proposed none
  bool psk = true;              // the authentication method is pre-shared key
};
// The first of the peer's transforms that one of ours matches
// (encryption and key length, hash, group, PSK). The IkeAlgs' integrity
// field is the HMAC of the same hash (IKEv1 has no separate one).
std::optional<Phase1Choice> choose_phase1(const isakmp::SaPayload& peer,
                                          const std::vector<IkeAlgs>& ours);
// Reads a transform as IKEv1 algorithms (nullopt for anything xgw cannot
// run or a non-PSK method).
std::optional<Phase1Choice> read_phase1(const isakmp::Transform& t);
bool phase1_matches_without_dh(const isakmp::SaPayload& peer, const std::vector<IkeAlgs>& ours);

// Phase 2 (RFC 2407 §4.5): one ESP proposal with our inbound SPI, one
// transform per entry; `pfs` adds the Group Description (and a KE payload
// goes with it); lifetime in seconds and, when set, kilobytes.
isakmp::SaPayload phase2_sa(const std::vector<EspAlgs>& ours, uint32_t spi, DhId pfs,
                            bool udp_encap, uint32_t lifetime_s, uint64_t lifetime_kb);

struct Phase2Choice {
  EspAlgs algs;               // dh: the PFS group (None without)
  isakmp::Proposal proposal;  // the peer's proposal cut to the chosen transform
  uint32_t peer_spi = 0;
  uint16_t mode = kModeTunnel;
  uint32_t lifetime_s = 0;
  uint64_t lifetime_kb = 0;
};
std::optional<Phase2Choice> read_phase2(const isakmp::Proposal& p, const isakmp::Transform& t);
// `pfs` is our PFS group: a transform must carry the same one.
std::optional<Phase2Choice> choose_phase2(const isakmp::SaPayload& peer,
                                          const std::vector<EspAlgs>& ours, DhId pfs);
bool phase2_matches_without_dh(const isakmp::SaPayload& peer, const std::vector<EspAlgs>& ours);

// The lifetime in seconds a RESPONDER-LIFETIME notification's data (RFC
// 2407 §4.6.3.1: SA Life Type/Duration attributes) sets; nullopt if none.
std::optional<uint32_t> responder_lifetime_s(std::span<const uint8_t> data);

// "aes128-sha1-modp1024" (strongSwan's IKEv1 proposal syntax).
std::string to_string(const IkeAlgs& a);
// What the peer offered, readable.
std::string describe(const isakmp::SaPayload& sa);

}  // namespace xgw::ike::v1
