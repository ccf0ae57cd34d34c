// IKEv1 exchanges (RFC 2409) on the daemon's shared SA manager: main and
// aggressive mode with pre-shared keys (§5, §5.4), quick mode (§5.5),
// informational exchanges (§5.7) with deletes, INITIAL-CONTACT (RFC 2407
// §4.6.3.3) and DPD (RFC 3706), and NAT traversal (RFC 3947). Connections,
// CHILD_SA installation, policies, timers, retransmission, failure
// bookkeeping and status are the IKEv2 daemon's (daemon_impl.h); only the
// messages are built here.
//
// Roles: the phase-1 initiator starts quick modes for every plan; either
// side may rekey phase 2 (a new quick mode for the same relation, then a
// Delete for the old SPI) or phase 1 (a new main/aggressive mode; the
// CHILD_SAs move to the new ISAKMP SA, the old one is deleted).
#include <openssl/crypto.h>

#include "ike/daemon_impl.h"
#include "ike/ikev1_crypto.h"
#include "ike/ikev1_proposals.h"
#include "ike/isakmp.h"

namespace xgw::ike {

namespace {

namespace k = isakmp;

// RFC 2408 §3.14.1 notify messages, RFC 2407 §4.6.3, RFC 3706 §5.
enum : uint16_t {
  kInvalidPayloadType = 1,
  kInvalidExchangeType = 7,
  kInvalidSpi = 11,
  kNoProposalChosen = 14,
  kPayloadMalformed = 16,
  kInvalidIdInformation = 18,
  kInvalidHashInformation = 23,
  kAuthenticationFailed = 24,
  kConnected = 16384,
  kResponderLifetime = 24576,
  kInitialContact = 24578,
  kRuThere = 36136,
  kRuThereAck = 36137,
};

// RFC 3947 §3.1: MD5("RFC 3947"); RFC 3706 §5.1 (version 1.0).
const Bytes kVidNatT = {0x4a, 0x13, 0x1c, 0x81, 0x07, 0x03, 0x58, 0x45,
                        0x5c, 0x57, 0x28, 0xf2, 0x0e, 0x95, 0x45, 0x2f};
const Bytes kVidDpd = {0xaf, 0xca, 0xd7, 0x13, 0x68, 0xa1, 0xf1, 0xc9,
                       0x6b, 0x86, 0x96, 0xfc, 0x77, 0x57, 0x01, 0x00};

// RFC 2407 §4.6.2.1 identification types beyond IKEv2's.
constexpr uint8_t kIdIpv4Subnet = 4, kIdIpv6Subnet = 6;

// After our phase-1 rekey the old ISAKMP SA is deleted this much later (see
// V1::established); a phase 1 the peer starts holds our quick modes at most
// this long.
constexpr uint64_t kSupersededDeleteMs = 10000;
constexpr uint64_t kPeerPhase1HoldMs = 10000;

const char* notify_name(uint16_t t) {
  switch (t) {
    case kInvalidPayloadType:
      return "INVALID-PAYLOAD-TYPE";
    case kInvalidExchangeType:
      return "INVALID-EXCHANGE-TYPE";
    case kInvalidSpi:
      return "INVALID-SPI";
    case kNoProposalChosen:
      return "NO-PROPOSAL-CHOSEN";
    case kPayloadMalformed:
      return "PAYLOAD-MALFORMED";
    case kInvalidIdInformation:
      return "INVALID-ID-INFORMATION";
    case kInvalidHashInformation:
      return "INVALID-HASH-INFORMATION";
    case kAuthenticationFailed:
      return "AUTHENTICATION-FAILED";
    default:
      return "notify";
  }
}

k::Payload payload(k::PayloadType t, Bytes data) {
  return k::Payload{t, k::RawPayload{std::move(data)}};
}

// One payload's place in a decoded chain: its generic header starts at
// `off`, `len` bytes long (header included).
struct RawItem {
  k::PayloadType type;
  size_t off, len;
};

std::optional<std::vector<RawItem>> walk(k::PayloadType first, std::span<const uint8_t> chain) {
  std::vector<RawItem> items;
  size_t off = 0;
  uint8_t t = static_cast<uint8_t>(first);
  while (t != 0) {
    if (off + 4 > chain.size() || items.size() > 64) return std::nullopt;
    const size_t len = (size_t{chain[off + 2]} << 8) | chain[off + 3];
    if (len < 4 || off + len > chain.size()) return std::nullopt;
    items.push_back({static_cast<k::PayloadType>(t), off, len});
    t = chain[off];
    off += len;
  }
  return items;
}

Bytes be16(uint16_t v) {
  return {uint8_t(v >> 8), uint8_t(v)};
}

Bytes cookies(const IkeSa& sa) {
  Bytes b = be64(sa.spi_i);
  Bytes r = be64(sa.spi_r);
  b.insert(b.end(), r.begin(), r.end());
  return b;
}

// RFC 2407 §4.6.2: a prefix as ID_IPV4_ADDR_SUBNET / ID_IPV6_ADDR_SUBNET
// (a host as ID_IPV4_ADDR / ID_IPV6_ADDR, as strongSwan sends it).
k::IdPayload id_of(const net::Cidr& c) {
  k::IdPayload id;
  const bool v4 = c.family() == net::Family::V4;
  const size_t n = v4 ? 4 : 16;
  id.data.assign(c.addr.bytes.begin(), c.addr.bytes.begin() + static_cast<ptrdiff_t>(n));
  if (c.len == n * 8) {
    id.type = v4 ? 1 : 5;
    return id;
  }
  id.type = v4 ? kIdIpv4Subnet : kIdIpv6Subnet;
  for (size_t i = 0; i < n; ++i) {
    const int bits = std::clamp(static_cast<int>(c.len) - static_cast<int>(i * 8), 0, 8);
    id.data.push_back(static_cast<uint8_t>(0xff00 >> bits));
  }
  return id;
}

std::optional<net::Cidr> cidr_of(const k::IdPayload& id) {
  net::IpAddr a;
  size_t n = 0;
  switch (id.type) {
    case 1:
    case kIdIpv4Subnet:
      a.family = net::Family::V4;
      n = 4;
      break;
    case 5:
    case kIdIpv6Subnet:
      a.family = net::Family::V6;
      n = 16;
      break;
    default:
      return std::nullopt;  // ranges and names do not describe a prefix
  }
  const bool subnet = id.type == kIdIpv4Subnet || id.type == kIdIpv6Subnet;
  if (id.data.size() != (subnet ? 2 * n : n)) return std::nullopt;
  std::copy(id.data.begin(), id.data.begin() + static_cast<ptrdiff_t>(n), a.bytes.begin());
  uint8_t len = static_cast<uint8_t>(n * 8);
  if (subnet) {
    len = 0;
    bool ended = false;
    for (size_t i = n; i < 2 * n; ++i)
      for (int b = 7; b >= 0; --b) {
        const bool one = (id.data[i] >> b) & 1;
        if (one && ended) return std::nullopt;  // not a contiguous mask
        if (one)
          ++len;
        else
          ended = true;
      }
  }
  // Host bits beyond the mask are ignored (the network is what counts).
  for (size_t i = 0; i < n; ++i) {
    const int bits = std::clamp(static_cast<int>(len) - static_cast<int>(i * 8), 0, 8);
    a.bytes[i] &= static_cast<uint8_t>(0xff00 >> bits);
  }
  net::Cidr c;
  c.addr = a;
  c.len = len;
  return c;
}

uint32_t random_nonzero32() {
  uint32_t v = 0;
  while (v == 0) {
    Bytes b = random_bytes(4);
    v = (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
  }
  return v;
}

template <typename T>
const T* get(const std::vector<k::Payload>& ps, k::PayloadType t, size_t nth = 0) {
  for (const auto& p : ps)
    if (p.type == t) {
      if (nth == 0) return std::get_if<T>(&p.body);
      --nth;
    }
  return nullptr;
}
std::vector<const k::NotifyPayload*> notifies(const std::vector<k::Payload>& ps) {
  std::vector<const k::NotifyPayload*> v;
  for (const auto& p : ps)
    if (auto* n = std::get_if<k::NotifyPayload>(&p.body)) v.push_back(n);
  return v;
}
bool has_vid(const std::vector<k::Payload>& ps, const Bytes& vid) {
  for (const auto& p : ps)
    if (p.type == k::PayloadType::Vendor)
      if (auto* r = std::get_if<k::RawPayload>(&p.body); r && r->data == vid) return true;
  return false;
}

// DaemonCounters::v1_*_by_exchange index of an ISAKMP exchange type.
int v1_index(uint8_t ex) {
  switch (static_cast<k::Exchange>(ex)) {
    case k::Exchange::Main:
      return 0;
    case k::Exchange::Aggressive:
      return 1;
    case k::Exchange::Quick:
      return 2;
    case k::Exchange::Informational:
      return 3;
  }
  return -1;
}

// A decrypted (or plain) message.
struct Opened {
  Bytes chain;
  Bytes iv;  // the CBC chain after this message
  std::vector<RawItem> items;
  std::vector<k::Payload> payloads;
};

}  // namespace

// ---------------------------------------------------------------------------

struct V1 {
  Daemon::Impl& I;

  uint64_t now() const { return I.now(); }

  // ---- messages

  void transmit(const IkeSa& sa, std::span<const uint8_t> pkt) { send(sa.local, sa.remote, pkt); }
  void send(const dp::Endpoint& from, const dp::Endpoint& to, std::span<const uint8_t> pkt) {
    if (pkt.size() < k::kHeaderSize) return;
    ++I.ctr.tx;
    if (int i = v1_index(pkt[18]); i >= 0) ++I.ctr.v1_tx_by_exchange[i];
    I.transport.send(from, to, pkt);
  }

  Bytes message(IkeSa& sa, k::Exchange ex, uint32_t mid, const Bytes& chain, k::PayloadType first,
                Bytes* iv, uint8_t extra_flags = 0) {
    k::Header h;
    h.icookie = sa.spi_i;
    h.rcookie = sa.spi_r;
    h.exchange = ex;
    h.message_id = mid;
    h.next = first;
    Bytes out;
    if (iv) {
      auto ct = sa.v1_cipher->encrypt(*iv, chain);
      if (!ct) {
        I.log_sa(spdlog::level::err, sa, "ike.seal_failed", {{"error", ct.error()}});
        return {};
      }
      h.flags = k::kFlagEncryption | extra_flags;
      h.length = static_cast<uint32_t>(k::kHeaderSize + ct->size());
      k::encode_header(h, out);
      out.insert(out.end(), ct->begin(), ct->end());
    } else {
      h.length = static_cast<uint32_t>(k::kHeaderSize + chain.size());
      k::encode_header(h, out);
      out.insert(out.end(), chain.begin(), chain.end());
    }
    return out;
  }

  Bytes message(IkeSa& sa, k::Exchange ex, uint32_t mid, const std::vector<k::Payload>& ps,
                Bytes* iv) {
    return message(sa, ex, mid, k::encode_chain(ps), ps.empty() ? k::PayloadType::None : ps[0].type,
                   iv);
  }

