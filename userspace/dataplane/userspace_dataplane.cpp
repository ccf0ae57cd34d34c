#include "dataplane/userspace_dataplane.h"

#include <arpa/inet.h>
#include <liburing.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "common/bytes.h"
#include "common/log.h"
#include "dataplane/offload.h"
#include "dataplane/tun.h"
#include "esp/cipher.h"
#include "esp/replay.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

namespace xgw::dp {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kRelaxed = std::memory_order_relaxed;

// Counter owned by one writer thread: a plain load+store, no locked
// instruction; readers on other threads see a torn-free 64-bit value.
inline void bump(std::atomic<uint64_t>& c, uint64_t v = 1) {
  c.store(c.load(kRelaxed) + v, kRelaxed);
}

// Per-worker counters of one SA, one tunnel or the whole engine; each
// worker writes only its own cache line.
struct alignas(64) SaSlot {
  std::atomic<uint64_t> packets{0}, bytes{0}, replay{0}, icv{0}, pad{0}, policy{0}, expired{0};
};
struct alignas(64) TunnelSlot {
  std::atomic<uint64_t> rx_packets{0}, rx_bytes{0}, tx_packets{0}, tx_bytes{0};
};
struct alignas(64) GlobalSlot {
  std::atomic<uint64_t> unknown_spi{0}, no_policy{0}, no_sa{0}, malformed{0}, bad_next_header{0},
      dummy{0}, too_big{0}, no_buffer{0}, encap_mismatch{0}, keepalives_rx{0}, keepalives_tx{0},
      ike_rx{0}, send_errors{0};
};

struct SaState {
  // Keys wiped once the ciphers hold them. Only spi, dir and tunnel_id may be
  // read without the control mutex (they never change); workers take the
  // mutable fields from the snapshot.
  SaSpec spec;
  std::vector<std::unique_ptr<esp::EspCipher>> ciphers;  // one per worker
  std::unique_ptr<SaSlot[]> slots;
  uint64_t install_order = 0;
  Clock::time_point created = Clock::now();
  // Outbound: the only cross-worker write per packet.
  alignas(64) std::atomic<uint64_t> next_seq{1};
  std::atomic<uint64_t> out_bytes{0};
  // Inbound: owned by worker SPI % workers.
  alignas(64) esp::ReplayWindow replay;
  std::atomic<uint64_t> in_top{0};
  net::IpAddr nat_reported_addr;
  uint16_t nat_reported_port = 0;
  // Lifetime state (any thread; each flag raises its event once).
  std::atomic<bool> soft{false}, hard{false}, wrap_warned{false};
  uint64_t keepalive_seen_seq = 0;  // housekeeping thread only
  Clock::time_point keepalive_last = Clock::now();

  SaState(const SaSpec& s, unsigned workers)
      : spec(s), slots(new SaSlot[workers]), replay(s.replay_window, s.esn) {}

  uint64_t sum(std::atomic<uint64_t> SaSlot::*f, unsigned n) const {
    uint64_t t = 0;
    for (unsigned i = 0; i < n; ++i) t += (slots[i].*f).load(kRelaxed);
    return t;
  }
};

struct TunnelState {
  std::unique_ptr<TunnelSlot[]> slots;
  explicit TunnelState(unsigned workers) : slots(new TunnelSlot[workers]) {}
};

struct SockAddr {
  sockaddr_storage ss{};
  socklen_t len = 0;
};

SockAddr make_sockaddr(const net::IpAddr& a, uint16_t port) {
  SockAddr s;
  if (a.family == net::Family::V4) {
    auto* in = reinterpret_cast<sockaddr_in*>(&s.ss);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    std::memcpy(&in->sin_addr, a.bytes.data(), 4);
    s.len = sizeof(sockaddr_in);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&s.ss);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    std::memcpy(&in6->sin6_addr, a.bytes.data(), 16);
    s.len = sizeof(sockaddr_in6);
  }
  return s;
}

bool from_sockaddr(const sockaddr* sa, net::IpAddr* a, uint16_t* port) {
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    a->family = net::Family::V4;
    a->bytes = {};
    std::memcpy(a->bytes.data(), &in->sin_addr, 4);
    *port = ntohs(in->sin_port);
    return true;
  }
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    a->family = net::Family::V6;
    std::memcpy(a->bytes.data(), &in6->sin6_addr, 16);
    *port = ntohs(in6->sin6_port);
    return true;
  }
  return false;
}

// Writes an IP_PKTINFO / IPV6_PKTINFO control message choosing `src` as the
// source address and returns its space, or 0 (nothing written) when `src`
// is unspecified. `c` must have room for an in6_pktinfo message.
size_t put_source(cmsghdr* c, const net::IpAddr& src) {
  if (src.bytes == std::array<uint8_t, 16>{}) return 0;
  if (src.family == net::Family::V4) {
    in_pktinfo pi{};
    std::memcpy(&pi.ipi_spec_dst, src.bytes.data(), 4);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(pi));
    std::memcpy(CMSG_DATA(c), &pi, sizeof(pi));
    return CMSG_SPACE(sizeof(pi));
  }
  in6_pktinfo pi{};
  std::memcpy(&pi.ipi6_addr, src.bytes.data(), 16);
  c->cmsg_level = IPPROTO_IPV6;
  c->cmsg_type = IPV6_PKTINFO;
  c->cmsg_len = CMSG_LEN(sizeof(pi));
  std::memcpy(CMSG_DATA(c), &pi, sizeof(pi));
  return CMSG_SPACE(sizeof(pi));
}

// Prefix match on raw address bytes (network order).
bool prefix_match(const net::Cidr& c, const uint8_t* addr) {
  const uint8_t* net = c.addr.bytes.data();
  unsigned full = c.len / 8, rem = c.len % 8;
  if (std::memcmp(net, addr, full) != 0) return false;
  if (rem == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rem));
  return (net[full] & mask) == (addr[full] & mask);
}

struct InnerAddrs {
  bool v6 = false;
  const uint8_t* src = nullptr;
  const uint8_t* dst = nullptr;
};

// Minimal inner header parse: version, length sanity, addresses.
bool parse_inner(const uint8_t* p, size_t len, InnerAddrs* out) {
  if (len < 20) return false;
  const unsigned v = p[0] >> 4;
  if (v == 4) {
    if ((p[0] & 0x0f) < 5) return false;
    out->v6 = false;
    out->src = p + 12;
    out->dst = p + 16;
    return true;
  }
  if (v == 6 && len >= 40) {
    out->v6 = true;
    out->src = p + 8;
    out->dst = p + 24;
    return true;
  }
  return false;
}

// Immutable tables the workers read; rebuilt on every control change.
struct OutRoute {
  std::shared_ptr<SaState> sa;
  std::shared_ptr<TunnelState> tunnel;
  SockAddr peer;
  bool v6 = false;
  bool udp = true;
  net::IpAddr local;
  Lifetime lifetime;
  bool volume_limits = false;
};
struct PolicyEntry {
  PolicySpec spec;
  std::shared_ptr<TunnelState> tunnel;
  int out = -1;  // index into Snapshot::outs, -1: no SA yet (acquire)
  std::atomic<int64_t>* last_acquire = nullptr;
};
struct InEntry {
  std::shared_ptr<SaState> sa;
  std::shared_ptr<TunnelState> tunnel;
  std::vector<uint32_t> policies;  // indexes into Snapshot::policies
  net::IpAddr remote;              // expected peer (NAT mapping changes are reported)
  uint16_t remote_port = 0;
  bool udp = true;
  Lifetime lifetime;
  bool volume_limits = false;
};
struct Snapshot {
  std::vector<OutRoute> outs;
  std::vector<PolicyEntry> policies;  // best first: priority, then longer prefixes
  std::unordered_map<uint32_t, InEntry> in;
  uint64_t gen = 0;
};

enum Op : uint64_t {
  kOpRecv = 1,         // index: socket slot
  kOpTunRead = 2,      //
  kOpTunWrite = 3,     // index: tun write buffer
  kOpTunWriteBig = 5,  // index: coalescing buffer
  kOpSend = 4,         // index: send buffer
};
constexpr uint64_t ud(Op op, uint64_t idx) {
  return (static_cast<uint64_t>(op) << 56) | idx;
}

