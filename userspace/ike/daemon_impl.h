// The IKE daemon's internals, shared by its IKEv2 exchanges (daemon.cpp)
// and its IKEv1 exchanges (ikev1.cpp): the connection table, IKE SAs and
// their CHILD_SAs (one SA manager for both versions), the task queue,
// failure bookkeeping and the data-plane wiring. Not an interface: only
// the daemon's own translation units include it.
#pragma once

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <unordered_map>

#include "common/bytes.h"
#include "common/log.h"
#include "esp/algorithms.h"
#include "ike/crypto.h"
#include "ike/daemon.h"
#include "ike/ikev1_crypto.h"
#include "ike/isakmp.h"

namespace xgw::ike {

namespace daemon_detail {

inline Bytes random_bytes(size_t n) {
  Bytes b(n);
  if (RAND_bytes(b.data(), static_cast<int>(n)) != 1) abort();
  return b;
}
inline uint64_t random_spi64() {
  uint64_t v = 0;
  while (v == 0) {
    Bytes b = random_bytes(8);
    for (uint8_t x : b) v = (v << 8) | x;
  }
  return v;
}
inline Bytes be64(uint64_t v) {
  Bytes b(8);
  for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(v >> (56 - 8 * i));
  return b;
}
inline uint64_t load64(const Bytes& b) {
  uint64_t v = 0;
  for (uint8_t x : b) v = (v << 8) | x;
  return v;
}
inline Bytes be32(uint32_t v) {
  return {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)};
}
inline bool same(const dp::Endpoint& a, const dp::Endpoint& b) {
  return a.addr == b.addr && a.port == b.port;
}
inline std::string ep_str(const dp::Endpoint& e) {
  return (e.addr.family == net::Family::V6 ? "[" + e.addr.str() + "]" : e.addr.str()) + ":" +
         std::to_string(e.port);
}
inline std::string hex_spi(uint64_t v) {
  char b[24];
  snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
  return b;
}
inline std::string hex32(uint32_t v) {
  return dp::spi_hex(v);
}

// §2.23: SHA-1(SPIi | SPIr | IP | Port).
inline Bytes nat_hash(uint64_t spi_i, uint64_t spi_r, const dp::Endpoint& e) {
  Bytes in = be64(spi_i);
  Bytes r = be64(spi_r);
  in.insert(in.end(), r.begin(), r.end());
  const size_t alen = e.addr.family == net::Family::V4 ? 4 : 16;
  in.insert(in.end(), e.addr.bytes.begin(), e.addr.bytes.begin() + alen);
  in.push_back(e.port >> 8);
  in.push_back(e.port & 0xff);
  Bytes out(20);
  unsigned len = 0;
  EVP_Digest(in.data(), in.size(), out.data(), &len, EVP_sha1(), nullptr);
  return out;
}

inline bool ct_equal(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// Intersection of two prefixes when one holds the other (prefixes either
// nest or are disjoint).
inline std::optional<net::Cidr> cidr_meet(const net::Cidr& a, const net::Cidr& b) {
  if (a.family() != b.family()) return std::nullopt;
  if (a.contains(b)) return b;
  if (b.contains(a)) return a;
  return std::nullopt;
}

// Narrowing (§2.9): what both sides' selectors cover, as our prefixes.
// Peer ranges that are not prefixes take part through the prefixes of ours
// they contain.
inline std::vector<net::Cidr> narrow(const std::vector<net::Cidr>& ours,
                                     const std::vector<TrafficSelector>& theirs) {
  std::vector<net::Cidr> out;
  for (const auto& o : ours)
    for (const auto& t : theirs) {
      std::optional<net::Cidr> m;
      if (auto tc = ts_to_cidr(t)) {
        m = cidr_meet(o, *tc);
      } else if (t.ip_proto == 0 && t.start_port == 0 && t.end_port == 65535 &&
                 t.start.family == o.family()) {
        const TrafficSelector os = ts_from_cidr(o);
        if (std::lexicographical_compare(os.start.bytes.begin(), os.start.bytes.end(),
                                         t.start.bytes.begin(), t.start.bytes.end()) == false &&
            std::lexicographical_compare(t.end.bytes.begin(), t.end.bytes.end(),
                                         os.end.bytes.begin(), os.end.bytes.end()) == false)
          m = o;
      }
      if (m && std::find(out.begin(), out.end(), *m) == out.end()) out.push_back(*m);
    }
  return out;
}

inline TsPayload ts_payload(const std::vector<net::Cidr>& cidrs) {
  TsPayload p;
  for (const auto& c : cidrs) p.selectors.push_back(ts_from_cidr(c));
  return p;
}

inline std::vector<std::string> cidr_strs(const std::vector<net::Cidr>& v) {
  std::vector<std::string> o;
  for (const auto& c : v) o.push_back(c.str());
  return o;
}

inline IdPayload id_payload(const Identity& id) {
  return IdPayload{id.type, id.data};
}

// A CHILD_SA lineage: the relations one CHILD_SA carries, its data-plane
// tunnel id (reqid) and the policies installed for it.
// A responder waits this long after IKE_AUTH before negotiating the
// CHILD_SAs the initiator did not ask for (it usually asks at once).
inline constexpr uint64_t kResponderChildDelayMs = 2000;

struct Plan {
  std::string name;
  std::vector<net::Cidr> local, remote;
  uint32_t tunnel_id = 0;
  std::vector<uint32_t> policy_ids;
  // Split off a narrowed plan: one relation the peer dropped, proposed once
  // on its own. A narrowing of it is final, never split again (no loop).
  bool split = false;
  // What the peer narrowed this plan to, for status and logs (empty: as
  // configured).
  std::string narrowed;
};

struct Conn {
  ConnConfig cfg;
  std::vector<Plan> plans;
  ConnStatus st;
  uint64_t retry_at = 0;
  uint32_t retry_count = 0;
};

struct Child {
  std::string name;
  uint32_t tunnel_id = 0;
  uint32_t spi_in = 0, spi_out = 0;
  EspAlgs algs;
  std::vector<net::Cidr> local, remote;
  uint64_t installed_at = 0, rekey_at = 0;
  bool out_installed = false;
  uint64_t install_out_at = 0;  // responder of a rekey: deferred outbound SA
  // The inbound SPI of the SA this one replaces, deleted (with a Delete to
  // the peer) once this one's deferred outbound half is in (IKEv1 rekeys).
  uint32_t replaces_spi = 0;
  bool rekeyed = false;    // superseded; waiting for its delete
  uint64_t delete_at = 0;  // fallback removal of a superseded SA
  ChildKeys keys;          // kept until the outbound SA is installed
  // §2.17: KEYMAT's first half is the initiator->responder direction of
  // the exchange that created this CHILD_SA, whoever started the IKE SA.
  bool exchange_initiator = false;
  bool encap = false;
};

enum class TaskKind : uint8_t {
  Init,
  Auth,
  ChildCreate,
  ChildRekey,
  ChildDelete,
  IkeRekey,
  IkeDelete,
  Dpd
};

struct Task {
  TaskKind kind = TaskKind::Init;
  uint32_t tunnel_id = 0;      // ChildCreate
  uint32_t spi = 0;            // ChildRekey: the old inbound SPI
  std::vector<uint32_t> spis;  // ChildDelete: our inbound SPIs
};

struct Pending {
  Task task;
  Bytes packet;
  uint32_t mid = 0;
  uint32_t tries = 0;
  uint64_t started = 0, next_at = 0;
  // exchange state
  uint32_t spi_in = 0;
  Bytes nonce;
  std::unique_ptr<DiffieHellman> dh;
  uint64_t new_ike_spi = 0;
  std::vector<net::Cidr> local, remote;
  DhId pfs = DhId::None;
  // §2.8.1: the peer rekeyed the same CHILD_SA while this rekey ran; its
  // exchange's nonces decide which of the two new SAs is redundant.
  bool collided = false;
  Bytes peer_ni, peer_nr;
};

inline Pending pending(Task t) {
  Pending p;
  p.task = std::move(t);
  return p;
}

// An IKEv1 phase-2 exchange (quick mode or informational, RFC 2409 §5.5,
// §5.7) under one ISAKMP SA: its own CBC chain and, for quick mode, what
// it negotiates. Kept until it completes (or a minute passes) so a
// retransmitted message gets the same answer.
struct V1Exchange {
  Bytes iv;
  bool quick = false;
  bool responder = false;
  bool done = false;
  uint64_t created = 0;
  Bytes last_rx, last_tx;  // retransmit detection and replay
  uint64_t resend_at = 0;  // the responder resends QM2 until QM3 arrives
  uint32_t resends = 0;
  // quick mode
  Bytes ni, nr;
  std::unique_ptr<DiffieHellman> dh;
  Bytes g_qm;
  uint32_t spi_in = 0, spi_out = 0;
  EspAlgs algs;
  uint32_t tunnel_id = 0;
  uint32_t rekeys_spi = 0;  // the inbound SPI of the SA this one replaces
  std::vector<net::Cidr> local, remote;
  Bytes id_ci, id_cr;  // the IDci/IDcr payload bodies as received (echoed)
  bool encap = false;
  bool commit = false;  // the initiator set the commit bit (RFC 2408 §3.1)
  uint32_t lifetime_s = 0;
};

struct IkeSa {
  uint64_t uid = 0;
  std::string conn;
  bool initiator = false;
  IkeState state = IkeState::Connecting;
  uint64_t spi_i = 0, spi_r = 0;
  dp::Endpoint local, remote;
  bool nat_local = false, nat_remote = false;
  IkeAlgs algs;
  std::optional<Prf> prf;
  std::optional<SkCipher> sk_in, sk_out;
  IkeKeys keys;
  Bytes ni, nr;
  std::unique_ptr<DiffieHellman> dh;
  DhId dh_group = DhId::None;
  Bytes init_req, init_resp;
  Bytes cookie;
  uint32_t cookie_tries = 0, ke_tries = 0;
  uint32_t mid_out = 0, mid_in = 0;
  Bytes last_resp;
  bool has_last_resp = false;
  std::optional<Pending> active;
  std::deque<Task> queue;
  std::vector<Child> children;
  uint64_t created_at = 0, established_at = 0, rekey_at = 0;
  uint64_t last_rx = 0, dpd_check_at = 0;
  uint64_t inbound_packets_seen = 0;
  Identity peer_id;
  // After NO_PROPOSAL_CHOSEN, one more IKE_SA_INIT offering our algorithms
  // with every DH group tells a DH group mismatch from an algorithm one;
  // its answer is read, never used.
  bool dh_probe = false;
  bool rekeyed = false;       // superseded by a rekeyed IKE SA; children moved away
  uint32_t first_tunnel = 0;  // the plan the IKE_AUTH CHILD_SA negotiates
  // Responder: when to negotiate the CHILD_SAs of plans the initiator did
  // not ask for (0: not scheduled; once per IKE SA).
  uint64_t missing_children_at = 0;
  std::string half_open_key;  // counted as half-open from this source (empty: not)

  // ---- IKEv1 (ikev1.cpp): SPIs are the cookies, `ni`/`nr` the phase-1
  // nonces, `algs` the phase-1 transform, `init_req` SAi_b.
  uint8_t version = 2;
  bool aggressive = false;
  uint8_t v1_step = 0;  // phase-1 messages exchanged so far
  Bytes skeyid, skeyid_d, skeyid_a;
  std::optional<v1::CbcCipher> v1_cipher;
  Bytes p1_iv;  // the phase-1 CBC chain; once phase 1 is done, its last block
  Bytes g_xi, g_xr;
  Bytes peer_id_b;                     // the peer's phase-1 ID payload body (HASH_I/HASH_R)
  Bytes v1_last_rx;                    // the last phase-1 message received, to spot retransmits
  std::map<uint32_t, V1Exchange> v1x;  // phase-2 exchanges by message ID
  bool peer_natt = false, peer_dpd = false;
  uint32_t dpd_seq = 0;
  uint32_t v1_life_s = 0;  // phase-1 lifetime agreed
  uint64_t replaces = 0;   // the IKE SA this phase 1 rekeys (0: none)
  // The phase-1 responder resends its last message until the next one
  // arrives (the initiator's final message has no answer to wait for).
  uint64_t v1_resend_at = 0;
  uint32_t v1_resends = 0;
  // A superseded ISAKMP SA goes at v1_expire_at: silently when the peer
  // rekeyed and has not deleted it, with a Delete when we rekeyed.
  uint64_t v1_expire_at = 0;
  bool v1_delete_on_expire = false;

  uint64_t our_spi() const { return initiator ? spi_i : spi_r; }
};

}  // namespace daemon_detail
using namespace daemon_detail;

struct Daemon::Impl {
  Clock& clock;
  Transport& transport;
  dp::Dataplane& dp;
  DaemonOptions opt;
  std::map<std::string, Conn> conns;
  std::map<uint64_t, std::unique_ptr<IkeSa>> sas;
  std::map<uint64_t, uint64_t> by_spi;  // our SPI -> uid
  uint64_t next_uid = 1;
  uint32_t next_tunnel;
  uint32_t next_policy;
  DaemonCounters ctr;
  Bytes cookie_secret = random_bytes(32);
  size_t half_open_total = 0;
  std::unordered_map<std::string, uint32_t> half_open_by_source;
  uint64_t unknown_peer_log_at = 0, unknown_peer_suppressed = 0;
  uint64_t invalid_ike_spi_window = 0, invalid_ike_spi_sent = 0;
  std::mt19937_64 rng{std::random_device{}()};
  bool raw_esp = false;

  Impl(Clock& c, Transport& t, dp::Dataplane& d, DaemonOptions o)
      : clock(c),
        transport(t),
        dp(d),
        opt(o),
        next_tunnel(o.first_tunnel_id),
        next_policy(o.first_policy_id) {
    raw_esp = dp.capabilities().raw_esp;
    esp::load_providers();  // DES, and the digests' provider, before any fetch
  }

  uint64_t now() const { return clock.now_ms(); }

  // ---- logging
  void log_sa(spdlog::level::level_enum lvl, const IkeSa& sa, std::string_view ev,
              std::initializer_list<log::Field> extra = {}) {
    std::vector<log::Field> f{{"conn", sa.conn}, {"ike_sa", sa.uid}};
    f.insert(f.end(), extra.begin(), extra.end());
    std::string line;
    // log::event takes an initializer_list; assemble through format().
    for (const auto& x : f) {
      if (!line.empty()) line += ' ';
      line += std::string(x.key) + "=";
      const bool quote = x.value.find(' ') != std::string::npos || x.value.empty();
      line += quote ? "\"" + x.value + "\"" : x.value;
    }
    log::event(lvl, ev, {{"sa", line}});
  }