  // prf(SKEYID_a, prefix | the chain without its HASH payload) — the
  // phase-2 hashes (§5.5, §5.7). `alt` recomputes with the next-payload
  // octet of the payload before HASH cleared, for peers that put HASH
  // last and hash the Notify as if it stood alone.
  Bytes phase2_hash(const IkeSa& sa, std::span<const uint8_t> prefix,
                    std::span<const uint8_t> chain, const std::vector<RawItem>& items,
                    size_t hash_index, bool alt = false) {
    Bytes data(prefix.begin(), prefix.end());
    for (size_t i = 0; i < items.size(); ++i) {
      if (i == hash_index) continue;
      const size_t at = data.size();
      data.insert(data.end(), chain.begin() + static_cast<ptrdiff_t>(items[i].off),
                  chain.begin() + static_cast<ptrdiff_t>(items[i].off + items[i].len));
      if (alt && i + 1 == hash_index && hash_index + 1 == items.size()) data[at] = 0;
    }
    Bytes out(sa.prf->out_size());
    if (!sa.prf->compute(sa.skeyid_a, {data}, out.data())) return {};
    return out;
  }

  // Encodes `ps` with the HASH payload at `hi` filled in.
  Bytes chain_with_hash(const IkeSa& sa, std::vector<k::Payload> ps, size_t hi,
                        std::span<const uint8_t> prefix) {
    ps[hi] = payload(k::PayloadType::HASH, Bytes(sa.prf->out_size(), 0));
    Bytes chain = k::encode_chain(ps);
    auto items = walk(ps[0].type, chain);
    if (!items) return {};
    const Bytes h = phase2_hash(sa, prefix, chain, *items, hi);
    std::copy(h.begin(), h.end(), chain.begin() + static_cast<ptrdiff_t>((*items)[hi].off + 4));
    return chain;
  }

  Expected<Opened, std::string> open(IkeSa& sa, std::span<const uint8_t> raw, const k::Header& h,
                                     Bytes iv) {
    Opened o;
    if (h.flags & k::kFlagEncryption) {
      if (!sa.v1_cipher) return unexpected(std::string("encrypted before keys exist"));
      auto pt = sa.v1_cipher->decrypt(iv, raw.subspan(k::kHeaderSize));
      if (!pt) return unexpected(pt.error());
      o.chain = std::move(*pt);
    } else {
      o.chain.assign(raw.begin() + k::kHeaderSize, raw.end());
    }
    o.iv = std::move(iv);
    auto items = walk(h.next, o.chain);
    if (!items) return unexpected(std::string("payload chain does not parse"));
    o.items = std::move(*items);
    auto ps = k::parse_chain(h.next, o.chain, true);
    if (!ps) return unexpected(ps.error());
    o.payloads = std::move(*ps);
    return o;
  }

  // An unprotected notification (before keys exist): RFC 2408 §3.14 in an
  // informational exchange with message ID 0.
  void plain_notify(uint64_t icookie, uint64_t rcookie, uint16_t type, const dp::Endpoint& local,
                    const dp::Endpoint& remote) {
    k::NotifyPayload n;
    n.protocol = v1::kProtoIsakmp;
    n.type = type;
    Bytes chain = k::encode_chain({k::Payload{k::PayloadType::Notify, n}});
    k::Header h;
    h.icookie = icookie;
    h.rcookie = rcookie;
    h.exchange = k::Exchange::Informational;
    h.next = k::PayloadType::Notify;
    h.length = static_cast<uint32_t>(k::kHeaderSize + chain.size());
    Bytes out;
    k::encode_header(h, out);
    out.insert(out.end(), chain.begin(), chain.end());
    send(local, remote, out);
  }

  // An informational exchange (§5.7): HASH(1) = prf(SKEYID_a, M-ID | N/D).
  Bytes informational(IkeSa& sa, std::vector<k::Payload> body, bool hash_last,
                      uint32_t* mid_out = nullptr) {
    const uint32_t mid = random_nonzero32();
    if (mid_out) *mid_out = mid;
    Bytes iv = v1::phase2_iv(*sa.prf, sa.p1_iv, mid, sa.v1_cipher->block_size());
    std::vector<k::Payload> ps;
    size_t hi = 0;
    if (hash_last) {
      ps = std::move(body);
      hi = ps.size();
      ps.push_back({});
    } else {
      ps.push_back({});
      ps.insert(ps.end(), body.begin(), body.end());
    }
    const Bytes chain = chain_with_hash(sa, ps, hi, be32(mid));
    if (chain.empty()) return {};
    ps[hi] = payload(k::PayloadType::HASH, {});
    return message(sa, k::Exchange::Informational, mid, chain, ps[0].type, &iv);
  }

  void send_notify(IkeSa& sa, uint16_t type, Bytes data = {}, uint8_t protocol = 1,
                   Bytes spi = {}) {
    k::NotifyPayload n;
    n.protocol = protocol;
    n.spi = std::move(spi);
    n.type = type;
    n.data = std::move(data);
    if (!sa.v1_cipher || sa.skeyid_a.empty()) {
      plain_notify(sa.spi_i, sa.spi_r, type, sa.local, sa.remote);
      return;
    }
    transmit(sa, informational(sa, {k::Payload{k::PayloadType::Notify, n}}, false));
  }

  // ---- helpers

  Bytes natd(const IkeSa& sa, const dp::Endpoint& e) {
    const size_t alen = e.addr.family == net::Family::V4 ? 4 : 16;
    const Bytes ci = be64(sa.spi_i), cr = be64(sa.spi_r), port = be16(e.port);
    return v1::hash(*sa.prf, {ci, cr, std::span(e.addr.bytes.data(), alen), port});
  }

  // RFC 3947 §3.2: the first NAT-D hashes the receiver's address, the
  // others the sender's. Without raw ESP the data plane must encapsulate,
  // so we claim a NAT on our side (a hash that matches nothing).
  void add_natd(IkeSa& sa, std::vector<k::Payload>& ps) {
    ps.push_back(payload(k::PayloadType::NatD, natd(sa, sa.remote)));
    ps.push_back(payload(k::PayloadType::NatD, I.raw_esp ? natd(sa, sa.local) : random_bytes(20)));
  }

  void detect_nat(IkeSa& sa, const std::vector<k::Payload>& ps) {
    std::vector<const Bytes*> d;
    for (const auto& p : ps)
      if (p.type == k::PayloadType::NatD)
        if (auto* r = std::get_if<k::RawPayload>(&p.body)) d.push_back(&r->data);
    if (d.size() < 2) return;
    sa.nat_local = *d[0] != natd(sa, sa.local) || !I.raw_esp;
    const Bytes them = natd(sa, sa.remote);
    sa.nat_remote = true;
    for (size_t i = 1; i < d.size(); ++i)
      if (*d[i] == them) sa.nat_remote = false;
  }

  bool nat(const IkeSa& sa, const Conn& c) {
    return (sa.nat_local || sa.nat_remote) && sa.peer_natt && c.cfg.nat_t;
  }

  // RFC 3947 §4: once a NAT is seen the initiator moves to port 4500.
  void float_ports(IkeSa& sa, const Conn& c) {
    if (!nat(sa, c) || sa.local.port == 4500) return;
    sa.local.port = 4500;
    sa.remote.port = 4500;
  }

  std::vector<k::Payload> vids(const Conn& c) {
    std::vector<k::Payload> v;
    if (c.cfg.nat_t) v.push_back(payload(k::PayloadType::Vendor, kVidNatT));
    v.push_back(payload(k::PayloadType::Vendor, kVidDpd));
    return v;
  }
  void read_vids(IkeSa& sa, const std::vector<k::Payload>& ps) {
    if (has_vid(ps, kVidNatT)) sa.peer_natt = true;
    if (has_vid(ps, kVidDpd)) sa.peer_dpd = true;
  }

  k::IdPayload our_id(const Conn& c) {
    k::IdPayload id;
    id.type = static_cast<uint8_t>(c.cfg.local_id.type);
    id.data = c.cfg.local_id.data;
    return id;
  }
  static Identity identity(const k::IdPayload& id) {
    Identity i;
    i.type = static_cast<IdType>(id.type);
    i.data = id.data;
    return i;
  }

  bool make_prf(IkeSa& sa) {
    auto p = Prf::create(sa.algs.prf);
    if (!p) return false;
    sa.prf = std::move(*p);
    return true;
  }

  // Phase-1 keys once both KE and nonces are known (§5).
  Expected<void, std::string> derive(IkeSa& sa, const Conn& c, std::span<const uint8_t> peer_ke) {
    auto gxy = sa.dh->shared_secret(peer_ke);
    if (!gxy) return unexpected("peer's KE: " + gxy.error());
    const EncrInfo* e = encr_info(sa.algs.encr, sa.algs.key_bits);
    if (!e) return unexpected(std::string("cipher"));
    const Bytes psk(c.cfg.psk.begin(), c.cfg.psk.end());
    auto keys = v1::derive_phase1(*sa.prf, psk, sa.ni, sa.nr, *gxy, sa.spi_i, sa.spi_r, sa.g_xi,
                                  sa.g_xr, e->key_len, e->block);
    wipe(*gxy);
    if (!keys) return unexpected(keys.error());
    auto cipher = v1::CbcCipher::create(sa.algs.encr, sa.algs.key_bits, keys->enc_key);
    if (!cipher) return unexpected(cipher.error());
    sa.v1_cipher = std::move(*cipher);
    sa.skeyid = keys->skeyid;
    sa.skeyid_d = keys->skeyid_d;
    sa.skeyid_a = keys->skeyid_a;
    sa.p1_iv = keys->iv;
    return {};
  }

  Bytes hash_i(IkeSa& sa, const Bytes& id_b) {
    return v1::phase1_hash(*sa.prf, sa.skeyid, sa.g_xi, sa.g_xr, sa.spi_i, sa.spi_r, sa.init_req,
                           id_b);
  }
  Bytes hash_r(IkeSa& sa, const Bytes& id_b) {
    return v1::phase1_hash(*sa.prf, sa.skeyid, sa.g_xr, sa.g_xi, sa.spi_r, sa.spi_i, sa.init_req,
                           id_b);
  }

  // RFC 2407 §4.6.3.3, sent with our first authenticated phase-1 message
  // (not when rekeying: the old SAs stay until the new ones are up).
  k::Payload initial_contact_notify(const IkeSa& sa) {
    k::NotifyPayload n;
    n.protocol = v1::kProtoIsakmp;
    n.spi = cookies(sa);
    n.type = kInitialContact;
    return k::Payload{k::PayloadType::Notify, n};
  }

  // The initiator's phase-1 message: sent, kept for retransmission.
  void send_p1_request(IkeSa& sa, Bytes pkt) {
    if (!sa.active) {
      Pending p = pending(Task{TaskKind::Init, 0, 0, {}});
      p.started = now();
      sa.active = std::move(p);
    }
    sa.active->packet = pkt;
    sa.active->tries = 1;
    sa.active->next_at = now() + I.opt.retransmit.base_ms;
    sa.last_resp = std::move(pkt);
    transmit(sa, sa.last_resp);
  }
  void send_p1_response(IkeSa& sa, Bytes pkt) {
    sa.last_resp = std::move(pkt);
    transmit(sa, sa.last_resp);
    if (!sa.initiator) {
      sa.v1_resend_at = now() + I.opt.retransmit.base_ms;
      sa.v1_resends = 0;
    }
  }

