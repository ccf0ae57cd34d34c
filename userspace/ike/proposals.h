// IKEv2 proposals (RFC 7296 §2.7, §3.3): what xgw offers for the IKE SA
// and for CHILD_SAs, how the responder picks one of the peer's, and how a
// chosen ESP proposal becomes the data plane's transforms.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "esp/algorithms.h"
#include "ike/message.h"
#include "ike/transforms.h"

namespace xgw::ike {

struct IkeAlgs {
  EncrId encr = EncrId::AesCbc;
  uint16_t key_bits = 128;                    // AES only; 0 for fixed-size ciphers
  IntegId integ = IntegId::HmacSha2_256_128;  // None with AES-GCM
  PrfId prf = PrfId::HmacSha2_256;
  DhId dh = DhId::Modp2048;
  bool operator==(const IkeAlgs&) const = default;
};

struct EspAlgs {
  EncrId encr = EncrId::AesCbc;
  uint16_t key_bits = 128;
  IntegId integ = IntegId::HmacSha2_256_128;
  DhId dh = DhId::None;  // PFS group for CREATE_CHILD_SA; never sent in IKE_AUTH
  bool esn = false;
  bool operator==(const EspAlgs&) const = default;
};

// strongSwan-style names: "aes128-sha256-prfsha256-modp2048", "aes128gcm16-sha256-modp2048",
// "aes128-sha256-modp2048" for ESP with PFS, "aes128-sha256" without.
std::string to_string(const IkeAlgs& a);
std::string to_string(const EspAlgs& a);
// Parses one proposal in that syntax (for tests, tools and the lab); the PRF
// defaults to the integrity algorithm's hash, as strongSwan does.
std::optional<IkeAlgs> parse_ike_proposal(const std::string& s);
std::optional<EspAlgs> parse_esp_proposal(const std::string& s);

// Builds an SA payload with one proposal per entry (numbered from 1).
SaPayload ike_sa_payload(const std::vector<IkeAlgs>& ours, const Bytes& spi = {});
// `with_dh` false strips PFS groups (IKE_AUTH, §1.2).
SaPayload esp_sa_payload(const std::vector<EspAlgs>& ours, uint32_t spi, bool with_dh);

// The responder's choice (§2.7): the first of the peer's proposals that one
// of ours matches transform for transform. Returns ours (values) and the
// peer's proposal number.
struct IkeChoice {
  IkeAlgs algs;
  uint8_t number = 1;
};
std::optional<IkeChoice> choose_ike(const SaPayload& peer, const std::vector<IkeAlgs>& ours);
struct EspChoice {
  EspAlgs algs;
  uint8_t number = 1;
  uint32_t peer_spi = 0;
};
std::optional<EspChoice> choose_esp(const SaPayload& peer, const std::vector<EspAlgs>& ours,
                                    bool with_dh);
// Whether an offer matches ours when DH groups are ignored: tells a DH (or
// PFS) group mismatch from an algorithm mismatch when no proposal matches.
bool ike_matches_without_dh(const SaPayload& peer, const std::vector<IkeAlgs>& ours);
bool esp_matches_without_dh(const SaPayload& peer, const std::vector<EspAlgs>& ours);

// Reads the single proposal a responder returned and checks it is one we
// offered (§3.3.6: anything else is an error).
std::optional<IkeChoice> accepted_ike(const SaPayload& reply, const std::vector<IkeAlgs>& ours);
std::optional<EspChoice> accepted_esp(const SaPayload& reply, const std::vector<EspAlgs>& ours,
                                      bool with_dh);

// What the peer offered, readable: "aes128/sha256/prfsha256/modp2048, ...".
std::string describe(const SaPayload& sa);

// Key sizes of the negotiated algorithms.
size_t encr_key_len(EncrId e, uint16_t key_bits);  // GCM: key + 4-byte salt (RFC 5282 §7.1)
size_t integ_key_len(IntegId i);
// The data plane's transforms for a negotiated ESP proposal.
std::optional<esp::Encr> to_esp(EncrId e, uint16_t key_bits);
std::optional<esp::Integ> to_esp(IntegId i);

}  // namespace xgw::ike