  Conn* conn_of(const IkeSa& sa) {
    auto it = conns.find(sa.conn);
    return it == conns.end() ? nullptr : &it->second;
  }
  IkeSa* sa_by_uid(uint64_t uid) {
    auto it = sas.find(uid);
    return it == sas.end() ? nullptr : it->second.get();
  }
  IkeSa* current_sa(const std::string& conn) {
    IkeSa* best = nullptr;
    for (auto& [uid, sa] : sas)
      if (sa->conn == conn && !sa->rekeyed && sa->state != IkeState::Dead &&
          sa->state != IkeState::Deleting) {
        if (!best || (sa->state == IkeState::Established && best->state != IkeState::Established))
          best = sa.get();
      }
    return best;
  }
  Plan* plan_of(Conn& c, uint32_t tunnel_id) {
    for (auto& p : c.plans)
      if (p.tunnel_id == tunnel_id) return &p;
    return nullptr;
  }

  // ---- jitter and lifetimes
  uint64_t rekey_delay_ms(uint32_t lifetime_s, const ConnConfig& c) {
    const double life = lifetime_s * 1000.0;
    const double margin = life * c.rekey_margin_percent / 100.0;
    std::uniform_real_distribution<double> u(0.0, margin * c.jitter_percent / 100.0);
    return static_cast<uint64_t>(std::max(1000.0, life - margin - u(rng)));
  }

  // A refused or colliding rekey is retried after 2-10 s, at random so the
  // two peers do not collide again (§2.8.1).
  uint64_t retry_delay_ms() {
    std::uniform_int_distribution<uint64_t> u(2000, 10000);
    return u(rng);
  }

  // ---- failure bookkeeping
  void record_failure(Conn* c, Failure f, const std::string& detail, bool authenticated = true) {
    if (!c) return;
    if (!authenticated) {
      ++c->st.unauthenticated_failures_total[f];
      const IkeSa* cur = current_sa(c->cfg.name);
      if (cur && cur->state != IkeState::Connecting) {
        // The connection is up: a spoofed first message must not mark it failed.
        log::info("ike.failure_ignored",
                  {{"conn", c->cfg.name},
                   {"reason", to_string(f)},
                   {"detail", detail},
                   {"why", "unauthenticated input, connection established"}});
        return;
      }
    } else {
      ++c->st.failures_total[f];
    }
    c->st.failure = f;
    c->st.failure_detail = detail;
    c->st.failure_at_ms = now();
    log::warn("ike.failure", {{"conn", c->cfg.name}, {"reason", to_string(f)}, {"detail", detail}});
  }

  // ---- sending
  Bytes build(IkeSa& sa, Exchange ex, uint32_t mid, bool response,
              const std::vector<Payload>& inner) {
    Header h;
    h.spi_i = sa.spi_i;
    h.spi_r = sa.spi_r;
    h.exchange = ex;
    h.message_id = mid;
    h.flags = (sa.initiator ? kFlagInitiator : 0) | (response ? kFlagResponse : 0);
    Bytes out;
    if (ex == Exchange::IkeSaInit) {
      Bytes chain = encode_chain(inner);
      h.next = inner.empty() ? PayloadType::None : inner[0].type;
      h.length = static_cast<uint32_t>(kHeaderSize + chain.size());
      encode_header(h, out);
      out.insert(out.end(), chain.begin(), chain.end());
      return out;
    }
    Bytes plain = encode_chain(inner);
    h.next = PayloadType::SK;
    const size_t body = plain.size() + sa.sk_out->overhead_for(plain.size());
    h.length = static_cast<uint32_t>(kHeaderSize + 4 + body);
    encode_header(h, out);
    out.push_back(static_cast<uint8_t>(inner.empty() ? PayloadType::None : inner[0].type));
    out.push_back(0);
    out.push_back(static_cast<uint8_t>((4 + body) >> 8));
    out.push_back(static_cast<uint8_t>((4 + body) & 0xff));
    auto sealed = sa.sk_out->seal(out, kHeaderSize + 4, plain);
    OPENSSL_cleanse(plain.data(), plain.size());
    if (!sealed) {
      log_sa(spdlog::level::err, sa, "ike.seal_failed", {{"error", sealed.error()}});
      return {};
    }
    return out;
  }

  static int exchange_index(uint8_t ex) { return ex >= 34 && ex <= 37 ? ex - 34 : -1; }

  void transmit(const IkeSa& sa, std::span<const uint8_t> pkt) {
    if (pkt.empty()) return;
    ++ctr.tx;
    if (int i = pkt.size() > 18 ? exchange_index(pkt[18]) : -1; i >= 0) ++ctr.tx_by_exchange[i];
    transport.send(sa.local, sa.remote, pkt);
  }

  void send_request(IkeSa& sa, Exchange ex, const std::vector<Payload>& inner, Pending p) {
    p.mid = sa.mid_out;
    p.packet = build(sa, ex, p.mid, false, inner);
    p.tries = 1;
    p.started = now();
    p.next_at = now() + first_timeout(p.task.kind, sa);
    transmit(sa, p.packet);
    sa.active = std::move(p);
  }

  uint64_t first_timeout(TaskKind k, const IkeSa& sa) {
    if (k == TaskKind::Dpd) {
      const Conn* c = conns.count(sa.conn) ? &conns.at(sa.conn) : nullptr;
      if (c) {
        const uint32_t tries = std::max<uint32_t>(1, c->cfg.dpd.retries);
        return std::max<uint64_t>(100, c->cfg.dpd.timeout_s * 1000ull / tries);
      }
    }
    return opt.retransmit.base_ms;
  }

  void send_response(IkeSa& sa, Exchange ex, uint32_t mid, const std::vector<Payload>& inner) {
    sa.last_resp = build(sa, ex, mid, true, inner);
    sa.has_last_resp = true;
    transmit(sa, sa.last_resp);
  }

  // An unprotected reply to an IKE_SA_INIT request we keep no state for
  // (COOKIE, INVALID_KE_PAYLOAD, NO_PROPOSAL_CHOSEN: §1.2, §2.6).
  // An unprotected message (header and plain payloads) back to `from`.
  void send_plain(Header h, const std::vector<Payload>& payloads, const dp::Endpoint& from,
                  const dp::Endpoint& to) {
    Bytes chain = encode_chain(payloads);
    h.next = payloads.empty() ? PayloadType::None : payloads[0].type;
    h.length = static_cast<uint32_t>(kHeaderSize + chain.size());
    Bytes out;
    encode_header(h, out);
    out.insert(out.end(), chain.begin(), chain.end());
    ++ctr.tx;
    if (int i = exchange_index(static_cast<uint8_t>(h.exchange)); i >= 0) ++ctr.tx_by_exchange[i];
    transport.send(to, from, out);
  }
  void reply_plain(const Header& req, const dp::Endpoint& from, const dp::Endpoint& to,
                   std::vector<Payload> payloads) {
    Header h;
    h.spi_i = req.spi_i;
    h.spi_r = 0;
    h.exchange = req.exchange;
    h.message_id = req.message_id;
    h.flags = kFlagResponse;
    send_plain(h, payloads, from, to);
  }

  // §2.21.4: a request for an IKE SA we do not know, most likely because
  // we restarted and lost it. Answered, unprotected, with INVALID_IKE_SPI
  // (same SPIs and Message ID; at most 10 answers a second), but only to a
  // configured peer; and when that peer's connection has no IKE SA, it is
  // started (with INITIAL_CONTACT), so a peer that only sends gets its SAs
  // back without waiting for its own DPD to give up.
  void unknown_ike_spi(const Header& req, const dp::Endpoint& from, const dp::Endpoint& to) {
    Conn* c = find_conn_by_addr(to.addr, from.addr);
    if (!c) return;
    const uint64_t t = now();
    if (t >= invalid_ike_spi_window + 1000) {
      invalid_ike_spi_window = t;
      invalid_ike_spi_sent = 0;
    }
    if (++invalid_ike_spi_sent <= 10) {
      Header h;
      h.spi_i = req.spi_i;
      h.spi_r = req.spi_r;
      h.exchange = req.exchange;
      h.message_id = req.message_id;
      h.flags = kFlagResponse | (req.from_initiator() ? 0 : kFlagInitiator);
      ++ctr.invalid_ike_spi_sent;
      send_plain(h, {make_notify(Notify::InvalidIkeSpi)}, from, to);
    }
    if (!current_sa(c->cfg.name)) {
      log::info("ike.unknown_ike_spi", {{"conn", c->cfg.name},
                                        {"remote", ep_str(from)},
                                        {"action", "initiate with INITIAL_CONTACT"}});
      start_initiate(*c, 0);
    }
  }

  // ---- SA table
  IkeSa& new_sa(const std::string& conn, bool initiator) {
    auto sa = std::make_unique<IkeSa>();
    sa->uid = next_uid++;
    sa->conn = conn;
    sa->initiator = initiator;
    sa->created_at = now();
    sa->last_rx = now();
    IkeSa& ref = *sa;
    sas.emplace(sa->uid, std::move(sa));
    return ref;
  }
  void index(IkeSa& sa) { by_spi[sa.our_spi()] = sa.uid; }

  void remove_child_sas(const Child& ch) {
    if (ch.spi_in) (void)dp.delete_sa(dp::Direction::In, ch.spi_in);
    if (ch.spi_out && ch.out_installed) (void)dp.delete_sa(dp::Direction::Out, ch.spi_out);
  }

  // Forgets an IKE SA; its CHILD_SAs leave the data plane.
  void destroy(uint64_t uid) {
    IkeSa* sa = sa_by_uid(uid);
    if (!sa) return;
    uncount_half_open(*sa);
    for (const auto& ch : sa->children) remove_child_sas(ch);
    if (sa->active && sa->active->spi_in) (void)dp.delete_sa(dp::Direction::In, sa->active->spi_in);
    auto it = by_spi.find(sa->our_spi());
    if (it != by_spi.end() && it->second == uid) by_spi.erase(it);
    sas.erase(uid);
  }

  // Whether a failure of `sa` rests on input a peer had authenticated: an
  // SA still negotiating (before AUTH verified) failed on what anyone able
  // to spoof the peer's address could have sent, except for our own
  // timeouts and local errors.
  static bool authenticated_failure(const IkeSa& sa, Failure f) {
    if (sa.state != IkeState::Connecting) return true;
    switch (f) {
      case Failure::ProposalMismatch:
      case Failure::DhGroupMismatch:
      case Failure::ModeMismatch:
      case Failure::IkeVersionMismatch:
      case Failure::IdMismatch:
      case Failure::PskMismatch:
      case Failure::AuthFailed:
        return false;
      default:
        return true;
    }
  }

  // A negotiation failed for good: record why, drop the SA, retry later
  // when the connection wants to be up.
  void fail(IkeSa& sa, Failure f, const std::string& detail, bool retry = true) {
    Conn* c = conn_of(sa);
    if (f != Failure::None) record_failure(c, f, detail, authenticated_failure(sa, f));
    log_sa(spdlog::level::warn, sa, "ike.sa_failed", {{"reason", to_string(f)}});
    const std::string conn = sa.conn;
    destroy(sa.uid);
    if (c && retry && c->cfg.start_immediately) schedule_retry(*c);
  }

  void schedule_retry(Conn& c) {
    // Back off 5 s, 10 s, 20 s ... up to 5 min between attempts.
    const uint64_t d =
        std::min<uint64_t>(300000, uint64_t{5000} << std::min<uint32_t>(c.retry_count, 6));
    c.retry_count++;
    c.retry_at = now() + d;
  }

  // ---- policies
  void install_policies(Plan& p, const std::string& conn) {
    for (uint32_t id : p.policy_ids) (void)dp.delete_policy(id);
    p.policy_ids.clear();
    for (const auto& l : p.local)
      for (const auto& r : p.remote) {
        if (l.family() != r.family()) continue;
        dp::PolicySpec ps;
        ps.id = next_policy++;
        ps.src = l;
        ps.dst = r;
        ps.priority = l.len + r.len;  // the more specific relation wins
        ps.tunnel_id = p.tunnel_id;
        ps.conn = conn;
        if (auto r2 = dp.add_policy(ps); !r2)
          log::error("ike.policy_failed", {{"plan", p.name}, {"error", r2.error()}});
        else
          p.policy_ids.push_back(ps.id);
      }
  }
  void remove_policies(Plan& p) {
    for (uint32_t id : p.policy_ids) (void)dp.delete_policy(id);
    p.policy_ids.clear();
  }

  std::vector<Plan> make_plans(const ConnConfig& cfg) {
    std::vector<Plan> v;
    if (cfg.ike_version == 1) return v1_plans(cfg);
    for (const auto& ch : cfg.children) {
      Plan p;
      p.name = ch.name;
      p.local = ch.local_ts;
      p.remote = ch.remote_ts;
      p.tunnel_id = next_tunnel++;
      v.push_back(std::move(p));
    }
    return v;
  }

  // ---- CHILD_SA installation
  dp::SaSpec sa_spec(const IkeSa& sa, const Child& ch, dp::Direction dir, const Conn& c) {
    dp::SaSpec s;
    s.name = c.cfg.name + "/" + ch.name;
    s.conn = c.cfg.name;
    s.dir = dir;
    s.spi = dir == dp::Direction::In ? ch.spi_in : ch.spi_out;
    s.tunnel_id = ch.tunnel_id;
    s.local = sa.local.addr;
    s.remote = sa.remote.addr;
    s.encap = ch.encap ? dp::Encap::Udp : dp::Encap::None;
    s.local_port = 4500;
    s.remote_port = ch.encap ? sa.remote.port : 4500;
    s.encr = *to_esp(ch.algs.encr, ch.algs.key_bits);
    s.integ = *to_esp(ch.algs.integ);
    const bool i_to_r = (dir == dp::Direction::Out) == ch.exchange_initiator;
    s.encr_key = i_to_r ? ch.keys.encr_i : ch.keys.encr_r;
    s.integ_key = i_to_r ? ch.keys.integ_i : ch.keys.integ_r;
    s.esn = ch.algs.esn;
    s.replay_window = dir == dp::Direction::In ? opt.replay_window : 0;
    // The daemon rekeys by time itself (jittered); the data plane enforces
    // the hard limits and reports the soft volume limit.
    s.lifetime.hard_seconds = c.cfg.child_lifetime_s + 30;
    if (c.cfg.child_lifetime_bytes) {
      s.lifetime.hard_bytes = c.cfg.child_lifetime_bytes;
      std::uniform_real_distribution<double> u(0.0, c.cfg.jitter_percent / 100.0);
      const double soft = 1.0 - (c.cfg.rekey_margin_percent / 100.0) * (1.0 + u(rng));
      s.lifetime.soft_bytes =
          static_cast<uint64_t>(c.cfg.child_lifetime_bytes * std::max(0.5, soft));
    }
    s.keepalive_seconds = sa.nat_local ? 20 : 0;
    return s;
  }