constexpr unsigned kRingEntries = 1024;
constexpr unsigned kCqEntries = 16384;  // > all writes and sends in flight
constexpr unsigned kRxBuffers = 64;     // per worker; each holds one GRO'd burst
constexpr unsigned kRxBufSize = 65536 + 512;
// TUN reads: MTU-sized packets, or with offloads 64 KiB TSO super-packets.
constexpr unsigned kTunReadBuffersSmall = 256;
constexpr unsigned kTunReadBuffersBig = 64;
constexpr size_t kBigBufSize = 65536 + 64;
constexpr unsigned kGroBuffers = 64;  // coalesced TCP trains written to the TUN device
constexpr unsigned kGroFlows = 16;    // trains open at once per worker
constexpr size_t kVnet = sizeof(offload::VnetHdr);
constexpr size_t kEth = 14;
// Room kept in front of every decrypted packet: virtio-net and Ethernet
// headers are written there, so the packet is never moved.
constexpr size_t kPre = kVnet + kEth;
// Source MAC of the frames written to the TAP device (locally administered;
// the kernel only checks that the destination is the device's own).
constexpr uint8_t kPeerMac[6] = {0x02, 0x78, 0x67, 0x77, 0x00, 0x01};
// Enough for every packet the receive buffers can hold in one loop pass
// (64 GRO bursts of up to ~45 segments), so decryption never waits for
// TUN write completions.
constexpr unsigned kTunWriteBuffers = 4096;
constexpr unsigned kSendBuffers = 64;
constexpr unsigned kSendBufSize = 65536;
constexpr unsigned kMaxGsoSegments = 64;
constexpr size_t kMaxGsoBytes = 65000;
constexpr uint16_t kBgidRx = 1, kBgidTun = 2;
constexpr int kIoUringOpReadMultishot = 49;  // IORING_OP_READ_MULTISHOT, Linux 6.7

enum SockKind : uint8_t { kUdp4, kUdp6, kRaw4, kRaw6, kSockKinds };

struct SendBuf {
  msghdr msg{};
  iovec iov{};
  SockAddr to;
  alignas(cmsghdr) uint8_t control[64]{};
  uint8_t* data = nullptr;
};

}  // namespace

struct UserspaceDataplane::Impl {
  UserspaceOptions opts;
  unsigned nworkers = 1;
  std::vector<int> tun_fds;

  // Control state (mutex), snapshots published to the workers.
  mutable std::mutex mu;
  std::map<uint32_t, std::shared_ptr<SaState>> in_sas, out_sas;
  std::map<uint32_t, PolicySpec> policies;
  std::map<uint32_t, std::shared_ptr<TunnelState>> tunnels;
  std::map<uint32_t, std::unique_ptr<std::atomic<int64_t>>> acquire_times;
  std::map<uint32_t, bool> spis_reserved;
  uint64_t install_counter = 0;
  std::atomic<Snapshot*> current{nullptr};
  std::atomic<uint64_t> gen{1};
  // Snapshots no longer current, tagged with the generation that replaced
  // them; freed once every worker has seen that generation.
  std::vector<std::pair<uint64_t, std::unique_ptr<Snapshot>>> retired;
  std::atomic<uint64_t> keepalives_tx{0};
  uint8_t tap_mac[6]{};

  // Events (rare: a mutex is fine).
  std::mutex ev_mu;
  std::vector<Event> events;
  int ev_fd = -1;

  IkeReceiver ike;
  std::atomic<bool> stop{false};

  struct Worker;
  std::vector<std::unique_ptr<Worker>> workers;
  std::unique_ptr<GlobalSlot[]> gslots;
  std::thread housekeeper;
  std::mutex hk_mu;
  std::condition_variable hk_cv;

  TunnelState* tunnel_locked(uint32_t id) {
    auto& t = tunnels[id];
    if (!t) t = std::make_shared<TunnelState>(nworkers);
    return t.get();
  }

  void raise(const Event& e) {
    {
      std::lock_guard lk(ev_mu);
      if (events.size() < 65536) events.push_back(e);  // bounded: a stuck reader loses events
    }
    uint64_t one = 1;
    if (ev_fd >= 0) (void)!::write(ev_fd, &one, sizeof(one));
  }

  void raise_sa(Event::Kind k, Event::Limit l, const SaState& sa) {
    Event e;
    e.kind = k;
    e.limit = l;
    e.dir = sa.spec.dir;
    e.spi = sa.spec.spi;
    e.tunnel_id = sa.spec.tunnel_id;
    raise(e);
  }

  // Lifetime checks by volume after `packets`/`bytes` were counted.
  void check_volume(SaState& sa, const Lifetime& lt, uint64_t packets, uint64_t bytes) {
    if (!sa.soft.load(kRelaxed)) {
      Event::Limit l = Event::Limit::None;
      if (lt.soft_packets && packets >= lt.soft_packets) l = Event::Limit::Packets;
      if (lt.soft_bytes && bytes >= lt.soft_bytes) l = Event::Limit::Bytes;
      if (l != Event::Limit::None && !sa.soft.exchange(true))
        raise_sa(Event::Kind::SoftExpire, l, sa);
    }
    Event::Limit l = Event::Limit::None;
    if (lt.hard_packets && packets >= lt.hard_packets) l = Event::Limit::Packets;
    if (lt.hard_bytes && bytes >= lt.hard_bytes) l = Event::Limit::Bytes;
    if (l != Event::Limit::None && !sa.hard.exchange(true))
      raise_sa(Event::Kind::HardExpire, l, sa);
  }

  void publish_locked();
  void reclaim();
  void housekeeping();
  Expected<void, std::string> start();
  void shutdown();
};

struct UserspaceDataplane::Impl::Worker {
  Impl* eng;
  unsigned idx;
  io_uring ring{};
  bool ring_ok = false;
  bool ring_disabled = false;
  int tun_fd = -1;
  int socks[kSockKinds] = {-1, -1, -1, -1};
  msghdr recv_hdr[kSockKinds]{};
  bool tun_multishot = true;
  unsigned tun_reads_armed = 0;

  uint8_t* rx_mem = nullptr;
  io_uring_buf_ring* rx_br = nullptr;
  uint8_t* tun_mem = nullptr;
  io_uring_buf_ring* tun_br = nullptr;
  size_t tun_buf_size = 0;  // TUN read buffer
  unsigned tun_read_count = 0;
  size_t tunw_size = 0;  // decrypted packet buffer (vnet header room first)
  uint8_t* tunw_mem = nullptr;
  std::vector<uint32_t> tunw_free;
  bool offload = false;
  bool tap = false;      // frames carry an Ethernet header
  uint8_t tap_mac[6]{};  // destination of frames written to the TAP device
  uint8_t* gro_mem = nullptr;
  std::vector<uint32_t> gro_free;
  struct GroFlow {
    uint32_t buf = 0;
    uint8_t* data = nullptr;  // vnet header, then the packet
    offload::TcpInfo head;
    size_t len = 0;  // packet bytes after the vnet header
    uint32_t next_seq = 0;
    uint16_t gso = 0;
    unsigned count = 0;
  };
  GroFlow flows[kGroFlows];
  unsigned nflows = 0;
  uint8_t* send_mem = nullptr;
  std::vector<SendBuf> sends;
  std::vector<uint32_t> send_free;

  // The open UDP GSO batch.
  int batch = -1;
  const OutRoute* batch_route = nullptr;
  size_t batch_seg = 0, batch_used = 0;
  unsigned batch_count = 0;

  const Snapshot* snap = nullptr;
  alignas(64) std::atomic<uint64_t> seen_gen{0};
  std::thread thread;

  GlobalSlot& g() { return eng->gslots[idx]; }

  ~Worker() {
    if (ring_ok) io_uring_queue_exit(&ring);
    for (int s : socks)
      if (s >= 0) ::close(s);
    const size_t rx_len = size_t{kRxBuffers} * kRxBufSize;
    if (rx_mem) ::munmap(rx_mem, rx_len);
    if (rx_br) ::munmap(rx_br, sizeof(io_uring_buf) * kRxBuffers);
    if (tun_mem) ::munmap(tun_mem, tun_read_count * tun_buf_size);
    if (tun_br) ::munmap(tun_br, sizeof(io_uring_buf) * tun_read_count);
    if (tunw_mem) ::munmap(tunw_mem, kTunWriteBuffers * tunw_size);
    if (gro_mem) ::munmap(gro_mem, kGroBuffers * kBigBufSize);
    if (send_mem) ::munmap(send_mem, size_t{kSendBuffers} * kSendBufSize);
  }

  io_uring_sqe* sqe() {
    io_uring_sqe* s = io_uring_get_sqe(&ring);
    if (s == nullptr) {
      io_uring_submit(&ring);
      s = io_uring_get_sqe(&ring);
    }
    return s;
  }

  Expected<void, std::string> setup();
  void arm_recv(unsigned kind);
  void arm_tun();
  void run();
  void on_recv(unsigned kind, const io_uring_cqe* cqe);
  void on_esp(const uint8_t* esp, size_t len, const sockaddr* from, bool udp);
  void on_plaintext(const uint8_t* p, size_t len);
  void flush_batch();
  void on_tun_read(uint8_t* buf, size_t n);
  void deliver(uint32_t buf, uint8_t* pkt, size_t len);
  void write_small(uint32_t buf, uint8_t* pkt, size_t len);
  void put_eth(uint8_t* eth, const uint8_t* pkt) const;
  void flush_flow(unsigned i);
  void flush_flows();
  void send_one(const OutRoute& r, uint32_t buf, size_t len, uint16_t gso);
};