  // Resends a responder's unanswered message with the initiator's backoff.
  uint64_t tick(IkeSa& sa) {
    const uint64_t t = now();
    uint64_t next = UINT64_MAX;
    const auto& rc = I.opt.retransmit;
    auto backoff = [&](uint32_t n) {
      return static_cast<uint64_t>(rc.base_ms * std::pow(rc.factor, n + 1));
    };
    if (sa.v1_expire_at && t >= sa.v1_expire_at) {
      if (sa.v1_delete_on_expire) send_delete_isakmp(sa);
      I.destroy(sa.uid);
      return UINT64_MAX;
    }
    if (sa.v1_expire_at) next = sa.v1_expire_at;
    if (!sa.active && !sa.queue.empty())
      if (const IkeSa* p = peer_phase1_under_way(sa))
        next = std::min(next, p->created_at + kPeerPhase1HoldMs);
    if (sa.state != IkeState::Connecting) sa.v1_resend_at = 0;
    if (sa.v1_resend_at && t >= sa.v1_resend_at) {
      if (++sa.v1_resends >= rc.tries) {
        sa.v1_resend_at = 0;
      } else {
        ++I.ctr.retransmits;
        transmit(sa, sa.last_resp);
        sa.v1_resend_at = t + backoff(sa.v1_resends);
      }
    }
    if (sa.v1_resend_at) next = std::min(next, sa.v1_resend_at);
    for (auto& [mid, x] : sa.v1x) {
      if (!x.responder || x.done || !x.resend_at) continue;
      if (t >= x.resend_at) {
        if (++x.resends >= rc.tries) {
          x.resend_at = 0;
          continue;
        }
        ++I.ctr.retransmits;
        transmit(sa, x.last_tx);
        x.resend_at = t + backoff(x.resends);
      }
      next = std::min(next, x.resend_at);
    }
    return next;
  }

  Conn* conn_for(const net::IpAddr& local, const net::IpAddr& remote, const Identity* id,
                 bool any_version = false) {
    Conn* by_addr = nullptr;
    for (auto& [n, c] : I.conns) {
      if (!any_version && c.cfg.ike_version != 1) continue;
      if (c.cfg.remote == remote && c.cfg.local == local) {
        if (!id || c.cfg.remote_id == *id) return &c;
        if (!by_addr) by_addr = &c;
      }
    }
    // Never by identity alone (see find_conn in daemon_impl.h).
    return id ? nullptr : by_addr;
  }

  // ===========================================================================
  // Phase 1, initiator

  void start(Conn& c, uint32_t first_tunnel, uint64_t replaces, bool dh_probe = false) {
    IkeSa& sa = I.new_sa(c.cfg.name, true);
    sa.dh_probe = dh_probe;
    sa.version = 1;
    sa.aggressive = c.cfg.aggressive;
    sa.spi_i = random_spi64();
    I.index(sa);
    sa.local = {c.cfg.local, c.cfg.local_port};
    sa.remote = {c.cfg.remote, c.cfg.remote_port};
    sa.ni = random_bytes(I.opt.nonce_len);
    sa.dh_group = c.cfg.ike.front().dh;
    sa.first_tunnel = first_tunnel;
    sa.replaces = replaces;
    if (!replaces) c.st.state = "connecting";
    I.log_sa(spdlog::level::info, sa, "ike.initiate",
             {{"version", "1"},
              {"mode", sa.aggressive ? "aggressive" : "main"},
              {"local", ep_str(sa.local)},
              {"remote", ep_str(sa.remote)},
              {"rekeys", replaces ? std::to_string(replaces) : "-"}});
    std::vector<IkeAlgs> offer;
    for (const auto& a : dh_probe ? Daemon::Impl::probe_proposals(c.cfg.ike) : c.cfg.ike)
      if (!sa.aggressive || a.dh == sa.dh_group) offer.push_back(a);  // one KE: one group
    const k::Payload sa_p{k::PayloadType::SA, v1::phase1_sa(offer, c.cfg.ike_lifetime_s)};
    {
      Bytes enc = k::encode_chain({sa_p});
      sa.init_req.assign(enc.begin() + 4, enc.end());  // SAi_b: the body (§5)
    }
    std::vector<k::Payload> ps{sa_p};
    if (sa.aggressive) {
      auto dh = DiffieHellman::create(sa.dh_group);
      if (!dh) return I.fail(sa, Failure::Internal, "DH group " + to_string(sa.dh_group));
      sa.dh = std::move(*dh);
      const auto pub = sa.dh->public_value();
      sa.g_xi.assign(pub.begin(), pub.end());
      ps.push_back(payload(k::PayloadType::KE, sa.g_xi));
      ps.push_back(payload(k::PayloadType::Nonce, sa.ni));
      ps.push_back(k::Payload{k::PayloadType::ID, our_id(c)});
    }
    for (auto& v : vids(c)) ps.push_back(std::move(v));
    sa.v1_step = 1;
    send_p1_request(sa, message(sa, sa.aggressive ? k::Exchange::Aggressive : k::Exchange::Main, 0,
                                ps, nullptr));
  }

  // The responder's SA payload: its choice, one transform (§5: the
  // responder returns the transform it accepts).
  bool accept_phase1_reply(IkeSa& sa, Conn& c, const std::vector<k::Payload>& ps) {
    const auto* sap = get<k::SaPayload>(ps, k::PayloadType::SA);
    std::optional<v1::Phase1Choice> ch;
    if (sa.dh_probe) {
      // The probe's answer: the peer takes our algorithms with another
      // group. Never used; the peer's half-open SA expires.
      std::string ours;
      for (const auto& a : c.cfg.ike) ours += (ours.empty() ? "" : ", ") + v1::to_string(a);
      I.fail(
          sa, Failure::DhGroupMismatch,
          "peer accepts " + (sap ? v1::describe(*sap) : std::string("?")) + "; we offer " + ours);
      return false;
    }
    if (sap && sap->proposals.size() == 1 && sap->proposals[0].transforms.size() == 1)
      ch = v1::choose_phase1(*sap, c.cfg.ike);
    if (!ch) {
      I.fail(sa, Failure::ProposalMismatch,
             "peer answered with a transform we did not offer: " +
                 (sap ? v1::describe(*sap) : std::string("no SA payload")));
      return false;
    }
    sa.algs = ch->algs;
    sa.v1_life_s =
        ch->lifetime_s ? std::min(ch->lifetime_s, c.cfg.ike_lifetime_s) : c.cfg.ike_lifetime_s;
    if (!make_prf(sa)) {
      I.fail(sa, Failure::Internal, "PRF " + to_string(sa.algs.prf));
      return false;
    }
    read_vids(sa, ps);
    return true;
  }

  void initiator_phase1(IkeSa& sa, Conn& c, const Opened& o) {
    const auto& ps = o.payloads;
    if (!sa.aggressive && sa.v1_step == 1) {  // message 2: HDR, SA, VID
      if (!accept_phase1_reply(sa, c, ps)) return;
      sa.dh_group = sa.algs.dh;
      auto dh = DiffieHellman::create(sa.dh_group);
      if (!dh) return I.fail(sa, Failure::Internal, "DH group " + to_string(sa.dh_group));
      sa.dh = std::move(*dh);
      const auto pub = sa.dh->public_value();
      sa.g_xi.assign(pub.begin(), pub.end());
      std::vector<k::Payload> out{payload(k::PayloadType::KE, sa.g_xi),
                                  payload(k::PayloadType::Nonce, sa.ni)};
      if (sa.peer_natt && c.cfg.nat_t) add_natd(sa, out);
      sa.v1_step = 3;
      return send_p1_request(sa, message(sa, k::Exchange::Main, 0, out, nullptr));
    }
    if (!sa.aggressive && sa.v1_step == 3) {  // message 4: HDR, KE, Nr, NAT-D, NAT-D
      const auto* ke = get<k::RawPayload>(ps, k::PayloadType::KE);
      const auto* nr = get<k::RawPayload>(ps, k::PayloadType::Nonce);
      if (!ke || !nr) return I.fail(sa, Failure::Internal, "main mode message 4 lacks KE or nonce");
      sa.nr = nr->data;
      sa.g_xr = ke->data;
      if (auto r = derive(sa, c, ke->data); !r) return I.fail(sa, Failure::Internal, r.error());
      detect_nat(sa, ps);
      float_ports(sa, c);
      const k::IdPayload id = our_id(c);
      std::vector<k::Payload> out{k::Payload{k::PayloadType::ID, id},
                                  payload(k::PayloadType::HASH, hash_i(sa, id.body()))};
      if (!sa.replaces) out.push_back(initial_contact_notify(sa));
      sa.v1_step = 5;
      return send_p1_request(sa, message(sa, k::Exchange::Main, 0, out, &sa.p1_iv));
    }
    if (!sa.aggressive && sa.v1_step == 5) {  // message 6: HDR*, IDir, HASH_R
      return finish_initiator(sa, c, ps);
    }
    if (sa.aggressive && sa.v1_step == 1) {
      // message 2: HDR, SA, KE, Nr, IDir, HASH_R, VID, NAT-D, NAT-D
      if (!accept_phase1_reply(sa, c, ps)) return;
      const auto* ke = get<k::RawPayload>(ps, k::PayloadType::KE);
      const auto* nr = get<k::RawPayload>(ps, k::PayloadType::Nonce);
      if (!ke || !nr || sa.algs.dh != sa.dh_group)
        return I.fail(sa, Failure::DhGroupMismatch, "aggressive mode reply without our group's KE");
      sa.nr = nr->data;
      sa.g_xr = ke->data;
      if (auto r = derive(sa, c, ke->data); !r) return I.fail(sa, Failure::Internal, r.error());
      if (!check_peer(sa, c, ps, false)) return;
      detect_nat(sa, ps);
      float_ports(sa, c);
      const k::IdPayload id = our_id(c);
      std::vector<k::Payload> out{payload(k::PayloadType::HASH, hash_i(sa, id.body()))};
      if (sa.peer_natt && c.cfg.nat_t) add_natd(sa, out);
      if (!sa.replaces) out.push_back(initial_contact_notify(sa));
      sa.v1_step = 3;
      send_p1_response(sa, message(sa, k::Exchange::Aggressive, 0, out, &sa.p1_iv));
      sa.active.reset();
      return established(sa);
    }
    ++I.ctr.invalid_message_id;
  }

  // The peer's identity and HASH (§5): a HASH that does not verify means
  // the keys differ, i.e. the PSKs (seed 001: "invalid HASH payload").
  bool check_peer(IkeSa& sa, Conn& c, const std::vector<k::Payload>& ps, bool responder) {
    const auto* id = get<k::IdPayload>(ps, k::PayloadType::ID);
    const auto* h = get<k::RawPayload>(ps, k::PayloadType::HASH);
    if (!h || (!id && !responder)) {
      I.fail(sa, Failure::PskMismatch,
             std::string("message without ") + (h ? "ID" : "HASH") +
                 " payload after decryption (PSK mismatch?)",
             !responder);
      return false;
    }
    const k::IdPayload pid = id ? *id : k::IdPayload{};
    if (id) sa.peer_id_b = id->body();
    const Bytes& body = sa.peer_id_b;
    const Bytes expect = responder ? hash_i(sa, body) : hash_r(sa, body);
    if (!ct_equal(expect, h->data)) {
      ++I.ctr.auth_failures;
      I.fail(sa, Failure::PskMismatch,
             std::string(responder ? "HASH_I" : "HASH_R") + " from " + sa.remote.addr.str() +
                 " does not verify: the pre-shared keys differ",
             !responder);
      return false;
    }
    if (id) {
      sa.peer_id = identity(pid);
      if (!(sa.peer_id == c.cfg.remote_id)) {
        I.fail(sa, Failure::IdMismatch,
               "peer identified as " + sa.peer_id.str() + ", expected " + c.cfg.remote_id.str(),
               !responder);
        return false;
      }
    }
    return true;
  }

  void finish_initiator(IkeSa& sa, Conn& c, const std::vector<k::Payload>& ps) {
    if (!check_peer(sa, c, ps, false)) return;
    sa.active.reset();
    established(sa);
  }