  Expected<void, std::string> install_child(IkeSa& sa, Child& ch, bool install_out) {
    Conn* c = conn_of(sa);
    if (!c) return unexpected(std::string("connection gone"));
    if (auto r = dp.add_sa(sa_spec(sa, ch, dp::Direction::In, *c)); !r)
      return unexpected("inbound SA " + hex32(ch.spi_in) + ": " + r.error());
    if (install_out) {
      if (auto r = dp.add_sa(sa_spec(sa, ch, dp::Direction::Out, *c)); !r) {
        (void)dp.delete_sa(dp::Direction::In, ch.spi_in);
        return unexpected("outbound SA " + hex32(ch.spi_out) + ": " + r.error());
      }
      ch.out_installed = true;
      ch.keys = ChildKeys{};
    }
    ch.installed_at = now();
    ch.rekey_at = now() + rekey_delay_ms(c->cfg.child_lifetime_s, c->cfg);
    ++ctr.child_established;
    log_sa(spdlog::level::info, sa, "ike.child_installed",
           {{"child", ch.name},
            {"spi_in", hex32(ch.spi_in)},
            {"spi_out", hex32(ch.spi_out)},
            {"algorithms", to_string(ch.algs)},
            {"local_ts",
             [&] {
               std::string s;
               for (auto& x : ch.local) s += (s.empty() ? "" : ",") + x.str();
               return s;
             }()},
            {"remote_ts",
             [&] {
               std::string s;
               for (auto& x : ch.remote) s += (s.empty() ? "" : ",") + x.str();
               return s;
             }()},
            {"encap", ch.encap ? "udp" : "none"}});
    return {};
  }

  void install_deferred_out(IkeSa& sa, Child& ch) {
    if (ch.out_installed) return;
    Conn* c = conn_of(sa);
    if (!c) return;
    if (auto r = dp.add_sa(sa_spec(sa, ch, dp::Direction::Out, *c)); !r)
      log_sa(spdlog::level::err, sa, "ike.child_out_failed", {{"error", r.error()}});
    else
      ch.out_installed = true;
    ch.install_out_at = 0;
    ch.keys = ChildKeys{};
    if (ch.replaces_spi) {
      sa.queue.push_front(Task{TaskKind::ChildDelete, 0, 0, {ch.replaces_spi}});
      ch.replaces_spi = 0;
      run_queue(sa);
    }
  }

  Child* child_by_in(IkeSa& sa, uint32_t spi) {
    for (auto& c : sa.children)
      if (c.spi_in == spi) return &c;
    return nullptr;
  }
  Child* child_by_out(IkeSa& sa, uint32_t spi) {
    for (auto& c : sa.children)
      if (c.spi_out == spi) return &c;
    return nullptr;
  }
  void erase_child(IkeSa& sa, uint32_t spi_in) {
    for (auto it = sa.children.begin(); it != sa.children.end(); ++it)
      if (it->spi_in == spi_in) {
        remove_child_sas(*it);
        sa.children.erase(it);
        return;
      }
  }
  bool plan_has_child(const IkeSa& sa, uint32_t tunnel_id) {
    for (const auto& c : sa.children)
      if (c.tunnel_id == tunnel_id && !c.rekeyed) return true;
    return false;
  }
  bool task_queued(const IkeSa& sa, TaskKind k, uint32_t tunnel_id, uint32_t spi) {
    auto match = [&](const Task& t) {
      return t.kind == k && t.tunnel_id == tunnel_id && t.spi == spi;
    };
    if (sa.active && match(sa.active->task)) return true;
    return std::any_of(sa.queue.begin(), sa.queue.end(), match);
  }

  bool use_encap(const IkeSa& sa, const Conn& c) {
    return (sa.nat_local || sa.nat_remote) && c.cfg.nat_t ? true : !raw_esp;
  }

  // ===========================================================================
  // Initiator: IKE_SA_INIT (§1.2)

  void start_initiate(Conn& c, uint32_t first_tunnel) {
    if (current_sa(c.cfg.name)) return;
    if (c.cfg.ike_version == 1) return v1_start(c, first_tunnel, 0);
    IkeSa& sa = new_sa(c.cfg.name, true);
    sa.spi_i = random_spi64();
    index(sa);
    sa.local = {c.cfg.local, c.cfg.local_port};
    sa.remote = {c.cfg.remote, c.cfg.remote_port};
    sa.ni = random_bytes(opt.nonce_len);
    sa.dh_group = c.cfg.ike.empty() ? DhId::Modp2048 : c.cfg.ike.front().dh;
    sa.first_tunnel = first_tunnel ? first_tunnel : (c.plans.empty() ? 0 : c.plans[0].tunnel_id);
    c.st.state = "connecting";
    log_sa(spdlog::level::info, sa, "ike.initiate",
           {{"local", ep_str(sa.local)}, {"remote", ep_str(sa.remote)}});
    sa.queue.push_back(Task{TaskKind::Init, 0, 0, {}});
    run_queue(sa);
  }

  void send_init(IkeSa& sa) {
    Conn* c = conn_of(sa);
    if (!c) return;
    auto dh = DiffieHellman::create(sa.dh_group);
    if (!dh)
      return fail(sa, Failure::Internal, "DH group " + to_string(sa.dh_group) + ": " + dh.error());
    sa.dh = std::move(*dh);
    std::vector<Payload> ps;
    if (!sa.cookie.empty()) ps.push_back(make_notify(Notify::Cookie, sa.cookie));
    ps.push_back(make_payload(
        PayloadType::SA, ike_sa_payload(sa.dh_probe ? probe_proposals(c->cfg.ike) : c->cfg.ike)));
    const auto pub = sa.dh->public_value();
    ps.push_back(make_payload(PayloadType::KE, KePayload{static_cast<uint16_t>(sa.dh_group),
                                                         Bytes(pub.begin(), pub.end())}));
    ps.push_back(make_payload(PayloadType::Nonce, NoncePayload{sa.ni}));
    if (c->cfg.nat_t) {
      // Without raw ESP in the data plane, claim a NAT (§2.23 allows it) so
      // both sides encapsulate ESP in UDP, as strongSwan does with encap=yes.
      Bytes src = raw_esp ? nat_hash(sa.spi_i, 0, sa.local) : random_bytes(20);
      ps.push_back(make_notify(Notify::NatDetectionSourceIp, src));
      ps.push_back(
          make_notify(Notify::NatDetectionDestinationIp, nat_hash(sa.spi_i, 0, sa.remote)));
    }
    Pending p;
    p.task = Task{TaskKind::Init, 0, 0, {}};
    sa.mid_out = 0;
    send_request(sa, Exchange::IkeSaInit, ps, std::move(p));
    sa.init_req = sa.active->packet;
  }

  void on_init_response(IkeSa& sa, const Message& m, std::span<const uint8_t> raw) {
    Conn* c = conn_of(sa);
    if (!c) return;
    if (auto* n = m.notify(Notify::Cookie)) {
      if (++sa.cookie_tries > 3)
        return fail(sa, Failure::Internal, "responder keeps asking for cookies");
      sa.cookie = n->data;
      sa.active.reset();
      return send_init(sa);
    }
    if (sa.dh_probe) return finish_dh_probe(sa, *c, m);
    if (auto* n = m.notify(Notify::InvalidKePayload)) {
      const DhId want =
          n->data.size() == 2 ? static_cast<DhId>(load_be16(n->data.data())) : DhId::None;
      bool ours = false;
      for (const auto& a : c->cfg.ike) ours |= a.dh == want;
      if (!ours || want == sa.dh_group || ++sa.ke_tries > 2) {
        std::string offered;
        for (const auto& a : c->cfg.ike) offered += (offered.empty() ? "" : ",") + to_string(a.dh);
        return fail(sa, Failure::DhGroupMismatch,
                    "peer wants DH group " + to_string(want) + ", we offer " + offered);
      }
      log_sa(spdlog::level::info, sa, "ike.invalid_ke", {{"group", to_string(want)}});
      sa.dh_group = want;
      sa.active.reset();
      return send_init(sa);
    }
    if (m.notify(Notify::NoProposalChosen)) {
      log_sa(spdlog::level::info, sa, "ike.dh_probe", {{"why", "NO_PROPOSAL_CHOSEN"}});
      sa.dh_probe = true;
      sa.active.reset();
      return send_init(sa);
    }
    if (m.notify(Notify::InvalidMajorVersion))
      return fail(sa, Failure::IkeVersionMismatch, "peer does not speak IKEv2");
    if (auto* e = m.error_notify())
      return fail(
          sa, Failure::Internal,
          std::string("peer refused IKE_SA_INIT: ") + to_string(static_cast<Notify>(e->type)));
    const auto* sap = m.get<SaPayload>(PayloadType::SA);
    const auto* ke = m.get<KePayload>(PayloadType::KE);
    const auto* nr = m.get<NoncePayload>(PayloadType::Nonce);
    if (!sap || !ke || !nr || m.header.spi_r == 0) {
      ++ctr.malformed;
      return fail(sa, Failure::Internal, "IKE_SA_INIT response lacks SA, KE or Nonce");
    }
    auto choice = accepted_ike(*sap, c->cfg.ike);
    if (!choice || choice->algs.dh != sa.dh_group ||
        ke->group != static_cast<uint16_t>(sa.dh_group))
      return fail(sa, Failure::ProposalMismatch,
                  "peer chose a proposal we did not offer: " + describe(*sap));
    auto gir = sa.dh->shared_secret(ke->data);
    if (!gir) return fail(sa, Failure::Internal, "peer's KE: " + gir.error());
    sa.spi_r = m.header.spi_r;
    sa.nr = nr->data;
    sa.algs = choice->algs;
    sa.init_resp.assign(raw.begin(), raw.end());
    if (!derive(sa, *gir)) return;
    OPENSSL_cleanse(gir->data(), gir->size());
    detect_nat(sa, m, /*responder=*/false);
    // Without raw ESP we claimed a NAT ourselves (send_init): act as the
    // side behind one — float to 4500 and encapsulate.
    if (!raw_esp && c->cfg.nat_t) sa.nat_local = true;
    if ((sa.nat_local || sa.nat_remote) && c->cfg.nat_t) {
      // §2.23: float to port 4500 once a NAT is seen.
      sa.local.port = 4500;
      sa.remote.port = 4500;
    }
    sa.mid_out = 1;
    sa.active.reset();
    send_auth(sa);
  }

  // Our proposals once more with every DH group we support (ours first).
  static std::vector<IkeAlgs> probe_proposals(const std::vector<IkeAlgs>& ours) {
    std::vector<IkeAlgs> v = ours;
    for (const auto& a : ours)
      for (DhId g : {DhId::Modp2048, DhId::Ecp256, DhId::Modp1024, DhId::Modp1536, DhId::Modp3072,
                     DhId::Modp4096, DhId::Ecp384, DhId::Ecp521, DhId::Modp2048s256,
                     DhId::Curve25519, DhId::Modp768}) {
        IkeAlgs p = a;
        p.dh = g;
        if (std::find(v.begin(), v.end(), p) == v.end() && available(g)) v.push_back(p);
      }
    return v;
  }

  // The answer to the probe: a group the peer wants (INVALID_KE_PAYLOAD or
  // a chosen proposal) means the algorithms matched and the group did not.
  void finish_dh_probe(IkeSa& sa, Conn& c, const Message& m) {
    std::string ours;
    for (const auto& a : c.cfg.ike) ours += (ours.empty() ? "" : ", ") + to_string(a);
    DhId want = DhId::None;
    if (auto* n = m.notify(Notify::InvalidKePayload); n && n->data.size() == 2)
      want = static_cast<DhId>(load_be16(n->data.data()));
    else if (const auto* sap = m.get<SaPayload>(PayloadType::SA); sap && sap->proposals.size() == 1)
      for (const auto& t : sap->proposals[0].transforms)
        if (t.type == static_cast<uint8_t>(TransformType::Dh)) want = static_cast<DhId>(t.id);
    if (want != DhId::None)
      return fail(sa, Failure::DhGroupMismatch,
                  "peer accepts our algorithms only with DH group " + to_string(want) +
                      " (we offered " + ours + ")");
    fail(sa, Failure::ProposalMismatch,
         "peer accepted none of our IKE proposals (we offered " + ours + ")");
  }

  bool derive(IkeSa& sa, const Bytes& gir) {
    const size_t ek = encr_key_len(sa.algs.encr, sa.algs.key_bits);
    const size_t ik = integ_key_len(sa.algs.integ);
    auto keys = derive_ike_keys(sa.algs.prf, sa.ni, sa.nr, gir, sa.spi_i, sa.spi_r, ek, ik);
    if (!keys) {
      fail(sa, Failure::Internal, "key derivation: " + keys.error());
      return false;
    }
    return set_keys(sa, std::move(*keys));
  }

  bool set_keys(IkeSa& sa, IkeKeys keys) {
    sa.keys = std::move(keys);
    auto prf = Prf::create(sa.algs.prf);
    auto ci = SkCipher::create(sa.algs.encr, sa.algs.key_bits, sa.algs.integ, sa.keys.sk_ei,
                               sa.keys.sk_ai);
    auto cr = SkCipher::create(sa.algs.encr, sa.algs.key_bits, sa.algs.integ, sa.keys.sk_er,
                               sa.keys.sk_ar);
    if (!prf || !ci || !cr) {
      fail(sa, Failure::Internal, "cannot set up IKE SA ciphers for " + to_string(sa.algs));
      return false;
    }
    sa.prf.emplace(std::move(*prf));
    if (sa.initiator) {
      sa.sk_out.emplace(std::move(*ci));
      sa.sk_in.emplace(std::move(*cr));
    } else {
      sa.sk_out.emplace(std::move(*cr));
      sa.sk_in.emplace(std::move(*ci));
    }
    return true;
  }