namespace {

Expected<int, std::string> open_socket(int family, int type, int proto) {
  int s = ::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
  if (s < 0) return unexpected(SysError{"socket", errno}.message());
  return s;
}

void* map_anon(size_t len) {
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

io_uring_buf_ring* setup_buf_ring(io_uring* ring, uint16_t bgid, unsigned entries, uint8_t* mem,
                                  size_t buf_size, std::string* err) {
  auto* br = static_cast<io_uring_buf_ring*>(map_anon(sizeof(io_uring_buf) * entries));
  if (br == nullptr) {
    *err = "mmap buffer ring";
    return nullptr;
  }
  io_uring_buf_ring_init(br);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(br);
  reg.ring_entries = entries;
  reg.bgid = bgid;
  if (int r = io_uring_register_buf_ring(ring, &reg, 0); r < 0) {
    *err = SysError{"io_uring_register_buf_ring", -r}.message();
    ::munmap(br, sizeof(io_uring_buf) * entries);
    return nullptr;
  }
  const int mask = io_uring_buf_ring_mask(entries);
  for (unsigned i = 0; i < entries; ++i)
    io_uring_buf_ring_add(br, mem + i * buf_size, static_cast<unsigned>(buf_size),
                          static_cast<unsigned short>(i), mask, static_cast<int>(i));
  io_uring_buf_ring_advance(br, static_cast<int>(entries));
  return br;
}

void recycle(io_uring_buf_ring* br, unsigned entries, uint8_t* mem, size_t buf_size, unsigned bid) {
  io_uring_buf_ring_add(br, mem + bid * buf_size, static_cast<unsigned>(buf_size),
                        static_cast<unsigned short>(bid), io_uring_buf_ring_mask(entries), 0);
  io_uring_buf_ring_advance(br, 1);
}

}  // namespace

Expected<void, std::string> UserspaceDataplane::Impl::Worker::setup() {
  io_uring_params p{};
  // Created disabled: with SINGLE_ISSUER the task that enables the ring
  // (the worker thread, in run()) becomes its only submitter.
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN |
            IORING_SETUP_R_DISABLED | IORING_SETUP_CQSIZE;
  p.cq_entries = kCqEntries;
  int r = io_uring_queue_init_params(kRingEntries, &ring, &p);
  if (r < 0) {  // older kernels: no DEFER_TASKRUN
    p = {};
    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = kCqEntries;
    r = io_uring_queue_init_params(kRingEntries, &ring, &p);
  } else {
    ring_disabled = true;
  }
  if (r < 0) return unexpected(SysError{"io_uring_queue_init", -r}.message());
  ring_ok = true;

  const unsigned n = eng->nworkers;
  const auto& o = eng->opts;
  // Steer ESP to worker SPI % n (see the header). Reuseport programs see
  // the UDP payload at offset 0.
  sock_filter steer[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0),
      BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, n),
      BPF_STMT(BPF_RET | BPF_A, 0),
  };
  // Raw sockets: IPv4 sees the IP header first, IPv6 the payload.
  // Packets too short to carry an SPI go to worker 0, which counts them.
  const uint32_t short_verdict = idx == 0 ? 0xffffffff : 0;
  sock_filter own4[] = {
      BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 0),  // X = IP header length
      BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0),
      BPF_STMT(BPF_ALU | BPF_SUB | BPF_X, 0),
      BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 4, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, short_verdict),
      BPF_STMT(BPF_LD | BPF_W | BPF_IND, 0),
      BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, n),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, idx, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, 0xffffffff),
      BPF_STMT(BPF_RET | BPF_K, 0),
  };
  sock_filter own6[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0),    BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 4, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, short_verdict), BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0),
      BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, n),   BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, idx, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, 0xffffffff),    BPF_STMT(BPF_RET | BPF_K, 0),
  };
  const int one = 1;
  for (unsigned kind = 0; kind < kSockKinds; ++kind) {
    const bool v6 = kind == kUdp6 || kind == kRaw6;
    const bool raw = kind == kRaw4 || kind == kRaw6;
    if (v6 && !o.ipv6) continue;
    if (raw && !o.raw_esp) continue;
    auto s = open_socket(v6 ? AF_INET6 : AF_INET, raw ? SOCK_RAW : SOCK_DGRAM,
                         raw ? IPPROTO_ESP : IPPROTO_UDP);
    if (!s) return unexpected(std::string(raw ? "raw ESP " : "UDP ") + "socket: " + s.error());
    int fd = *s;
    socks[kind] = fd;
    if (v6) {
      ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
      ::setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
    } else {
      ::setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
      // Outer DF clear: the kernel may fragment an ESP packet rather than
      // drop it (inner PMTU is the TUN MTU).
      int pmtu = IP_PMTUDISC_DONT;
      ::setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof(pmtu));
    }
    int bufsz = 4 << 20;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsz, sizeof(bufsz));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bufsz, sizeof(bufsz));
    if (raw) {
      sock_fprog prog{};
      prog.len = v6 ? std::size(own6) : std::size(own4);
      prog.filter = v6 ? own6 : own4;
      if (n > 1 && ::setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0)
        return unexpected(SysError{"attach raw ESP filter", errno}.message());
    } else {
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
      if (o.udp_gso) ::setsockopt(fd, IPPROTO_UDP, UDP_GRO, &one, sizeof(one));
      SockAddr any;
      if (v6) {
        net::IpAddr a;
        a.family = net::Family::V6;
        any = make_sockaddr(a, o.udp_port);
      } else {
        any = make_sockaddr(net::IpAddr{}, o.udp_port);
      }
      if (::bind(fd, reinterpret_cast<sockaddr*>(&any.ss), any.len) < 0)
        return unexpected(SysError{"bind UDP port " + std::to_string(o.udp_port), errno}.message());
      sock_fprog prog{std::size(steer), steer};
      if (n > 1 && ::setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof(prog)) < 0)
        return unexpected(SysError{"attach reuseport steering", errno}.message());
    }
    recv_hdr[kind].msg_namelen = sizeof(sockaddr_storage);
    recv_hdr[kind].msg_controllen = 128;
  }

  offload = o.tun_offload;
  tap = o.tap;
  std::memcpy(tap_mac, eng->tap_mac, 6);
  tunw_size = (o.mtu + 256 + 63) / 64 * 64;
  tun_buf_size = offload ? kBigBufSize : tunw_size;
  tun_read_count = offload ? kTunReadBuffersBig : kTunReadBuffersSmall;
  if (offload) {
    gro_mem = static_cast<uint8_t*>(map_anon(kGroBuffers * kBigBufSize));
    if (!gro_mem) return unexpected(std::string("cannot allocate coalescing buffers"));
    for (uint32_t i = 0; i < kGroBuffers; ++i) gro_free.push_back(kGroBuffers - 1 - i);
  }
  rx_mem = static_cast<uint8_t*>(map_anon(size_t{kRxBuffers} * kRxBufSize));
  tun_mem = static_cast<uint8_t*>(map_anon(tun_read_count * tun_buf_size));
  tunw_mem = static_cast<uint8_t*>(map_anon(kTunWriteBuffers * tunw_size));
  send_mem = static_cast<uint8_t*>(map_anon(size_t{kSendBuffers} * kSendBufSize));
  if (!rx_mem || !tun_mem || !tunw_mem || !send_mem)
    return unexpected(std::string("cannot allocate packet buffers"));
  std::string err;
  rx_br = setup_buf_ring(&ring, kBgidRx, kRxBuffers, rx_mem, kRxBufSize, &err);
  if (!rx_br) return unexpected(err);
  tun_br = setup_buf_ring(&ring, kBgidTun, tun_read_count, tun_mem, tun_buf_size, &err);
  if (!tun_br) return unexpected(err);
  for (uint32_t i = 0; i < kTunWriteBuffers; ++i) tunw_free.push_back(kTunWriteBuffers - 1 - i);
  sends.resize(kSendBuffers);
  for (uint32_t i = 0; i < kSendBuffers; ++i) {
    sends[i].data = send_mem + size_t{i} * kSendBufSize;
    send_free.push_back(kSendBuffers - 1 - i);
  }
  return {};
}

void UserspaceDataplane::Impl::Worker::arm_recv(unsigned kind) {
  io_uring_sqe* s = sqe();
  io_uring_prep_recvmsg_multishot(s, socks[kind], &recv_hdr[kind], 0);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = kBgidRx;
  io_uring_sqe_set_data64(s, ud(kOpRecv, kind));
}

void UserspaceDataplane::Impl::Worker::arm_tun() {
  io_uring_sqe* s = sqe();
  if (tun_multishot) {
    io_uring_prep_rw(kIoUringOpReadMultishot, s, tun_fd, nullptr, 0, 0);
  } else {
    io_uring_prep_rw(IORING_OP_READ, s, tun_fd, nullptr, static_cast<unsigned>(tun_buf_size),
                     ~uint64_t{0});
  }
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = kBgidTun;
  io_uring_sqe_set_data64(s, ud(kOpTunRead, 0));
  ++tun_reads_armed;
}