  // The CHILD_SAs of a superseded ISAKMP SA move to its successor. A quick
  // mode still running on the old SA is abandoned (the peer finds its
  // half-done exchange unanswered); the rekey or create it was for runs
  // again on the new SA.
  void adopt_children(IkeSa& from, IkeSa& to) {
    if (from.active && (from.active->task.kind == TaskKind::ChildRekey ||
                        from.active->task.kind == TaskKind::ChildCreate)) {
      if (from.active->task.kind == TaskKind::ChildCreate) to.queue.push_back(from.active->task);
      (void)I.dp.delete_sa(dp::Direction::In, from.active->spi_in);
      from.v1x.erase(from.active->mid);
      from.active.reset();
    }
    for (const Task& t : from.queue)
      if (t.kind == TaskKind::ChildCreate) to.queue.push_back(t);
    from.queue.clear();
    for (auto& ch : from.children) {
      if (!ch.rekeyed && !ch.rekey_at) ch.rekey_at = now();  // its rekey was queued there
      to.children.push_back(std::move(ch));
    }
    from.children.clear();
    from.rekeyed = true;
  }

  // Where a CHILD_SA negotiated on `sa` lives: a quick mode that completes
  // on an ISAKMP SA superseded meanwhile hands its CHILD_SA to the successor
  // (the superseded SA, and everything on it, is deleted soon).
  IkeSa& child_home(IkeSa& sa) {
    IkeSa* next = sa.rekeyed ? successor(sa) : nullptr;
    return next ? *next : sa;
  }

  // Another established, current ISAKMP SA of the same connection.
  IkeSa* successor(const IkeSa& sa) {
    for (auto& [uid, o] : I.sas)
      if (o.get() != &sa && o->conn == sa.conn && o->version == 1 && !o->rekeyed &&
          o->state == IkeState::Established)
        return o.get();
    return nullptr;
  }

  // A phase 1 the peer started while we have an established ISAKMP SA may
  // be its rekey (RFC 2409 has none of its own): our quick modes wait for
  // it (up to kPeerPhase1HoldMs) so they run on the SA that stays.
  const IkeSa* peer_phase1_under_way(const IkeSa& sa) const {
    for (const auto& [uid, o] : I.sas)
      if (o.get() != &sa && o->conn == sa.conn && o->version == 1 && !o->initiator &&
          o->state == IkeState::Connecting && now() < o->created_at + kPeerPhase1HoldMs)
        return o.get();
    return nullptr;
  }

  void established(IkeSa& sa) {
    Conn* c = I.conn_of(sa);
    I.established(sa);
    // The phase-1 initiator rekeys before expiry; the responder only if
    // the initiator has not by then (both at once would leave two SAs).
    const uint32_t life = sa.v1_life_s ? sa.v1_life_s : (c ? c->cfg.ike_lifetime_s : 0);
    if (c) sa.rekey_at = now() + (sa.initiator ? I.rekey_delay_ms(life, c->cfg) : life * 1000ull);
    sa.dpd_seq = random_nonzero32() & 0x7fffffff;
    const uint64_t uid = sa.uid;
    if (sa.replaces) {
      if (IkeSa* old = I.sa_by_uid(sa.replaces)) {
        // Phase-1 rekey: the CHILD_SAs move to the new ISAKMP SA (their
        // keys never depended on it). RFC 2409 has no rekey exchange, so
        // the peer moves its CHILD_SAs on its own time (strongSwan in a
        // job after its last main-mode message); a Delete of the old SA
        // that overtakes that takes the CHILD_SAs with it. The old SA is
        // deleted once the peer has had time to move.
        adopt_children(*old, sa);
        old->v1_expire_at = now() + kSupersededDeleteMs;
        old->v1_delete_on_expire = true;
        ++I.ctr.ike_rekeyed;
        if (c) ++c->st.ike_rekeys;
        I.log_sa(spdlog::level::info, sa, "ike.rekeyed", {{"old_ike_sa", old->uid}});
      }
      sa.replaces = 0;
    } else if (!sa.initiator) {
      // A new phase 1 from a peer we already have one with (and no
      // INITIAL-CONTACT): the peer rekeys. The CHILD_SAs move here; the
      // old ISAKMP SA serves nothing more and goes when the peer deletes
      // it (or after a minute).
      for (auto& [uid2, o] : I.sas) {
        if (uid2 == sa.uid || o->conn != sa.conn || o->version != 1 || o->rekeyed ||
            o->state != IkeState::Established)
          continue;
        adopt_children(*o, sa);
        o->v1_expire_at = now() + 60000;
        ++I.ctr.ike_rekeyed;
        if (c) ++c->st.ike_rekeys;
        I.log_sa(spdlog::level::info, sa, "ike.rekeyed", {{"old_ike_sa", o->uid}, {"by", "peer"}});
      }
    }
    if (IkeSa* s = I.sa_by_uid(uid)) {
      if (s->initiator) {
        if (c && s->first_tunnel && !I.plan_has_child(*s, s->first_tunnel))
          s->queue.push_back(Task{TaskKind::ChildCreate, s->first_tunnel, 0, {}});
        I.queue_missing_children(*s);
      }
      run_queue(*s);
    }
  }

  // ===========================================================================
  // Phase 1, responder

  void responder_first(std::span<const uint8_t> raw, const k::Header& h, const dp::Endpoint& from,
                       const dp::Endpoint& to) {
    auto ps = k::parse_chain(h.next, raw.subspan(k::kHeaderSize));
    if (!ps) {
      ++I.ctr.malformed;
      return;
    }
    const bool aggressive = h.exchange == k::Exchange::Aggressive;
    const auto* idp = get<k::IdPayload>(*ps, k::PayloadType::ID);
    std::optional<Identity> pid;
    if (idp) pid = identity(*idp);
    Conn* c = aggressive && pid ? conn_for(to.addr, from.addr, &*pid)
                                : conn_for(to.addr, from.addr, nullptr);
    if (!c) {
      if (Conn* any = conn_for(to.addr, from.addr, nullptr, true)) {
        if (aggressive && pid && any->cfg.ike_version == 1) {
          I.record_failure(
              any, Failure::IdMismatch,
              "peer identified as " + pid->str() + ", expected " + any->cfg.remote_id.str(), false);
          plain_notify(h.icookie, 0, kInvalidIdInformation, to, from);
        } else {
          I.record_failure(any, Failure::IkeVersionMismatch,
                           "peer " + from.addr.str() + " speaks IKEv1, the connection IKEv2",
                           false);
        }
      } else {
        I.unknown_peer(from, to);
      }
      return;
    }
    // IKEv1 has no stateless cookie exchange: the half-open bounds refuse.
    if (I.half_open(&from.addr) >= I.opt.half_open_per_source ||
        I.half_open(nullptr) >= I.opt.half_open_max) {
      ++I.ctr.half_open_refused;
      return;
    }
    if (c->cfg.aggressive != aggressive) {
      I.record_failure(c, Failure::ModeMismatch,
                       std::string("peer started ") + (aggressive ? "aggressive" : "main") +
                           " mode, the connection uses " +
                           (c->cfg.aggressive ? "aggressive" : "main"),
                       false);
      plain_notify(h.icookie, 0, kInvalidExchangeType, to, from);
      return;
    }
    const auto* sap = get<k::SaPayload>(*ps, k::PayloadType::SA);
    if (!sap) {
      ++I.ctr.malformed;
      return;
    }
    auto choice = v1::choose_phase1(*sap, c->cfg.ike);
    if (!choice) {
      const bool dh = v1::phase1_matches_without_dh(*sap, c->cfg.ike);
      std::string ours;
      for (const auto& a : c->cfg.ike) ours += (ours.empty() ? "" : ", ") + v1::to_string(a);
      I.record_failure(c, dh ? Failure::DhGroupMismatch : Failure::ProposalMismatch,
                       "peer offered " + v1::describe(*sap) + "; we accept " + ours, false);
      plain_notify(h.icookie, 0, kNoProposalChosen, to, from);
      return;
    }
    IkeSa& sa = I.new_sa(c->cfg.name, false);
    sa.version = 1;
    sa.aggressive = aggressive;
    sa.spi_i = h.icookie;
    sa.spi_r = random_spi64();
    I.index(sa);
    sa.local = to;
    sa.remote = from;
    I.count_half_open(sa);
    sa.algs = choice->algs;
    sa.dh_group = sa.algs.dh;
    sa.v1_life_s = choice->lifetime_s ? std::min(choice->lifetime_s, c->cfg.ike_lifetime_s)
                                      : c->cfg.ike_lifetime_s;
    sa.v1_last_rx.assign(raw.begin(), raw.end());
    if (!make_prf(sa)) return I.fail(sa, Failure::Internal, "PRF", false);
    read_vids(sa, *ps);
    // SAi_b as received, not re-encoded (§5).
    auto items = walk(h.next, raw.subspan(k::kHeaderSize));
    for (const auto& it : items ? *items : std::vector<RawItem>{})
      if (it.type == k::PayloadType::SA)
        sa.init_req.assign(raw.begin() + static_cast<ptrdiff_t>(k::kHeaderSize + it.off + 4),
                           raw.begin() + static_cast<ptrdiff_t>(k::kHeaderSize + it.off + it.len));
    k::SaPayload reply = *sap;
    reply.proposals.resize(1);
    for (const auto& p : sap->proposals)
      for (const auto& t : p.transforms)
        if (t == choice->transform) {
          reply.proposals[0] = p;
          reply.proposals[0].transforms = {t};
        }
    I.log_sa(spdlog::level::info, sa, "ike.v1_request",
             {{"mode", aggressive ? "aggressive" : "main"},
              {"remote", ep_str(from)},
              {"algorithms", v1::to_string(sa.algs)}});
    std::vector<k::Payload> out{k::Payload{k::PayloadType::SA, reply}};
    if (!aggressive) {
      for (auto& v : vids(*c)) out.push_back(std::move(v));
      sa.v1_step = 2;
      return send_p1_response(sa, message(sa, k::Exchange::Main, 0, out, nullptr));
    }
    // Aggressive (§5.4): HDR, SA, KE, Nr, IDir, HASH_R [, VID, NAT-D, NAT-D].
    const auto* ke = get<k::RawPayload>(*ps, k::PayloadType::KE);
    const auto* ni = get<k::RawPayload>(*ps, k::PayloadType::Nonce);
    if (!ke || !ni || !idp) {
      ++I.ctr.malformed;
      return I.fail(sa, Failure::None, "", false);
    }
    sa.peer_id = *pid;
    sa.peer_id_b = idp->body();
    if (!responder_keys(sa, *c, ke->data, ni->data)) return;
    const k::IdPayload id = our_id(*c);
    out.push_back(payload(k::PayloadType::KE, sa.g_xr));
    out.push_back(payload(k::PayloadType::Nonce, sa.nr));
    out.push_back(k::Payload{k::PayloadType::ID, id});
    out.push_back(payload(k::PayloadType::HASH, hash_r(sa, id.body())));
    for (auto& v : vids(*c)) out.push_back(std::move(v));
    if (sa.peer_natt && c->cfg.nat_t) add_natd(sa, out);
    sa.v1_step = 2;
    send_p1_response(sa, message(sa, k::Exchange::Aggressive, 0, out, nullptr));
  }