  void detect_nat(IkeSa& sa, const Message& m, bool responder) {
    // The peer's SOURCE hash must match the address it sent from; ours
    // (DESTINATION) the address it sent to. Responder hashes use the
    // request's SPIs (SPIr = 0) as the initiator computed them.
    const uint64_t spi_r = responder ? 0 : sa.spi_r;
    const auto srcs = m.find_all(PayloadType::Notify);
    bool saw_src = false, src_match = false, saw_dst = false, dst_match = false;
    for (const Payload* p : srcs) {
      const auto& n = std::get<NotifyPayload>(p->body);
      if (n.type == static_cast<uint16_t>(Notify::NatDetectionSourceIp)) {
        saw_src = true;
        src_match |= ct_equal(n.data, nat_hash(sa.spi_i, spi_r, sa.remote));
      } else if (n.type == static_cast<uint16_t>(Notify::NatDetectionDestinationIp)) {
        saw_dst = true;
        dst_match |= ct_equal(n.data, nat_hash(sa.spi_i, spi_r, sa.local));
      }
    }
    sa.nat_remote = saw_src && !src_match;
    sa.nat_local = saw_dst && !dst_match;
  }

  // ===========================================================================
  // IKE_AUTH (§1.2, §2.15)

  Bytes auth_octets(IkeSa& sa, bool for_initiator, const IdPayload& id) {
    // §2.15: RealMessage | NonceData | prf(SK_p, IDbody)
    const Bytes& msg = for_initiator ? sa.init_req : sa.init_resp;
    const Bytes& nonce = for_initiator ? sa.nr : sa.ni;
    const Bytes& skp = for_initiator ? sa.keys.sk_pi : sa.keys.sk_pr;
    return signed_octets(msg, nonce, *sa.prf, skp, id.body());
  }

  void send_auth(IkeSa& sa) {
    Conn* c = conn_of(sa);
    if (!c) return;
    Pending p;
    p.task = Task{TaskKind::Auth, sa.first_tunnel, 0, {}};
    const IdPayload idi = id_payload(c->cfg.local_id);
    std::vector<Payload> ps;
    ps.push_back(make_payload(PayloadType::IDi, idi));
    const Bytes octets = auth_octets(sa, true, idi);
    ps.push_back(make_payload(
        PayloadType::AUTH,
        AuthPayload{AuthMethod::Psk, psk_auth(*sa.prf,
                                              {reinterpret_cast<const uint8_t*>(c->cfg.psk.data()),
                                               c->cfg.psk.size()},
                                              octets)}));
    // §2.4: INITIAL_CONTACT only when we hold no other IKE SA with the peer
    // (it tells the peer to drop every older one).
    bool other_sa = false;
    for (const auto& [uid, o] : sas)
      other_sa |= uid != sa.uid && o->remote.addr == sa.remote.addr &&
                  o->state == IkeState::Established && !o->rekeyed;
    if (!other_sa) ps.push_back(make_notify(Notify::InitialContact));
    if (Plan* plan = plan_of(*c, sa.first_tunnel)) {
      auto spi = dp.allocate_spi();
      if (!spi) return fail(sa, Failure::DataplaneError, "allocate SPI: " + spi.error());
      p.spi_in = *spi;
      p.local = plan->local;
      p.remote = plan->remote;
      ps.push_back(make_payload(PayloadType::SA, esp_sa_payload(c->cfg.esp, *spi, false)));
      ps.push_back(make_payload(PayloadType::TSi, ts_payload(plan->local)));
      ps.push_back(make_payload(PayloadType::TSr, ts_payload(plan->remote)));
    }
    send_request(sa, Exchange::IkeAuth, ps, std::move(p));
  }

  void on_auth_response(IkeSa& sa, const Message& m) {
    Conn* c = conn_of(sa);
    if (!c) return;
    Pending p = std::move(*sa.active);
    sa.active.reset();
    sa.mid_out++;
    if (m.notify(Notify::AuthenticationFailed)) {
      ++ctr.auth_failures;
      if (p.spi_in) (void)dp.delete_sa(dp::Direction::In, p.spi_in);
      return fail(sa, Failure::AuthFailed,
                  "peer answered AUTHENTICATION_FAILED: it rejected our PSK or our identity " +
                      c->cfg.local_id.str());
    }
    const auto* idr = m.get<IdPayload>(PayloadType::IDr);
    const auto* auth = m.get<AuthPayload>(PayloadType::AUTH);
    if (!idr || !auth) {
      if (auto* e = m.error_notify())
        return fail(
            sa, Failure::Internal,
            std::string("peer refused IKE_AUTH: ") + to_string(static_cast<Notify>(e->type)));
      ++ctr.malformed;
      return fail(sa, Failure::Internal, "IKE_AUTH response lacks IDr or AUTH");
    }
    const Identity peer{idr->type, idr->data};
    if (!(peer == c->cfg.remote_id)) {
      ++ctr.auth_failures;
      return fail(sa, Failure::IdMismatch,
                  "peer identified as " + peer.str() + ", expected " + c->cfg.remote_id.str());
    }
    const Bytes want =
        psk_auth(*sa.prf, {reinterpret_cast<const uint8_t*>(c->cfg.psk.data()), c->cfg.psk.size()},
                 auth_octets(sa, false, *idr));
    if (auth->method != AuthMethod::Psk || !ct_equal(want, auth->data)) {
      ++ctr.auth_failures;
      return fail(sa, Failure::PskMismatch, "the peer's AUTH does not verify with our PSK");
    }
    sa.peer_id = peer;
    established(sa);
    // The CHILD_SA carried in IKE_AUTH (§1.2): the IKE SA stands even when
    // it fails.
    if (p.spi_in) finish_child_initiator(sa, m, p, /*in_auth=*/true);
    queue_missing_children(sa);
    run_queue(sa);
  }

  void established(IkeSa& sa) {
    Conn* c = conn_of(sa);
    uncount_half_open(sa);
    sa.state = IkeState::Established;
    sa.established_at = now();
    sa.rekey_at = c ? now() + rekey_delay_ms(c->cfg.ike_lifetime_s, c->cfg) : 0;
    sa.dpd_check_at = c && c->cfg.dpd.interval_s ? now() + 1000 : 0;  // counters polled each second
    ++ctr.ike_established;
    if (c) {
      c->retry_count = 0;
      c->retry_at = 0;
    }
    log_sa(spdlog::level::info, sa, "ike.established",
           {{"role", sa.initiator ? "initiator" : "responder"},
            {"spi_i", hex_spi(sa.spi_i)},
            {"spi_r", hex_spi(sa.spi_r)},
            {"local", ep_str(sa.local)},
            {"remote", ep_str(sa.remote)},
            {"algorithms", to_string(sa.algs)},
            {"nat", sa.nat_local || sa.nat_remote ? "yes" : "no"}});
  }

  void queue_missing_children(IkeSa& sa, bool as_responder = false) {
    Conn* c = conn_of(sa);
    if (!c || sa.state != IkeState::Established || (!sa.initiator && !as_responder)) return;
    for (const auto& p : c->plans)
      if (!plan_has_child(sa, p.tunnel_id) &&
          !task_queued(sa, TaskKind::ChildCreate, p.tunnel_id, 0))
        sa.queue.push_back(Task{TaskKind::ChildCreate, p.tunnel_id, 0, {}});
  }

  // The initiator's half of a CHILD_SA (IKE_AUTH or CREATE_CHILD_SA).
  void finish_child_initiator(IkeSa& sa, const Message& m, Pending& p, bool in_auth) {
    Conn* c = conn_of(sa);
    if (!c) return;
    const bool rekey = p.task.kind == TaskKind::ChildRekey;
    auto drop_spi = [&] { (void)dp.delete_sa(dp::Direction::In, p.spi_in); };
    if (m.notify(Notify::NoProposalChosen)) {
      drop_spi();
      const bool pfs = p.pfs != DhId::None;
      std::string ours;
      for (const auto& a : c->cfg.esp) ours += (ours.empty() ? "" : ", ") + to_string(a);
      record_failure(c, pfs ? Failure::PfsMismatch : Failure::ChildProposalMismatch,
                     "peer accepted none of our ESP proposals (we offered " + ours + ")");
      return;
    }
    if (m.notify(Notify::TsUnacceptable)) {
      drop_spi();
      record_failure(c, Failure::TsMismatch,
                     "peer refused our traffic selectors " + join(cidr_strs(p.local)) +
                         " === " + join(cidr_strs(p.remote)));
      return;
    }
    if (auto* n = m.notify(Notify::InvalidKePayload); n && !in_auth) {
      drop_spi();
      const DhId want =
          n->data.size() == 2 ? static_cast<DhId>(load_be16(n->data.data())) : DhId::None;
      record_failure(c, Failure::PfsMismatch,
                     "peer wants PFS group " + to_string(want) + ", we use " + to_string(p.pfs));
      return;
    }
    if (auto* e = m.error_notify()) {
      drop_spi();
      record_failure(
          c, Failure::Internal,
          std::string("peer refused the CHILD_SA: ") + to_string(static_cast<Notify>(e->type)));
      return;
    }
    const auto* sap = m.get<SaPayload>(PayloadType::SA);
    const auto* tsi = m.get<TsPayload>(PayloadType::TSi);
    const auto* tsr = m.get<TsPayload>(PayloadType::TSr);
    if (!sap || !tsi || !tsr) {
      drop_spi();
      record_failure(c, Failure::Internal, "CHILD_SA response lacks SA or TS payloads");
      return;
    }
    auto choice = accepted_esp(*sap, c->cfg.esp, !in_auth);
    if (!choice || choice->peer_spi < 256) {
      drop_spi();
      record_failure(c, Failure::ChildProposalMismatch,
                     "peer chose an ESP proposal we did not offer: " + describe(*sap));
      return;
    }
    // Narrowed selectors must lie within what we asked for.
    auto local = narrow(p.local, tsi->selectors);
    auto remote = narrow(p.remote, tsr->selectors);
    if (local.empty() || remote.empty()) {
      drop_spi();
      record_failure(c, Failure::TsMismatch, "peer's selectors are outside ours");
      return;
    }
    Bytes gir;
    Bytes nr_child = sa.nr;
    Bytes ni_child = sa.ni;
    if (!in_auth) {
      const auto* nr = m.get<NoncePayload>(PayloadType::Nonce);
      if (!nr) {
        drop_spi();
        record_failure(c, Failure::Internal, "CREATE_CHILD_SA response lacks a nonce");
        return;
      }
      nr_child = nr->data;
      ni_child = p.nonce;
      if (choice->algs.dh != DhId::None) {
        const auto* ke = m.get<KePayload>(PayloadType::KE);
        if (!ke || !p.dh || ke->group != static_cast<uint16_t>(choice->algs.dh)) {
          drop_spi();
          record_failure(c, Failure::PfsMismatch, "peer's KE does not match the PFS group");
          return;
        }
        auto s = p.dh->shared_secret(ke->data);
        if (!s) {
          drop_spi();
          record_failure(c, Failure::Internal, "peer's KE: " + s.error());
          return;
        }
        gir = std::move(*s);
      }
    }
    Child ch;
    ch.exchange_initiator = true;
    ch.tunnel_id = p.task.tunnel_id;
    ch.spi_in = p.spi_in;
    ch.spi_out = choice->peer_spi;
    ch.algs = choice->algs;
    ch.local = local;
    ch.remote = remote;
    ch.encap = use_encap(sa, *c);
    if (Plan* plan = plan_of(*c, ch.tunnel_id)) ch.name = plan->name;
    auto keys = derive_child_keys(*sa.prf, sa.keys.sk_d, gir, ni_child, nr_child,
                                  encr_key_len(ch.algs.encr, ch.algs.key_bits),
                                  integ_key_len(ch.algs.integ));
    OPENSSL_cleanse(gir.data(), gir.size());
    if (!keys) {
      drop_spi();
      record_failure(c, Failure::Internal, "CHILD_SA keys: " + keys.error());
      return;
    }
    ch.keys = std::move(*keys);
    if (auto r = install_child(sa, ch, true); !r) {
      record_failure(c, Failure::DataplaneError, r.error());
      return;
    }
    sa.children.push_back(std::move(ch));
    Child& added = sa.children.back();
    if (rekey) {
      ++ctr.child_rekeyed;
      if (Conn* rc = conn_of(sa)) ++rc->st.child_rekeys;
      // §2.8.1: after a collision the SA created with the lowest of the
      // four nonces is redundant and its creator closes it; the other
      // exchange's initiator closes the old SA.
      const bool redundant =
          p.collided && std::min(p.nonce, nr_child) < std::min(p.peer_ni, p.peer_nr);
      if (redundant) {
        added.rekeyed = true;
        log_sa(spdlog::level::info, sa, "ike.rekey_collision",
               {{"redundant_spi_in", hex32(added.spi_in)}, {"closed_by", "us"}});
        sa.queue.push_front(Task{TaskKind::ChildDelete, 0, 0, {added.spi_in}});
      } else if (Child* old = child_by_in(sa, p.task.spi)) {
        if (p.collided)
          log_sa(spdlog::level::info, sa, "ike.rekey_collision",
                 {{"redundant_spi_in", "peer's"}, {"closed_by", "peer"}});
        old->rekeyed = true;
        sa.queue.push_front(Task{TaskKind::ChildDelete, 0, 0, {old->spi_in}});
      }
    } else if (Plan* plan = plan_of(*c, added.tunnel_id)) {
      accept_narrowed(sa, *c, *plan, added.local, added.remote);
    }
    c->st.failure = Failure::None;
    c->st.failure_detail.clear();
  }

  static std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
    return s;
  }

