#include "dataplane/xfrm_dataplane.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/udp.h>
#include <linux/xfrm.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "common/log.h"

// The UDP option constants are in <linux/udp.h>; SOL_UDP in <netinet/udp.h>
// clashes with it on some libcs.
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

namespace xgw::dp {

namespace {

std::string hex32(uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08x", v);
  return b;
}

const char* msg_name(uint16_t t) {
  switch (t) {
    case XFRM_MSG_NEWSA:
      return "XFRM_MSG_NEWSA";
    case XFRM_MSG_UPDSA:
      return "XFRM_MSG_UPDSA";
    case XFRM_MSG_DELSA:
      return "XFRM_MSG_DELSA";
    case XFRM_MSG_GETSA:
      return "XFRM_MSG_GETSA";
    case XFRM_MSG_ALLOCSPI:
      return "XFRM_MSG_ALLOCSPI";
    case XFRM_MSG_UPDPOLICY:
      return "XFRM_MSG_UPDPOLICY";
    case XFRM_MSG_DELPOLICY:
      return "XFRM_MSG_DELPOLICY";
  }
  return "XFRM message";
}

// ---- netlink ------------------------------------------------------------------

// A netlink request under construction: the header, one fixed struct, then
// attributes. Buffers may hold keys: wiped when destroyed.
class NlMsg {
 public:
  NlMsg(uint16_t type, uint16_t flags, const void* fixed, size_t len) : type_(type) {
    buf_.resize(NLMSG_HDRLEN);
    auto* h = reinterpret_cast<nlmsghdr*>(buf_.data());
    h->nlmsg_type = type;
    h->nlmsg_flags = flags;
    append(fixed, len);
  }
  ~NlMsg() {
    if (!buf_.empty()) OPENSSL_cleanse(buf_.data(), buf_.size());
  }
  NlMsg(const NlMsg&) = delete;
  NlMsg& operator=(const NlMsg&) = delete;

  void attr(uint16_t type, const void* data, size_t len) {
    nlattr a{};
    a.nla_len = static_cast<uint16_t>(NLA_HDRLEN + len);
    a.nla_type = type;
    append(&a, sizeof a);
    append(data, len);
  }
  template <typename T>
  void attr(uint16_t type, const T& v) {
    attr(type, &v, sizeof v);
  }
  uint16_t type() const { return type_; }
  nlmsghdr* hdr() {
    auto* h = reinterpret_cast<nlmsghdr*>(buf_.data());
    h->nlmsg_len = static_cast<uint32_t>(buf_.size());
    return h;
  }
  std::vector<uint8_t> bytes() {
    hdr();
    return buf_;
  }

 private:
  void append(const void* p, size_t len) {
    const size_t at = buf_.size();
    buf_.resize(at + NLMSG_ALIGN(len));  // attributes align the same (4)
    if (len) std::memcpy(buf_.data() + at, p, len);
  }
  uint16_t type_;
  std::vector<uint8_t> buf_;
};

struct NlError {
  int err = 0;
  std::string kernel;  // extended ack text, if the kernel gave one
};

std::string describe(const std::string& what, const NlError& e) {
  std::string s = what + ": " + std::strerror(e.err);
  if (!e.kernel.empty()) s += " (kernel: " + e.kernel + ")";
  return s;
}

// A reply message: its type and its payload (after the netlink header).
struct NlReply {
  uint16_t type;
  std::vector<uint8_t> data;
};

class NlSocket {
 public:
  NlSocket() = default;
  NlSocket(const NlSocket&) = delete;
  NlSocket& operator=(const NlSocket&) = delete;
  NlSocket(NlSocket&& o) noexcept : fd_(std::exchange(o.fd_, -1)), seq_(o.seq_) {}
  NlSocket& operator=(NlSocket&& o) noexcept {
    if (this != &o) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = std::exchange(o.fd_, -1);
      seq_ = o.seq_;
    }
    return *this;
  }
  ~NlSocket() {
    if (fd_ >= 0) ::close(fd_);
  }