void UserspaceDataplane::Impl::Worker::run() {
  if (ring_disabled) {
    // liburing 2.3 declares io_uring_enable_rings() but does not export it.
    if (::syscall(__NR_io_uring_register, ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0) <
        0) {
      log::error("esp.worker_failed",
                 {{"worker", idx}, {"error", SysError{"enable io_uring", errno}.message()}});
      return;
    }
  }
  for (unsigned k = 0; k < kSockKinds; ++k)
    if (socks[k] >= 0) arm_recv(k);
  arm_tun();
  while (!eng->stop.load(kRelaxed)) {
    __kernel_timespec ts{0, 50'000'000};
    io_uring_cqe* cqe = nullptr;
    io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, nullptr);
    // Quiescent point: nothing from an older snapshot is held here. After
    // the wait, so the completions that woke the worker see the tables as
    // they are now: an SA added while it slept must not count as unknown.
    const uint64_t generation = eng->gen.load(std::memory_order_acquire);
    seen_gen.store(generation, std::memory_order_release);
    snap = eng->current.load(std::memory_order_acquire);
    unsigned head = 0, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++seen;
      const uint64_t data = cqe->user_data;
      const auto op = static_cast<Op>(data >> 56);
      const uint64_t index = data & ((uint64_t{1} << 56) - 1);
      const bool more = cqe->flags & IORING_CQE_F_MORE;
      switch (op) {
        case kOpRecv:
          if (cqe->res >= 0 && (cqe->flags & IORING_CQE_F_BUFFER)) on_recv(index, cqe);
          if (!more && !eng->stop.load(kRelaxed)) arm_recv(static_cast<unsigned>(index));
          break;
        case kOpTunRead:
          if (cqe->res == -EINVAL && tun_multishot) {
            // Kernel without multishot read (< 6.7): keep several
            // single-shot reads outstanding instead.
            tun_multishot = false;
            --tun_reads_armed;
            for (int i = 0; i < 32; ++i) arm_tun();
            break;
          }
          if (cqe->res > 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
            const unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
            on_tun_read(tun_mem + bid * tun_buf_size, static_cast<size_t>(cqe->res));
            recycle(tun_br, tun_read_count, tun_mem, tun_buf_size, bid);
          }
          if (!more) {
            --tun_reads_armed;
            if (!eng->stop.load(kRelaxed)) arm_tun();
          }
          break;
        case kOpTunWrite:
          tunw_free.push_back(static_cast<uint32_t>(index));
          if (cqe->res < 0) bump(g().send_errors);
          break;
        case kOpTunWriteBig:
          gro_free.push_back(static_cast<uint32_t>(index));
          if (cqe->res < 0) bump(g().send_errors);
          break;
        case kOpSend:
          send_free.push_back(static_cast<uint32_t>(index));
          if (cqe->res < 0) bump(g().send_errors);
          break;
      }
    }
    io_uring_cq_advance(&ring, seen);
    flush_flows();
    flush_batch();
  }
  seen_gen.store(~uint64_t{0}, std::memory_order_release);  // never blocks reclaim again
}

void UserspaceDataplane::Impl::Worker::on_recv(unsigned kind, const io_uring_cqe* cqe) {
  const unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
  uint8_t* buf = rx_mem + size_t{bid} * kRxBufSize;
  msghdr* hdr = &recv_hdr[kind];
  io_uring_recvmsg_out* out = io_uring_recvmsg_validate(buf, cqe->res, hdr);
  if (out == nullptr) {
    bump(g().malformed);
  } else if (out->flags & MSG_TRUNC) {
    bump(g().too_big);
  } else {
    auto* payload = static_cast<uint8_t*>(io_uring_recvmsg_payload(out, hdr));
    const size_t plen = io_uring_recvmsg_payload_length(out, cqe->res, hdr);
    const auto* from = static_cast<const sockaddr*>(io_uring_recvmsg_name(out));
    int gso = 0;
    Endpoint to;
    to.port = eng->opts.udp_port;
    for (cmsghdr* c = io_uring_recvmsg_cmsg_firsthdr(out, hdr); c != nullptr;
         c = io_uring_recvmsg_cmsg_nexthdr(out, hdr, c)) {
      if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
        std::memcpy(&gso, CMSG_DATA(c), sizeof(gso));
      } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
        in_pktinfo pi;
        std::memcpy(&pi, CMSG_DATA(c), sizeof(pi));
        to.addr.family = net::Family::V4;
        std::memcpy(to.addr.bytes.data(), &pi.ipi_addr, 4);
      } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
        in6_pktinfo pi;
        std::memcpy(&pi, CMSG_DATA(c), sizeof(pi));
        to.addr.family = net::Family::V6;
        std::memcpy(to.addr.bytes.data(), &pi.ipi6_addr, 16);
      }
    }
    if (kind == kRaw4) {
      const size_t ihl = plen ? size_t{payload[0] & 0x0fu} * 4 : 0;
      if (ihl < 20 || ihl > plen)
        bump(g().malformed);
      else
        on_esp(payload + ihl, plen - ihl, from, false);
    } else if (kind == kRaw6) {
      on_esp(payload, plen, from, false);
    } else {
      if (plen == 0) bump(g().malformed);  // an empty datagram: no ESP, no IKE
      const size_t seg = gso > 0 ? static_cast<size_t>(gso) : plen;
      for (size_t off = 0; off < plen; off += seg) {
        const uint8_t* d = payload + off;
        const size_t len = std::min(seg, plen - off);
        if (len == 1 && d[0] == 0xff) {  // RFC 3948 §2.3 NAT keepalive
          bump(g().keepalives_rx);
        } else if (len >= 4 && load_be32(d) == 0) {  // non-ESP marker: IKE (§2.2)
          bump(g().ike_rx);
          if (eng->ike) {
            Endpoint f;
            if (from_sockaddr(from, &f.addr, &f.port)) eng->ike({d + 4, len - 4}, f, to);
          }
        } else {
          on_esp(d, len, from, true);
        }
      }
    }
  }
  recycle(rx_br, kRxBuffers, rx_mem, kRxBufSize, bid);
}

void UserspaceDataplane::Impl::Worker::on_esp(const uint8_t* esp, size_t len, const sockaddr* from,
                                              bool udp) {
  if (len < esp::kEspHeaderLen) {
    bump(g().malformed);
    return;
  }
  const uint32_t spi = load_be32(esp);
  auto it = snap->in.find(spi);
  if (it == snap->in.end()) {
    bump(g().unknown_spi);
    return;
  }
  const InEntry& e = it->second;
  SaState& sa = *e.sa;
  SaSlot& sl = sa.slots[idx];
  if (udp != e.udp) {  // the SA's encapsulation is part of the SA (RFC 3948 §3)
    bump(g().encap_mismatch);
    return;
  }
  if (sa.hard.load(kRelaxed)) {
    bump(sl.expired);
    return;
  }
  // RFC 4303 §3.4.3: the replay check precedes the ICV check, the window
  // update follows it.
  const uint64_t seq = sa.replay.infer(load_be32(esp + 4));
  if (sa.replay.check(seq) != esp::ReplayWindow::Check::Ok) {
    bump(sl.replay);
    return;
  }
  if (tunw_free.empty()) {
    bump(g().no_buffer);
    return;
  }
  const uint32_t buf = tunw_free.back();
  uint8_t* out = tunw_mem + size_t{buf} * tunw_size + kPre;
  size_t plen = 0;
  uint8_t nh = 0;
  switch (sa.ciphers[idx]->open({esp, len}, seq, {out, tunw_size - kPre}, &plen, &nh)) {
    case esp::OpenStatus::Ok:
      break;
    case esp::OpenStatus::IcvMismatch:
      bump(sl.icv);
      return;
    case esp::OpenStatus::BadPadding:
      bump(sl.pad);
      return;
    case esp::OpenStatus::Short:
    case esp::OpenStatus::CryptoError:
      bump(g().malformed);
      return;
  }
  if (!sa.replay.update(seq)) {
    bump(sl.replay);
    return;
  }
  sa.in_top.store(sa.replay.top(), kRelaxed);
  if (nh == 59) {  // RFC 4303 §2.6: dummy packet, discard
    bump(g().dummy);
    return;
  }
  InnerAddrs ia;
  if ((nh != 4 && nh != 41) || !parse_inner(out, plen, &ia) || ia.v6 != (nh == 41)) {
    bump(g().bad_next_header);
    return;
  }
  // RFC 4301 §5.2: the inner packet must match the SA's selectors.
  bool match = false;
  for (uint32_t pi : e.policies) {
    const PolicySpec& p = snap->policies[pi].spec;
    if ((p.src.family() == net::Family::V6) == ia.v6 && prefix_match(p.dst, ia.src) &&
        prefix_match(p.src, ia.dst)) {
      match = true;
      break;
    }
  }
  if (!match) {
    bump(sl.policy);
    return;
  }
  bump(sl.packets);
  bump(sl.bytes, plen);
  TunnelSlot& ts = e.tunnel->slots[idx];
  bump(ts.rx_packets);
  bump(ts.rx_bytes, plen);
  if (e.volume_limits)
    eng->check_volume(sa, e.lifetime, sl.packets.load(kRelaxed), sl.bytes.load(kRelaxed));
  if (udp) {
    Endpoint f;
    if (from_sockaddr(from, &f.addr, &f.port) && (f.addr != e.remote || f.port != e.remote_port) &&
        (f.addr != sa.nat_reported_addr || f.port != sa.nat_reported_port)) {
      sa.nat_reported_addr = f.addr;
      sa.nat_reported_port = f.port;
      Event ev;
      ev.kind = Event::Kind::NatMapping;
      ev.dir = Direction::In;
      ev.spi = spi;
      ev.tunnel_id = sa.spec.tunnel_id;
      ev.new_addr = f.addr;
      ev.new_port = f.port;
      eng->raise(ev);
    }
  }
  tunw_free.pop_back();
  deliver(buf, out, plen);
}