  // SPEC §5, RFC 7296 §2.9: a CHILD_SA narrowed by the peer (either role)
  // is accepted as what the peer allows: the plan takes the negotiated
  // selectors and its policies follow them, so outbound traffic enters the
  // SA only if it matches them (RFC 4301 §4.4.1). Relations the peer
  // dropped entirely (no accepted pair overlaps them) are split off once,
  // one plan each, and negotiated from our side; a narrowing of a split
  // plan is final. Nothing is ever re-proposed in a loop.
  void accept_narrowed(IkeSa& sa, Conn& c, Plan& plan, const std::vector<net::Cidr>& got_local,
                       const std::vector<net::Cidr>& got_remote) {
    if (got_local == plan.local && got_remote == plan.remote) return;
    std::vector<std::pair<net::Cidr, net::Cidr>> rest;
    if (!plan.split)
      for (const auto& l : plan.local)
        for (const auto& r : plan.remote) {
          if (l.family() != r.family()) continue;
          bool touched = false;
          for (const auto& gl : got_local)
            for (const auto& gr : got_remote) touched |= gl.overlaps(l) && gr.overlaps(r);
          if (!touched) rest.emplace_back(l, r);
        }
    const std::string configured =
        join(cidr_strs(plan.local)) + "===" + join(cidr_strs(plan.remote));
    const std::string accepted = join(cidr_strs(got_local)) + "===" + join(cidr_strs(got_remote));
    plan.narrowed = "peer narrowed " + configured + " to " + accepted;
    if (!rest.empty())
      plan.narrowed += "; " + std::to_string(rest.size()) + " relation(s) split off";
    if (plan.split) plan.narrowed += " (final)";
    log_sa(spdlog::level::info, sa, "ike.ts_narrowed",
           {{"child", plan.name},
            {"configured", configured},
            {"accepted", accepted},
            {"split", rest.size()},
            {"final", plan.split ? "yes" : "no"}});
    plan.local = got_local;
    plan.remote = got_remote;
    install_policies(plan, c.cfg.name);
    const std::string base = plan.name;
    for (size_t i = 0; i < rest.size(); ++i) {
      Plan np;
      np.name = base + "-" + std::to_string(i + 2);
      np.local = {rest[i].first};
      np.remote = {rest[i].second};
      np.tunnel_id = next_tunnel++;
      np.split = true;
      install_policies(np, c.cfg.name);
      c.plans.push_back(std::move(np));
      sa.queue.push_back(Task{TaskKind::ChildCreate, c.plans.back().tunnel_id, 0, {}});
    }
  }

  // ===========================================================================
  // Responder

  // A connection is chosen by the addresses the message came in on, then by
  // the peer's identity among the connections of that address pair. An
  // identity alone never selects a connection: a peer configured for one
  // connection that knows another's id and PSK must not bring that one up
  // towards itself. Behind a NAT the configured peer address is the NAT's
  // public address, which is what the message arrives from (docs/ike.md).
  Conn* find_conn(const net::IpAddr& local, const net::IpAddr& remote, const Identity* id) {
    Conn* by_addr = nullptr;
    for (auto& [n, c] : conns)
      if (c.cfg.remote == remote && c.cfg.local == local) {
        if (!id || c.cfg.remote_id == *id) return &c;
        if (!by_addr) by_addr = &c;
      }
    return id ? nullptr : by_addr;
  }
  Conn* find_conn_by_addr(const net::IpAddr& local, const net::IpAddr& remote) {
    for (auto& [n, c] : conns)
      if (c.cfg.remote == remote && c.cfg.local == local) return &c;
    return nullptr;
  }

  // Half-open responder SAs, counted as they come and go so that a flood
  // of first messages costs O(1) per message to check.
  static std::string source_key(const net::IpAddr& a) {
    return std::string(reinterpret_cast<const char*>(a.bytes.data()), 16) +
           static_cast<char>(a.family);
  }
  size_t half_open(const net::IpAddr* from) const {
    if (!from) return half_open_total;
    auto it = half_open_by_source.find(source_key(*from));
    return it == half_open_by_source.end() ? 0 : it->second;
  }
  void count_half_open(IkeSa& sa) {
    if (!sa.half_open_key.empty()) return;
    sa.half_open_key = source_key(sa.remote.addr);
    ++half_open_by_source[sa.half_open_key];
    ++half_open_total;
  }
  void uncount_half_open(IkeSa& sa) {
    if (sa.half_open_key.empty()) return;
    auto it = half_open_by_source.find(sa.half_open_key);
    if (it != half_open_by_source.end() && --it->second == 0) half_open_by_source.erase(it);
    --half_open_total;
    sa.half_open_key.clear();
  }
  // A first message from an address no connection is configured for: no
  // answer, and one log line per 10 s saying how many there were.
  void unknown_peer(const dp::Endpoint& from, const dp::Endpoint& to) {
    ++ctr.unknown_peer;
    if (now() < unknown_peer_log_at) {
      ++unknown_peer_suppressed;
      return;
    }
    log::warn("ike.no_config", {{"local", ep_str(to)},
                                {"remote", ep_str(from)},
                                {"also_suppressed", unknown_peer_suppressed}});
    unknown_peer_suppressed = 0;
    unknown_peer_log_at = now() + 10000;
  }

  // §2.6: Cookie = <VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>)
  Bytes make_cookie(const Bytes& ni, const net::IpAddr& ip, uint64_t spi_i) {
    Bytes in = ni;
    in.insert(in.end(), ip.bytes.begin(),
              ip.bytes.begin() + (ip.family == net::Family::V4 ? 4 : 16));
    Bytes s = be64(spi_i);
    in.insert(in.end(), s.begin(), s.end());
    in.insert(in.end(), cookie_secret.begin(), cookie_secret.end());
    Bytes out(32);
    unsigned len = 0;
    EVP_Digest(in.data(), in.size(), out.data() + 0, &len, EVP_sha256(), nullptr);
    out.insert(out.begin(), {0, 0, 0, 1});
    out.resize(4 + 16);
    return out;
  }

  void on_init_request(std::span<const uint8_t> raw, const Header& h, const dp::Endpoint& from,
                       const dp::Endpoint& to) {
    // A retransmitted IKE_SA_INIT: answer with the same response.
    for (auto& [uid, sa] : sas)
      if (!sa->initiator && sa->spi_i == h.spi_i && sa->remote.addr == from.addr &&
          sa->state == IkeState::Connecting && ct_equal(sa->init_req, raw)) {
        ++ctr.retransmits;
        transmit(*sa, sa->init_resp);
        return;
      }
    auto m = parse_message(raw);
    if (!m) {
      ++ctr.malformed;
      if (m.error().notify == 1) {
        ++ctr.unsupported_critical;
        reply_plain(
            h, from, to,
            {make_notify(Notify::UnsupportedCriticalPayload, Bytes{m.error().critical_type})});
      }
      return;
    }
    const auto* sap = m->get<SaPayload>(PayloadType::SA);
    const auto* ke = m->get<KePayload>(PayloadType::KE);
    const auto* ni = m->get<NoncePayload>(PayloadType::Nonce);
    if (!sap || !ke || !ni || m->sk_offset || h.message_id != 0) {
      ++ctr.malformed;
      return;
    }
    Conn* c = find_conn_by_addr(to.addr, from.addr);
    if (!c) return unknown_peer(from, to);
    if (half_open(nullptr) >= opt.half_open_max) {
      ++ctr.half_open_refused;
      return;
    }
    // §2.6: cookies when many SAs are half-open, and whenever this source
    // has its share. Forgeries of a peer's address cannot return a cookie
    // sent to it, so they never crowd out the peer, which can.
    if (half_open(nullptr) >= opt.cookie_threshold ||
        half_open(&from.addr) >= opt.half_open_per_source) {
      const Bytes want = make_cookie(ni->data, from.addr, h.spi_i);
      const bool first_is_cookie = !m->payloads.empty() &&
                                   m->payloads[0].type == PayloadType::Notify &&
                                   std::get<NotifyPayload>(m->payloads[0].body).type ==
                                       static_cast<uint16_t>(Notify::Cookie);
      if (!first_is_cookie || !ct_equal(std::get<NotifyPayload>(m->payloads[0].body).data, want)) {
        ++ctr.cookies_sent;
        reply_plain(h, from, to, {make_notify(Notify::Cookie, want)});
        return;
      }
    }
    auto choice = choose_ike(*sap, c->cfg.ike);
    if (!choice) {
      std::string ours;
      for (const auto& a : c->cfg.ike) ours += (ours.empty() ? "" : ", ") + to_string(a);
      const bool dh_only = ike_matches_without_dh(*sap, c->cfg.ike);
      record_failure(c, dh_only ? Failure::DhGroupMismatch : Failure::ProposalMismatch,
                     "peer offered " + describe(*sap) + "; we accept " + ours, false);
      reply_plain(h, from, to, {make_notify(Notify::NoProposalChosen)});
      return;
    }
    if (ke->group != static_cast<uint16_t>(choice->algs.dh)) {
      // §1.2: tell the initiator which group we want.
      reply_plain(h, from, to,
                  {make_notify(Notify::InvalidKePayload,
                               Bytes{uint8_t(static_cast<uint16_t>(choice->algs.dh) >> 8),
                                     uint8_t(static_cast<uint16_t>(choice->algs.dh))})});
      return;
    }
    auto dh = DiffieHellman::create(choice->algs.dh);
    if (!dh) return;
    auto gir = (*dh)->shared_secret(ke->data);
    if (!gir) {
      ++ctr.malformed;
      log::warn("ike.bad_ke", {{"remote", ep_str(from)}, {"error", gir.error()}});
      return;
    }
    IkeSa& sa = new_sa(c->cfg.name, false);
    sa.spi_i = h.spi_i;
    sa.spi_r = random_spi64();
    index(sa);
    sa.local = to;
    sa.remote = from;
    count_half_open(sa);
    sa.algs = choice->algs;
    sa.ni = ni->data;
    sa.nr = random_bytes(opt.nonce_len);
    sa.dh = std::move(*dh);
    sa.init_req.assign(raw.begin(), raw.end());
    if (!derive(sa, *gir)) return;
    OPENSSL_cleanse(gir->data(), gir->size());
    detect_nat(sa, *m, true);
    std::vector<Payload> ps;
    SaPayload chosen = ike_sa_payload({choice->algs});
    chosen.proposals[0].number = choice->number;
    ps.push_back(make_payload(PayloadType::SA, chosen));
    const auto pub = sa.dh->public_value();
    ps.push_back(make_payload(PayloadType::KE, KePayload{static_cast<uint16_t>(choice->algs.dh),
                                                         Bytes(pub.begin(), pub.end())}));
    ps.push_back(make_payload(PayloadType::Nonce, NoncePayload{sa.nr}));
    if (m->notify(Notify::NatDetectionSourceIp) && c->cfg.nat_t) {
      Bytes src = raw_esp ? nat_hash(sa.spi_i, sa.spi_r, sa.local) : random_bytes(20);
      ps.push_back(make_notify(Notify::NatDetectionSourceIp, src));
      ps.push_back(
          make_notify(Notify::NatDetectionDestinationIp, nat_hash(sa.spi_i, sa.spi_r, sa.remote)));
      if (!raw_esp) sa.nat_local = true;
    }
    sa.init_resp = build(sa, Exchange::IkeSaInit, 0, true, ps);
    sa.mid_in = 1;
    transmit(sa, sa.init_resp);
    log_sa(spdlog::level::debug, sa, "ike.init_responded",
           {{"remote", ep_str(from)}, {"algorithms", to_string(sa.algs)}});
  }

  void on_auth_request(IkeSa& sa, const Message& m, uint32_t mid) {
    auto reject = [&](Failure f, const std::string& detail, Conn* c) {
      ++ctr.auth_failures;
      if (c) record_failure(c, f, detail, false);  // the peer did not authenticate
      send_response(sa, Exchange::IkeAuth, mid, {make_notify(Notify::AuthenticationFailed)});
      log_sa(spdlog::level::warn, sa, "ike.auth_failed", {{"reason", to_string(f)}});
      destroy(sa.uid);
    };
    const auto* idi = m.get<IdPayload>(PayloadType::IDi);
    const auto* auth = m.get<AuthPayload>(PayloadType::AUTH);
    Conn* by_addr = find_conn_by_addr(sa.local.addr, sa.remote.addr);
    if (!by_addr) by_addr = conn_of(sa);
    if (!idi || !auth)
      return reject(Failure::Internal, "IKE_AUTH request lacks IDi or AUTH", by_addr);
    const Identity peer{idi->type, idi->data};
    Conn* c = find_conn(sa.local.addr, sa.remote.addr, &peer);
    if (!c) {
      const std::string want = by_addr ? by_addr->cfg.remote_id.str() : "?";
      return reject(Failure::IdMismatch, "peer identified as " + peer.str() + ", expected " + want,
                    by_addr);
    }
    sa.conn = c->cfg.name;
    const Bytes want =
        psk_auth(*sa.prf, {reinterpret_cast<const uint8_t*>(c->cfg.psk.data()), c->cfg.psk.size()},
                 auth_octets(sa, true, *idi));
    if (auth->method != AuthMethod::Psk || !ct_equal(want, auth->data))
      return reject(Failure::PskMismatch, "the peer's AUTH does not verify with our PSK", c);
    sa.peer_id = peer;
    replace_older_sas(sa, *c, peer, m.notify(Notify::InitialContact) != nullptr);
    const IdPayload idr = id_payload(c->cfg.local_id);
    std::vector<Payload> ps;
    ps.push_back(make_payload(PayloadType::IDr, idr));
    ps.push_back(make_payload(
        PayloadType::AUTH,
        AuthPayload{AuthMethod::Psk, psk_auth(*sa.prf,
                                              {reinterpret_cast<const uint8_t*>(c->cfg.psk.data()),
                                               c->cfg.psk.size()},
                                              auth_octets(sa, false, idr))}));
    established(sa);
    if (m.find(PayloadType::SA)) {
      auto child = respond_child(sa, *c, m, /*in_auth=*/true, sa.ni, sa.nr, nullptr, nullptr);
      ps.insert(ps.end(), child.begin(), child.end());
    }
    // Plans the initiator leaves out get their CHILD_SAs from us, after a
    // pause in which the initiator usually asks for them itself.
    sa.missing_children_at = now() + kResponderChildDelayMs;
    send_response(sa, Exchange::IkeAuth, mid, ps);
  }

