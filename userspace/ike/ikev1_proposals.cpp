#include "ike/ikev1_proposals.h"

#include <algorithm>
#include <sstream>

namespace xgw::ike::v1 {

namespace {

using isakmp::Attribute;
using isakmp::Proposal;
using isakmp::SaPayload;
using isakmp::Transform;

// RFC 2409 Appendix A, phase-1 attribute classes.
enum P1Attr : uint16_t {
  kEncr = 1,
  kHash = 2,
  kAuth = 3,
  kGroup = 4,
  kLifeType = 11,
  kLifeDuration = 12,
  kKeyLength = 14
};
// RFC 2407 §4.5, phase-2 attribute classes.
enum P2Attr : uint16_t {
  kSaLifeType = 1,
  kSaLifeDuration = 2,
  kGroupDesc = 3,
  kEncapMode = 4,
  kAuthAlg = 5,
  kP2KeyLength = 6,
  kEsn = 11  // RFC 4304 §2
};
constexpr uint16_t kLifeSeconds = 1, kLifeKilobytes = 2;
constexpr uint16_t kAuthPsk = 1;
constexpr uint8_t kKeyIke = 1;

Attribute tv(uint16_t type, uint16_t v) {
  return Attribute{type, true, v, {}};
}
// Life durations: TV when they fit 16 bits, else a 4-byte TLV (§3.3).
Attribute duration(uint16_t type, uint64_t v) {
  if (v <= 0xffff) return tv(type, static_cast<uint16_t>(v));
  Attribute a{type, false, 0, {}};
  const int n = v > 0xffffffffu ? 8 : 4;
  for (int i = n - 1; i >= 0; --i) a.data.push_back(static_cast<uint8_t>(v >> (8 * i)));
  return a;
}
uint64_t value(const Attribute& a) {
  if (a.tv) return a.value;
  uint64_t v = 0;
  for (size_t i = 0; i < a.data.size() && i < 8; ++i) v = (v << 8) | a.data[i];
  return v;
}

// Phase-1 encryption algorithm values (Appendix A; AES from RFC 3602 §5).
std::optional<uint16_t> p1_encr(EncrId e) {
  switch (e) {
    case EncrId::Des:
      return 1;
    case EncrId::TripleDes:
      return 5;
    case EncrId::AesCbc:
      return 7;
    default:
      return std::nullopt;
  }
}
std::optional<EncrId> p1_encr_id(uint16_t v) {
  switch (v) {
    case 1:
      return EncrId::Des;
    case 5:
      return EncrId::TripleDes;
    case 7:
      return EncrId::AesCbc;
    default:
      return std::nullopt;
  }
}
// Hash values (Appendix A; SHA-2 from RFC 4868 §1 / IANA).
std::optional<uint16_t> p1_hash(PrfId p) {
  switch (p) {
    case PrfId::HmacMd5:
      return 1;
    case PrfId::HmacSha1:
      return 2;
    case PrfId::HmacSha2_256:
      return 4;
    case PrfId::HmacSha2_384:
      return 5;
    case PrfId::HmacSha2_512:
      return 6;
    default:
      return std::nullopt;
  }
}
std::optional<PrfId> p1_prf(uint16_t v) {
  switch (v) {
    case 1:
      return PrfId::HmacMd5;
    case 2:
      return PrfId::HmacSha1;
    case 4:
      return PrfId::HmacSha2_256;
    case 5:
      return PrfId::HmacSha2_384;
    case 6:
      return PrfId::HmacSha2_512;
    default:
      return std::nullopt;
  }
}
IntegId integ_of(PrfId p) {
  switch (p) {
    case PrfId::HmacMd5:
      return IntegId::HmacMd5_96;
    case PrfId::HmacSha1:
      return IntegId::HmacSha1_96;
    case PrfId::HmacSha2_256:
      return IntegId::HmacSha2_256_128;
    case PrfId::HmacSha2_384:
      return IntegId::HmacSha2_384_192;
    case PrfId::HmacSha2_512:
      return IntegId::HmacSha2_512_256;
    default:
      return IntegId::None;
  }
}
// RFC 2407 §4.5 Authentication Algorithm values (RFC 4868 §2.4 for SHA-2).
std::optional<uint16_t> p2_auth(IntegId i) {
  switch (i) {
    case IntegId::HmacMd5_96:
      return 1;
    case IntegId::HmacSha1_96:
      return 2;
    case IntegId::HmacSha2_256_128:
      return 5;
    case IntegId::HmacSha2_384_192:
      return 6;
    case IntegId::HmacSha2_512_256:
      return 7;
    default:
      return std::nullopt;
  }
}
std::optional<IntegId> p2_integ(uint16_t v) {
  switch (v) {
    case 1:
      return IntegId::HmacMd5_96;
    case 2:
      return IntegId::HmacSha1_96;
    case 5:
      return IntegId::HmacSha2_256_128;
    case 6:
      return IntegId::HmacSha2_384_192;
    case 7:
      return IntegId::HmacSha2_512_256;
    default:
      return std::nullopt;
  }
}

bool same_p1(const IkeAlgs& a, const IkeAlgs& b, bool with_dh) {
  return a.encr == b.encr && a.key_bits == b.key_bits && a.prf == b.prf &&
         (!with_dh || a.dh == b.dh);
}
bool same_p2(const EspAlgs& a, const EspAlgs& b) {
  return a.encr == b.encr && a.key_bits == b.key_bits && a.integ == b.integ && a.esn == b.esn;
}

}  // namespace

SaPayload phase1_sa(const std::vector<IkeAlgs>& ours, uint32_t lifetime_s) {
  Proposal p;
  p.number = 1;
  p.protocol = kProtoIsakmp;
  uint8_t n = 1;
  for (const auto& a : ours) {
    auto e = p1_encr(a.encr);
    auto h = p1_hash(a.prf);
    if (!e || !h) continue;
    Transform t;
    t.number = n++;
    t.id = kKeyIke;
    t.attributes.push_back(tv(kEncr, *e));
    if (a.encr == EncrId::AesCbc) t.attributes.push_back(tv(kKeyLength, a.key_bits));
    t.attributes.push_back(tv(kHash, *h));
    t.attributes.push_back(tv(kAuth, kAuthPsk));
    t.attributes.push_back(tv(kGroup, static_cast<uint16_t>(a.dh)));
    t.attributes.push_back(tv(kLifeType, kLifeSeconds));
    t.attributes.push_back(duration(kLifeDuration, lifetime_s));
    p.transforms.push_back(std::move(t));
  }
  SaPayload sa;
  sa.proposals.push_back(std::move(p));
  return sa;
}

std::optional<Phase1Choice> read_phase1(const Transform& t) {
  if (t.id != kKeyIke) return std::nullopt;
  Phase1Choice c;
  c.transform = t;
  std::optional<EncrId> e;
  std::optional<PrfId> prf;
  uint16_t key_bits = 0, life_type = 0;
  bool group = false, auth = false;
  for (const auto& a : t.attributes) {
    switch (a.type) {
      case kEncr:
        e = p1_encr_id(static_cast<uint16_t>(value(a)));
        if (!e) return std::nullopt;
        break;
      case kHash:
        prf = p1_prf(static_cast<uint16_t>(value(a)));
        if (!prf) return std::nullopt;
        break;
      case kAuth:
        auth = true;
        c.psk = value(a) == kAuthPsk;
        break;
      case kGroup:
        group = true;
        c.algs.dh = static_cast<DhId>(value(a));
        break;
      case kKeyLength:
        key_bits = static_cast<uint16_t>(value(a));
        break;
      case kLifeType:
        life_type = static_cast<uint16_t>(value(a));
        break;
      case kLifeDuration:
        if (life_type == kLifeSeconds) c.lifetime_s = static_cast<uint32_t>(value(a));
        break;
      default:
        // Group type/prime/generator (custom groups) are not supported:
        // such a transform cannot match.
        if (a.type >= 5 && a.type <= 10) return std::nullopt;
        break;
    }
  }
  if (!e || !prf || !group || !auth) return std::nullopt;
  if (*e == EncrId::AesCbc && key_bits == 0) key_bits = 128;  // RFC 3602 §5: default 128
  if (*e != EncrId::AesCbc) key_bits = 0;
  if (!encr_info(*e, key_bits)) return std::nullopt;  // e.g. AES with a 243-bit key
  c.algs.encr = *e;
  c.algs.key_bits = key_bits;
  c.algs.prf = *prf;
  c.algs.integ = integ_of(*prf);
  return c;
}

std::optional<Phase1Choice> choose_phase1(const SaPayload& peer, const std::vector<IkeAlgs>& ours) {
  for (const auto& p : peer.proposals) {
    if (p.protocol != kProtoIsakmp) continue;
    for (const auto& t : p.transforms) {
      auto c = read_phase1(t);
      if (!c || !c->psk) continue;
      for (const auto& o : ours)
        if (same_p1(c->algs, o, true)) return c;
    }
  }
  return std::nullopt;
}

bool phase1_matches_without_dh(const SaPayload& peer, const std::vector<IkeAlgs>& ours) {
  for (const auto& p : peer.proposals)
    for (const auto& t : p.transforms) {
      auto c = read_phase1(t);
      if (!c || !c->psk) continue;
      for (const auto& o : ours)
        if (same_p1(c->algs, o, false)) return true;
    }
  return false;
}

SaPayload phase2_sa(const std::vector<EspAlgs>& ours, uint32_t spi, DhId pfs, bool udp_encap,
                    uint32_t lifetime_s, uint64_t lifetime_kb) {
  Proposal p;
  p.number = 1;
  p.protocol = kProtoEsp;
  p.spi = {uint8_t(spi >> 24), uint8_t(spi >> 16), uint8_t(spi >> 8), uint8_t(spi)};
  uint8_t n = 1;
  for (const auto& a : ours) {
    Transform t;
    t.number = n++;
    t.id = static_cast<uint8_t>(a.encr);  // ESP transform IDs equal IKEv2's ENCR IDs
    t.attributes.push_back(tv(kSaLifeType, kLifeSeconds));
    t.attributes.push_back(duration(kSaLifeDuration, lifetime_s));
    if (lifetime_kb) {
      t.attributes.push_back(tv(kSaLifeType, kLifeKilobytes));
      t.attributes.push_back(duration(kSaLifeDuration, lifetime_kb));
    }
    if (pfs != DhId::None) t.attributes.push_back(tv(kGroupDesc, static_cast<uint16_t>(pfs)));
    t.attributes.push_back(tv(kEncapMode, udp_encap ? kModeUdpTunnel : kModeTunnel));
    if (auto au = p2_auth(a.integ)) t.attributes.push_back(tv(kAuthAlg, *au));
    if (a.encr == EncrId::AesCbc || a.encr == EncrId::AesGcm16)
      t.attributes.push_back(tv(kP2KeyLength, a.key_bits));
    if (a.esn) t.attributes.push_back(tv(kEsn, 1));
    p.transforms.push_back(std::move(t));
  }
  SaPayload sa;
  sa.proposals.push_back(std::move(p));
  return sa;
}

std::optional<Phase2Choice> read_phase2(const Proposal& p, const Transform& t) {
  if (p.protocol != kProtoEsp || p.spi.size() != 4) return std::nullopt;
  Phase2Choice c;
  c.peer_spi = (uint32_t{p.spi[0]} << 24) | (uint32_t{p.spi[1]} << 16) | (uint32_t{p.spi[2]} << 8) |
               p.spi[3];
  c.algs.encr = static_cast<EncrId>(t.id);
  c.algs.integ = IntegId::None;
  c.algs.key_bits = 0;
  uint16_t life_type = 0;
  for (const auto& a : t.attributes) {
    switch (a.type) {
      case kSaLifeType:
        life_type = static_cast<uint16_t>(value(a));
        break;
      case kSaLifeDuration:
        if (life_type == kLifeSeconds) c.lifetime_s = static_cast<uint32_t>(value(a));
        if (life_type == kLifeKilobytes) c.lifetime_kb = value(a);
        break;
      case kGroupDesc:
        c.algs.dh = static_cast<DhId>(value(a));
        break;
      case kEncapMode:
        c.mode = static_cast<uint16_t>(value(a));
        if (c.mode != kModeTunnel && c.mode != kModeUdpTunnel && c.mode != kModeUdpTunnelDraft)
          return std::nullopt;  // transport mode: xgw runs tunnels only
        break;
      case kAuthAlg: {
        auto i = p2_integ(static_cast<uint16_t>(value(a)));
        if (!i) return std::nullopt;
        c.algs.integ = *i;
        break;
      }
      case kP2KeyLength:
        c.algs.key_bits = static_cast<uint16_t>(value(a));
        break;
      case kEsn:
        c.algs.esn = value(a) == 1;
        break;
      default:
        return std::nullopt;  // compression and anything unknown: not ours
    }
  }
  if ((c.algs.encr == EncrId::AesCbc || c.algs.encr == EncrId::AesGcm16) && c.algs.key_bits == 0)
    c.algs.key_bits = 128;
  if (!encr_info(c.algs.encr, c.algs.key_bits)) return std::nullopt;
  c.proposal = p;
  c.proposal.transforms = {t};
  return c;
}

std::optional<Phase2Choice> choose_phase2(const SaPayload& peer, const std::vector<EspAlgs>& ours,
                                          DhId pfs) {
  for (const auto& p : peer.proposals)
    for (const auto& t : p.transforms) {
      auto c = read_phase2(p, t);
      if (!c || c->algs.dh != pfs) continue;
      for (const auto& o : ours)
        if (same_p2(c->algs, o)) return c;
    }
  return std::nullopt;
}

bool phase2_matches_without_dh(const SaPayload& peer, const std::vector<EspAlgs>& ours) {
  for (const auto& p : peer.proposals)
    for (const auto& t : p.transforms) {
      auto c = read_phase2(p, t);
      if (!c) continue;
      for (const auto& o : ours)
        if (same_p2(c->algs, o)) return true;
    }
  return false;
}

std::optional<uint32_t> responder_lifetime_s(std::span<const uint8_t> data) {
  auto attrs = isakmp::parse_attributes(data);
  if (!attrs) return std::nullopt;
  uint16_t life_type = 0;
  std::optional<uint32_t> out;
  for (const auto& a : *attrs) {
    if (a.type == kSaLifeType) life_type = static_cast<uint16_t>(value(a));
    if (a.type == kSaLifeDuration && life_type == kLifeSeconds && value(a) > 0)
      out = static_cast<uint32_t>(std::min<uint64_t>(value(a), UINT32_MAX));
  }
  return out;
}

std::string to_string(const IkeAlgs& a) {
  return ike::to_string(a.encr, a.key_bits) + "-" + ike::to_string(a.prf) + "-" +
         ike::to_string(a.dh);
}

std::string describe(const SaPayload& sa) {
  std::ostringstream o;
  bool first = true;
  for (const auto& p : sa.proposals)
    for (const auto& t : p.transforms) {
      if (!first) o << ", ";
      first = false;
      if (p.protocol == kProtoIsakmp) {
        if (auto c = read_phase1(t))
          o << v1::to_string(c->algs) << (c->psk ? "" : "(not psk)");
        else
          o << "transform#" << int(t.number) << "(unsupported)";
      } else {
        if (auto c = read_phase2(p, t))
          o << ike::to_string(c->algs);
        else
          o << "esp#" << int(t.id) << "(unsupported)";
      }
    }
  return o.str();
}

}  // namespace xgw::ike::v1