  // The responder's half of the key exchange (main mode message 4,
  // aggressive mode message 2): our KE and nonce, then the phase-1 keys.
  // False (and the SA failed) when the peer's KE is unusable.
  bool responder_keys(IkeSa& sa, Conn& c, const Bytes& peer_ke, const Bytes& ni) {
    auto dh = DiffieHellman::create(sa.dh_group);
    if (!dh) {
      I.fail(sa, Failure::Internal, "DH", false);
      return false;
    }
    sa.dh = std::move(*dh);
    const auto pub = sa.dh->public_value();
    sa.g_xr.assign(pub.begin(), pub.end());
    sa.g_xi = peer_ke;
    sa.ni = ni;
    sa.nr = random_bytes(I.opt.nonce_len);
    if (auto r = derive(sa, c, peer_ke); !r) {
      I.fail(sa, Failure::DhGroupMismatch, r.error(), false);
      return false;
    }
    return true;
  }

  void responder_phase1(IkeSa& sa, Conn& c, const Opened& o, const dp::Endpoint& from,
                        const dp::Endpoint& to) {
    const auto& ps = o.payloads;
    if (!sa.aggressive && sa.v1_step == 2) {  // message 3: HDR, KE, Ni, NAT-D, NAT-D
      const auto* ke = get<k::RawPayload>(ps, k::PayloadType::KE);
      const auto* ni = get<k::RawPayload>(ps, k::PayloadType::Nonce);
      if (!ke || !ni) {
        ++I.ctr.malformed;
        return;
      }
      if (!responder_keys(sa, c, ke->data, ni->data)) return;
      detect_nat(sa, ps);
      std::vector<k::Payload> out{payload(k::PayloadType::KE, sa.g_xr),
                                  payload(k::PayloadType::Nonce, sa.nr)};
      if (sa.peer_natt && c.cfg.nat_t) add_natd(sa, out);
      sa.v1_step = 4;
      return send_p1_response(sa, message(sa, k::Exchange::Main, 0, out, nullptr));
    }
    if (!sa.aggressive && sa.v1_step == 4) {  // message 5: HDR*, IDii, HASH_I [, N]
      if (!check_peer(sa, c, ps, true)) return;
      sa.local = to;
      sa.remote = from;  // floated to 4500 behind a NAT (RFC 3947 §4)
      const k::IdPayload id = our_id(c);
      std::vector<k::Payload> out{k::Payload{k::PayloadType::ID, id},
                                  payload(k::PayloadType::HASH, hash_r(sa, id.body()))};
      sa.v1_step = 6;
      send_p1_response(sa, message(sa, k::Exchange::Main, 0, out, &sa.p1_iv));
      initial_contact(sa, ps);
      return established(sa);
    }
    if (sa.aggressive && sa.v1_step == 2) {  // message 3: HDR*, HASH_I [, NAT-D, NAT-D]
      if (!check_peer(sa, c, ps, true)) return;
      detect_nat(sa, ps);
      sa.local = to;
      sa.remote = from;
      sa.v1_step = 4;
      initial_contact(sa, ps);
      return established(sa);
    }
    ++I.ctr.invalid_message_id;
  }

  // RFC 2407 §4.6.3.3: the peer has no other SAs with us — ours are stale.
  void initial_contact(IkeSa& sa, const std::vector<k::Payload>& ps) {
    bool ic = false;
    for (auto* n : notifies(ps)) ic |= n->type == kInitialContact;
    if (!ic) return;
    std::vector<uint64_t> stale;
    for (auto& [uid, o] : I.sas)
      if (uid != sa.uid && o->conn == sa.conn && o->version == 1) stale.push_back(uid);
    for (uint64_t u : stale) {
      I.log_sa(spdlog::level::info, sa, "ike.initial_contact", {{"deleted_ike_sa", u}});
      I.destroy(u);
    }
  }

  // ===========================================================================
  // Quick mode (§5.5)

  void start_quick(IkeSa& sa, const Task& t) {
    Conn* c = I.conn_of(sa);
    if (!c || !sa.v1_cipher) return;
    Pending p;
    p.task = t;
    if (t.kind == TaskKind::ChildRekey) {
      Child* old = I.child_by_in(sa, t.spi);
      if (!old || old->rekeyed) return;
      p.task.tunnel_id = old->tunnel_id;
      p.local = old->local;
      p.remote = old->remote;
    } else {
      Plan* plan = I.plan_of(*c, t.tunnel_id);
      if (!plan || I.plan_has_child(sa, t.tunnel_id) || plan->local.empty() || plan->remote.empty())
        return;
      p.local = {plan->local.front()};
      p.remote = {plan->remote.front()};
    }
    auto spi = I.dp.allocate_spi();
    if (!spi) {
      I.record_failure(c, Failure::DataplaneError, "allocate SPI: " + spi.error());
      return;
    }
    p.spi_in = *spi;
    p.nonce = random_bytes(I.opt.nonce_len);
    p.pfs = c->cfg.esp.front().dh;
    p.mid = random_nonzero32();
    const bool encap = I.use_encap(sa, *c);
    std::vector<k::Payload> ps{
        {},
        k::Payload{k::PayloadType::SA,
                   v1::phase2_sa(c->cfg.esp, *spi, p.pfs, encap && nat(sa, *c),
                                 c->cfg.child_lifetime_s, c->cfg.child_lifetime_bytes / 1024)},
        payload(k::PayloadType::Nonce, p.nonce)};
    if (p.pfs != DhId::None) {
      auto dh = DiffieHellman::create(p.pfs);
      if (!dh) {
        I.record_failure(c, Failure::Internal, "PFS group " + to_string(p.pfs));
        return;
      }
      p.dh = std::move(*dh);
      const auto pub = p.dh->public_value();
      ps.push_back(payload(k::PayloadType::KE, Bytes(pub.begin(), pub.end())));
    }
    ps.push_back(k::Payload{k::PayloadType::ID, id_of(p.local.front())});
    ps.push_back(k::Payload{k::PayloadType::ID, id_of(p.remote.front())});
    const Bytes chain = chain_with_hash(sa, ps, 0, be32(p.mid));
    V1Exchange& x = sa.v1x[p.mid];
    x.quick = true;
    x.created = now();
    x.iv = v1::phase2_iv(*sa.prf, sa.p1_iv, p.mid, sa.v1_cipher->block_size());
    p.packet = message(sa, k::Exchange::Quick, p.mid, chain, k::PayloadType::HASH, &x.iv);
    p.tries = 1;
    p.started = now();
    p.next_at = now() + I.opt.retransmit.base_ms;
    transmit(sa, p.packet);
    sa.active = std::move(p);
  }

  // Reads IDci/IDcr; absent, they are the phase-1 endpoints (§5.5).
  bool client_ids(IkeSa& sa, const std::vector<k::Payload>& ps, net::Cidr& ci, net::Cidr& cr) {
    const auto* a = get<k::IdPayload>(ps, k::PayloadType::ID, 0);
    const auto* b = get<k::IdPayload>(ps, k::PayloadType::ID, 1);
    if (!a && !b) {
      const bool v4 = sa.remote.addr.family == net::Family::V4;
      ci = net::Cidr{sa.initiator ? sa.local.addr : sa.remote.addr, uint8_t(v4 ? 32 : 128)};
      cr = net::Cidr{sa.initiator ? sa.remote.addr : sa.local.addr, uint8_t(v4 ? 32 : 128)};
      return true;
    }
    if (!a || !b) return false;
    auto x = cidr_of(*a), y = cidr_of(*b);
    if (!x || !y) return false;
    ci = *x;
    cr = *y;
    return true;
  }

  Expected<ChildKeys, std::string> child_keys(IkeSa& sa, const EspAlgs& algs, const Bytes& g_qm,
                                              uint32_t spi_by_responder, uint32_t spi_by_initiator,
                                              const Bytes& ni, const Bytes& nr) {
    const size_t el = encr_key_len(algs.encr, algs.key_bits), il = integ_key_len(algs.integ);
    // The SA an SPI names carries traffic towards whoever chose the SPI;
    // ChildKeys' _i half is initiator -> responder, i.e. the responder's SPI.
    auto i2r =
        v1::keymat(*sa.prf, sa.skeyid_d, g_qm, v1::kProtoEsp, spi_by_responder, ni, nr, el + il);
    auto r2i =
        v1::keymat(*sa.prf, sa.skeyid_d, g_qm, v1::kProtoEsp, spi_by_initiator, ni, nr, el + il);
    if (!i2r || !r2i) return unexpected(std::string("KEYMAT"));
    ChildKeys k;
    k.encr_i.assign(i2r->begin(), i2r->begin() + static_cast<ptrdiff_t>(el));
    k.integ_i.assign(i2r->begin() + static_cast<ptrdiff_t>(el), i2r->end());
    k.encr_r.assign(r2i->begin(), r2i->begin() + static_cast<ptrdiff_t>(el));
    k.integ_r.assign(r2i->begin() + static_cast<ptrdiff_t>(el), r2i->end());
    wipe(*i2r);
    wipe(*r2i);
    return k;
  }

  uint64_t child_rekey_at(const IkeSa& sa, const Conn& c, uint32_t peer_life_s) {
    const uint32_t life =
        peer_life_s ? std::min(peer_life_s, c.cfg.child_lifetime_s) : c.cfg.child_lifetime_s;
    return now() + (sa.initiator ? I.rekey_delay_ms(life, c.cfg) : life * 1000ull);
  }

  // Verifies HASH(1)/HASH(2) (the first payload) over M-ID [| Ni_b] | rest.
  bool verify_first_hash(IkeSa& sa, const Opened& o, std::span<const uint8_t> prefix) {
    if (o.items.empty() || o.items[0].type != k::PayloadType::HASH) return false;
    const auto* h = std::get_if<k::RawPayload>(&o.payloads[0].body);
    return h && ct_equal(phase2_hash(sa, prefix, o.chain, o.items, 0), h->data);
  }