  // A peer just authenticated a new IKE SA for connection `c`.
  // With INITIAL_CONTACT (§2.4) it restarted: its older IKE SAs with us are
  // gone, forgotten silently. Without it, uniqueness (ConnConfig::unique_ids,
  // like strongSwan's uniqueids): the new IKE SA replaces the older ones the
  // peer initiated for the same connection and identity, deleted with a
  // Delete, so a peer that re-initiates leaves no parallel IKE SAs. Those we
  // initiated stay (two sides initiating at once is settled elsewhere).
  void replace_older_sas(IkeSa& sa, Conn& c, const Identity& peer, bool initial_contact) {
    std::vector<uint64_t> old;
    for (auto& [uid, other] : sas)
      if (uid != sa.uid && other->conn == sa.conn && other->peer_id == peer && !other->rekeyed &&
          (initial_contact ||
           (c.cfg.unique_ids && !other->initiator && other->state == IkeState::Established)))
        old.push_back(uid);
    for (uint64_t u : old) {
      if (initial_contact) {
        log::info("ike.initial_contact", {{"conn", sa.conn}, {"ike_sa", u}});
        destroy(u);
        continue;
      }
      IkeSa* o = sa_by_uid(u);
      log::info("ike.duplicate_replaced",
                {{"conn", sa.conn}, {"old_ike_sa", u}, {"ike_sa", sa.uid}});
      ++ctr.duplicates_replaced;
      o->queue.push_back(Task{TaskKind::IkeDelete, 0, 0, {}});
      run_queue(*o);
    }
  }

  // The responder's half of a CHILD_SA; returns the payloads for the
  // response (SA, TSi, TSr) or an error notify.
  std::vector<Payload> respond_child(IkeSa& sa, Conn& c, const Message& m, bool in_auth,
                                     const Bytes& ni, const Bytes& nr, const DiffieHellman* dh,
                                     Child* rekey_of) {
    const auto* sap = m.get<SaPayload>(PayloadType::SA);
    const auto* tsi = m.get<TsPayload>(PayloadType::TSi);
    const auto* tsr = m.get<TsPayload>(PayloadType::TSr);
    if (!sap || !tsi || !tsr) return {make_notify(Notify::InvalidSyntax)};
    auto choice = choose_esp(*sap, c.cfg.esp, !in_auth);
    if (!choice || choice->peer_spi < 256) {
      std::string ours;
      for (const auto& a : c.cfg.esp) ours += (ours.empty() ? "" : ", ") + to_string(a);
      const bool dh_only = !in_auth && esp_matches_without_dh(*sap, c.cfg.esp);
      record_failure(&c, dh_only ? Failure::PfsMismatch : Failure::ChildProposalMismatch,
                     "peer offered " + describe(*sap) + "; we accept " + ours);
      return {make_notify(Notify::NoProposalChosen)};
    }
    Bytes gir;
    if (!in_auth && choice->algs.dh != DhId::None) {
      const auto* ke = m.get<KePayload>(PayloadType::KE);
      if (!ke || ke->group != static_cast<uint16_t>(choice->algs.dh)) {
        const uint16_t g = static_cast<uint16_t>(choice->algs.dh);
        return {make_notify(Notify::InvalidKePayload, Bytes{uint8_t(g >> 8), uint8_t(g)})};
      }
      if (!dh) return {make_notify(Notify::NoProposalChosen)};
      auto s = dh->shared_secret(ke->data);
      if (!s) return {make_notify(Notify::InvalidSyntax)};
      gir = std::move(*s);
    }
    // Narrow (§2.9): TSi is the peer's side (our remote), TSr ours.
    const Plan* plan = nullptr;
    std::vector<net::Cidr> local, remote;
    if (rekey_of) {
      local = rekey_of->local;
      remote = rekey_of->remote;
      for (const auto& p : c.plans)
        if (p.tunnel_id == rekey_of->tunnel_id) plan = &p;
    } else {
      for (const auto& p : c.plans) {
        auto l = narrow(p.local, tsr->selectors);
        auto r = narrow(p.remote, tsi->selectors);
        if (!l.empty() && !r.empty() && !plan_has_child(sa, p.tunnel_id)) {
          plan = &p;
          local = std::move(l);
          remote = std::move(r);
          break;
        }
      }
      if (!plan)
        for (const auto& p : c.plans) {  // a duplicate of an installed one
          auto l = narrow(p.local, tsr->selectors);
          auto r = narrow(p.remote, tsi->selectors);
          if (!l.empty() && !r.empty()) {
            plan = &p;
            local = std::move(l);
            remote = std::move(r);
            break;
          }
        }
    }
    if (!plan) {
      std::string peer_l, peer_r;
      for (const auto& s : tsi->selectors) peer_l += (peer_l.empty() ? "" : ",") + to_string(s);
      for (const auto& s : tsr->selectors) peer_r += (peer_r.empty() ? "" : ",") + to_string(s);
      std::string ours;
      for (const auto& p : c.plans)
        ours += (ours.empty() ? "" : "; ") + join(cidr_strs(p.remote)) +
                " === " + join(cidr_strs(p.local));
      record_failure(&c, Failure::TsMismatch,
                     "peer proposed " + peer_l + " === " + peer_r + "; we allow " + ours);
      return {make_notify(Notify::TsUnacceptable)};
    }
    auto spi = dp.allocate_spi();
    if (!spi) return {make_notify(Notify::TemporaryFailure)};
    Child ch;
    ch.name = plan->name;
    ch.tunnel_id = plan->tunnel_id;
    ch.spi_in = *spi;
    ch.spi_out = choice->peer_spi;
    ch.algs = choice->algs;
    ch.local = local;
    ch.remote = remote;
    ch.encap = use_encap(sa, c);
    auto keys = derive_child_keys(*sa.prf, sa.keys.sk_d, gir, ni, nr,
                                  encr_key_len(ch.algs.encr, ch.algs.key_bits),
                                  integ_key_len(ch.algs.integ));
    OPENSSL_cleanse(gir.data(), gir.size());
    if (!keys) {
      (void)dp.delete_sa(dp::Direction::In, ch.spi_in);
      return {make_notify(Notify::TemporaryFailure)};
    }
    ch.keys = std::move(*keys);
    // A rekey's responder installs the new outbound SA only once the
    // initiator deletes the old one (or after a grace period), so nothing
    // is sent on an SA the initiator has not installed yet.
    const bool out_now = rekey_of == nullptr;
    if (auto r = install_child(sa, ch, out_now); !r) {
      record_failure(&c, Failure::DataplaneError, r.error());
      (void)dp.delete_sa(dp::Direction::In, ch.spi_in);
      return {make_notify(Notify::TemporaryFailure)};
    }
    if (!out_now) ch.install_out_at = now() + 5000;
    if (rekey_of) {
      rekey_of->rekeyed = true;
      rekey_of->delete_at = now() + 60000;
      ++ctr.child_rekeyed;
      if (Conn* rc = conn_of(sa)) ++rc->st.child_rekeys;
    }
    SaPayload chosen = esp_sa_payload({choice->algs}, ch.spi_in, !in_auth);
    chosen.proposals[0].number = choice->number;
    const uint32_t tid = ch.tunnel_id;
    sa.children.push_back(std::move(ch));
    if (!rekey_of)
      if (Plan* mp = plan_of(c, tid)) accept_narrowed(sa, c, *mp, local, remote);
    c.st.failure = Failure::None;
    c.st.failure_detail.clear();
    std::vector<Payload> ps;
    ps.push_back(make_payload(PayloadType::SA, chosen));
    ps.push_back(make_payload(PayloadType::TSi, ts_payload(remote)));
    ps.push_back(make_payload(PayloadType::TSr, ts_payload(local)));
    return ps;
  }

  void on_create_child_request(IkeSa& sa, const Message& m, uint32_t mid) {
    Conn* c = conn_of(sa);
    if (!c)
      return send_response(sa, Exchange::CreateChildSa, mid,
                           {make_notify(Notify::NoAdditionalSas)});
    const auto* ni = m.get<NoncePayload>(PayloadType::Nonce);
    const auto* sap = m.get<SaPayload>(PayloadType::SA);
    if (!ni || !sap || sap->proposals.empty())
      return send_response(sa, Exchange::CreateChildSa, mid, {make_notify(Notify::InvalidSyntax)});
    if (sap->proposals[0].protocol == Protocol::Ike) return on_ike_rekey_request(sa, *c, m, mid);
    Child* old = nullptr;
    if (auto* n = m.notify(Notify::RekeySa)) {
      const uint32_t spi = n->spi.size() == 4 ? load_be32(n->spi.data()) : 0;
      old = child_by_out(sa, spi);
      if (!old || old->rekeyed)
        return send_response(sa, Exchange::CreateChildSa, mid,
                             {make_notify(Notify::ChildSaNotFound, {}, Protocol::Esp, n->spi)});
    }
    const Bytes nr = random_bytes(opt.nonce_len);
    std::unique_ptr<DiffieHellman> dh;
    const auto* ke = m.get<KePayload>(PayloadType::KE);
    if (ke) {
      auto d = DiffieHellman::create(static_cast<DhId>(ke->group));
      if (d) dh = std::move(*d);
    }
    const bool collision = old && sa.active && sa.active->task.kind == TaskKind::ChildRekey &&
                           sa.active->task.spi == old->spi_in;
    auto ps = respond_child(sa, *c, m, false, ni->data, nr, dh.get(), old);
    if (!ps.empty() && ps[0].type == PayloadType::SA) {
      if (collision) {
        sa.active->collided = true;
        sa.active->peer_ni = ni->data;
        sa.active->peer_nr = nr;
      }
      const auto& chosen = std::get<SaPayload>(ps[0].body);
      ps.insert(ps.begin() + 1, make_payload(PayloadType::Nonce, NoncePayload{nr}));
      bool pfs = false;
      for (const auto& t : chosen.proposals[0].transforms)
        pfs |= t.type == static_cast<uint8_t>(TransformType::Dh) && t.id != 0;
      if (pfs && dh) {
        const auto pub = dh->public_value();
        ps.insert(
            ps.begin() + 2,
            make_payload(PayloadType::KE, KePayload{ke->group, Bytes(pub.begin(), pub.end())}));
      }
      log_sa(spdlog::level::info, sa, old ? "ike.child_rekeyed" : "ike.child_created",
             {{"role", "responder"}, {"spi_in", hex32(sa.children.back().spi_in)}});
    }
    send_response(sa, Exchange::CreateChildSa, mid, ps);
  }

  // §1.3.2: rekeying the IKE SA; the initiator of the rekey becomes the
  // new SA's original initiator.
  void on_ike_rekey_request(IkeSa& sa, Conn& c, const Message& m, uint32_t mid) {
    const auto* sap = m.get<SaPayload>(PayloadType::SA);
    const auto* ni = m.get<NoncePayload>(PayloadType::Nonce);
    const auto* ke = m.get<KePayload>(PayloadType::KE);
    auto choice = choose_ike(*sap, c.cfg.ike);
    if (!choice)
      return send_response(sa, Exchange::CreateChildSa, mid,
                           {make_notify(Notify::NoProposalChosen)});
    if (!ke || ke->group != static_cast<uint16_t>(choice->algs.dh)) {
      const uint16_t g = static_cast<uint16_t>(choice->algs.dh);
      return send_response(
          sa, Exchange::CreateChildSa, mid,
          {make_notify(Notify::InvalidKePayload, Bytes{uint8_t(g >> 8), uint8_t(g)})});
    }
    Bytes peer_spi;
    for (const auto& p : sap->proposals)
      if (p.number == choice->number) peer_spi = p.spi;
    if (peer_spi.size() != 8 || sa.active)
      // A rekey collision or a request while our own exchange runs: §2.8.2
      // lets the responder refuse with TEMPORARY_FAILURE; the peer retries.
      return send_response(
          sa, Exchange::CreateChildSa, mid,
          {make_notify(peer_spi.size() != 8 ? Notify::InvalidSyntax : Notify::TemporaryFailure)});
    auto dh = DiffieHellman::create(choice->algs.dh);
    if (!dh)
      return send_response(sa, Exchange::CreateChildSa, mid,
                           {make_notify(Notify::NoProposalChosen)});
    auto gir = (*dh)->shared_secret(ke->data);
    if (!gir)
      return send_response(sa, Exchange::CreateChildSa, mid, {make_notify(Notify::InvalidSyntax)});
    const Bytes nr = random_bytes(opt.nonce_len);
    IkeSa* created =
        successor(sa, false, load64(peer_spi), random_spi64(), choice->algs, ni->data, nr, *gir);
    OPENSSL_cleanse(gir->data(), gir->size());
    if (!created)
      return send_response(sa, Exchange::CreateChildSa, mid,
                           {make_notify(Notify::NoProposalChosen)});
    IkeSa& nsa = *created;
    SaPayload chosen = ike_sa_payload({choice->algs}, be64(nsa.spi_r));
    chosen.proposals[0].number = choice->number;
    const auto pub = (*dh)->public_value();
    send_response(
        sa, Exchange::CreateChildSa, mid,
        {make_payload(PayloadType::SA, chosen),
         make_payload(PayloadType::Nonce, NoncePayload{nsa.nr}),
         make_payload(PayloadType::KE, KePayload{ke->group, Bytes(pub.begin(), pub.end())})});
    index(nsa);
    adopt(sa, nsa);
    ++ctr.ike_rekeyed;
    if (Conn* rc = conn_of(sa)) ++rc->st.ike_rekeys;
  }

  // The IKE SA that replaces `old` after a rekey (§2.18): keys from the old
  // SK_d and the new exchange; nullptr (and nothing kept) on failure.
  IkeSa* successor(IkeSa& old, bool initiator, uint64_t spi_i, uint64_t spi_r, const IkeAlgs& algs,
                   const Bytes& ni, const Bytes& nr, const Bytes& gir) {
    IkeSa& nsa = new_sa(old.conn, initiator);
    nsa.spi_i = spi_i;
    nsa.spi_r = spi_r;
    nsa.local = old.local;
    nsa.remote = old.remote;
    nsa.nat_local = old.nat_local;
    nsa.nat_remote = old.nat_remote;
    nsa.algs = algs;
    nsa.ni = ni;
    nsa.nr = nr;
    nsa.peer_id = old.peer_id;
    auto keys =
        derive_rekeyed_ike_keys(old.algs.prf, old.keys.sk_d, algs.prf, gir, ni, nr, spi_i, spi_r,
                                encr_key_len(algs.encr, algs.key_bits), integ_key_len(algs.integ));
    const uint64_t nuid = nsa.uid;
    if (!keys || !set_keys(nsa, std::move(*keys))) {
      destroy(nuid);
      return nullptr;
    }
    return &nsa;
  }