void UserspaceDataplane::Impl::Worker::put_eth(uint8_t* eth, const uint8_t* pkt) const {
  std::memcpy(eth, tap_mac, 6);
  std::memcpy(eth + 6, kPeerMac, 6);
  const bool v6 = (pkt[0] >> 4) == 6;
  eth[12] = v6 ? 0x86 : 0x08;
  eth[13] = v6 ? 0xdd : 0x00;
}

void UserspaceDataplane::Impl::Worker::write_small(uint32_t buf, uint8_t* pkt, size_t len) {
  uint8_t* start = pkt;
  if (tap) {
    start -= kEth;
    put_eth(start, pkt);
    len += kEth;
  }
  if (offload) {
    start -= kVnet;
    std::memset(start, 0, kVnet);  // no GSO, checksum already complete
    len += kVnet;
  }
  io_uring_sqe* s = sqe();
  io_uring_prep_write(s, tun_fd, start, static_cast<unsigned>(len), ~uint64_t{0});
  io_uring_sqe_set_data64(s, ud(kOpTunWrite, buf));
}

namespace {
// Same addresses and ports (the flow's order must be kept).
bool same_flow(const uint8_t* a, const offload::TcpInfo& ai, const uint8_t* b,
               const offload::TcpInfo& bi) {
  if (ai.v6 != bi.v6) return false;
  const size_t off = ai.v6 ? 8 : 12, n = ai.v6 ? 32 : 8;
  return std::memcmp(a + off, b + off, n) == 0 && std::memcmp(a + ai.l3_len, b + bi.l3_len, 4) == 0;
}
}  // namespace

// Decrypted packets go to the TUN device; with offloads, in-order TCP
// segments of one flow are coalesced into one GSO write (software GRO).
void UserspaceDataplane::Impl::Worker::deliver(uint32_t buf, uint8_t* pkt, size_t len) {
  if (!offload) {
    write_small(buf, pkt, len);
    return;
  }
  offload::TcpInfo ti;
  if (!offload::parse_tcp(pkt, len, &ti)) {
    write_small(buf, pkt, len);
    return;
  }
  // Coalescing rewrites the headers' checksums, so only packets whose own
  // checksums verify may join a train (as kernel GRO).
  const bool mergeable =
      ti.payload > 0 && (ti.flags & ~0x08u) == 0x10 &&
      (ti.v6 || offload::csum_fold(offload::csum_add(0, pkt, ti.l3_len)) == 0xffff) &&
      offload::tcp_checksum_valid(pkt, ti);
  for (unsigned i = 0; i < nflows; ++i) {
    GroFlow& f = flows[i];
    uint8_t* head = f.data + kPre;
    if (!same_flow(head, f.head, pkt, ti)) continue;
    if (mergeable && f.len + ti.payload <= 65535 && f.count < 64 &&
        offload::can_append(head, f.head, f.next_seq, f.gso, pkt, ti)) {
      std::memcpy(head + f.len, pkt + ti.l3_len + ti.l4_len, ti.payload);
      f.len += ti.payload;
      f.next_seq += static_cast<uint32_t>(ti.payload);
      ++f.count;
      if (ti.flags & 0x08) head[f.head.l3_len + 13] |= 0x08;  // PSH moves to the train
      tunw_free.push_back(buf);
      if ((ti.flags & 0x08) || ti.payload < f.gso) flush_flow(i);
      return;
    }
    flush_flow(i);  // keep the flow's order: what was queued goes first
    break;
  }
  if (!mergeable || gro_free.empty()) {
    write_small(buf, pkt, len);
    return;
  }
  if (nflows == kGroFlows) flush_flow(0);
  GroFlow& f = flows[nflows++];
  f.buf = gro_free.back();
  gro_free.pop_back();
  f.data = gro_mem + size_t{f.buf} * kBigBufSize;
  std::memcpy(f.data + kPre, pkt, len);
  f.head = ti;
  f.len = len;
  f.next_seq = ti.seq + static_cast<uint32_t>(ti.payload);
  f.gso = static_cast<uint16_t>(ti.payload);
  f.count = 1;
  tunw_free.push_back(buf);
  if (ti.flags & 0x08) flush_flow(nflows - 1);
}

void UserspaceDataplane::Impl::Worker::flush_flow(unsigned i) {
  GroFlow& f = flows[i];
  offload::VnetHdr vh{};
  uint8_t* pkt = f.data + kPre;
  if (f.count > 1) offload::finish_coalesced(pkt, f.len, f.head, f.gso, &vh);
  uint8_t* start = pkt;
  size_t len = f.len;
  if (tap) {
    start -= kEth;
    put_eth(start, pkt);
    len += kEth;
    if (f.count > 1) {  // offsets count from the frame's start
      vh.hdr_len = static_cast<uint16_t>(vh.hdr_len + kEth);
      vh.csum_start = static_cast<uint16_t>(vh.csum_start + kEth);
    }
  }
  start -= kVnet;
  std::memcpy(start, &vh, kVnet);
  len += kVnet;
  io_uring_sqe* s = sqe();
  io_uring_prep_write(s, tun_fd, start, static_cast<unsigned>(len), ~uint64_t{0});
  io_uring_sqe_set_data64(s, ud(kOpTunWriteBig, f.buf));
  flows[i] = flows[--nflows];
}

void UserspaceDataplane::Impl::Worker::flush_flows() {
  while (nflows > 0) flush_flow(nflows - 1);
}

void UserspaceDataplane::Impl::Worker::on_tun_read(uint8_t* buf, size_t n) {
  offload::VnetHdr h{};
  if (offload) {
    if (n < kVnet) {
      bump(g().malformed);
      return;
    }
    std::memcpy(&h, buf, kVnet);
    buf += kVnet;
    n -= kVnet;
  }
  if (tap) {
    // The kernel's routed packets, or frames XDP redirected from the LAN
    // (with their own MACs, maybe one VLAN tag, maybe Ethernet padding).
    size_t l2 = kEth;
    if (n < kEth) {
      bump(g().malformed);
      return;
    }
    uint16_t type = static_cast<uint16_t>(buf[12] << 8 | buf[13]);
    if ((type == 0x8100 || type == 0x88a8) && n >= kEth + 4) {
      type = static_cast<uint16_t>(buf[16] << 8 | buf[17]);
      l2 += 4;
    }
    if (type != 0x0800 && type != 0x86dd) return;  // not IP: nothing to protect
    buf += l2;
    n -= l2;
    if (h.csum_start >= l2) h.csum_start = static_cast<uint16_t>(h.csum_start - l2);
    // Drop link-layer padding after the IP packet.
    if (n >= 20) {
      size_t ip_len = 0;
      if ((buf[0] >> 4) == 4)
        ip_len = static_cast<size_t>(buf[2] << 8 | buf[3]);
      else if ((buf[0] >> 4) == 6 && n >= 40)
        ip_len = 40 + static_cast<size_t>(buf[4] << 8 | buf[5]);
      if (ip_len >= 20 && ip_len < n) n = ip_len;
    }
  }
  uint8_t* pkt = buf;
  const size_t len = n;
  if (!offload) {
    on_plaintext(pkt, len);
    return;
  }
  const uint8_t gso = h.gso_type & static_cast<uint8_t>(~offload::kGsoEcn);
  if (gso == offload::kGsoTcpV4 || gso == offload::kGsoTcpV6) {
    if (!offload::tso_segment(pkt, len, h,
                              [this](uint8_t* seg, size_t l) { on_plaintext(seg, l); }))
      bump(g().malformed);
    return;
  }
  if (gso != offload::kGsoNone) {  // only TSO was offered (TUNSETOFFLOAD)
    bump(g().malformed);
    return;
  }
  if ((h.flags & offload::kNeedsCsum) && !offload::complete_checksum(pkt, len, h)) {
    bump(g().malformed);
    return;
  }
  on_plaintext(pkt, len);
}