  void quick_initiator_reply(IkeSa& sa, Conn& c, uint32_t mid, const Opened& o, bool commit) {
    Pending& p = *sa.active;
    Bytes prefix = be32(mid);
    prefix.insert(prefix.end(), p.nonce.begin(), p.nonce.end());
    if (!verify_first_hash(sa, o, prefix)) {
      ++I.ctr.integrity_failed;
      I.log_sa(spdlog::level::warn, sa, "ike.v1_bad_hash", {{"exchange", "quick mode"}});
      return;
    }
    const auto& ps = o.payloads;
    const auto* sap = get<k::SaPayload>(ps, k::PayloadType::SA);
    const auto* nr = get<k::RawPayload>(ps, k::PayloadType::Nonce);
    std::optional<v1::Phase2Choice> ch;
    if (sap && sap->proposals.size() == 1 && sap->proposals[0].transforms.size() == 1)
      ch = v1::choose_phase2(*sap, c.cfg.esp, p.pfs);
    const uint64_t uid = sa.uid;
    auto drop = [&](Failure f, const std::string& why) {
      (void)I.dp.delete_sa(dp::Direction::In, p.spi_in);
      sa.active.reset();
      sa.v1x.erase(mid);
      I.fail(sa, f, why);
    };
    if (!ch || !nr)
      return drop(Failure::ChildProposalMismatch,
                  "quick mode reply with a transform we did not offer");
    Bytes g_qm;
    if (p.pfs != DhId::None) {
      const auto* ke = get<k::RawPayload>(ps, k::PayloadType::KE);
      if (!ke || !p.dh) return drop(Failure::PfsMismatch, "quick mode reply without a PFS KE");
      auto s = p.dh->shared_secret(ke->data);
      if (!s) return drop(Failure::PfsMismatch, "peer's PFS KE: " + s.error());
      g_qm = std::move(*s);
    }
    uint32_t life = c.cfg.child_lifetime_s;
    for (auto* n : notifies(ps))
      if (n->type == kResponderLifetime)
        if (auto l = v1::responder_lifetime_s(n->data)) life = std::min(life, *l);
    auto keys = child_keys(sa, ch->algs, g_qm, ch->peer_spi, p.spi_in, p.nonce, nr->data);
    wipe(g_qm);
    if (!keys) return drop(Failure::Internal, keys.error());
    Child child;
    child.exchange_initiator = true;
    child.tunnel_id = p.task.tunnel_id;
    child.spi_in = p.spi_in;
    child.spi_out = ch->peer_spi;
    child.algs = ch->algs;
    child.local = p.local;
    child.remote = p.remote;
    child.encap = I.use_encap(sa, c) || ch->mode != v1::kModeTunnel;
    child.keys = std::move(*keys);
    if (Plan* plan = I.plan_of(c, child.tunnel_id)) child.name = plan->name;
    // HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b).
    Bytes h3(sa.prf->out_size());
    const uint8_t zero = 0;
    const Bytes mb = be32(mid);
    sa.prf->compute(sa.skeyid_a, {{&zero, 1}, mb, p.nonce, nr->data}, h3.data());
    V1Exchange& x = sa.v1x[mid];
    x.last_rx = o.chain;  // the plaintext; a retransmitted reply decrypts the same
    x.last_tx = message(sa, k::Exchange::Quick, mid, {payload(k::PayloadType::HASH, h3)}, &x.iv);
    x.done = true;
    // RFC 2408 §3.14.1 / RFC 2409 §5.5: with the commit bit the responder
    // says CONNECTED once its SAs are in; until then only our inbound SA
    // goes in (the outbound one after CONNECTED, or 5 s at the latest).
    // A rekey also holds its outbound half for a second: the responder
    // installs its SAs only on QM3, and the old pair still carries traffic
    // (the old one is deleted once the new outbound SA is in).
    const bool rekey = p.task.kind == TaskKind::ChildRekey;
    if (auto r = I.install_child(sa, child, !commit && !rekey); !r)
      return drop(Failure::DataplaneError, r.error());
    if (commit)
      child.install_out_at = now() + 5000;
    else if (rekey)
      child.install_out_at = now() + 1000;
    transmit(sa, x.last_tx);
    const TaskKind kind = p.task.kind;
    const uint32_t old_spi = p.task.spi;
    sa.active.reset();
    IkeSa& home = child_home(sa);
    home.children.push_back(std::move(child));
    Child& added = home.children.back();
    added.rekey_at = child_rekey_at(home, c, life);
    if (kind == TaskKind::ChildRekey) {
      ++I.ctr.child_rekeyed;
      ++c.st.child_rekeys;
      if (Child* old = I.child_by_in(home, old_spi)) {
        old->rekeyed = true;
        added.replaces_spi = old_spi;  // deleted once `added` sends
      }
    }
    I.log_sa(spdlog::level::info, home,
             kind == TaskKind::ChildRekey ? "ike.child_rekeyed" : "ike.child_created",
             {{"role", "initiator"}, {"exchange", "quick mode"}});
    c.st.failure = Failure::None;
    c.st.failure_detail.clear();
    if (IkeSa* s = I.sa_by_uid(uid)) run_queue(*s);
  }

  void quick_responder(IkeSa& sa, Conn& c, uint32_t mid, V1Exchange& x, const Opened& o) {
    if (!verify_first_hash(sa, o, be32(mid))) {
      ++I.ctr.integrity_failed;
      I.log_sa(spdlog::level::warn, sa, "ike.v1_bad_hash", {{"exchange", "quick mode"}});
      sa.v1x.erase(mid);
      return;
    }
    const auto& ps = o.payloads;
    const auto* sap = get<k::SaPayload>(ps, k::PayloadType::SA);
    const auto* ni = get<k::RawPayload>(ps, k::PayloadType::Nonce);
    net::Cidr ci, cr;
    if (!sap || !ni || !client_ids(sa, ps, ci, cr)) {
      ++I.ctr.malformed;
      sa.v1x.erase(mid);
      return send_notify(sa, kPayloadMalformed);
    }
    // IDci is the peer's side: our remote; IDcr ours (§5.5).
    Plan* plan = nullptr;
    for (auto& pl : c.plans)
      if (!pl.local.empty() && !pl.remote.empty() && pl.local.front().contains(cr) &&
          pl.remote.front().contains(ci)) {
        plan = &pl;
        break;
      }
    if (!plan) {
      std::string ours;
      for (const auto& pl : c.plans)
        for (const auto& l : pl.local)
          for (const auto& r : pl.remote)
            ours += (ours.empty() ? "" : ", ") + l.str() + "<->" + r.str();
      I.record_failure(
          &c, Failure::TsMismatch,
          "peer proposed " + cr.str() + "<->" + ci.str() + " (ours<->theirs); we have " + ours);
      sa.v1x.erase(mid);
      return send_notify(sa, kInvalidIdInformation);
    }
    const DhId pfs = c.cfg.esp.front().dh;
    auto ch = v1::choose_phase2(*sap, c.cfg.esp, pfs);
    if (!ch) {
      const bool pfs_only = v1::phase2_matches_without_dh(*sap, c.cfg.esp);
      std::string ours;
      for (const auto& a : c.cfg.esp) ours += (ours.empty() ? "" : ", ") + to_string(a);
      I.record_failure(&c, pfs_only ? Failure::PfsMismatch : Failure::ChildProposalMismatch,
                       "peer offered " + v1::describe(*sap) + "; we accept " + ours);
      sa.v1x.erase(mid);
      return send_notify(sa, kNoProposalChosen);
    }
    auto spi = I.dp.allocate_spi();
    if (!spi) {
      I.record_failure(&c, Failure::DataplaneError, "allocate SPI: " + spi.error());
      sa.v1x.erase(mid);
      return;
    }
    x.quick = true;
    x.responder = true;
    x.ni = ni->data;
    x.nr = random_bytes(I.opt.nonce_len);
    x.spi_in = *spi;
    x.spi_out = ch->peer_spi;
    x.algs = ch->algs;
    x.tunnel_id = plan->tunnel_id;
    x.local = {cr};
    x.remote = {ci};
    x.encap = I.use_encap(sa, c) || ch->mode != v1::kModeTunnel;
    x.lifetime_s = ch->lifetime_s;
    std::vector<k::Payload> out{{}, {}, payload(k::PayloadType::Nonce, x.nr)};
    k::SaPayload reply;
    reply.proposals.push_back(ch->proposal);
    reply.proposals[0].spi = be32(*spi);
    out[1] = k::Payload{k::PayloadType::SA, reply};
    if (pfs != DhId::None) {
      const auto* ke = get<k::RawPayload>(ps, k::PayloadType::KE);
      auto dh = DiffieHellman::create(pfs);
      if (!ke || !dh) {
        I.record_failure(&c, Failure::PfsMismatch, "quick mode without the PFS KE");
        sa.v1x.erase(mid);
        return send_notify(sa, kNoProposalChosen);
      }
      auto s = (*dh)->shared_secret(ke->data);
      if (!s) {
        I.record_failure(&c, Failure::PfsMismatch, "peer's PFS KE: " + s.error());
        sa.v1x.erase(mid);
        return send_notify(sa, kNoProposalChosen);
      }
      x.g_qm = std::move(*s);
      const auto pub = (*dh)->public_value();
      out.push_back(payload(k::PayloadType::KE, Bytes(pub.begin(), pub.end())));
    }
    if (const auto* a = get<k::IdPayload>(ps, k::PayloadType::ID, 0)) {
      out.push_back(k::Payload{k::PayloadType::ID, *a});
      out.push_back(k::Payload{k::PayloadType::ID, *get<k::IdPayload>(ps, k::PayloadType::ID, 1)});
    }
    // HASH(2) = prf(SKEYID_a, M-ID | Ni_b | SA | Nr [| KE] [| IDci | IDcr]).
    Bytes prefix = be32(mid);
    prefix.insert(prefix.end(), x.ni.begin(), x.ni.end());
    const Bytes chain = chain_with_hash(sa, out, 0, prefix);
    // The commit bit is echoed: the initiator then waits for CONNECTED.
    x.last_tx = message(sa, k::Exchange::Quick, mid, chain, k::PayloadType::HASH, &x.iv,
                        x.commit ? k::kFlagCommit : 0);
    x.resend_at = now() + I.opt.retransmit.base_ms;
    transmit(sa, x.last_tx);
  }

  void quick_responder_final(IkeSa& sa, Conn& c, uint32_t mid, V1Exchange& x, const Opened& o) {
    Bytes h3(sa.prf->out_size());
    const uint8_t zero = 0;
    const Bytes mb = be32(mid);
    sa.prf->compute(sa.skeyid_a, {{&zero, 1}, mb, x.ni, x.nr}, h3.data());
    const auto* h = o.payloads.empty() ? nullptr : std::get_if<k::RawPayload>(&o.payloads[0].body);
    if (!h || o.payloads[0].type != k::PayloadType::HASH || !ct_equal(h3, h->data)) {
      ++I.ctr.integrity_failed;
      I.log_sa(spdlog::level::warn, sa, "ike.v1_bad_hash", {{"exchange", "quick mode HASH(3)"}});
      return;
    }
    auto keys = child_keys(sa, x.algs, x.g_qm, x.spi_in, x.spi_out, x.ni, x.nr);
    wipe(x.g_qm);
    if (!keys) return I.record_failure(&c, Failure::Internal, keys.error());
    Child child;
    child.exchange_initiator = false;
    child.tunnel_id = x.tunnel_id;
    child.spi_in = x.spi_in;
    child.spi_out = x.spi_out;
    child.algs = x.algs;
    child.local = x.local;
    child.remote = x.remote;
    child.encap = x.encap;
    child.keys = std::move(*keys);
    if (Plan* plan = I.plan_of(c, child.tunnel_id)) child.name = plan->name;
    if (auto r = I.install_child(sa, child, true); !r)
      return I.record_failure(&c, Failure::DataplaneError, r.error());
    x.done = true;
    x.last_rx = o.chain;
    if (x.commit) send_notify(sa, kConnected, {}, v1::kProtoEsp, be32(x.spi_in));
    // A quick mode for a relation that already has an SA replaces it: the
    // peer rekeyed, and deletes the old one itself (fallback: 60 s).
    bool rekey = false;
    for (auto& [uid, other] : I.sas) {
      if (other->conn != sa.conn || other->version != 1) continue;
      for (auto& old : other->children)
        if (old.tunnel_id == child.tunnel_id && !old.rekeyed && old.local == child.local &&
            old.remote == child.remote) {
          old.rekeyed = true;
          old.delete_at = now() + 60000;
          rekey = true;
        }
    }
    if (rekey) {
      ++I.ctr.child_rekeyed;
      ++c.st.child_rekeys;
    }
    // IKEv1 has no rekey collision handling (RFC 7296 §2.8.1 is IKEv2's):
    // the phase-1 initiator rekeys before expiry, the responder only once
    // the lifetime is over (the data plane's hard limit is 30 s later).
    IkeSa& home = child_home(sa);
    child.rekey_at = child_rekey_at(home, c, x.lifetime_s);
    home.children.push_back(std::move(child));
    I.log_sa(spdlog::level::info, home, rekey ? "ike.child_rekeyed" : "ike.child_created",
             {{"role", "responder"}, {"exchange", "quick mode"}});
    c.st.failure = Failure::None;
    c.st.failure_detail.clear();
  }