  // Moves CHILD_SAs and queued work from a rekeyed IKE SA to its successor.
  void adopt(IkeSa& old, IkeSa& nsa) {
    nsa.children = std::move(old.children);
    old.children.clear();
    for (auto& t : old.queue)
      if (t.kind == TaskKind::ChildCreate || t.kind == TaskKind::ChildRekey ||
          t.kind == TaskKind::ChildDelete)
        nsa.queue.push_back(t);
    old.queue.clear();
    old.rekeyed = true;
    old.state = IkeState::Rekeying;
    established(nsa);
    log_sa(spdlog::level::info, nsa, "ike.rekeyed", {{"old_ike_sa", old.uid}});
  }

  void on_informational_request(IkeSa& sa, const Message& m, uint32_t mid) {
    std::vector<Payload> reply;
    bool delete_ike = false;
    std::vector<uint32_t> ours;
    for (const auto& p : m.payloads) {
      const auto* d = std::get_if<DeletePayload>(&p.body);
      if (!d) continue;
      if (d->protocol == Protocol::Ike) {
        delete_ike = true;
      } else if (d->protocol == Protocol::Esp) {
        // §1.4.1: delete the inbound twins and name them in the reply.
        for (uint32_t spi : d->spis)
          if (Child* ch = child_by_out(sa, spi)) {
            ours.push_back(ch->spi_in);
            const bool was_rekeyed = ch->rekeyed;
            const uint32_t tunnel = ch->tunnel_id;
            erase_child(sa, ch->spi_in);
            // The rekey's initiator deleted the old SA: the new outbound
            // SA may carry traffic now.
            if (was_rekeyed)
              for (auto& nc : sa.children)
                if (nc.tunnel_id == tunnel && !nc.out_installed) install_deferred_out(sa, nc);
          }
      }
    }
    if (!ours.empty())
      reply.push_back(make_payload(PayloadType::Delete, DeletePayload{Protocol::Esp, ours}));
    send_response(sa, Exchange::Informational, mid, reply);
    if (delete_ike) {
      log_sa(spdlog::level::info, sa, "ike.deleted_by_peer");
      Conn* c = conn_of(sa);
      // A peer that deletes the IKE SA after refusing its CHILD_SA keeps
      // the more telling reason recorded then.
      if (!sa.rekeyed && c && c->st.failure == Failure::None)
        record_failure(c, Failure::PeerDeleted, "peer deleted the IKE SA");
      destroy(sa.uid);
    }
  }

  // ===========================================================================
  // Initiator tasks on an established SA

  void run_queue(IkeSa& sa) {
    if (sa.version == 1) return v1_run_queue(sa);
    while (!sa.active && !sa.queue.empty()) {
      Task t = sa.queue.front();
      sa.queue.pop_front();
      if (t.kind == TaskKind::Init) {
        send_init(sa);
        return;
      }
      if (sa.state != IkeState::Established && t.kind != TaskKind::IkeDelete) continue;
      if (sa.rekeyed && t.kind != TaskKind::IkeDelete) continue;
      switch (t.kind) {
        case TaskKind::ChildCreate:
          start_child(sa, t);
          break;
        case TaskKind::ChildRekey:
          start_child(sa, t);
          break;
        case TaskKind::ChildDelete:
          start_child_delete(sa, t);
          break;
        case TaskKind::IkeRekey:
          start_ike_rekey(sa);
          break;
        case TaskKind::IkeDelete:
          start_ike_delete(sa);
          break;
        case TaskKind::Dpd:
          send_request(sa, Exchange::Informational, {}, pending(t));
          break;
        default:
          break;
      }
      // send_request/fail may have destroyed `sa`; callers re-find by uid.
      return;
    }
  }

  void start_child(IkeSa& sa, const Task& t) {
    Conn* c = conn_of(sa);
    if (!c) return;
    Pending p;
    p.task = t;
    std::vector<Payload> ps;
    if (t.kind == TaskKind::ChildRekey) {
      Child* old = child_by_in(sa, t.spi);
      if (!old || old->rekeyed) return;
      p.task.tunnel_id = old->tunnel_id;
      p.local = old->local;
      p.remote = old->remote;
      ps.push_back(make_notify(Notify::RekeySa, {}, Protocol::Esp, be32(old->spi_in)));
    } else {
      Plan* plan = plan_of(*c, t.tunnel_id);
      if (!plan || plan_has_child(sa, t.tunnel_id)) return;
      p.local = plan->local;
      p.remote = plan->remote;
    }
    auto spi = dp.allocate_spi();
    if (!spi) {
      record_failure(c, Failure::DataplaneError, "allocate SPI: " + spi.error());
      return;
    }
    p.spi_in = *spi;
    p.nonce = random_bytes(opt.nonce_len);
    p.pfs = c->cfg.esp.empty() ? DhId::None : c->cfg.esp.front().dh;
    ps.push_back(make_payload(PayloadType::SA, esp_sa_payload(c->cfg.esp, *spi, true)));
    ps.push_back(make_payload(PayloadType::Nonce, NoncePayload{p.nonce}));
    if (p.pfs != DhId::None) {
      auto dh = DiffieHellman::create(p.pfs);
      if (!dh) {
        record_failure(c, Failure::Internal, "PFS group " + to_string(p.pfs) + ": " + dh.error());
        return;
      }
      p.dh = std::move(*dh);
      const auto pub = p.dh->public_value();
      ps.push_back(make_payload(
          PayloadType::KE, KePayload{static_cast<uint16_t>(p.pfs), Bytes(pub.begin(), pub.end())}));
    }
    ps.push_back(make_payload(PayloadType::TSi, ts_payload(p.local)));
    ps.push_back(make_payload(PayloadType::TSr, ts_payload(p.remote)));
    send_request(sa, Exchange::CreateChildSa, ps, std::move(p));
  }

  void start_child_delete(IkeSa& sa, const Task& t) {
    std::vector<uint32_t> spis;
    for (uint32_t s : t.spis)
      if (child_by_in(sa, s)) spis.push_back(s);
    if (spis.empty()) return;
    Pending p;
    p.task = t;
    p.task.spis = spis;
    send_request(sa, Exchange::Informational,
                 {make_payload(PayloadType::Delete, DeletePayload{Protocol::Esp, spis})},
                 std::move(p));
  }

  void start_ike_rekey(IkeSa& sa) {
    Conn* c = conn_of(sa);
    if (!c) return;
    Pending p;
    p.task = Task{TaskKind::IkeRekey, 0, 0, {}};
    p.new_ike_spi = random_spi64();
    p.nonce = random_bytes(opt.nonce_len);
    const DhId g = c->cfg.ike.empty() ? sa.algs.dh : c->cfg.ike.front().dh;
    auto dh = DiffieHellman::create(g);
    if (!dh) return;
    p.dh = std::move(*dh);
    const auto pub = p.dh->public_value();
    std::vector<Payload> ps{
        make_payload(PayloadType::SA, ike_sa_payload(c->cfg.ike, be64(p.new_ike_spi))),
        make_payload(PayloadType::Nonce, NoncePayload{p.nonce}),
        make_payload(PayloadType::KE,
                     KePayload{static_cast<uint16_t>(g), Bytes(pub.begin(), pub.end())})};
    by_spi[p.new_ike_spi] = sa.uid;  // reserve the SPI
    send_request(sa, Exchange::CreateChildSa, ps, std::move(p));
  }

  void start_ike_delete(IkeSa& sa) {
    uncount_half_open(sa);
    sa.state = IkeState::Deleting;
    send_request(sa, Exchange::Informational,
                 {make_payload(PayloadType::Delete, DeletePayload{Protocol::Ike, {}})},
                 pending(Task{TaskKind::IkeDelete, 0, 0, {}}));
  }

  void on_response(IkeSa& sa, const Message& m, std::span<const uint8_t> raw) {
    (void)raw;
    const TaskKind k = sa.active->task.kind;
    if (k == TaskKind::Auth) return on_auth_response(sa, m);
    Pending p = std::move(*sa.active);
    sa.active.reset();
    sa.mid_out++;
    const uint64_t uid = sa.uid;
    switch (k) {
      case TaskKind::ChildCreate:
      case TaskKind::ChildRekey:
        if (k == TaskKind::ChildRekey && m.notify(Notify::TemporaryFailure)) {
          // §2.8.1 collision: the peer rekeys this one; try again later.
          (void)dp.delete_sa(dp::Direction::In, p.spi_in);
          if (Child* old = child_by_in(sa, p.task.spi)) old->rekey_at = now() + retry_delay_ms();
          break;
        }
        if (k == TaskKind::ChildRekey && m.notify(Notify::ChildSaNotFound)) {
          (void)dp.delete_sa(dp::Direction::In, p.spi_in);
          erase_child(sa, p.task.spi);
          queue_missing_children(sa);
          break;
        }
        finish_child_initiator(sa, m, p, false);
        log_sa(spdlog::level::info, sa,
               k == TaskKind::ChildRekey ? "ike.child_rekeyed" : "ike.child_created",
               {{"role", "initiator"}});
        break;
      case TaskKind::ChildDelete:
        for (uint32_t s : p.task.spis) erase_child(sa, s);
        break;
      case TaskKind::IkeRekey:
        finish_ike_rekey(sa, m, p);
        break;
      case TaskKind::IkeDelete:
        destroy(uid);
        return;
      case TaskKind::Dpd:
        break;
      default:
        break;
    }
    if (IkeSa* s = sa_by_uid(uid)) run_queue(*s);
  }

  void finish_ike_rekey(IkeSa& sa, const Message& m, Pending& p) {
    Conn* c = conn_of(sa);
    by_spi.erase(p.new_ike_spi);
    if (!c) return;
    const auto* sap = m.get<SaPayload>(PayloadType::SA);
    const auto* nr = m.get<NoncePayload>(PayloadType::Nonce);
    const auto* ke = m.get<KePayload>(PayloadType::KE);
    std::optional<IkeChoice> choice;
    if (sap) choice = accepted_ike(*sap, c->cfg.ike);
    if (!sap || !nr || !ke || !choice || sap->proposals[0].spi.size() != 8 || !p.dh) {
      // TEMPORARY_FAILURE (collision) or refusal: retry later.
      sa.rekey_at = now() + retry_delay_ms();
      if (m.notify(Notify::NoProposalChosen))
        record_failure(c, Failure::ProposalMismatch, "peer refused our IKE rekey proposals");
      return;
    }
    auto gir = p.dh->shared_secret(ke->data);
    if (!gir) {
      sa.rekey_at = now() + retry_delay_ms();
      return;
    }
    IkeSa* created = successor(sa, true, p.new_ike_spi, load64(sap->proposals[0].spi), choice->algs,
                               p.nonce, nr->data, *gir);
    OPENSSL_cleanse(gir->data(), gir->size());
    if (!created) {
      sa.rekey_at = now() + retry_delay_ms();
      return;
    }
    IkeSa& nsa = *created;
    index(nsa);
    adopt(sa, nsa);
    ++ctr.ike_rekeyed;
    if (Conn* rc = conn_of(sa)) ++rc->st.ike_rekeys;
    // §1.3.2: the rekey's initiator deletes the old IKE SA.
    sa.queue.push_back(Task{TaskKind::IkeDelete, 0, 0, {}});
  }

  // A request went unanswered `tries` times (or, for DPD, past the
  // timeout): the peer is gone.
  void on_timeout(IkeSa& sa) {
    if (sa.version == 1) return v1_on_timeout(sa);
    const TaskKind k = sa.active->task.kind;
    Conn* c = conn_of(sa);
    if (k == TaskKind::IkeDelete || sa.rekeyed) return destroy(sa.uid);
    if (k == TaskKind::Dpd || sa.state == IkeState::Established) {
      ++ctr.dead_peers;
      if (c) ++c->st.dpd_timeouts;
      log_sa(spdlog::level::warn, sa, "ike.dead_peer", {{"remote", ep_str(sa.remote)}});
      return fail(sa, Failure::DeadPeer,
                  "no answer from " + sa.remote.addr.str() + " for " +
                      std::to_string((now() - sa.active->started) / 1000) + " s",
                  true);
    }
    (void)c;
    fail(sa, Failure::PeerNotResponding,
         "no response to " + std::string(k == TaskKind::Init ? "IKE_SA_INIT" : "IKE_AUTH") +
             " from " + ep_str(sa.remote) + " after " + std::to_string(sa.active->tries) +
             " tries");
  }

  void retransmit_or_timeout(IkeSa& sa) {
    Pending& p = *sa.active;
    const Conn* c = conns.count(sa.conn) ? &conns.at(sa.conn) : nullptr;
    if (p.task.kind == TaskKind::Dpd && c) {
      if (now() >= p.started + c->cfg.dpd.timeout_s * 1000ull) return on_timeout(sa);
      ++ctr.retransmits;
      ++p.tries;
      if (sa.version == 1) v1_renew_dpd(sa);  // RFC 3706 §5.5: a new sequence number
      transmit(sa, p.packet);
      p.next_at = std::min<uint64_t>(now() + first_timeout(TaskKind::Dpd, sa),
                                     p.started + c->cfg.dpd.timeout_s * 1000ull);
      return;
    }
    if (p.tries >= opt.retransmit.tries) return on_timeout(sa);
    ++ctr.retransmits;
    log_sa(spdlog::level::info, sa, "ike.retransmit", {{"mid", p.mid}, {"try", p.tries + 1}});
    transmit(sa, p.packet);
    const double next = opt.retransmit.base_ms * std::pow(opt.retransmit.factor, p.tries);
    ++p.tries;
    // The last try waits as long as the one before would have grown to.
    p.next_at = now() + static_cast<uint64_t>(next);
  }

  // ===========================================================================
  // Entry points