void UserspaceDataplane::Impl::Worker::on_plaintext(const uint8_t* p, size_t len) {
  InnerAddrs ia;
  if (!parse_inner(p, len, &ia)) {
    bump(g().malformed);
    return;
  }
  const PolicyEntry* pe = nullptr;
  for (const PolicyEntry& cand : snap->policies) {
    if ((cand.spec.src.family() == net::Family::V6) == ia.v6 &&
        prefix_match(cand.spec.src, ia.src) && prefix_match(cand.spec.dst, ia.dst)) {
      pe = &cand;
      break;
    }
  }
  if (pe == nullptr) {
    bump(g().no_policy);
    return;
  }
  if (pe->out < 0) {
    bump(g().no_sa);
    // Acquire, at most once a second per policy.
    const int64_t now = Clock::now().time_since_epoch().count();
    int64_t last = pe->last_acquire->load(kRelaxed);
    if (now - last >= 1'000'000'000 && pe->last_acquire->compare_exchange_strong(last, now)) {
      Event ev;
      ev.kind = Event::Kind::Acquire;
      ev.policy_id = pe->spec.id;
      ev.tunnel_id = pe->spec.tunnel_id;
      const auto fam = ia.v6 ? net::Family::V6 : net::Family::V4;
      ev.src.family = ev.dst.family = fam;
      std::memcpy(ev.src.bytes.data(), ia.src, ia.v6 ? 16 : 4);
      std::memcpy(ev.dst.bytes.data(), ia.dst, ia.v6 ? 16 : 4);
      eng->raise(ev);
    }
    return;
  }
  const OutRoute& route = snap->outs[static_cast<size_t>(pe->out)];
  SaState& sa = *route.sa;
  SaSlot& sl = sa.slots[idx];
  if (sa.hard.load(kRelaxed)) {
    bump(sl.expired);
    return;
  }
  const bool esn = sa.spec.esn;
  const uint64_t seq = sa.next_seq.fetch_add(1, kRelaxed);
  // RFC 4303 §3.3.3: the counter never cycles; the SA must be replaced.
  if ((!esn && seq > 0xffffffffull) || seq == 0) {
    if (!sa.hard.exchange(true)) eng->raise_sa(Event::Kind::HardExpire, Event::Limit::Packets, sa);
    bump(sl.expired);
    return;
  }
  const uint64_t warn_at = (esn ? ~uint64_t{0} : 0xffffffffull) - (uint64_t{1} << 20);
  if (seq >= warn_at && !sa.wrap_warned.exchange(true))
    eng->raise_sa(Event::Kind::SeqWrapSoon, Event::Limit::Packets, sa);

  esp::EspCipher& c = *sa.ciphers[idx];
  const size_t esp_len = len + c.overhead(len);
  const uint8_t nh = ia.v6 ? 41 : 4;
  const uint32_t spi = sa.spec.spi;
  if (esp_len > kSendBufSize) {
    bump(g().too_big);
    return;
  }
  size_t n = 0;
  if (route.udp && eng->opts.udp_gso && esp_len + (route.v6 ? 48 : 28) <= 1500) {
    // Same-sized ESP packets to one peer leave as one UDP_SEGMENT send; a
    // shorter packet may end a batch, a longer one starts a new batch.
    if (batch >= 0 && (batch_route != &route || esp_len > batch_seg ||
                       batch_used + esp_len > kMaxGsoBytes || batch_count >= kMaxGsoSegments))
      flush_batch();
    if (batch < 0) {
      if (send_free.empty()) {
        bump(g().no_buffer);
        return;
      }
      batch = static_cast<int>(send_free.back());
      send_free.pop_back();
      batch_route = &route;
      batch_seg = esp_len;
      batch_used = 0;
      batch_count = 0;
    }
    uint8_t* dst = sends[static_cast<size_t>(batch)].data + batch_used;
    n = c.seal(spi, seq, {p, len}, nh, {dst, kSendBufSize - batch_used});
    if (n == 0) {
      bump(g().send_errors);
      return;
    }
    batch_used += n;
    ++batch_count;
    if (n < batch_seg) flush_batch();
  } else {
    if (send_free.empty()) {
      bump(g().no_buffer);
      return;
    }
    const uint32_t b = send_free.back();
    n = c.seal(spi, seq, {p, len}, nh, {sends[b].data, kSendBufSize});
    if (n == 0) {
      bump(g().send_errors);
      return;
    }
    send_free.pop_back();
    send_one(route, b, n, 0);
  }
  bump(sl.packets);
  bump(sl.bytes, len);
  TunnelSlot& ts = route.tunnel->slots[idx];
  bump(ts.tx_packets);
  bump(ts.tx_bytes, len);
  if (route.volume_limits) {
    const uint64_t bytes = sa.out_bytes.fetch_add(len, kRelaxed) + len;
    eng->check_volume(sa, route.lifetime, seq, bytes);
  }
}

void UserspaceDataplane::Impl::Worker::flush_batch() {
  if (batch < 0) return;
  send_one(*batch_route, static_cast<uint32_t>(batch), batch_used,
           batch_count > 1 ? static_cast<uint16_t>(batch_seg) : 0);
  batch = -1;
}

void UserspaceDataplane::Impl::Worker::send_one(const OutRoute& r, uint32_t b, size_t len,
                                                uint16_t gso) {
  SendBuf& sb = sends[b];
  const int fd = r.udp ? socks[r.v6 ? kUdp6 : kUdp4] : socks[r.v6 ? kRaw6 : kRaw4];
  if (fd < 0) {
    bump(g().send_errors);
    send_free.push_back(b);
    return;
  }
  sb.to = r.peer;
  sb.iov = {sb.data, len};
  sb.msg = {};
  sb.msg.msg_name = &sb.to.ss;
  sb.msg.msg_namelen = sb.to.len;
  sb.msg.msg_iov = &sb.iov;
  sb.msg.msg_iovlen = 1;
  sb.msg.msg_control = sb.control;
  sb.msg.msg_controllen = sizeof(sb.control);
  size_t used = put_source(CMSG_FIRSTHDR(&sb.msg), r.local);  // the SA's, not the route's
  cmsghdr* c = reinterpret_cast<cmsghdr*>(sb.control + used);
  if (gso) {
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    std::memcpy(CMSG_DATA(c), &gso, sizeof(gso));
    used += CMSG_SPACE(sizeof(uint16_t));
  }
  sb.msg.msg_controllen = used;
  if (used == 0) sb.msg.msg_control = nullptr;
  io_uring_sqe* s = sqe();
  io_uring_prep_sendmsg(s, fd, &sb.msg, 0);
  io_uring_sqe_set_data64(s, ud(kOpSend, b));
}

void UserspaceDataplane::Impl::publish_locked() {
  auto s = std::make_unique<Snapshot>();
  // The newest outbound SA of each tunnel carries its traffic.
  std::map<uint32_t, SaState*> newest;
  for (auto& [spi, sa] : out_sas) {
    SaState*& best = newest[sa->spec.tunnel_id];
    if (best == nullptr || sa->install_order > best->install_order) best = sa.get();
  }
  std::map<uint32_t, int> tunnel_out;
  for (auto& [spi, sa] : out_sas) {
    if (newest[sa->spec.tunnel_id] != sa.get()) continue;
    const SaSpec& sp = sa->spec;
    OutRoute r;
    r.sa = sa;
    tunnel_locked(sp.tunnel_id);
    r.tunnel = tunnels[sp.tunnel_id];
    r.udp = sp.encap == Encap::Udp;
    r.v6 = sp.remote.family == net::Family::V6;
    // Raw sockets take port 0 (IPv6 raw sockets reject any other).
    r.peer = make_sockaddr(sp.remote, r.udp ? sp.remote_port : 0);
    r.local = sp.local;
    r.lifetime = sp.lifetime;
    r.volume_limits = sp.lifetime.soft_bytes || sp.lifetime.hard_bytes ||
                      sp.lifetime.soft_packets || sp.lifetime.hard_packets;
    tunnel_out[sp.tunnel_id] = static_cast<int>(s->outs.size());
    s->outs.push_back(std::move(r));
  }
  std::vector<const PolicySpec*> order;
  for (auto& [id, p] : policies) order.push_back(&p);
  std::sort(order.begin(), order.end(), [](const PolicySpec* a, const PolicySpec* b) {
    if (a->priority != b->priority) return a->priority > b->priority;
    const int la = a->src.len + a->dst.len, lb = b->src.len + b->dst.len;
    if (la != lb) return la > lb;
    return a->id < b->id;
  });
  for (const PolicySpec* p : order) {
    PolicyEntry pe;
    pe.spec = *p;
    tunnel_locked(p->tunnel_id);
    pe.tunnel = tunnels[p->tunnel_id];
    auto it = tunnel_out.find(p->tunnel_id);
    pe.out = it == tunnel_out.end() ? -1 : it->second;
    auto& at = acquire_times[p->id];
    if (!at) at = std::make_unique<std::atomic<int64_t>>(INT64_MIN / 2);
    pe.last_acquire = at.get();
    s->policies.push_back(std::move(pe));
  }
  for (auto& [spi, sa] : in_sas) {
    const SaSpec& sp = sa->spec;
    InEntry e;
    e.sa = sa;
    tunnel_locked(sp.tunnel_id);
    e.tunnel = tunnels[sp.tunnel_id];
    for (uint32_t i = 0; i < s->policies.size(); ++i)
      if (s->policies[i].spec.tunnel_id == sp.tunnel_id) e.policies.push_back(i);
    e.remote = sp.remote;
    e.remote_port = sp.remote_port;
    e.udp = sp.encap == Encap::Udp;
    e.lifetime = sp.lifetime;
    e.volume_limits = sp.lifetime.soft_bytes || sp.lifetime.hard_bytes ||
                      sp.lifetime.soft_packets || sp.lifetime.hard_packets;
    s->in.emplace(spi, std::move(e));
  }
  Snapshot* old = current.exchange(s.release(), std::memory_order_acq_rel);
  const uint64_t g = gen.fetch_add(1, std::memory_order_acq_rel) + 1;
  if (old != nullptr) retired.emplace_back(g, std::unique_ptr<Snapshot>(old));
  reclaim();
}