  // ===========================================================================
  // Informational (§5.7)

  void informational_in(IkeSa& sa, Conn* c, uint32_t mid, const Opened& o, bool encrypted) {
    const auto& ps = o.payloads;
    if (!encrypted) {
      // Unauthenticated: only a failure report while phase 1 is under way.
      if (sa.state != IkeState::Connecting) return;
      for (auto* n : notifies(ps)) return phase1_refused(sa, n->type, false);
      return;
    }
    // HASH(1) first (RFC 2409) or last (seq-notify-hash, SPEC §4).
    size_t hi = o.items.size();
    for (size_t i = 0; i < o.items.size(); ++i)
      if (o.items[i].type == k::PayloadType::HASH) hi = i;
    const auto* h = hi < ps.size() ? std::get_if<k::RawPayload>(&ps[hi].body) : nullptr;
    const Bytes mb = be32(mid);
    if (!h || (!ct_equal(phase2_hash(sa, mb, o.chain, o.items, hi), h->data) &&
               !ct_equal(phase2_hash(sa, mb, o.chain, o.items, hi, true), h->data))) {
      ++I.ctr.integrity_failed;
      I.log_sa(spdlog::level::warn, sa, "ike.v1_bad_hash", {{"exchange", "informational"}});
      // Before phase 1 completes the peer may be reporting that it could
      // not decrypt us: keys (PSKs) differ.
      if (sa.state == IkeState::Connecting && sa.initiator)
        I.fail(sa, Failure::PskMismatch, "peer's informational does not verify (PSK mismatch)");
      return;
    }
    const uint64_t uid = sa.uid;
    for (const auto& p : ps) {
      if (!I.sa_by_uid(uid)) return;
      if (const auto* n = std::get_if<k::NotifyPayload>(&p.body)) {
        if (n->type == kRuThere && n->data.size() == 4) {
          k::NotifyPayload ack = *n;
          ack.type = kRuThereAck;
          ack.spi = cookies(sa);
          // The ACK mirrors the request's payload order: a peer that
          // sends HASH first may insist on it (strongSwan does).
          (void)c;
          transmit(sa, informational(sa, {k::Payload{k::PayloadType::Notify, ack}},
                                     hi + 1 == o.items.size() && hi > 0));
        } else if (n->type == kRuThereAck && n->data.size() == 4) {
          const uint32_t seq = load64(n->data) & 0xffffffff;
          if (sa.active && sa.active->task.kind == TaskKind::Dpd && seq <= sa.dpd_seq &&
              seq + 16 > sa.dpd_seq) {
            sa.active.reset();
            sa.last_rx = now();
          }
        } else if (n->type == kConnected) {
          // The peer's SAs of a committed quick mode are in: ours out too.
          for (auto& ch : sa.children)
            if (!ch.out_installed && (n->spi.size() != 4 || ch.spi_out == load64(n->spi)))
              I.install_deferred_out(sa, ch);
        } else if (n->type == kInitialContact) {
          initial_contact(sa, ps);
        } else if (n->type < 16384) {
          phase_error(sa, n->type);
        }
      } else if (const auto* d = std::get_if<k::DeletePayload>(&p.body)) {
        on_delete(sa, *d);
      }
    }
    if (IkeSa* s = I.sa_by_uid(uid)) run_queue(*s);
  }

  // An error notification while phase 1 runs (seed 001's table).
  void phase1_refused(IkeSa& sa, uint16_t type, bool authenticated) {
    Conn* c = I.conn_of(sa);
    const std::string what =
        std::string("peer answered ") + notify_name(type) + " (" + std::to_string(type) + ")";
    switch (type) {
      case kNoProposalChosen:
        if (c && sa.v1_step <= 1 && !sa.aggressive && !sa.dh_probe && !sa.replaces) {
          // One more main mode offering our algorithms with every group
          // tells a DH group mismatch from an algorithm one.
          Conn& conn = *c;
          const uint32_t first = sa.first_tunnel;
          I.destroy(sa.uid);
          return start(conn, first, 0, true);
        }
        return I.fail(sa, sa.v1_step <= 1 ? Failure::ProposalMismatch : Failure::DhGroupMismatch,
                      what + (c ? "; we offered " +
                                      [&] {
                                        std::string s;
                                        for (const auto& a : c->cfg.ike)
                                          s += (s.empty() ? "" : ", ") + v1::to_string(a);
                                        return s;
                                      }()
                                : ""));
      case kInvalidExchangeType:
        return I.fail(
            sa, Failure::ModeMismatch,
            what + ": the peer does not run " + (sa.aggressive ? "aggressive" : "main") + " mode");
      case kInvalidIdInformation:
        return I.fail(sa, Failure::IdMismatch, what + ": it does not accept our id");
      case kAuthenticationFailed:
        // Protected by the phase-1 keys, so the PSKs match: the peer
        // refused our identity — or, strongSwan at least, the mode (it
        // finds no config for PSK in this mode).
        return I.fail(
            sa, Failure::AuthFailed,
            what + (authenticated ? ": the PSKs match; the peer refuses our id " +
                                        (c ? c->cfg.local_id.str() : std::string()) + " or " +
                                        (sa.aggressive ? "aggressive" : "main") + " mode"
                                  : ""));
      case kInvalidHashInformation:
      case kPayloadMalformed:
      case kInvalidPayloadType:
        // It could not decrypt or verify message 5 / 3: the keys differ.
        if (sa.v1_step >= 3) return I.fail(sa, Failure::PskMismatch, what + " (PSK mismatch)");
        return I.fail(sa, Failure::ProposalMismatch, what);
      default:
        I.log_sa(spdlog::level::info, sa, "ike.v1_notify", {{"type", type}});
    }
  }

  void phase_error(IkeSa& sa, uint16_t type) {
    if (sa.state == IkeState::Connecting) return phase1_refused(sa, type, true);
    if (!sa.active || (sa.active->task.kind != TaskKind::ChildCreate &&
                       sa.active->task.kind != TaskKind::ChildRekey)) {
      I.log_sa(spdlog::level::info, sa, "ike.v1_notify", {{"type", type}});
      return;
    }
    const std::string what = std::string("peer refused quick mode: ") + notify_name(type);
    Conn* c = I.conn_of(sa);
    Failure f = Failure::ChildProposalMismatch;
    std::string detail = what;
    if (type == kInvalidIdInformation) {
      f = Failure::TsMismatch;
      detail += " for " + sa.active->local.front().str() + "<->" + sa.active->remote.front().str();
    } else if (type == kNoProposalChosen && c) {
      detail += "; we offered " + [&] {
        std::string s;
        for (const auto& a : c->cfg.esp) s += (s.empty() ? "" : ", ") + to_string(a);
        return s;
      }();
    }
    (void)I.dp.delete_sa(dp::Direction::In, sa.active->spi_in);
    sa.v1x.erase(sa.active->mid);
    sa.active.reset();
    I.fail(sa, f, detail);
  }

  void on_delete(IkeSa& sa, const k::DeletePayload& d) {
    if (d.protocol == v1::kProtoIsakmp) {
      I.log_sa(spdlog::level::info, sa, "ike.peer_deleted_ike_sa");
      if (sa.rekeyed) return I.destroy(sa.uid);  // superseded: its children moved on
      // IKEv1 CHILD_SAs outlive their ISAKMP SA: hand them to a newer one.
      if (IkeSa* heir = successor(sa)) {
        adopt_children(sa, *heir);
        ++I.ctr.ike_rekeyed;
        if (Conn* c = I.conn_of(sa)) ++c->st.ike_rekeys;
        return I.destroy(sa.uid);
      }
      return I.fail(sa, Failure::PeerDeleted, "peer deleted the ISAKMP SA");
    }
    if (d.protocol != v1::kProtoEsp) return;
    for (const auto& s : d.spis) {
      if (s.size() != 4) continue;
      const uint32_t spi = static_cast<uint32_t>(load64(s));
      for (auto& [uid, o] : I.sas) {
        if (o->conn != sa.conn) continue;
        if (Child* ch = I.child_by_out(*o, spi)) {
          I.log_sa(spdlog::level::info, *o, "ike.child_deleted_by_peer", {{"spi_out", hex32(spi)}});
          I.erase_child(*o, ch->spi_in);
          break;
        }
      }
    }
  }

  // ===========================================================================
  // Our informational requests

  void send_delete_esp(IkeSa& sa, const std::vector<uint32_t>& spis) {
    k::DeletePayload d;
    d.protocol = v1::kProtoEsp;
    d.spi_size = 4;
    for (uint32_t s : spis) d.spis.push_back(be32(s));
    transmit(sa, informational(sa, {k::Payload{k::PayloadType::Delete, d}}, false));
  }

  void send_delete_isakmp(IkeSa& sa) {
    if (!sa.v1_cipher || sa.skeyid_a.empty()) return;
    k::DeletePayload d;
    d.protocol = v1::kProtoIsakmp;
    d.spi_size = 16;
    d.spis.push_back(cookies(sa));
    transmit(sa, informational(sa, {k::Payload{k::PayloadType::Delete, d}}, false));
  }

  Bytes dpd_packet(IkeSa& sa) {
    Conn* c = I.conn_of(sa);
    k::NotifyPayload n;
    n.protocol = v1::kProtoIsakmp;
    n.spi = cookies(sa);
    n.type = kRuThere;
    n.data = be32(++sa.dpd_seq);
    return informational(sa, {k::Payload{k::PayloadType::Notify, n}}, c && c->cfg.dpd_notify_first);
  }

  void run_queue(IkeSa& sa) {
    while (!sa.active && !sa.queue.empty()) {
      Task t = sa.queue.front();
      sa.queue.pop_front();
      if (sa.state != IkeState::Established) continue;
      if (sa.rekeyed && t.kind != TaskKind::IkeDelete) continue;
      switch (t.kind) {
        case TaskKind::ChildCreate:
        case TaskKind::ChildRekey:
          if (peer_phase1_under_way(sa)) {
            sa.queue.push_front(t);
            return;
          }
          start_quick(sa, t);
          break;
        case TaskKind::ChildDelete: {
          std::vector<uint32_t> spis;
          for (uint32_t s : t.spis)
            if (Child* ch = I.child_by_in(sa, s)) {
              spis.push_back(s);
              // Make before break: the peer drops its half now, ours
              // lingers for packets already in flight.
              ch->rekeyed = true;
              ch->delete_at = now() + 2000;
            }
          if (!spis.empty()) send_delete_esp(sa, spis);
          break;
        }
        case TaskKind::IkeRekey:
          if (Conn* c = I.conn_of(sa)) {
            bool running = false;
            for (auto& [uid, o] : I.sas) running |= o->replaces == sa.uid;
            if (!running) start(*c, 0, sa.uid);
          }
          break;
        case TaskKind::IkeDelete: {
          send_delete_isakmp(sa);
          I.destroy(sa.uid);
          return;
        }
        case TaskKind::Dpd:
          if (!sa.peer_dpd) break;
          {
            Pending p = pending(t);
            p.packet = dpd_packet(sa);
            p.tries = 1;
            p.started = now();
            p.next_at = now() + I.first_timeout(TaskKind::Dpd, sa);
            transmit(sa, p.packet);
            sa.active = std::move(p);
          }
          break;
        default:
          break;
      }
    }
  }