  void receive(std::span<const uint8_t> raw, const dp::Endpoint& from, const dp::Endpoint& to) {
    if (raw.size() > 17 && raw[17] == isakmp::kVersion) return v1_receive(raw, from, to);
    ++ctr.rx;
    auto h = parse_header(raw);
    if (!h) {
      ++ctr.malformed;
      return;
    }
    if (int i = exchange_index(static_cast<uint8_t>(h->exchange)); i >= 0) ++ctr.rx_by_exchange[i];
    if (h->exchange == Exchange::IkeSaInit && !h->is_response()) {
      if (h->spi_r != 0 || !h->from_initiator()) {
        ++ctr.malformed;
        return;
      }
      return on_init_request(raw, *h, from, to);
    }
    const uint64_t ours = h->from_initiator() ? h->spi_r : h->spi_i;
    auto it = by_spi.find(ours);
    IkeSa* sa = it == by_spi.end() ? nullptr : sa_by_uid(it->second);
    if (!sa || sa->our_spi() != ours) {
      ++ctr.bad_spi;
      if (!h->is_response()) unknown_ike_spi(*h, from, to);
      return;
    }
    if (h->exchange == Exchange::IkeSaInit) {
      // Only the response to our own IKE_SA_INIT.
      if (!sa->initiator || !sa->active || sa->active->task.kind != TaskKind::Init ||
          h->message_id != 0 || !h->is_response()) {
        ++ctr.invalid_message_id;
        return;
      }
      auto m = parse_message(raw);
      if (!m) {
        ++ctr.malformed;
        return;
      }
      sa->last_rx = now();
      return on_init_response(*sa, *m, raw);
    }
    if (sa->spi_r != (h->from_initiator() ? h->spi_r : h->spi_r) || sa->spi_i != h->spi_i) {
      ++ctr.bad_spi;
      return;
    }
    if (h->from_initiator() == sa->initiator) {  // a message claiming our role
      ++ctr.malformed;
      return;
    }
    if (h->is_response()) {
      if (!sa->active || sa->active->mid != h->message_id) {
        ++ctr.invalid_message_id;
        return;
      }
    } else {
      if (sa->has_last_resp && h->message_id + 1 == sa->mid_in) {
        ++ctr.retransmits;
        transmit(*sa, sa->last_resp);
        return;
      }
      if (h->message_id != sa->mid_in) {
        ++ctr.invalid_message_id;
        return;
      }
    }
    auto m = parse_message(raw);
    if (!m || !m->sk_offset || !sa->sk_in) {
      ++ctr.malformed;
      return;
    }
    auto plain = sa->sk_in->open(raw, *m->sk_offset + 4);
    if (!plain) {
      ++ctr.integrity_failed;
      log_sa(spdlog::level::debug, *sa, "ike.integrity_failed", {{"error", plain.error()}});
      return;
    }
    auto inner = parse_chain(m->sk_first, *plain);
    OPENSSL_cleanse(plain->data(), plain->size());
    const uint32_t mid = h->message_id;
    if (!inner) {
      ++ctr.malformed;
      if (!h->is_response()) {
        // §2.21.2 / §3.10.1: an authenticated request we cannot parse is
        // answered with the error; the message ID is consumed.
        ++sa->mid_in;
        const bool crit = inner.error().notify == 1;
        if (crit) ++ctr.unsupported_critical;
        send_response(*sa, h->exchange, mid,
                      {crit ? make_notify(Notify::UnsupportedCriticalPayload,
                                          Bytes{inner.error().critical_type})
                            : make_notify(Notify::InvalidSyntax)});
      }
      return;
    }
    m->payloads.insert(m->payloads.end(), inner->begin(), inner->end());
    sa->last_rx = now();
    // The peer moved (NAT mapping change, §2.23): follow it.
    if (!same(from, sa->remote) && (sa->nat_remote || sa->nat_local) &&
        sa->state == IkeState::Established)
      move_peer(*sa, from);
    else if (!same(to, sa->local) && sa->state == IkeState::Connecting && !sa->initiator) {
      sa->local = to;
      sa->remote = from;
    }
    const uint64_t uid = sa->uid;
    if (h->is_response()) {
      on_response(*sa, *m, raw);
    } else {
      ++sa->mid_in;
      switch (h->exchange) {
        case Exchange::IkeAuth:
          if (sa->initiator || sa->state != IkeState::Connecting) {
            send_response(*sa, h->exchange, mid, {make_notify(Notify::InvalidSyntax)});
            break;
          }
          on_auth_request(*sa, *m, mid);
          break;
        case Exchange::CreateChildSa:
          if (sa->state != IkeState::Established || sa->rekeyed) {
            send_response(*sa, h->exchange, mid, {make_notify(Notify::TemporaryFailure)});
            break;
          }
          on_create_child_request(*sa, *m, mid);
          break;
        case Exchange::Informational:
          on_informational_request(*sa, *m, mid);
          break;
        default:
          send_response(*sa, h->exchange, mid, {make_notify(Notify::InvalidSyntax)});
      }
    }
    if (IkeSa* s = sa_by_uid(uid)) run_queue(*s);
  }

  void move_peer(IkeSa& sa, const dp::Endpoint& from) {
    log_sa(spdlog::level::info, sa, "ike.peer_moved",
           {{"old", ep_str(sa.remote)}, {"new", ep_str(from)}});
    sa.remote = from;
    Conn* c = conn_of(sa);
    if (!c) return;
    for (auto& ch : sa.children) {
      if (!ch.encap) continue;
      for (auto dir : {dp::Direction::In, dp::Direction::Out}) {
        if (dir == dp::Direction::Out && !ch.out_installed) continue;
        if (auto r = dp.update_sa(sa_spec(sa, ch, dir, *c)); !r)
          log_sa(spdlog::level::warn, sa, "ike.child_update_failed",
                 {{"spi", hex32(dir == dp::Direction::In ? ch.spi_in : ch.spi_out)},
                  {"error", r.error()}});
      }
    }
  }

  void on_event(const dp::Event& ev) {
    switch (ev.kind) {
      case dp::Event::Kind::Acquire:
        for (auto& [name, c] : conns)
          if (Plan* p = plan_of(c, ev.tunnel_id)) {
            IkeSa* sa = current_sa(name);
            if (!sa) {
              log::info("ike.acquire", {{"conn", name},
                                        {"child", p->name},
                                        {"src", ev.src.str()},
                                        {"dst", ev.dst.str()}});
              start_initiate(c, p->tunnel_id);
            } else if (sa->state == IkeState::Established && !plan_has_child(*sa, p->tunnel_id) &&
                       !task_queued(*sa, TaskKind::ChildCreate, p->tunnel_id, 0)) {
              sa->queue.push_back(Task{TaskKind::ChildCreate, p->tunnel_id, 0, {}});
              run_queue(*sa);
            }
            return;
          }
        return;
      case dp::Event::Kind::SoftExpire:
      case dp::Event::Kind::SeqWrapSoon:
      case dp::Event::Kind::HardExpire:
        for (auto& [uid, sa] : sas) {
          Child* ch =
              ev.dir == dp::Direction::In ? child_by_in(*sa, ev.spi) : child_by_out(*sa, ev.spi);
          if (!ch || ch->rekeyed) continue;
          log_sa(spdlog::level::info, *sa, "ike.child_expiring",
                 {{"spi", hex32(ev.spi)},
                  {"kind", dp::to_string(ev.kind)},
                  {"limit", dp::to_string(ev.limit)}});
          if (ev.kind == dp::Event::Kind::HardExpire) {
            const uint32_t spi_in = ch->spi_in;
            sa->queue.push_back(Task{TaskKind::ChildDelete, 0, 0, {spi_in}});
            ch->rekeyed = true;  // its replacement is negotiated as a new CHILD_SA
            if (sa->initiator || true) {
              const uint32_t tunnel = ch->tunnel_id;
              if (!task_queued(*sa, TaskKind::ChildCreate, tunnel, 0))
                sa->queue.push_back(Task{TaskKind::ChildCreate, tunnel, 0, {}});
            }
          } else if (!task_queued(*sa, TaskKind::ChildRekey, 0, ch->spi_in)) {
            sa->queue.push_back(Task{TaskKind::ChildRekey, 0, ch->spi_in, {}});
          }
          run_queue(*sa);
          return;
        }
        return;
      case dp::Event::Kind::NatMapping:
        for (auto& [uid, sa] : sas)
          for (auto& ch : sa->children)
            if (ch.tunnel_id == ev.tunnel_id && sa->state == IkeState::Established) {
              move_peer(*sa, dp::Endpoint{ev.new_addr, ev.new_port});
              return;
            }
        return;
    }
  }

  uint64_t tick() {
    const uint64_t t = now();
    uint64_t next = UINT64_MAX;
    auto due = [&](uint64_t at) {
      if (at && at > t) next = std::min(next, at);
      return at && at <= t;
    };
    for (auto& [name, c] : conns)
      if (due(c.retry_at)) {
        c.retry_at = 0;
        if (c.cfg.start_immediately && !current_sa(name)) start_initiate(c, 0);
      }
    std::vector<uint64_t> uids;
    for (auto& [uid, sa] : sas) uids.push_back(uid);
    for (uint64_t uid : uids) {
      IkeSa* sa = sa_by_uid(uid);
      if (!sa) continue;
      if (sa->version == 1) {
        next = std::min(next, v1_tick(*sa));
        if (!(sa = sa_by_uid(uid))) continue;
      }
      if (sa->active && due(sa->active->next_at)) {
        retransmit_or_timeout(*sa);
        sa = sa_by_uid(uid);
        if (!sa) continue;
        if (sa->active) next = std::min(next, sa->active->next_at);
      }
      Conn* c = conn_of(*sa);
      // Half-open responder SAs expire (§2.6 resource exhaustion).
      if (!sa->initiator && sa->state == IkeState::Connecting) {
        if (due(sa->created_at + 30000)) {
          destroy(uid);
          continue;
        }
      }
      if (sa->state != IkeState::Established || !c) continue;
      if (sa->missing_children_at && due(sa->missing_children_at)) {
        sa->missing_children_at = 0;
        queue_missing_children(*sa, /*as_responder=*/true);
      }
      if (!sa->rekeyed && due(sa->rekey_at) && !task_queued(*sa, TaskKind::IkeRekey, 0, 0)) {
        sa->rekey_at = 0;
        sa->queue.push_back(Task{TaskKind::IkeRekey, 0, 0, {}});
      }
      for (auto& ch : sa->children) {
        if (!ch.rekeyed && due(ch.rekey_at) &&
            !task_queued(*sa, TaskKind::ChildRekey, 0, ch.spi_in)) {
          ch.rekey_at = 0;
          sa->queue.push_back(Task{TaskKind::ChildRekey, 0, ch.spi_in, {}});
        }
        if (!ch.out_installed && due(ch.install_out_at)) install_deferred_out(*sa, ch);
      }
      // Superseded SAs the peer never deleted.
      std::vector<uint32_t> stale;
      for (auto& ch : sa->children)
        if (ch.rekeyed && due(ch.delete_at)) stale.push_back(ch.spi_in);
      for (uint32_t s : stale) erase_child(*sa, s);
      // DPD (§2.4): probe after `interval` without anything from the peer.
      if (c->cfg.dpd.interval_s && !sa->rekeyed && due(sa->dpd_check_at)) {
        uint64_t in_packets = 0;
        for (const auto& ch : sa->children)
          if (auto cn = dp.sa_counters(dp::Direction::In, ch.spi_in)) in_packets += cn->packets;
        if (in_packets != sa->inbound_packets_seen) {
          sa->inbound_packets_seen = in_packets;
          sa->last_rx = t;
        }
        const uint64_t idle_until = sa->last_rx + c->cfg.dpd.interval_s * 1000ull;
        if (t >= idle_until && !sa->active && sa->queue.empty()) {
          sa->queue.push_back(Task{TaskKind::Dpd, 0, 0, {}});
          sa->dpd_check_at = t + c->cfg.dpd.interval_s * 1000ull;
        } else {
          // Poll the inbound counters each second: traffic counts as life.
          sa->dpd_check_at = std::min(idle_until, t + 1000);
        }
        next = std::min(next, sa->dpd_check_at);
      }
      run_queue(*sa);
      if ((sa = sa_by_uid(uid)) && sa->active) next = std::min(next, sa->active->next_at);
    }
    return next == UINT64_MAX ? UINT64_MAX : next - t;
  }

  // ---- configuration
  static bool same_negotiation(const ConnConfig& a, const ConnConfig& b) {
    auto cidrs_eq = [](const std::vector<ChildConfig>& x, const std::vector<ChildConfig>& y) {
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i)
        if (x[i].local_ts != y[i].local_ts || x[i].remote_ts != y[i].remote_ts) return false;
      return true;
    };
    return a.local == b.local && a.remote == b.remote && a.local_port == b.local_port &&
           a.remote_port == b.remote_port && a.local_id == b.local_id &&
           a.remote_id == b.remote_id && a.psk == b.psk && a.ike == b.ike && a.esp == b.esp &&
           a.nat_t == b.nat_t && cidrs_eq(a.children, b.children) &&
           a.ike_version == b.ike_version && a.aggressive == b.aggressive;
  }

  void teardown(const std::string& name, bool notify) {
    std::vector<uint64_t> uids;
    for (auto& [uid, sa] : sas)
      if (sa->conn == name) uids.push_back(uid);
    for (uint64_t uid : uids) {
      IkeSa* sa = sa_by_uid(uid);
      if (!sa) continue;
      if (notify && sa->state == IkeState::Established && sa->version == 1) {
        v1_send_delete_isakmp(*sa);
      } else if (notify && sa->state == IkeState::Established && sa->sk_out) {
        // Best effort, not retransmitted: the SA is gone either way.
        const Bytes pkt =
            build(*sa, Exchange::Informational, sa->mid_out, false,
                  {make_payload(PayloadType::Delete, DeletePayload{Protocol::Ike, {}})});
        transmit(*sa, pkt);
      }
      log_sa(spdlog::level::info, *sa, "ike.terminated");
      destroy(uid);
    }
  }

  // ---- IKEv1 (ikev1.cpp): the same connections, SA table, CHILD_SA
  // installation, timers and status as IKEv2; only the exchanges differ.
  void v1_receive(std::span<const uint8_t> raw, const dp::Endpoint& from, const dp::Endpoint& to);
  void v1_start(Conn& c, uint32_t first_tunnel, uint64_t replaces);
  void v1_run_queue(IkeSa& sa);
  void v1_on_timeout(IkeSa& sa);
  void v1_renew_dpd(IkeSa& sa);
  void v1_send_delete_isakmp(IkeSa& sa);
  std::vector<Plan> v1_plans(const ConnConfig& cfg);
  uint64_t v1_tick(IkeSa& sa);  // responder resends; returns the next due time
};

}  // namespace xgw::ike