void UserspaceDataplane::Impl::reclaim() {
  uint64_t min_seen = ~uint64_t{0};
  for (const auto& w : workers)
    min_seen = std::min(min_seen, w->seen_gen.load(std::memory_order_acquire));
  std::erase_if(retired, [&](const auto& r) { return r.first <= min_seen; });
}

void UserspaceDataplane::Impl::housekeeping() {
  std::unique_lock lk(hk_mu);
  while (!stop.load()) {
    hk_cv.wait_for(lk, std::chrono::milliseconds(200));
    if (stop.load()) break;
    std::lock_guard g(mu);
    reclaim();
    const auto now = Clock::now();
    auto by_time = [&](SaState& sa) {
      const Lifetime& lt = sa.spec.lifetime;
      const auto age = std::chrono::duration_cast<std::chrono::seconds>(now - sa.created).count();
      if (lt.soft_seconds && age >= lt.soft_seconds && !sa.soft.exchange(true))
        raise_sa(Event::Kind::SoftExpire, Event::Limit::Time, sa);
      if (lt.hard_seconds && age >= lt.hard_seconds && !sa.hard.exchange(true))
        raise_sa(Event::Kind::HardExpire, Event::Limit::Time, sa);
    };
    for (auto& [spi, sa] : in_sas) by_time(*sa);
    for (auto& [spi, sa] : out_sas) {
      by_time(*sa);
      // RFC 3948 §2.3: keep the NAT mapping alive when the SA sends nothing.
      const SaSpec& sp = sa->spec;
      if (sp.encap != Encap::Udp || sp.keepalive_seconds == 0) continue;
      const uint64_t seq = sa->next_seq.load(kRelaxed);
      if (seq != sa->keepalive_seen_seq) {
        sa->keepalive_seen_seq = seq;
        sa->keepalive_last = now;
        continue;
      }
      if (now - sa->keepalive_last < std::chrono::seconds(sp.keepalive_seconds)) continue;
      sa->keepalive_last = now;
      const int fd = workers.empty()
                         ? -1
                         : workers[0]->socks[sp.remote.family == net::Family::V6 ? kUdp6 : kUdp4];
      if (fd < 0) continue;
      const uint8_t ka = 0xff;
      SockAddr to = make_sockaddr(sp.remote, sp.remote_port);
      if (::sendto(fd, &ka, 1, 0, reinterpret_cast<sockaddr*>(&to.ss), to.len) == 1)
        keepalives_tx.fetch_add(1, kRelaxed);
    }
  }
}

Expected<void, std::string> UserspaceDataplane::Impl::start() {
  esp::load_providers();
  ev_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (ev_fd < 0) return unexpected(SysError{"eventfd", errno}.message());
  auto fds = open_tun_queues(opts.tun_name, nworkers, opts.tun_offload, opts.tap);
  if (!fds) return unexpected(fds.error().message());
  tun_fds = *fds;
  if (auto up = set_link_up(opts.tun_name, opts.mtu, opts.tap); !up)
    return unexpected(up.error().message());
  if (opts.tap) {
    auto mac = link_mac(opts.tun_name);
    if (!mac) return unexpected(mac.error().message());
    std::memcpy(tap_mac, mac->data(), 6);
  }
  gslots.reset(new GlobalSlot[nworkers]);
  for (unsigned i = 0; i < nworkers; ++i) {
    auto w = std::make_unique<Worker>();
    w->eng = this;
    w->idx = i;
    w->tun_fd = tun_fds[i];
    if (auto r = w->setup(); !r)
      return unexpected("worker " + std::to_string(i) + ": " + r.error());
    workers.push_back(std::move(w));
  }
  {
    std::lock_guard lk(mu);
    publish_locked();
  }
  for (auto& w : workers) {
    Worker* wp = w.get();
    // Not pinned: on a small machine the scheduler places workers next to
    // the peers they exchange packets with better than a fixed mapping.
    wp->thread = std::thread([wp] { wp->run(); });
  }
  housekeeper = std::thread([this] { housekeeping(); });
  return {};
}

void UserspaceDataplane::Impl::shutdown() {
  stop.store(true);
  hk_cv.notify_all();
  if (housekeeper.joinable()) housekeeper.join();
  for (auto& w : workers)
    if (w->thread.joinable()) w->thread.join();
  workers.clear();
  for (int fd : tun_fds) ::close(fd);
  tun_fds.clear();
  retired.clear();
  delete current.exchange(nullptr);
  if (ev_fd >= 0) ::close(ev_fd);
  ev_fd = -1;
}

// ---- public interface ----

UserspaceDataplane::UserspaceDataplane(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

UserspaceDataplane::~UserspaceDataplane() {
  impl_->shutdown();
}

Expected<std::unique_ptr<UserspaceDataplane>, std::string> UserspaceDataplane::create(
    const UserspaceOptions& opts) {
  if (opts.mtu < 576 || opts.mtu > 9000)
    return unexpected("TUN MTU " + std::to_string(opts.mtu) + " is outside 576..9000");
  if (opts.udp_port == 0) return unexpected(std::string("UDP port must not be 0"));
  auto impl = std::make_unique<Impl>();
  impl->opts = opts;
  impl->nworkers = opts.workers ? opts.workers : std::max(1u, std::thread::hardware_concurrency());
  if (impl->nworkers > 64) return unexpected(std::string("at most 64 workers"));
  if (auto r = impl->start(); !r) {
    impl->shutdown();
    return unexpected(r.error());
  }
  return std::unique_ptr<UserspaceDataplane>(new UserspaceDataplane(std::move(impl)));
}

Capabilities UserspaceDataplane::capabilities() const {
  Capabilities c;
  c.backend = "userspace";
  for (int i = 0; i <= static_cast<int>(esp::Encr::AesGcm16_256); ++i)
    if (esp::available(static_cast<esp::Encr>(i))) c.encr.push_back(static_cast<esp::Encr>(i));
  for (int i = 0; i <= static_cast<int>(esp::Integ::HmacSm3_256); ++i)
    if (esp::available(static_cast<esp::Integ>(i))) c.integ.push_back(static_cast<esp::Integ>(i));
  c.udp_encap = true;
  c.raw_esp = impl_->opts.raw_esp;
  c.esn = true;
  c.max_replay_window = 65536;
  c.owns_nat_t_port = true;
  return c;
}

Expected<uint32_t, std::string> UserspaceDataplane::allocate_spi() {
  std::lock_guard lk(impl_->mu);
  for (int tries = 0; tries < 64; ++tries) {
    uint32_t spi = 0;
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&spi), sizeof(spi)) != 1)
      return unexpected(std::string("no randomness for an SPI"));
    if (spi < 256 || impl_->in_sas.count(spi) || impl_->spis_reserved.count(spi)) continue;
    impl_->spis_reserved[spi] = true;
    return spi;
  }
  return unexpected(std::string("cannot find a free SPI"));
}