  void on_timeout(IkeSa& sa) {
    const TaskKind k = sa.active->task.kind;
    Conn* c = I.conn_of(sa);
    if (sa.rekeyed) return I.destroy(sa.uid);
    if (k == TaskKind::Dpd) {
      ++I.ctr.dead_peers;
      if (c) ++c->st.dpd_timeouts;
      I.log_sa(spdlog::level::warn, sa, "ike.dead_peer", {{"remote", ep_str(sa.remote)}});
      return I.fail(sa, Failure::DeadPeer,
                    "no R-U-THERE-ACK from " + sa.remote.addr.str() + " for " +
                        std::to_string((now() - sa.active->started) / 1000) + " s");
    }
    if (k == TaskKind::Init) {
      // The peer answered messages 2 and 4 but not 5: it could not
      // decrypt or verify it — the PSKs differ (seed 001).
      if (!sa.aggressive && sa.v1_step == 5)
        return I.fail(sa, Failure::PskMismatch,
                      "peer answered main mode messages 1-4 but not 5 (it cannot decrypt us: PSK "
                      "mismatch)");
      if (sa.replaces) {
        // A failed phase-1 rekey: the old SA keeps serving; try again later.
        if (IkeSa* old = I.sa_by_uid(sa.replaces)) old->rekey_at = now() + I.retry_delay_ms();
        return I.destroy(sa.uid);
      }
      return I.fail(sa, Failure::PeerNotResponding,
                    "no response to " + std::string(sa.aggressive ? "aggressive" : "main") +
                        " mode message " + std::to_string(sa.v1_step) + " from " +
                        ep_str(sa.remote) + " after " + std::to_string(sa.active->tries) +
                        " tries");
    }
    (void)I.dp.delete_sa(dp::Direction::In, sa.active->spi_in);
    I.fail(sa, Failure::PeerNotResponding,
           "no response to quick mode from " + ep_str(sa.remote) + " after " +
               std::to_string(sa.active->tries) + " tries");
  }

  // ===========================================================================
  // Entry

  IkeSa* find(const k::Header& h, const dp::Endpoint& from) {
    if (auto it = I.by_spi.find(h.icookie); it != I.by_spi.end())
      if (IkeSa* sa = I.sa_by_uid(it->second);
          sa && sa->initiator && sa->version == 1 && sa->spi_i == h.icookie)
        return sa;
    if (h.rcookie) {
      if (auto it = I.by_spi.find(h.rcookie); it != I.by_spi.end())
        if (IkeSa* sa = I.sa_by_uid(it->second);
            sa && !sa->initiator && sa->version == 1 && sa->spi_i == h.icookie)
          return sa;
      return nullptr;
    }
    // A retransmitted first message: the responder SA it created.
    for (auto& [uid, sa] : I.sas)
      if (!sa->initiator && sa->version == 1 && sa->spi_i == h.icookie &&
          sa->remote.addr == from.addr)
        return sa.get();
    return nullptr;
  }

  void receive(std::span<const uint8_t> raw, const dp::Endpoint& from, const dp::Endpoint& to) {
    ++I.ctr.rx;
    auto h = k::parse_header(raw);
    if (!h || h->length != raw.size()) {
      ++I.ctr.malformed;
      return;
    }
    if (int i = v1_index(static_cast<uint8_t>(h->exchange)); i >= 0) ++I.ctr.v1_rx_by_exchange[i];
    IkeSa* sa = find(*h, from);
    if (!sa) {
      if (h->rcookie == 0 && h->message_id == 0 && !(h->flags & k::kFlagEncryption) &&
          (h->exchange == k::Exchange::Main || h->exchange == k::Exchange::Aggressive))
        return responder_first(raw, *h, from, to);
      ++I.ctr.bad_spi;
      return;
    }
    Conn* c = I.conn_of(*sa);
    if (!c) return;
    const uint64_t uid = sa->uid;
    if (h->exchange == k::Exchange::Main || h->exchange == k::Exchange::Aggressive) {
      if (h->message_id != 0 || (h->exchange == k::Exchange::Aggressive) != sa->aggressive) {
        ++I.ctr.invalid_message_id;
        return;
      }
      // A retransmission of the peer's last message: ours was lost (§5).
      if (std::equal(raw.begin(), raw.end(), sa->v1_last_rx.begin(), sa->v1_last_rx.end())) {
        ++I.ctr.retransmits;
        if (!sa->last_resp.empty()) transmit(*sa, sa->last_resp);
        return;
      }
      if (sa->state != IkeState::Connecting) return;
      if (sa->initiator && sa->v1_step == 1 && !sa->spi_r) sa->spi_r = h->rcookie;
      if ((h->flags & k::kFlagEncryption) && !sa->v1_cipher) {
        ++I.ctr.malformed;  // encrypted before any keys exist: not from the peer
        return;
      }
      auto o = open(*sa, raw, *h, sa->p1_iv);
      if (!o) {
        // Phase-1 message 5/6 (or aggressive 3) that does not decrypt:
        // the encryption keys differ, so the PSKs do (seed 001).
        ++I.ctr.integrity_failed;
        if (h->flags & k::kFlagEncryption)
          return I.fail(*sa, Failure::PskMismatch,
                        "cannot decrypt the peer's phase-1 message (" + o.error() +
                            "): the pre-shared keys differ",
                        sa->initiator);
        ++I.ctr.malformed;
        return;
      }
      sa->v1_last_rx.assign(raw.begin(), raw.end());
      sa->last_rx = now();
      if (h->flags & k::kFlagEncryption) sa->p1_iv = o->iv;
      if (sa->initiator)
        initiator_phase1(*sa, *c, *o);
      else
        responder_phase1(*sa, *c, *o, from, to);
      return;
    }
    if (sa->state == IkeState::Connecting && !sa->initiator && sa->aggressive &&
        (h->flags & k::kFlagEncryption) && !sa->last_resp.empty()) {
      // The initiator is past aggressive mode message 3, which we never
      // got: our message 2 again makes it resend message 3.
      ++I.ctr.retransmits;
      transmit(*sa, sa->last_resp);
      return;
    }
    if (h->exchange == k::Exchange::Informational) {
      const bool enc = h->flags & k::kFlagEncryption;
      Bytes iv;
      if (enc) {
        if (!sa->v1_cipher) {
          ++I.ctr.malformed;
          return;
        }
        iv = v1::phase2_iv(*sa->prf, sa->p1_iv, h->message_id, sa->v1_cipher->block_size());
      }
      auto o = open(*sa, raw, *h, iv);
      if (!o) {
        ++I.ctr.integrity_failed;
        if (sa->state == IkeState::Connecting && sa->initiator && enc)
          return I.fail(
              *sa, Failure::PskMismatch,
              "cannot decrypt the peer's informational (" + o.error() + "): PSK mismatch");
        return;
      }
      sa->last_rx = now();
      informational_in(*sa, c, h->message_id, *o, enc);
      return;
    }
    if (h->exchange != k::Exchange::Quick || !(h->flags & k::kFlagEncryption) ||
        h->message_id == 0 || sa->state != IkeState::Established) {
      ++I.ctr.invalid_message_id;
      return;
    }
    // Quick mode: its own CBC chain per message ID.
    expire_exchanges(*sa);
    const uint32_t mid = h->message_id;
    auto xit = sa->v1x.find(mid);
    const bool fresh = xit == sa->v1x.end();
    Bytes iv = fresh ? v1::phase2_iv(*sa->prf, sa->p1_iv, mid, sa->v1_cipher->block_size())
                     : xit->second.iv;
    if (!fresh && xit->second.done) {
      // The exchange is complete: the peer resends because our last
      // message was lost. Same ciphertext in, same answer out.
      if (!xit->second.last_tx.empty()) {
        ++I.ctr.retransmits;
        transmit(*sa, xit->second.last_tx);
      }
      return;
    }
    auto o = open(*sa, raw, *h, iv);
    if (!o) {
      ++I.ctr.integrity_failed;
      if (!fresh && xit->second.responder && !xit->second.last_tx.empty()) {
        // A retransmitted QM1 decrypts under the first IV, not the chain.
        auto again = open(*sa, raw, *h,
                          v1::phase2_iv(*sa->prf, sa->p1_iv, mid, sa->v1_cipher->block_size()));
        if (again) {
          ++I.ctr.retransmits;
          transmit(*sa, xit->second.last_tx);
        }
      }
      return;
    }
    sa->last_rx = now();
    if (sa->initiator || !fresh || (sa->active && sa->active->mid == mid)) {
      if (sa->active && sa->active->mid == mid &&
          (sa->active->task.kind == TaskKind::ChildCreate ||
           sa->active->task.kind == TaskKind::ChildRekey)) {
        sa->v1x[mid].iv = o->iv;
        quick_initiator_reply(*sa, *c, mid, *o, h->flags & k::kFlagCommit);
        return;
      }
      if (!fresh && xit->second.responder) {
        // QM1 again (same plaintext) or QM3.
        if (!xit->second.ni.empty() && o->payloads.size() > 1) {
          ++I.ctr.retransmits;
          transmit(*sa, xit->second.last_tx);
          return;
        }
        xit->second.iv = o->iv;
        quick_responder_final(*sa, *c, mid, xit->second, *o);
        if (IkeSa* s = I.sa_by_uid(uid)) run_queue(*s);
        return;
      }
    }
    if (!fresh) return;
    // A new quick mode started by the peer (either side may start one).
    V1Exchange& x = sa->v1x[mid];
    x.created = now();
    x.iv = o->iv;
    x.commit = h->flags & k::kFlagCommit;
    quick_responder(*sa, *c, mid, x, *o);
  }

  void expire_exchanges(IkeSa& sa) {
    for (auto it = sa.v1x.begin(); it != sa.v1x.end();)
      if (it->second.created + 60000 < now() && !(sa.active && sa.active->mid == it->first))
        it = sa.v1x.erase(it);
      else
        ++it;
  }
};

// ---------------------------------------------------------------------------

void Daemon::Impl::v1_receive(std::span<const uint8_t> raw, const dp::Endpoint& from,
                              const dp::Endpoint& to) {
  V1{*this}.receive(raw, from, to);
}
void Daemon::Impl::v1_start(Conn& c, uint32_t first_tunnel, uint64_t replaces) {
  V1{*this}.start(c, first_tunnel, replaces);
}
void Daemon::Impl::v1_run_queue(IkeSa& sa) {
  V1{*this}.run_queue(sa);
}
void Daemon::Impl::v1_on_timeout(IkeSa& sa) {
  V1{*this}.on_timeout(sa);
}
void Daemon::Impl::v1_renew_dpd(IkeSa& sa) {
  if (sa.active && sa.active->task.kind == TaskKind::Dpd)
    sa.active->packet = V1{*this}.dpd_packet(sa);
}
uint64_t Daemon::Impl::v1_tick(IkeSa& sa) {
  return V1{*this}.tick(sa);
}
void Daemon::Impl::v1_send_delete_isakmp(IkeSa& sa) {
  V1{*this}.send_delete_isakmp(sa);
}

// IKEv1 negotiates one SA pair per local x remote relation (SPEC §5).
std::vector<Plan> Daemon::Impl::v1_plans(const ConnConfig& cfg) {
  std::vector<Plan> v;
  for (const auto& ch : cfg.children)
    for (const auto& l : ch.local_ts)
      for (const auto& r : ch.remote_ts) {
        if (l.family() != r.family()) continue;
        Plan p;
        p.name =
            ch.name +
            (ch.local_ts.size() * ch.remote_ts.size() > 1 ? "/" + l.str() + "-" + r.str() : "");
        p.local = {l};
        p.remote = {r};
        p.tunnel_id = next_tunnel++;
        v.push_back(std::move(p));
      }
  return v;
}

}  // namespace xgw::ike