  // groups: XFRMNLGRP_* numbers to join (event socket); none: requests.
  static Expected<NlSocket, std::string> open(std::initializer_list<unsigned> groups) {
    NlSocket s;
    s.fd_ = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | (groups.size() ? SOCK_NONBLOCK : 0),
                     NETLINK_XFRM);
    if (s.fd_ < 0) {
      const int e = errno;
      return unexpected("open NETLINK_XFRM socket: " + std::string(std::strerror(e)) +
                        (e == EPROTONOSUPPORT ? " (kernel without CONFIG_XFRM_USER)" : ""));
    }
    sockaddr_nl sa{};
    sa.nl_family = AF_NETLINK;
    if (::bind(s.fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
      return unexpected(SysError{"bind NETLINK_XFRM socket", errno}.message());
    const int one = 1;
    // Extended acks carry the kernel's reason ("Requested AEAD algorithm
    // not found"); capped acks keep our request (with keys) out of the
    // error reply.
    ::setsockopt(s.fd_, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
    ::setsockopt(s.fd_, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
    if (groups.size() == 0) {
      timeval tv{5, 0};  // the kernel answers at once; never hang on it
      ::setsockopt(s.fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    } else {
      const int rcvbuf = 1 << 20;  // bursts of EXPIREs at rekey time
      ::setsockopt(s.fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    }
    for (unsigned g : groups) {
      if (::setsockopt(s.fd_, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &g, sizeof g) != 0)
        return unexpected(
            SysError{"join XFRM multicast group " + std::to_string(g), errno}.message());
    }
    return s;
  }

  int fd() const { return fd_; }

  // Sends the request with NLM_F_ACK and returns the replies before the
  // ack (GETSA, ALLOCSPI answer with one message).
  Expected<std::vector<NlReply>, NlError> request(NlMsg& m) {
    nlmsghdr* h = m.hdr();
    h->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
    h->nlmsg_seq = ++seq_;
    h->nlmsg_pid = 0;
    sockaddr_nl to{};
    to.nl_family = AF_NETLINK;
    if (::sendto(fd_, h, h->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0)
      return unexpected(NlError{errno, ""});
    std::vector<NlReply> out;
    std::vector<uint8_t> buf(64 * 1024);
    for (;;) {
      const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        return unexpected(NlError{errno, "no answer from the kernel"});
      }
      int len = static_cast<int>(n);
      for (auto* r = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(r, len);
           r = NLMSG_NEXT(r, len)) {
        if (r->nlmsg_seq != seq_) continue;  // a stale answer to a timed-out request
        if (r->nlmsg_type == NLMSG_ERROR) {
          const auto* e = reinterpret_cast<const nlmsgerr*>(NLMSG_DATA(r));
          if (e->error == 0) return out;
          return unexpected(NlError{-e->error, ext_ack(r)});
        }
        if (r->nlmsg_type == NLMSG_DONE) return out;
        const auto* p = reinterpret_cast<const uint8_t*>(NLMSG_DATA(r));
        out.push_back({r->nlmsg_type, {p, p + (r->nlmsg_len - NLMSG_HDRLEN)}});
      }
    }
  }

 private:
  // NLMSGERR_ATTR_MSG from an error carrying TLVs.
  static std::string ext_ack(const nlmsghdr* r) {
    if (!(r->nlmsg_flags & NLM_F_ACK_TLVS)) return "";
    const auto* e = reinterpret_cast<const nlmsgerr*>(NLMSG_DATA(r));
    size_t off = NLMSG_HDRLEN + sizeof(nlmsgerr);
    if (!(r->nlmsg_flags & NLM_F_CAPPED)) off += e->msg.nlmsg_len - NLMSG_HDRLEN;
    const auto* base = reinterpret_cast<const uint8_t*>(r);
    while (off + NLA_HDRLEN <= r->nlmsg_len) {
      nlattr a;
      std::memcpy(&a, base + off, sizeof a);
      if (a.nla_len < NLA_HDRLEN || off + a.nla_len > r->nlmsg_len) break;
      if ((a.nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG) {
        std::string s(reinterpret_cast<const char*>(base + off + NLA_HDRLEN),
                      a.nla_len - NLA_HDRLEN);
        while (!s.empty() && (s.back() == '\0' || s.back() == '\n')) s.pop_back();
        return s;
      }
      off += NLA_ALIGN(a.nla_len);
    }
    return "";
  }

  int fd_ = -1;
  uint32_t seq_ = 0;
};

// Attributes of a reply payload after its fixed struct of `fixed` bytes.
std::map<uint16_t, std::vector<uint8_t>> parse_attrs(const std::vector<uint8_t>& d, size_t fixed) {
  std::map<uint16_t, std::vector<uint8_t>> m;
  size_t off = NLMSG_ALIGN(fixed);
  while (off + NLA_HDRLEN <= d.size()) {
    nlattr a;
    std::memcpy(&a, d.data() + off, sizeof a);
    if (a.nla_len < NLA_HDRLEN || off + a.nla_len > d.size()) break;
    m[a.nla_type & NLA_TYPE_MASK].assign(d.begin() + off + NLA_HDRLEN, d.begin() + off + a.nla_len);
    off += NLA_ALIGN(a.nla_len);
  }
  return m;
}

template <typename T>
bool read_fixed(const std::vector<uint8_t>& d, T& out) {
  if (d.size() < sizeof(T)) return false;
  std::memcpy(&out, d.data(), sizeof(T));
  return true;
}

// ---- translation --------------------------------------------------------------

uint16_t af(net::Family f) {
  return f == net::Family::V4 ? AF_INET : AF_INET6;
}

xfrm_address_t xaddr(const net::IpAddr& a) {
  xfrm_address_t x{};
  std::memcpy(&x, a.bytes.data(), a.family == net::Family::V4 ? 4 : 16);
  return x;
}

net::IpAddr from_xaddr(const xfrm_address_t& x, uint16_t family) {
  net::IpAddr a;
  a.family = family == AF_INET6 ? net::Family::V6 : net::Family::V4;
  std::memcpy(a.bytes.data(), &x, a.family == net::Family::V4 ? 4 : 16);
  return a;
}

constexpr uint64_t limit(uint64_t v) {
  return v == 0 ? XFRM_INF : v;  // our 0 is "no limit", XFRM's is XFRM_INF
}

// The replay state an SA gets, or none (legacy replay_window field):
// XFRMA_REPLAY_ESN_VAL whenever ESN is on or an inbound window exceeds the
// legacy 32-packet bitmap (the kernel then runs its bitmap mode).
struct ReplayPlan {
  bool esn_attr = false;
  uint32_t window = 0;  // packets
};

Expected<ReplayPlan, std::string> replay_plan(const SaSpec& sa) {
  ReplayPlan r;
  const bool in = sa.dir == Direction::In;
  if (sa.esn) {
    // xfrm_init_replay() refuses ESN with a zero window; outbound SAs do
    // not use theirs, so 1 does.
    if (in && sa.replay_window == 0)
      return unexpected(std::string("XFRM cannot run ESN without an anti-replay window"));
    r.esn_attr = true;
    r.window = in ? sa.replay_window : 1;
  } else if (in && sa.replay_window > 32) {
    r.esn_attr = true;
    r.window = sa.replay_window;
  } else {
    r.window = in ? sa.replay_window : 0;
  }
  if (r.window > XFRMA_REPLAY_ESN_MAX)
    return unexpected("XFRM replay windows are at most " + std::to_string(XFRMA_REPLAY_ESN_MAX) +
                      " packets, not " + std::to_string(r.window));
  return r;
}

// The replay state, counters and age an SA is re-added with when update_sa
// must replace it (address change); none for a fresh SA.
struct CarryOver {
  xfrm_lifetime_cur curlft{};
  std::vector<uint8_t> replay_esn;  // XFRMA_REPLAY_ESN_VAL payload as read
  std::optional<xfrm_replay_state> replay;
};

Expected<void, std::string> build_sa(NlMsg& m, const SaSpec& sa, const CarryOver* carry) {
  auto plan = replay_plan(sa);
  if (!plan) return unexpected(plan.error());
  const auto& ei = esp::info(sa.encr);
  const auto& ii = esp::info(sa.integ);
  if (ei.aead) {
    // RFC 4106 §8.1: the key material is the AES key followed by the
    // 4-byte salt; the kernel takes both as one key of key_len bits.
    std::vector<uint8_t> a(sizeof(xfrm_algo_aead) + sa.encr_key.size());
    auto* x = reinterpret_cast<xfrm_algo_aead*>(a.data());
    std::snprintf(x->alg_name, sizeof x->alg_name, "%s", xfrm_encr_name(sa.encr));
    x->alg_key_len = static_cast<unsigned>(sa.encr_key.size() * 8);
    x->alg_icv_len = static_cast<unsigned>(ei.icv_len * 8);
    std::memcpy(a.data() + sizeof(xfrm_algo_aead), sa.encr_key.data(), sa.encr_key.size());
    m.attr(XFRMA_ALG_AEAD, a.data(), a.size());
    OPENSSL_cleanse(a.data(), a.size());
  } else {
    std::vector<uint8_t> a(sizeof(xfrm_algo) + sa.encr_key.size());
    auto* x = reinterpret_cast<xfrm_algo*>(a.data());
    std::snprintf(x->alg_name, sizeof x->alg_name, "%s", xfrm_encr_name(sa.encr));
    x->alg_key_len = static_cast<unsigned>(sa.encr_key.size() * 8);
    if (!sa.encr_key.empty())
      std::memcpy(a.data() + sizeof(xfrm_algo), sa.encr_key.data(), sa.encr_key.size());
    m.attr(XFRMA_ALG_CRYPT, a.data(), a.size());
    OPENSSL_cleanse(a.data(), a.size());
  }
  if (sa.integ != esp::Integ::None) {
    // AUTH_TRUNC states the ICV length: 96 bits for MD5/SHA-1 (RFC
    // 2403/2404), half the output for SHA-2 (RFC 4868), 256 for SM3.
    std::vector<uint8_t> a(sizeof(xfrm_algo_auth) + sa.integ_key.size());
    auto* x = reinterpret_cast<xfrm_algo_auth*>(a.data());
    std::snprintf(x->alg_name, sizeof x->alg_name, "%s", xfrm_integ_name(sa.integ));
    x->alg_key_len = static_cast<unsigned>(sa.integ_key.size() * 8);
    x->alg_trunc_len = static_cast<unsigned>(ii.icv_len * 8);
    std::memcpy(a.data() + sizeof(xfrm_algo_auth), sa.integ_key.data(), sa.integ_key.size());
    m.attr(XFRMA_ALG_AUTH_TRUNC, a.data(), a.size());
    OPENSSL_cleanse(a.data(), a.size());
  }
  if (sa.encap == Encap::Udp) {
    // RFC 3948: ESP in UDP; the ports are the packets' (sport is the
    // sender's: ours outbound, the peer's inbound).
    xfrm_encap_tmpl e{};
    e.encap_type = UDP_ENCAP_ESPINUDP;
    const bool out = sa.dir == Direction::Out;
    e.encap_sport = htons(out ? sa.local_port : sa.remote_port);
    e.encap_dport = htons(out ? sa.remote_port : sa.local_port);
    m.attr(XFRMA_ENCAP, e);
  }
  if (plan->esn_attr) {
    const uint32_t words = (plan->window + 31) / 32;
    std::vector<uint8_t> a(sizeof(xfrm_replay_state_esn) + words * 4);
    if (carry && carry->replay_esn.size() >= sizeof(xfrm_replay_state_esn)) {
      // Keep the sequence numbers; the bitmap only if it is the same size.
      std::memcpy(a.data(), carry->replay_esn.data(), std::min(a.size(), carry->replay_esn.size()));
      auto* r = reinterpret_cast<xfrm_replay_state_esn*>(a.data());
      if (r->bmp_len != words) std::memset(a.data() + sizeof(*r), 0, words * 4);
    }
    auto* r = reinterpret_cast<xfrm_replay_state_esn*>(a.data());
    r->bmp_len = words;
    r->replay_window = plan->window;
    m.attr(XFRMA_REPLAY_ESN_VAL, a.data(), a.size());
  } else if (carry && carry->replay) {
    m.attr(XFRMA_REPLAY_VAL, *carry->replay);
  }
  if (carry) m.attr(XFRMA_LTIME_VAL, carry->curlft);
  return {};
}

xfrm_usersa_info usersa_info(const SaSpec& sa, const ReplayPlan& plan) {
  xfrm_usersa_info p{};
  const bool out = sa.dir == Direction::Out;
  // Tunnel mode needs no selector on the state: the policies select, and
  // AF_UNSPEC lets one SA carry both inner families (strongSwan does the
  // same).
  p.flags = XFRM_STATE_AF_UNSPEC | (sa.esn ? XFRM_STATE_ESN : 0);
  p.id.daddr = xaddr(out ? sa.remote : sa.local);
  p.saddr = xaddr(out ? sa.local : sa.remote);
  p.id.spi = htonl(sa.spi);
  p.id.proto = IPPROTO_ESP;
  p.family = af(sa.local.family);
  p.mode = XFRM_MODE_TUNNEL;
  p.reqid = sa.tunnel_id;
  p.replay_window = plan.esn_attr ? 0 : static_cast<uint8_t>(plan.window);
  const auto& lt = sa.lifetime;
  p.lft.soft_byte_limit = limit(lt.soft_bytes);
  p.lft.hard_byte_limit = limit(lt.hard_bytes);
  p.lft.soft_packet_limit = limit(lt.soft_packets);
  p.lft.hard_packet_limit = limit(lt.hard_packets);
  p.lft.soft_add_expires_seconds = lt.soft_seconds;
  p.lft.hard_add_expires_seconds = lt.hard_seconds;
  return p;
}

Expected<void, std::string> check_transform(const SaSpec& sa) {
  if (xfrm_encr_name(sa.encr) == nullptr || xfrm_integ_name(sa.integ) == nullptr)
    return unexpected(std::string("transform has no XFRM name"));
  return {};
}

std::string sa_what(uint16_t type, const SaSpec& sa) {
  return std::string(msg_name(type)) + " (SA " + (sa.name.empty() ? hex32(sa.spi) : sa.name) +
         ", spi " + hex32(sa.spi) + ", " + (sa.dir == Direction::In ? "in" : "out") + ", " +
         xfrm_encr_name(sa.encr) +
         (sa.integ != esp::Integ::None ? std::string("+") + xfrm_integ_name(sa.integ) : "") +
         (sa.encap == Encap::Udp ? ", udp-encap" : "") + ", " + sa.local.str() + " -> " +
         sa.remote.str() + ")";
}

xfrm_usersa_id sa_id(const SaSpec& sa) {
  xfrm_usersa_id id{};
  id.daddr = xaddr(sa.dir == Direction::Out ? sa.remote : sa.local);
  id.spi = htonl(sa.spi);
  id.family = af(sa.local.family);
  id.proto = IPPROTO_ESP;
  return id;
}

// What a GETSA (or an EXPIRE) says about an SA.
struct KernelSa {
  xfrm_usersa_info info{};
  std::map<uint16_t, std::vector<uint8_t>> attrs;
};

SaCounters to_counters(const KernelSa& k, Direction dir) {
  SaCounters c;
  c.packets = k.info.curlft.packets;
  c.bytes = k.info.curlft.bytes;
  c.replay_drops = uint64_t{k.info.stats.replay} + k.info.stats.replay_window;
  c.icv_failures = k.info.stats.integrity_failed;
  const bool out = dir == Direction::Out;
  if (auto it = k.attrs.find(XFRMA_REPLAY_ESN_VAL);
      it != k.attrs.end() && it->second.size() >= sizeof(xfrm_replay_state_esn)) {
    xfrm_replay_state_esn r;
    std::memcpy(&r, it->second.data(), sizeof r);
    c.seq = out ? (uint64_t{r.oseq_hi} << 32 | r.oseq) : (uint64_t{r.seq_hi} << 32 | r.seq);
  } else if (auto it2 = k.attrs.find(XFRMA_REPLAY_VAL);
             it2 != k.attrs.end() && it2->second.size() >= sizeof(xfrm_replay_state)) {
    xfrm_replay_state r;
    std::memcpy(&r, it2->second.data(), sizeof r);
    c.seq = out ? r.oseq : r.seq;
  }
  const uint64_t now = static_cast<uint64_t>(::time(nullptr));
  if (k.info.curlft.add_time && now > k.info.curlft.add_time)
    c.age_seconds = now - k.info.curlft.add_time;
  return c;
}

// Which limit an EXPIRE fired for: the counters that reached theirs,
// else time.
Event::Limit expired_limit(const xfrm_usersa_info& s, bool hard) {
  const uint64_t pk = hard ? s.lft.hard_packet_limit : s.lft.soft_packet_limit;
  const uint64_t by = hard ? s.lft.hard_byte_limit : s.lft.soft_byte_limit;
  if (pk != XFRM_INF && s.curlft.packets >= pk) return Event::Limit::Packets;
  if (by != XFRM_INF && s.curlft.bytes >= by) return Event::Limit::Bytes;
  return Event::Limit::Time;
}

xfrm_selector selector(const net::Cidr& src, const net::Cidr& dst) {
  xfrm_selector s{};
  s.family = af(src.family());
  s.saddr = xaddr(src.addr);
  s.daddr = xaddr(dst.addr);
  s.prefixlen_s = src.len;
  s.prefixlen_d = dst.len;
  return s;
}

const char* dir_name(uint8_t d) {
  return d == XFRM_POLICY_OUT ? "out" : d == XFRM_POLICY_IN ? "in" : "fwd";
}

}  // namespace

// ---- public helpers -------------------------------------------------------------

const char* xfrm_encr_name(esp::Encr e) {
  switch (e) {
    case esp::Encr::Null:
      return "ecb(cipher_null)";  // RFC 2410
    case esp::Encr::DesCbc:
      return "cbc(des)";
    case esp::Encr::TripleDesCbc:
      return "cbc(des3_ede)";
    case esp::Encr::AesCbc128:
    case esp::Encr::AesCbc192:
    case esp::Encr::AesCbc256:
      return "cbc(aes)";
    case esp::Encr::Sm4Cbc:
      return "cbc(sm4)";
    case esp::Encr::AesGcm16_128:
    case esp::Encr::AesGcm16_256:
      return "rfc4106(gcm(aes))";
  }
  return nullptr;
}

const char* xfrm_integ_name(esp::Integ i) {
  switch (i) {
    case esp::Integ::None:
      return "none";
    case esp::Integ::HmacMd5_96:
      return "hmac(md5)";
    case esp::Integ::HmacSha1_96:
      return "hmac(sha1)";
    case esp::Integ::HmacSha256_128:
      return "hmac(sha256)";
    case esp::Integ::HmacSha384_192:
      return "hmac(sha384)";
    case esp::Integ::HmacSha512_256:
      return "hmac(sha512)";
    case esp::Integ::HmacSm3_256:
      return "hmac(sm3)";
  }
  return nullptr;
}

uint32_t xfrm_policy_priority(const PolicySpec& p) {
  // kStep exceeds the largest prefix sum (128 + 128), so a higher
  // PolicySpec.priority always wins over longer prefixes.
  constexpr uint64_t kBase = 0xFFFF0000u, kStep = 257;
  const uint64_t prio = std::min<uint64_t>(p.priority, kMaxPolicyPriority);
  return static_cast<uint32_t>(kBase - prio * kStep - (p.src.len + p.dst.len));
}

Expected<std::vector<uint8_t>, std::string> xfrm_sa_request(const SaSpec& sa, uint16_t type) {
  if (auto v = validate(sa); !v) return unexpected(v.error());
  if (auto t = check_transform(sa); !t) return unexpected(t.error());
  auto plan = replay_plan(sa);
  if (!plan) return unexpected(plan.error());
  const xfrm_usersa_info p = usersa_info(sa, *plan);
  NlMsg m(type, 0, &p, sizeof p);
  if (auto r = build_sa(m, sa, nullptr); !r) return unexpected(r.error());
  return m.bytes();
}

// ---- the backend ----------------------------------------------------------------

struct XfrmDataplane::Impl {
  struct SaEntry {
    SaSpec spec;  // keys included: update_sa may have to re-add the SA
    SaCounters last;
    bool gone = false;  // the kernel deleted it (hard expiry)
  };
  struct Ends {
    net::IpAddr local, remote;
  };

  XfrmOptions opts;
  mutable std::mutex mu;
  mutable NlSocket nl;  // requests
  NlSocket ev;          // ACQUIRE, EXPIRE, MAPPING
  Capabilities caps;
  std::map<std::pair<Direction, uint32_t>, SaEntry> sas;
  std::map<uint32_t, PolicySpec> policies;
  std::map<uint32_t, Ends> ends;  // per tunnel, learned from its SAs
  std::map<uint32_t, TunnelCounters> retired;
  std::set<uint32_t> handed_out;
  std::map<uint32_t, std::pair<net::IpAddr, uint16_t>> mapping_seen;  // in SPI -> endpoint

  // NAT-T sockets and their reader.
  int udp4 = -1, udp6 = -1, stop_fd = -1;
  std::thread reader;
  std::mutex ike_mu;
  IkeReceiver ike;
  std::atomic<uint64_t> ike_rx{0}, send_errors{0};

  ~Impl() {
    if (stop_fd >= 0) {
      uint64_t one = 1;
      (void)!::write(stop_fd, &one, sizeof one);
    }
    if (reader.joinable()) reader.join();
    for (int fd : {udp4, udp6, stop_fd})
      if (fd >= 0) ::close(fd);
  }

  Expected<std::vector<NlReply>, std::string> send(NlMsg& m, const std::string& what) const {
    auto r = nl.request(m);
    if (!r) return unexpected(describe(what, r.error()));
    return std::move(*r);
  }

  // GETSA; nullopt with `err` = ENOENT/ESRCH when the kernel has no such SA.
  Expected<KernelSa, NlError> get_sa(const SaSpec& sa) const {
    const xfrm_usersa_id id = sa_id(sa);
    NlMsg m(XFRM_MSG_GETSA, 0, &id, sizeof id);
    auto r = nl.request(m);
    if (!r) return unexpected(r.error());
    for (const auto& rep : *r) {
      KernelSa k;
      if (rep.type == XFRM_MSG_NEWSA && read_fixed(rep.data, k.info)) {
        k.attrs = parse_attrs(rep.data, sizeof(xfrm_usersa_info));
        return k;
      }
    }
    return unexpected(NlError{EPROTO, "GETSA answered without an SA"});
  }

  Expected<void, std::string> install_sa(uint16_t type, const SaSpec& sa, const CarryOver* carry) {
    auto plan = replay_plan(sa);
    if (!plan) return unexpected(sa_what(type, sa) + ": " + plan.error());
    const xfrm_usersa_info p = usersa_info(sa, *plan);
    NlMsg m(type, 0, &p, sizeof p);
    if (auto b = build_sa(m, sa, carry); !b)
      return unexpected(sa_what(type, sa) + ": " + b.error());
    auto r = send(m, sa_what(type, sa));
    if (!r) return unexpected(r.error());
    return {};
  }

  Expected<void, std::string> delete_kernel_sa(const SaSpec& sa, bool tolerate_missing) {
    const xfrm_usersa_id id = sa_id(sa);
    NlMsg m(XFRM_MSG_DELSA, 0, &id, sizeof id);
    auto r = nl.request(m);
    if (!r && !(tolerate_missing && (r.error().err == ESRCH || r.error().err == ENOENT)))
      return unexpected(describe(sa_what(XFRM_MSG_DELSA, sa), r.error()));
    return {};
  }

  // The three XFRM policies of one PolicySpec.
  Expected<void, std::string> install_policy(const PolicySpec& p) {
    auto e = ends.find(p.tunnel_id);
    for (uint8_t dir : {XFRM_POLICY_OUT, XFRM_POLICY_IN, XFRM_POLICY_FWD}) {
      const bool out = dir == XFRM_POLICY_OUT;
      xfrm_userpolicy_info pi{};
      pi.sel = out ? selector(p.src, p.dst) : selector(p.dst, p.src);
      pi.lft.soft_byte_limit = pi.lft.hard_byte_limit = XFRM_INF;
      pi.lft.soft_packet_limit = pi.lft.hard_packet_limit = XFRM_INF;
      pi.priority = xfrm_policy_priority(p);
      pi.dir = dir;
      pi.action = XFRM_POLICY_ALLOW;
      pi.share = XFRM_SHARE_ANY;
      xfrm_user_tmpl t{};
      t.id.proto = IPPROTO_ESP;
      t.reqid = p.tunnel_id;
      t.mode = XFRM_MODE_TUNNEL;
      t.aalgos = t.ealgos = t.calgos = ~0u;
      if (e != ends.end()) {
        // Outbound the template's daddr is the peer; inbound the SA's.
        t.family = af(e->second.local.family);
        t.saddr = xaddr(out ? e->second.local : e->second.remote);
        t.id.daddr = xaddr(out ? e->second.remote : e->second.local);
      } else {
        t.family = af(p.src.family());  // wildcard endpoints until an SA arrives
      }
      NlMsg m(XFRM_MSG_UPDPOLICY, 0, &pi, sizeof pi);
      m.attr(XFRMA_TMPL, t);
      auto r = send(
          m, "XFRM_MSG_UPDPOLICY (policy " + std::to_string(p.id) + " " + dir_name(dir) + " " +
                 (out ? p.src.str() + " -> " + p.dst.str() : p.dst.str() + " -> " + p.src.str()) +
                 ", tunnel " + std::to_string(p.tunnel_id) + ")");
      if (!r) return unexpected(r.error());
    }
    return {};
  }

  Expected<void, std::string> remove_policy(const PolicySpec& p) {
    std::string errors;
    for (uint8_t dir : {XFRM_POLICY_OUT, XFRM_POLICY_IN, XFRM_POLICY_FWD}) {
      const bool out = dir == XFRM_POLICY_OUT;
      xfrm_userpolicy_id id{};
      id.sel = out ? selector(p.src, p.dst) : selector(p.dst, p.src);
      id.dir = dir;
      NlMsg m(XFRM_MSG_DELPOLICY, 0, &id, sizeof id);
      auto r = nl.request(m);
      if (!r && r.error().err != ENOENT) {
        errors += (errors.empty() ? "" : "; ") +
                  describe("XFRM_MSG_DELPOLICY (policy " + std::to_string(p.id) + " " +
                               dir_name(dir) + ")",
                           r.error());
      }
    }
    if (!errors.empty()) return unexpected(errors);
    return {};
  }

  // Learns the tunnel's endpoints from an SA; re-installs its policies
  // when they change.
  Expected<void, std::string> learn_ends(const SaSpec& sa) {
    auto it = ends.find(sa.tunnel_id);
    if (it != ends.end() && it->second.local == sa.local && it->second.remote == sa.remote)
      return {};
    ends[sa.tunnel_id] = {sa.local, sa.remote};
    for (const auto& [id, p] : policies) {
      if (p.tunnel_id != sa.tunnel_id) continue;
      if (auto r = install_policy(p); !r) return unexpected(r.error());
    }
    return {};
  }

  void retire(const SaEntry& e, const SaCounters& c) {
    TunnelCounters& r = retired[e.spec.tunnel_id];
    (e.spec.dir == Direction::In ? r.rx_packets : r.tx_packets) += c.packets;
    (e.spec.dir == Direction::In ? r.rx_bytes : r.tx_bytes) += c.bytes;
  }

  SaEntry* find_by_id(uint32_t spi_be, const xfrm_address_t& daddr, uint16_t family) {
    const uint32_t spi = ntohl(spi_be);
    for (auto dir : {Direction::In, Direction::Out}) {
      auto it = sas.find({dir, spi});
      if (it == sas.end()) continue;
      const SaSpec& s = it->second.spec;
      if (af(s.local.family) != family) continue;
      if (from_xaddr(daddr, family) == (dir == Direction::Out ? s.remote : s.local))
        return &it->second;
    }
    return nullptr;
  }

  // ---- NAT-T socket ----
  Expected<int, std::string> open_udp(bool v6) {
    const int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return unexpected(SysError{v6 ? "socket UDPv6" : "socket UDPv4", errno}.message());
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (v6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    sockaddr_storage ss{};
    socklen_t len;
    if (v6) {
      auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
      s6->sin6_family = AF_INET6;
      s6->sin6_port = htons(opts.udp_port);
      len = sizeof *s6;
    } else {
      auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
      s4->sin_family = AF_INET;
      s4->sin_port = htons(opts.udp_port);
      len = sizeof *s4;
    }
    const std::string where =
        std::string(v6 ? "UDPv6" : "UDPv4") + " port " + std::to_string(opts.udp_port);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
      const int e = errno;
      ::close(fd);
      return unexpected(SysError{"bind " + where, e}.message());
    }
    // RFC 3948 §2.2: the kernel decapsulates ESP arriving on this socket
    // and passes datagrams with the non-ESP marker (IKE) through.
    const int encap = UDP_ENCAP_ESPINUDP;
    if (::setsockopt(fd, SOL_UDP, UDP_ENCAP, &encap, sizeof encap) != 0) {
      const int e = errno;
      ::close(fd);
      return unexpected(SysError{"setsockopt UDP_ENCAP on " + where, e}.message());
    }
    if (v6)
      ::setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one);
    else
      ::setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
    // IKE itself must bypass the IPsec policies (else an SPD entry covering
    // the peers' addresses would swallow it): per-socket allow policies.
    for (uint8_t dir : {XFRM_POLICY_IN, XFRM_POLICY_OUT}) {
      xfrm_userpolicy_info pol{};
      pol.action = XFRM_POLICY_ALLOW;
      pol.sel.family = v6 ? AF_INET6 : AF_INET;
      pol.dir = dir;
      if (::setsockopt(fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_XFRM_POLICY : IP_XFRM_POLICY,
                       &pol, sizeof pol) != 0) {
        const int e = errno;
        ::close(fd);
        return unexpected(SysError{"setsockopt IP_XFRM_POLICY (bypass) on " + where, e}.message());
      }
    }
    return fd;
  }

  void read_loop() {
    std::vector<uint8_t> buf(65536);
    for (;;) {
      pollfd p[3] = {{stop_fd, POLLIN, 0}, {udp4, POLLIN, 0}, {udp6, POLLIN, 0}};
      if (::poll(p, 3, -1) < 0) {
        if (errno == EINTR) continue;
        log::error("xfrm.nat_t_poll", {{"error", std::strerror(errno)}});
        return;
      }
      if (p[0].revents) return;
      for (int i = 1; i < 3; ++i) {
        if (!(p[i].revents & POLLIN)) continue;
        sockaddr_storage from{};
        iovec iov{buf.data(), buf.size()};
        alignas(cmsghdr) uint8_t control[128];
        msghdr m{};
        m.msg_name = &from;
        m.msg_namelen = sizeof from;
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        m.msg_control = control;
        m.msg_controllen = sizeof control;
        const ssize_t n = ::recvmsg(p[i].fd, &m, MSG_DONTWAIT);
        if (n < 0) continue;
        // The kernel consumed ESP and keepalives; what is left should carry
        // the non-ESP marker (four zero octets).
        if (n < 4 || buf[0] || buf[1] || buf[2] || buf[3]) continue;
        Endpoint src, dst;
        if (from.ss_family == AF_INET) {
          const auto* s = reinterpret_cast<const sockaddr_in*>(&from);
          src.addr.family = net::Family::V4;
          std::memcpy(src.addr.bytes.data(), &s->sin_addr, 4);
          src.port = ntohs(s->sin_port);
        } else {
          const auto* s = reinterpret_cast<const sockaddr_in6*>(&from);
          src.addr.family = net::Family::V6;
          std::memcpy(src.addr.bytes.data(), &s->sin6_addr, 16);
          src.port = ntohs(s->sin6_port);
        }
        dst.port = opts.udp_port;
        dst.addr.family = src.addr.family;
        for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
          if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            in_pktinfo pi;
            std::memcpy(&pi, CMSG_DATA(c), sizeof pi);
            std::memcpy(dst.addr.bytes.data(), &pi.ipi_addr, 4);
          } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
            in6_pktinfo pi;
            std::memcpy(&pi, CMSG_DATA(c), sizeof pi);
            std::memcpy(dst.addr.bytes.data(), &pi.ipi6_addr, 16);
          }
        }
        ike_rx.fetch_add(1, std::memory_order_relaxed);
        IkeReceiver r;
        {
          std::lock_guard lk(ike_mu);
          r = ike;
        }
        if (r) r({buf.data() + 4, static_cast<size_t>(n) - 4}, src, dst);
      }
    }
  }

  // One throwaway SA per transform, in this namespace, removed at once.
  void probe() {
    std::mt19937 rng(std::random_device{}());
    SaSpec s;
    s.name = "xgw-probe";
    s.dir = Direction::Out;
    s.tunnel_id = 0;
    s.local = *net::IpAddr::parse("127.0.0.1");
    s.remote = *net::IpAddr::parse("127.0.0.2");
    s.encap = Encap::None;
    s.replay_window = 0;
    auto try_sa = [&](esp::Encr e, esp::Integ i) {
      s.spi = 0xfff00000u | (rng() & 0xfffff);
      s.encr = e;
      s.integ = i;
      s.encr_key.assign(esp::info(e).key_len, 0x5a);
      s.integ_key.assign(esp::info(i).key_len, 0xa5);
      if (!install_sa(XFRM_MSG_NEWSA, s, nullptr)) return false;
      (void)delete_kernel_sa(s, true);
      return true;
    };
    for (int i = 0; i <= static_cast<int>(esp::Encr::AesGcm16_256); ++i) {
      const auto e = static_cast<esp::Encr>(i);
      if (try_sa(e, esp::info(e).aead ? esp::Integ::None : esp::Integ::HmacSha256_128))
        caps.encr.push_back(e);
    }
    for (int i = 1; i <= static_cast<int>(esp::Integ::HmacSm3_256); ++i) {
      const auto g = static_cast<esp::Integ>(i);
      if (try_sa(esp::Encr::Null, g)) caps.integ.push_back(g);
    }
    if (!caps.integ.empty() || !caps.encr.empty())
      caps.integ.insert(caps.integ.begin(), esp::Integ::None);
  }
};

XfrmDataplane::XfrmDataplane(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

XfrmDataplane::~XfrmDataplane() {
  if (!impl_ || !impl_->opts.flush_on_close) return;
  std::lock_guard lk(impl_->mu);
  for (const auto& [id, p] : impl_->policies) {
    if (auto r = impl_->remove_policy(p); !r)
      log::warn("xfrm.cleanup_failed", {{"error", r.error()}});
  }
  for (const auto& [key, e] : impl_->sas) {
    if (e.gone) continue;
    if (auto r = impl_->delete_kernel_sa(e.spec, true); !r)
      log::warn("xfrm.cleanup_failed", {{"error", r.error()}});
  }
}

Expected<std::unique_ptr<XfrmDataplane>, std::string> XfrmDataplane::create(
    const XfrmOptions& opts) {
  auto impl = std::make_unique<Impl>();
  impl->opts = opts;
  auto nl = NlSocket::open({});
  if (!nl) return unexpected(nl.error());
  impl->nl = std::move(*nl);
  auto ev = NlSocket::open({XFRMNLGRP_ACQUIRE, XFRMNLGRP_EXPIRE, XFRMNLGRP_MAPPING});
  if (!ev) return unexpected(ev.error());
  impl->ev = std::move(*ev);

  Capabilities& c = impl->caps;
  c.backend = "xfrm";
  if (opts.probe_transforms) impl->probe();
  const bool esp = !c.encr.empty();
  c.udp_encap = c.raw_esp = c.esn = esp;
  c.max_replay_window = XFRMA_REPLAY_ESN_MAX;
  c.owns_nat_t_port = opts.nat_t_socket;

  if (opts.nat_t_socket) {
    auto u4 = impl->open_udp(false);
    if (!u4) return unexpected(u4.error());
    impl->udp4 = *u4;
    if (opts.ipv6) {
      auto u6 = impl->open_udp(true);
      if (u6) {
        impl->udp6 = *u6;
      } else {
        // A namespace with IPv6 disabled has no v6 sockets to offer.
        log::warn("xfrm.nat_t_v6_unavailable", {{"error", u6.error()}});
      }
    }
    impl->stop_fd = ::eventfd(0, EFD_CLOEXEC);
    if (impl->stop_fd < 0) return unexpected(SysError{"eventfd", errno}.message());
    impl->reader = std::thread([p = impl.get()] { p->read_loop(); });
  }
  return std::unique_ptr<XfrmDataplane>(new XfrmDataplane(std::move(impl)));
}

Capabilities XfrmDataplane::capabilities() const {
  return impl_->caps;
}

Expected<uint32_t, std::string> XfrmDataplane::allocate_spi() {
  std::lock_guard lk(impl_->mu);
  // XFRM_MSG_ALLOCSPI picks a random SPI free for a destination address,
  // reserving it with a larval state. The interface gives no destination,
  // so ask for the wildcard one, drop the larval state at once and keep
  // uniqueness among this backend's inbound SPIs ourselves (the kernel
  // keys SAs by destination and SPI, so this is all that can collide).
  for (int attempt = 0; attempt < 16; ++attempt) {
    xfrm_userspi_info u{};
    u.info.family = AF_INET;
    u.info.id.proto = IPPROTO_ESP;
    u.info.mode = XFRM_MODE_TUNNEL;
    u.info.lft.soft_byte_limit = u.info.lft.hard_byte_limit = XFRM_INF;
    u.info.lft.soft_packet_limit = u.info.lft.hard_packet_limit = XFRM_INF;
    u.min = 256;  // RFC 4303 §2.1: 1-255 reserved
    u.max = 0xffffffffu;
    NlMsg m(XFRM_MSG_ALLOCSPI, 0, &u, sizeof u);
    auto r = impl_->send(m, "XFRM_MSG_ALLOCSPI (ESP, SPI 256..0xffffffff)");
    if (!r) return unexpected(r.error());
    uint32_t spi = 0;
    for (const auto& rep : *r) {
      xfrm_usersa_info info;
      if (rep.type == XFRM_MSG_NEWSA && read_fixed(rep.data, info)) {
        spi = ntohl(info.id.spi);
        xfrm_usersa_id id{};
        id.daddr = info.id.daddr;
        id.spi = info.id.spi;
        id.family = info.family;
        id.proto = IPPROTO_ESP;
        NlMsg d(XFRM_MSG_DELSA, 0, &id, sizeof id);
        if (auto dr = impl_->nl.request(d); !dr && dr.error().err != ESRCH)
          log::warn("xfrm.allocspi_cleanup",
                    {{"spi", hex32(spi)}, {"error", describe("XFRM_MSG_DELSA", dr.error())}});
      }
    }
    if (spi < 256) return unexpected(std::string("XFRM_MSG_ALLOCSPI: no SPI in the answer"));
    if (impl_->handed_out.count(spi) || impl_->sas.count({Direction::In, spi})) continue;
    impl_->handed_out.insert(spi);
    return spi;
  }
  return unexpected(std::string("XFRM_MSG_ALLOCSPI: no unused SPI after 16 attempts"));
}

Expected<void, std::string> XfrmDataplane::add_sa(const SaSpec& sa) {
  if (auto v = validate(sa); !v) return v;
  if (auto t = check_transform(sa); !t) return t;
  std::lock_guard lk(impl_->mu);
  auto key = std::make_pair(sa.dir, sa.spi);
  if (auto it = impl_->sas.find(key); it != impl_->sas.end() && !it->second.gone)
    return unexpected("SA with SPI " + hex32(sa.spi) + " (" +
                      (sa.dir == Direction::In ? "in" : "out") + ") exists");
  if (auto r = impl_->install_sa(XFRM_MSG_NEWSA, sa, nullptr); !r) return r;
  if (auto it = impl_->sas.find(key); it != impl_->sas.end()) {
    impl_->retire(it->second, it->second.last);  // a hard-expired predecessor
    impl_->sas.erase(it);
  }
  impl_->sas[key] = {sa, {}, false};
  impl_->handed_out.erase(sa.spi);
  return impl_->learn_ends(sa);
}

Expected<void, std::string> XfrmDataplane::update_sa(const SaSpec& in) {
  std::lock_guard lk(impl_->mu);
  auto it = impl_->sas.find({in.dir, in.spi});
  if (it == impl_->sas.end() || it->second.gone)
    return unexpected("no SA with SPI " + hex32(in.spi));
  Impl::SaEntry& e = it->second;
  // The interface's one contract (dataplane.h): keys and transforms stay,
  // taken from the SA as installed; `in` may carry them wiped.
  if (auto r = check_update(e.spec, in); !r) return r;
  SaSpec sa = e.spec;
  apply_update(sa, in);
  const SaSpec& old = e.spec;
  const bool same_key = old.local == sa.local && old.remote == sa.remote;
  const bool same_shape = old.encap == sa.encap;
  if (same_key && same_shape) {
    // XFRM_MSG_UPDSA changes encapsulation ports and lifetimes in place
    // (xfrm_state_update), keeping counters and replay state.
    if (auto r = impl_->install_sa(XFRM_MSG_UPDSA, sa, nullptr); !r) return r;
  } else {
    // Addresses (the SA's key) or the encapsulation type cannot change in
    // place: read the state, replace it and carry the
    // counters (XFRMA_LTIME_VAL) and sequence numbers over. Packets in
    // flight during the swap are dropped.
    auto k = impl_->get_sa(old);
    if (!k) return unexpected(describe(sa_what(XFRM_MSG_GETSA, old), k.error()));
    CarryOver carry;
    carry.curlft = k->info.curlft;
    if (auto a = k->attrs.find(XFRMA_REPLAY_ESN_VAL); a != k->attrs.end())
      carry.replay_esn = a->second;
    if (auto a = k->attrs.find(XFRMA_REPLAY_VAL);
        a != k->attrs.end() && a->second.size() >= sizeof(xfrm_replay_state)) {
      xfrm_replay_state rs;
      std::memcpy(&rs, a->second.data(), sizeof rs);
      carry.replay = rs;
    }
    if (auto r = impl_->delete_kernel_sa(old, true); !r) return r;
    if (auto r = impl_->install_sa(XFRM_MSG_NEWSA, sa, &carry); !r) {
      // Put the old one back so the tunnel keeps working.
      if (auto back = impl_->install_sa(XFRM_MSG_NEWSA, old, &carry); !back)
        return unexpected(r.error() + "; restoring the old SA failed too: " + back.error());
      return r;
    }
  }
  e.spec = sa;
  return impl_->learn_ends(sa);
}

Expected<void, std::string> XfrmDataplane::delete_sa(Direction dir, uint32_t spi) {
  std::lock_guard lk(impl_->mu);
  auto it = impl_->sas.find({dir, spi});
  if (it == impl_->sas.end()) return unexpected("no SA with SPI " + hex32(spi));
  Impl::SaEntry& e = it->second;
  SaCounters last = e.last;
  if (!e.gone) {
    if (auto k = impl_->get_sa(e.spec)) last = to_counters(*k, dir);
    if (auto r = impl_->delete_kernel_sa(e.spec, true); !r) return r;
  }
  // Tunnel counters are monotonic across rekeys: keep the deleted SA's share.
  impl_->retire(e, last);
  impl_->mapping_seen.erase(spi);
  impl_->sas.erase(it);
  return {};
}

Expected<void, std::string> XfrmDataplane::add_policy(const PolicySpec& p) {
  if (auto v = validate(p); !v) return v;
  std::lock_guard lk(impl_->mu);
  for (const auto& [id, q] : impl_->policies) {
    if (id != p.id && q.src == p.src && q.dst == p.dst)
      return unexpected("policy " + std::to_string(p.id) +
                        ": XFRM keys policies by selector, and "
                        "policy " +
                        std::to_string(id) + " already has " + p.src.str() + " -> " + p.dst.str());
  }
  auto it = impl_->policies.find(p.id);
  if (it != impl_->policies.end() && (it->second.src != p.src || it->second.dst != p.dst)) {
    // A new selector is a new XFRM policy: remove the old one first.
    if (auto r = impl_->remove_policy(it->second); !r) return r;
    impl_->policies.erase(it);
  }
  if (auto r = impl_->install_policy(p); !r) {
    (void)impl_->remove_policy(p);  // no half-installed policy (out without in)
    impl_->policies.erase(p.id);
    return r;
  }
  impl_->policies[p.id] = p;
  return {};
}

Expected<void, std::string> XfrmDataplane::delete_policy(uint32_t id) {
  std::lock_guard lk(impl_->mu);
  auto it = impl_->policies.find(id);
  if (it == impl_->policies.end()) return unexpected("no policy " + std::to_string(id));
  auto r = impl_->remove_policy(it->second);
  impl_->policies.erase(it);
  return r;
}

std::optional<SaCounters> XfrmDataplane::sa_counters(Direction dir, uint32_t spi) const {
  std::lock_guard lk(impl_->mu);
  auto it = impl_->sas.find({dir, spi});
  if (it == impl_->sas.end()) return std::nullopt;
  Impl::SaEntry& e = it->second;
  if (!e.gone) {
    auto k = impl_->get_sa(e.spec);
    if (k) {
      const bool soft = e.last.soft_expired;
      e.last = to_counters(*k, dir);
      e.last.soft_expired = soft;
    } else if (k.error().err == ESRCH || k.error().err == ENOENT) {
      e.gone = true;  // expired before its EXPIRE message was read
      e.last.hard_expired = true;
    }
  }
  return e.last;
}

std::optional<TunnelCounters> XfrmDataplane::tunnel_counters(uint32_t tunnel_id) const {
  std::vector<std::pair<Direction, uint32_t>> keys;
  bool found = false;
  TunnelCounters t;
  {
    std::lock_guard lk(impl_->mu);
    if (auto r = impl_->retired.find(tunnel_id); r != impl_->retired.end()) {
      t = r->second;
      found = true;
    }
    for (const auto& [key, e] : impl_->sas)
      if (e.spec.tunnel_id == tunnel_id) keys.push_back(key);
  }
  for (const auto& [dir, spi] : keys) {
    auto c = sa_counters(dir, spi);
    if (!c) continue;
    found = true;
    (dir == Direction::In ? t.rx_packets : t.tx_packets) += c->packets;
    (dir == Direction::In ? t.rx_bytes : t.tx_bytes) += c->bytes;
  }
  if (!found) return std::nullopt;
  return t;
}

GlobalCounters XfrmDataplane::counters() const {
  GlobalCounters g;
  // The namespace's XFRM MIB (CONFIG_XFRM_STATISTICS); zeros without it.
  std::ifstream f("/proc/net/xfrm_stat");
  std::string name;
  uint64_t v = 0;
  while (f >> name >> v) {
    if (name == "XfrmInNoStates")
      g.unknown_spi = v;
    else if (name == "XfrmOutNoStates")
      g.no_sa = v;
    else if (name == "XfrmInHdrError")
      g.malformed = v;
    else if (name == "XfrmOutError")
      g.send_errors += v;
  }
  g.ike_rx = impl_->ike_rx.load(std::memory_order_relaxed);
  g.send_errors += impl_->send_errors.load(std::memory_order_relaxed);
  return g;
}

std::vector<Event> XfrmDataplane::poll_events() {
  std::vector<Event> out;
  std::vector<uint8_t> buf(64 * 1024);
  std::lock_guard lk(impl_->mu);
  for (;;) {
    const ssize_t n = ::recv(impl_->ev.fd(), buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {  // the kernel dropped events: say so, go on
        log::warn("xfrm.events_lost", {{"error", std::strerror(errno)}});
        continue;
      }
      break;  // EAGAIN: drained
    }
    int len = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, len);
         h = NLMSG_NEXT(h, len)) {
      const auto* p = reinterpret_cast<const uint8_t*>(NLMSG_DATA(h));
      std::vector<uint8_t> d(p, p + (h->nlmsg_len - NLMSG_HDRLEN));
      if (h->nlmsg_type == XFRM_MSG_EXPIRE) {
        xfrm_user_expire x;
        if (!read_fixed(d, x)) continue;
        auto* e = impl_->find_by_id(x.state.id.spi, x.state.id.daddr, x.state.family);
        if (!e) continue;  // not ours (another daemon's, or an ALLOCSPI larval state)
        Event ev;
        ev.kind = x.hard ? Event::Kind::HardExpire : Event::Kind::SoftExpire;
        ev.limit = expired_limit(x.state, x.hard);
        ev.dir = e->spec.dir;
        ev.spi = e->spec.spi;
        ev.tunnel_id = e->spec.tunnel_id;
        if (x.hard) {
          // The kernel deletes the SA now: keep its final counters.
          KernelSa k;
          k.info = x.state;
          k.attrs = parse_attrs(d, sizeof(xfrm_user_expire));
          const bool soft = e->last.soft_expired;
          e->last = to_counters(k, e->spec.dir);
          e->last.soft_expired = soft;
          e->last.hard_expired = true;
          e->gone = true;
        } else {
          e->last.soft_expired = true;
        }
        out.push_back(ev);
      } else if (h->nlmsg_type == XFRM_MSG_ACQUIRE) {
        xfrm_user_acquire a;
        if (!read_fixed(d, a)) continue;
        Event ev;
        ev.kind = Event::Kind::Acquire;
        ev.src = from_xaddr(a.sel.saddr, a.sel.family);
        ev.dst = from_xaddr(a.sel.daddr, a.sel.family);
        bool ours = false;
        for (const auto& [id, pol] : impl_->policies) {
          const xfrm_selector s = selector(pol.src, pol.dst);
          if (a.policy.sel.family == s.family && a.policy.sel.prefixlen_s == s.prefixlen_s &&
              a.policy.sel.prefixlen_d == s.prefixlen_d &&
              std::memcmp(&a.policy.sel.saddr, &s.saddr, sizeof s.saddr) == 0 &&
              std::memcmp(&a.policy.sel.daddr, &s.daddr, sizeof s.daddr) == 0) {
            ev.policy_id = id;
            ev.tunnel_id = pol.tunnel_id;
            ours = true;
            break;
          }
        }
        if (ours) out.push_back(ev);
      } else if (h->nlmsg_type == XFRM_MSG_MAPPING) {
        xfrm_user_mapping mp;
        if (!read_fixed(d, mp)) continue;
        auto* e = impl_->find_by_id(mp.id.spi, mp.id.daddr, mp.id.family);
        if (!e) continue;
        Event ev;
        ev.kind = Event::Kind::NatMapping;
        ev.dir = e->spec.dir;
        ev.spi = e->spec.spi;
        ev.tunnel_id = e->spec.tunnel_id;
        ev.new_addr = from_xaddr(mp.new_saddr, af(e->spec.local.family));
        ev.new_port = ntohs(mp.new_sport);
        // The kernel reports every packet from the new endpoint: once each.
        auto seen = std::make_pair(ev.new_addr, ev.new_port);
        auto [it, fresh] = impl_->mapping_seen.try_emplace(ev.spi, seen);
        if (!fresh && it->second == seen) continue;
        it->second = seen;
        out.push_back(ev);
      }
    }
  }
  return out;
}

int XfrmDataplane::event_fd() const {
  return impl_->ev.fd();
}

void XfrmDataplane::set_ike_receiver(IkeReceiver r) {
  std::lock_guard lk(impl_->ike_mu);
  impl_->ike = std::move(r);
}

Expected<void, std::string> XfrmDataplane::send_ike(const Endpoint& from, const Endpoint& to,
                                                    std::span<const uint8_t> msg) {
  if (!impl_->opts.nat_t_socket)
    return unexpected(std::string("this backend does not own the NAT-T port (nat_t_socket off)"));
  if (from.port != impl_->opts.udp_port)
    return unexpected("this backend owns UDP port " + std::to_string(impl_->opts.udp_port) +
                      " only");
  if (msg.size() > 65000) return unexpected(std::string("IKE message too large"));
  const bool v6 = to.addr.family == net::Family::V6;
  const int fd = v6 ? impl_->udp6 : impl_->udp4;
  if (fd < 0) return unexpected(std::string("no NAT-T socket for this address family"));
  // RFC 3948 §2.2: IKE on the ESP port starts with four zero octets.
  std::vector<uint8_t> buf(4 + msg.size(), 0);
  std::memcpy(buf.data() + 4, msg.data(), msg.size());
  sockaddr_storage dst{};
  socklen_t dlen;
  alignas(cmsghdr) uint8_t control[64]{};
  msghdr m{};
  iovec iov{buf.data(), buf.size()};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_name = &dst;
  const bool set_src = from.addr.bytes != std::array<uint8_t, 16>{};
  if (set_src) {
    m.msg_control = control;
    m.msg_controllen = sizeof control;
  }
  cmsghdr* c = set_src ? CMSG_FIRSTHDR(&m) : nullptr;
  if (v6) {
    auto* s = reinterpret_cast<sockaddr_in6*>(&dst);
    s->sin6_family = AF_INET6;
    s->sin6_port = htons(to.port);
    std::memcpy(&s->sin6_addr, to.addr.bytes.data(), 16);
    dlen = sizeof *s;
    if (c) {
      in6_pktinfo pi{};
      std::memcpy(&pi.ipi6_addr, from.addr.bytes.data(), 16);
      c->cmsg_level = IPPROTO_IPV6;
      c->cmsg_type = IPV6_PKTINFO;
      c->cmsg_len = CMSG_LEN(sizeof pi);
      std::memcpy(CMSG_DATA(c), &pi, sizeof pi);
      m.msg_controllen = CMSG_SPACE(sizeof pi);
    }
  } else {
    auto* s = reinterpret_cast<sockaddr_in*>(&dst);
    s->sin_family = AF_INET;
    s->sin_port = htons(to.port);
    std::memcpy(&s->sin_addr, to.addr.bytes.data(), 4);
    dlen = sizeof *s;
    if (c) {
      in_pktinfo pi{};
      std::memcpy(&pi.ipi_spec_dst, from.addr.bytes.data(), 4);
      c->cmsg_level = IPPROTO_IP;
      c->cmsg_type = IP_PKTINFO;
      c->cmsg_len = CMSG_LEN(sizeof pi);
      std::memcpy(CMSG_DATA(c), &pi, sizeof pi);
      m.msg_controllen = CMSG_SPACE(sizeof pi);
    }
  }
  m.msg_namelen = dlen;
  if (::sendmsg(fd, &m, 0) < 0) {
    impl_->send_errors.fetch_add(1, std::memory_order_relaxed);
    return unexpected(
        SysError{"send IKE to " + to.addr.str() + ":" + std::to_string(to.port), errno}.message());
  }
  return {};
}

// ---- the probe ------------------------------------------------------------------

bool xfrm_esp_available(std::string* why) {
  auto nl = NlSocket::open({});
  if (!nl) {
    if (why) *why = "no XFRM netlink: " + nl.error();
    return false;
  }
  XfrmDataplane::Impl impl;
  impl.nl = std::move(*nl);
  std::mt19937 rng(std::random_device{}());
  SaSpec s;
  s.name = "xgw-esp-probe";
  s.local = *net::IpAddr::parse("127.0.0.1");
  s.remote = *net::IpAddr::parse("127.0.0.2");
  s.encap = Encap::None;
  s.replay_window = 0;
  std::string reasons;
  const std::pair<esp::Encr, esp::Integ> tries[] = {
      {esp::Encr::AesGcm16_128, esp::Integ::None},
      {esp::Encr::AesCbc128, esp::Integ::HmacSha256_128}};
  for (const auto& [e, i] : tries) {
    s.spi = 0xfff00000u | (rng() & 0xfffff);
    s.encr = e;
    s.integ = i;
    s.encr_key.assign(esp::info(e).key_len, 0x5a);
    s.integ_key.assign(esp::info(i).key_len, 0xa5);
    auto r = impl.install_sa(XFRM_MSG_NEWSA, s, nullptr);
    if (r) {
      (void)impl.delete_kernel_sa(s, true);
      return true;
    }
    reasons += (reasons.empty() ? "" : "; ") + r.error();
  }
  if (why) {
    std::string hint;
    if (reasons.find("Operation not permitted") != std::string::npos)
      hint = " — needs CAP_NET_ADMIN";
    else if (reasons.find("Requested type not found") != std::string::npos ||
             reasons.find("Protocol not supported") != std::string::npos)
      hint =
          " — this kernel has no ESP (CONFIG_INET_ESP/CONFIG_INET6_ESP unset or esp4 not "
          "loadable)";
    *why = "the kernel cannot install an ESP SA: " + reasons + hint;
  }
  return false;
}

}  // namespace xgw::dp