Expected<void, std::string> UserspaceDataplane::add_sa(const SaSpec& spec) {
  if (auto v = validate(spec); !v) return v;
  if (!esp::available(spec.encr))
    return unexpected("this OpenSSL does not provide " + std::string(esp::info(spec.encr).keyword));
  if (!esp::available(spec.integ))
    return unexpected("this OpenSSL does not provide " +
                      std::string(esp::info(spec.integ).keyword));
  if (spec.encap == Encap::Udp && spec.dir == Direction::In &&
      spec.local_port != impl_->opts.udp_port)
    return unexpected("inbound UDP-encapsulated SA on port " + std::to_string(spec.local_port) +
                      ", but the data path listens on " + std::to_string(impl_->opts.udp_port));
  if (spec.encap == Encap::None && !impl_->opts.raw_esp)
    return unexpected(std::string("raw ESP is disabled on this data path"));
  auto st = std::make_shared<SaState>(spec, impl_->nworkers);
  // One random GCM IV offset per SA, shared by its workers' ciphers (the
  // sequence number is shared too): nonces stay unique even when the same
  // keys are installed again with a fresh counter.
  uint64_t iv_offset = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&iv_offset), sizeof(iv_offset)) != 1)
    return unexpected(std::string("no randomness for the IV offset"));
  for (unsigned i = 0; i < impl_->nworkers; ++i) {
    auto c = esp::EspCipher::create(spec.encr, spec.integ, spec.encr_key, spec.integ_key, spec.esn);
    if (!c) return unexpected("SA " + std::to_string(spec.spi) + ": " + c.error());
    (*c)->set_iv_offset(iv_offset);
    st->ciphers.push_back(std::move(*c));
  }
  // The ciphers hold the keys now; do not keep a second copy.
  OPENSSL_cleanse(st->spec.encr_key.data(), st->spec.encr_key.size());
  OPENSSL_cleanse(st->spec.integ_key.data(), st->spec.integ_key.size());
  st->spec.encr_key.clear();
  st->spec.integ_key.clear();
  std::lock_guard lk(impl_->mu);
  auto& table = spec.dir == Direction::In ? impl_->in_sas : impl_->out_sas;
  if (table.count(spec.spi))
    return unexpected("an " + std::string(spec.dir == Direction::In ? "inbound" : "outbound") +
                      " SA with SPI " + std::to_string(spec.spi) + " exists");
  st->install_order = ++impl_->install_counter;
  table[spec.spi] = st;
  impl_->spis_reserved.erase(spec.spi);
  impl_->publish_locked();
  return {};
}

Expected<void, std::string> UserspaceDataplane::update_sa(const SaSpec& spec) {
  std::lock_guard lk(impl_->mu);
  auto& table = spec.dir == Direction::In ? impl_->in_sas : impl_->out_sas;
  auto it = table.find(spec.spi);
  if (it == table.end()) return unexpected("no SA with SPI " + std::to_string(spec.spi));
  SaSpec& cur = it->second->spec;
  if (auto r = check_update(cur, spec); !r) return r;
  if (spec.encap == Encap::Udp && spec.dir == Direction::In &&
      spec.local_port != impl_->opts.udp_port)
    return unexpected("inbound UDP-encapsulated SA on port " + std::to_string(spec.local_port) +
                      ", but the data path listens on " + std::to_string(impl_->opts.udp_port));
  if (spec.encap == Encap::None && !impl_->opts.raw_esp)
    return unexpected(std::string("raw ESP is disabled on this data path"));
  apply_update(cur, spec);
  impl_->publish_locked();
  return {};
}

Expected<void, std::string> UserspaceDataplane::delete_sa(Direction dir, uint32_t spi) {
  std::lock_guard lk(impl_->mu);
  auto& table = dir == Direction::In ? impl_->in_sas : impl_->out_sas;
  if (table.erase(spi) == 0) return unexpected("no SA with SPI " + std::to_string(spi));
  impl_->publish_locked();
  return {};
}

Expected<void, std::string> UserspaceDataplane::add_policy(const PolicySpec& p) {
  if (auto v = validate(p); !v) return v;
  std::lock_guard lk(impl_->mu);
  impl_->policies[p.id] = p;
  impl_->publish_locked();
  return {};
}

Expected<void, std::string> UserspaceDataplane::delete_policy(uint32_t id) {
  std::lock_guard lk(impl_->mu);
  if (impl_->policies.erase(id) == 0) return unexpected("no policy " + std::to_string(id));
  impl_->publish_locked();
  return {};
}

std::optional<SaCounters> UserspaceDataplane::sa_counters(Direction dir, uint32_t spi) const {
  std::lock_guard lk(impl_->mu);
  const auto& table = dir == Direction::In ? impl_->in_sas : impl_->out_sas;
  auto it = table.find(spi);
  if (it == table.end()) return std::nullopt;
  const SaState& sa = *it->second;
  const unsigned n = impl_->nworkers;
  SaCounters c;
  c.packets = sa.sum(&SaSlot::packets, n);
  c.bytes = sa.sum(&SaSlot::bytes, n);
  c.replay_drops = sa.sum(&SaSlot::replay, n);
  c.icv_failures = sa.sum(&SaSlot::icv, n);
  c.pad_errors = sa.sum(&SaSlot::pad, n);
  c.policy_mismatch = sa.sum(&SaSlot::policy, n);
  c.expired_drops = sa.sum(&SaSlot::expired, n);
  c.seq = dir == Direction::Out ? sa.next_seq.load(kRelaxed) - 1 : sa.in_top.load(kRelaxed);
  c.age_seconds = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - sa.created).count());
  c.soft_expired = sa.soft.load();
  c.hard_expired = sa.hard.load();
  return c;
}

std::optional<TunnelCounters> UserspaceDataplane::tunnel_counters(uint32_t tunnel_id) const {
  std::lock_guard lk(impl_->mu);
  auto it = impl_->tunnels.find(tunnel_id);
  if (it == impl_->tunnels.end()) return std::nullopt;
  TunnelCounters t;
  for (unsigned i = 0; i < impl_->nworkers; ++i) {
    const TunnelSlot& s = it->second->slots[i];
    t.rx_packets += s.rx_packets.load(kRelaxed);
    t.rx_bytes += s.rx_bytes.load(kRelaxed);
    t.tx_packets += s.tx_packets.load(kRelaxed);
    t.tx_bytes += s.tx_bytes.load(kRelaxed);
  }
  return t;
}

GlobalCounters UserspaceDataplane::counters() const {
  GlobalCounters c;
  for (unsigned i = 0; i < impl_->nworkers; ++i) {
    const GlobalSlot& s = impl_->gslots[i];
    c.unknown_spi += s.unknown_spi.load(kRelaxed);
    c.no_policy += s.no_policy.load(kRelaxed);
    c.no_sa += s.no_sa.load(kRelaxed);
    c.malformed += s.malformed.load(kRelaxed);
    c.bad_next_header += s.bad_next_header.load(kRelaxed);
    c.dummy_packets += s.dummy.load(kRelaxed);
    c.too_big += s.too_big.load(kRelaxed);
    c.no_buffer += s.no_buffer.load(kRelaxed);
    c.encap_mismatch += s.encap_mismatch.load(kRelaxed);
    c.keepalives_rx += s.keepalives_rx.load(kRelaxed);
    c.ike_rx += s.ike_rx.load(kRelaxed);
    c.send_errors += s.send_errors.load(kRelaxed);
  }
  c.keepalives_tx = impl_->keepalives_tx.load(kRelaxed);
  return c;
}

std::vector<Event> UserspaceDataplane::poll_events() {
  uint64_t v;
  (void)!::read(impl_->ev_fd, &v, sizeof(v));
  std::lock_guard lk(impl_->ev_mu);
  return std::exchange(impl_->events, {});
}

int UserspaceDataplane::event_fd() const {
  return impl_->ev_fd;
}

void UserspaceDataplane::set_ike_receiver(IkeReceiver r) {
  // Workers call the receiver without a lock: it may only be set before
  // traffic arrives (the IKE daemon does so right after create()).
  std::lock_guard lk(impl_->mu);
  impl_->ike = std::move(r);
}

Expected<void, std::string> UserspaceDataplane::send_ike(const Endpoint& from, const Endpoint& to,
                                                         std::span<const uint8_t> msg) {
  if (from.port != impl_->opts.udp_port)
    return unexpected("this data path owns UDP port " + std::to_string(impl_->opts.udp_port) +
                      " only");
  if (msg.size() > 65000) return unexpected(std::string("IKE message too large"));
  const bool v6 = to.addr.family == net::Family::V6;
  const int fd = impl_->workers[0]->socks[v6 ? kUdp6 : kUdp4];
  if (fd < 0) return unexpected(std::string("no socket for this address family"));
  // RFC 3948 §2.2: IKE on the ESP port starts with four zero octets.
  std::vector<uint8_t> buf(4 + msg.size(), 0);
  std::memcpy(buf.data() + 4, msg.data(), msg.size());
  SockAddr dst = make_sockaddr(to.addr, to.port);
  iovec iov{buf.data(), buf.size()};
  msghdr m{};
  m.msg_name = &dst.ss;
  m.msg_namelen = dst.len;
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  alignas(cmsghdr) uint8_t control[64]{};
  m.msg_control = control;
  m.msg_controllen = sizeof(control);
  m.msg_controllen = put_source(CMSG_FIRSTHDR(&m), from.addr);
  if (m.msg_controllen == 0) m.msg_control = nullptr;
  if (::sendmsg(fd, &m, 0) < 0) return unexpected(SysError{"send IKE", errno}.message());
  return {};
}

const std::string& UserspaceDataplane::tun_name() const {
  return impl_->opts.tun_name;
}
unsigned UserspaceDataplane::workers() const {
  return impl_->nworkers;
}

}  // namespace xgw::dp
