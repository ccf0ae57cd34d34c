#include "ike/proposals.h"

#include <sstream>

namespace xgw::ike {

namespace {

constexpr uint8_t kEncr = static_cast<uint8_t>(TransformType::Encr);
constexpr uint8_t kPrf = static_cast<uint8_t>(TransformType::Prf);
constexpr uint8_t kInteg = static_cast<uint8_t>(TransformType::Integ);
constexpr uint8_t kDh = static_cast<uint8_t>(TransformType::Dh);
constexpr uint8_t kEsn = static_cast<uint8_t>(TransformType::Esn);

bool is_gcm(EncrId e) {
  return e == EncrId::AesGcm16;
}
bool has_key_attr(EncrId e) {
  return e == EncrId::AesCbc || e == EncrId::AesGcm16;
}

Transform encr_transform(EncrId e, uint16_t bits) {
  Transform t{kEncr, static_cast<uint16_t>(e), std::nullopt};
  if (has_key_attr(e)) t.key_bits = bits;
  return t;
}

bool offers(const Proposal& p, const Transform& t) {
  for (const auto& x : p.transforms)
    if (x == t) return true;
  return false;
}
bool offers_none_of(const Proposal& p, uint8_t type) {
  for (const auto& x : p.transforms)
    if (x.type == type) return false;
  return true;
}
// A transform type the peer sent that we do not know makes the proposal
// unacceptable unless it is one we have (§3.3.6).
bool only_known_types(const Proposal& p, bool esp) {
  for (const auto& x : p.transforms) {
    if (x.type == kEncr || x.type == kInteg || x.type == kDh || x.type == kEsn) continue;
    if (x.type == kPrf && !esp) continue;
    return false;
  }
  return true;
}

bool ike_match(const Proposal& p, const IkeAlgs& a, bool ignore_dh) {
  if (p.protocol != Protocol::Ike || !only_known_types(p, false)) return false;
  if (!offers(p, encr_transform(a.encr, a.key_bits))) return false;
  if (!offers(p, Transform{kPrf, static_cast<uint16_t>(a.prf), std::nullopt})) return false;
  if (a.integ == IntegId::None) {
    if (!offers_none_of(p, kInteg) && !offers(p, Transform{kInteg, 0, std::nullopt})) return false;
  } else if (!offers(p, Transform{kInteg, static_cast<uint16_t>(a.integ), std::nullopt})) {
    return false;
  }
  if (ignore_dh) return true;
  return offers(p, Transform{kDh, static_cast<uint16_t>(a.dh), std::nullopt});
}

bool esp_match(const Proposal& p, const EspAlgs& a, bool with_dh, bool ignore_dh) {
  if (p.protocol != Protocol::Esp || p.spi.size() != 4 || !only_known_types(p, true)) return false;
  if (!offers(p, encr_transform(a.encr, a.key_bits))) return false;
  if (a.integ == IntegId::None) {
    if (!offers_none_of(p, kInteg) && !offers(p, Transform{kInteg, 0, std::nullopt})) return false;
  } else if (!offers(p, Transform{kInteg, static_cast<uint16_t>(a.integ), std::nullopt})) {
    return false;
  }
  // ESN: absent means "no ESN" (§3.3.2 says it is mandatory, but tolerate).
  const Transform esn{kEsn, static_cast<uint16_t>(a.esn ? 1 : 0), std::nullopt};
  if (!offers(p, esn) && !(offers_none_of(p, kEsn) && !a.esn)) return false;
  if (ignore_dh) return true;
  const DhId want = with_dh ? a.dh : DhId::None;
  if (want == DhId::None)
    return offers_none_of(p, kDh) || offers(p, Transform{kDh, 0, std::nullopt});
  return offers(p, Transform{kDh, static_cast<uint16_t>(want), std::nullopt});
}

uint32_t spi32(const Bytes& b) {
  return b.size() == 4
             ? (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3]
             : 0;
}

}  // namespace

SaPayload ike_sa_payload(const std::vector<IkeAlgs>& ours, const Bytes& spi) {
  SaPayload sa;
  uint8_t n = 1;
  for (const auto& a : ours) {
    Proposal p;
    p.number = n++;
    p.protocol = Protocol::Ike;
    p.spi = spi;
    p.transforms.push_back(encr_transform(a.encr, a.key_bits));
    p.transforms.push_back({kPrf, static_cast<uint16_t>(a.prf), std::nullopt});
    if (a.integ != IntegId::None)
      p.transforms.push_back({kInteg, static_cast<uint16_t>(a.integ), std::nullopt});
    p.transforms.push_back({kDh, static_cast<uint16_t>(a.dh), std::nullopt});
    sa.proposals.push_back(std::move(p));
  }
  return sa;
}

SaPayload esp_sa_payload(const std::vector<EspAlgs>& ours, uint32_t spi, bool with_dh) {
  SaPayload sa;
  uint8_t n = 1;
  for (const auto& a : ours) {
    Proposal p;
    p.number = n++;
    p.protocol = Protocol::Esp;
    p.spi = {static_cast<uint8_t>(spi >> 24), static_cast<uint8_t>(spi >> 16),
             static_cast<uint8_t>(spi >> 8), static_cast<uint8_t>(spi)};
    p.transforms.push_back(encr_transform(a.encr, a.key_bits));
    if (a.integ != IntegId::None)
      p.transforms.push_back({kInteg, static_cast<uint16_t>(a.integ), std::nullopt});
    if (with_dh && a.dh != DhId::None)
      p.transforms.push_back({kDh, static_cast<uint16_t>(a.dh), std::nullopt});
    p.transforms.push_back({kEsn, static_cast<uint16_t>(a.esn ? 1 : 0), std::nullopt});
    sa.proposals.push_back(std::move(p));
  }
  return sa;
}

std::optional<IkeChoice> choose_ike(const SaPayload& peer, const std::vector<IkeAlgs>& ours) {
  for (const auto& p : peer.proposals)
    for (const auto& a : ours)
      if (ike_match(p, a, false)) return IkeChoice{a, p.number};
  return std::nullopt;
}

std::optional<EspChoice> choose_esp(const SaPayload& peer, const std::vector<EspAlgs>& ours,
                                    bool with_dh) {
  for (const auto& p : peer.proposals)
    for (const auto& a : ours)
      if (esp_match(p, a, with_dh, false)) {
        EspAlgs chosen = a;
        if (!with_dh) chosen.dh = DhId::None;
        return EspChoice{chosen, p.number, spi32(p.spi)};
      }
  return std::nullopt;
}

bool ike_matches_without_dh(const SaPayload& peer, const std::vector<IkeAlgs>& ours) {
  for (const auto& p : peer.proposals)
    for (const auto& a : ours)
      if (ike_match(p, a, true)) return true;
  return false;
}

bool esp_matches_without_dh(const SaPayload& peer, const std::vector<EspAlgs>& ours) {
  for (const auto& p : peer.proposals)
    for (const auto& a : ours)
      if (esp_match(p, a, true, true)) return true;
  return false;
}

std::optional<IkeChoice> accepted_ike(const SaPayload& reply, const std::vector<IkeAlgs>& ours) {
  if (reply.proposals.size() != 1) return std::nullopt;
  const Proposal& p = reply.proposals[0];
  // The reply must hold exactly one transform of each type.
  for (const auto& a : ours) {
    const size_t want = a.integ == IntegId::None ? 3 : 4;
    if (p.transforms.size() == want && ike_match(p, a, false)) return IkeChoice{a, p.number};
  }
  return std::nullopt;
}

std::optional<EspChoice> accepted_esp(const SaPayload& reply, const std::vector<EspAlgs>& ours,
                                      bool with_dh) {
  if (reply.proposals.size() != 1) return std::nullopt;
  const Proposal& p = reply.proposals[0];
  for (const auto& a : ours) {
    if (!esp_match(p, a, with_dh, false)) continue;
    size_t want = 2 + (a.integ != IntegId::None) + (with_dh && a.dh != DhId::None);
    if (p.transforms.size() > want) continue;
    EspAlgs chosen = a;
    if (!with_dh) chosen.dh = DhId::None;
    return EspChoice{chosen, p.number, spi32(p.spi)};
  }
  return std::nullopt;
}

std::string describe(const SaPayload& sa) {
  std::ostringstream o;
  bool first_p = true;
  for (const auto& p : sa.proposals) {
    if (!first_p) o << ", ";
    first_p = false;
    bool first_t = true;
    for (const auto& t : p.transforms) {
      if (!first_t) o << '/';
      first_t = false;
      switch (static_cast<TransformType>(t.type)) {
        case TransformType::Encr:
          o << to_string(static_cast<EncrId>(t.id), t.key_bits.value_or(0));
          break;
        case TransformType::Prf:
          o << "prf" << to_string(static_cast<PrfId>(t.id));
          break;
        case TransformType::Integ:
          o << to_string(static_cast<IntegId>(t.id));
          break;
        case TransformType::Dh:
          o << to_string(static_cast<DhId>(t.id));
          break;
        case TransformType::Esn:
          o << (t.id ? "esn" : "noesn");
          break;
        default:
          o << "type" << int(t.type) << ":" << t.id;
      }
    }
  }
  return o.str();
}

std::string to_string(const IkeAlgs& a) {
  std::string s = to_string(a.encr, a.key_bits);
  if (a.integ != IntegId::None) s += "-" + to_string(a.integ);
  s += "-prf" + to_string(a.prf) + "-" + to_string(a.dh);
  return s;
}

std::string to_string(const EspAlgs& a) {
  std::string s = to_string(a.encr, a.key_bits);
  if (a.integ != IntegId::None) s += "-" + to_string(a.integ);
  if (a.dh != DhId::None) s += "-" + to_string(a.dh);
  if (a.esn) s += "-esn";
  return s;
}

namespace {

std::vector<std::string> split_dash(const std::string& s) {
  std::vector<std::string> v;
  std::string cur;
  for (char c : s) {
    if (c == '-') {
      v.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  v.push_back(cur);
  return v;
}

// The PRF strongSwan pairs with an integrity algorithm when none is named.
std::optional<PrfId> prf_for(IntegId i) {
  switch (i) {
    case IntegId::HmacMd5_96:
      return PrfId::HmacMd5;
    case IntegId::HmacSha1_96:
      return PrfId::HmacSha1;
    case IntegId::HmacSha2_256_128:
      return PrfId::HmacSha2_256;
    case IntegId::HmacSha2_384_192:
      return PrfId::HmacSha2_384;
    case IntegId::HmacSha2_512_256:
      return PrfId::HmacSha2_512;
    case IntegId::HmacSm3_256:
      return PrfId::HmacSm3;
    default:
      return std::nullopt;
  }
}

}  // namespace

std::optional<IkeAlgs> parse_ike_proposal(const std::string& s) {
  auto parts = split_dash(s);
  if (parts.size() < 3) return std::nullopt;
  auto e = parse_encr(parts[0]);
  if (!e) return std::nullopt;
  IkeAlgs a;
  a.encr = e->first;
  a.key_bits = e->second;
  a.integ = IntegId::None;
  std::optional<PrfId> prf;
  for (size_t i = 1; i < parts.size(); ++i) {
    if (parts[i].rfind("prf", 0) == 0) {
      prf = parse_prf(parts[i].substr(3));
      if (!prf) return std::nullopt;
    } else if (auto g = parse_dh(parts[i]); g && i + 1 == parts.size()) {
      a.dh = *g;
    } else if (auto in = parse_integ(parts[i])) {
      a.integ = *in;
    } else {
      return std::nullopt;
    }
  }
  if (!prf) prf = prf_for(a.integ);
  if (!prf) return std::nullopt;
  a.prf = *prf;
  if (is_gcm(a.encr) != (a.integ == IntegId::None)) return std::nullopt;
  return a;
}

std::optional<EspAlgs> parse_esp_proposal(const std::string& s) {
  auto parts = split_dash(s);
  auto e = parse_encr(parts[0]);
  if (!e) return std::nullopt;
  EspAlgs a;
  a.encr = e->first;
  a.key_bits = e->second;
  a.integ = IntegId::None;
  for (size_t i = 1; i < parts.size(); ++i) {
    if (parts[i] == "esn") {
      a.esn = true;
    } else if (parts[i] == "noesn") {
      a.esn = false;
    } else if (auto g = parse_dh(parts[i])) {
      a.dh = *g;
    } else if (auto in = parse_integ(parts[i])) {
      a.integ = *in;
    } else {
      return std::nullopt;
    }
  }
  if (is_gcm(a.encr) != (a.integ == IntegId::None)) return std::nullopt;
  return a;
}

size_t encr_key_len(EncrId e, uint16_t key_bits) {
  const EncrInfo* i = encr_info(e, key_bits);
  return i ? i->key_len : 0;
}

size_t integ_key_len(IntegId id) {
  const IntegInfo* i = integ_info(id);
  return i ? i->key_len : 0;
}

std::optional<esp::Encr> to_esp(EncrId e, uint16_t key_bits) {
  switch (e) {
    case EncrId::Null:
      return esp::Encr::Null;
    case EncrId::Des:
      return esp::Encr::DesCbc;
    case EncrId::TripleDes:
      return esp::Encr::TripleDesCbc;
    case EncrId::Sm4Cbc:
      return esp::Encr::Sm4Cbc;
    case EncrId::AesCbc:
      if (key_bits == 128) return esp::Encr::AesCbc128;
      if (key_bits == 192) return esp::Encr::AesCbc192;
      if (key_bits == 256) return esp::Encr::AesCbc256;
      return std::nullopt;
    case EncrId::AesGcm16:
      if (key_bits == 128) return esp::Encr::AesGcm16_128;
      if (key_bits == 256) return esp::Encr::AesGcm16_256;
      return std::nullopt;
  }
  return std::nullopt;
}

std::optional<esp::Integ> to_esp(IntegId i) {
  switch (i) {
    case IntegId::None:
      return esp::Integ::None;
    case IntegId::HmacMd5_96:
      return esp::Integ::HmacMd5_96;
    case IntegId::HmacSha1_96:
      return esp::Integ::HmacSha1_96;
    case IntegId::HmacSha2_256_128:
      return esp::Integ::HmacSha256_128;
    case IntegId::HmacSha2_384_192:
      return esp::Integ::HmacSha384_192;
    case IntegId::HmacSha2_512_256:
      return esp::Integ::HmacSha512_256;
    case IntegId::HmacSm3_256:
      return esp::Integ::HmacSm3_256;
  }
  return std::nullopt;
}

}  // namespace xgw::ike
