// The userspace ESP engine (userspace/dataplane/userspace_dataplane.h)
// through its Dataplane API with real packets: a TUN (or TAP) device, the
// engine's UDP/raw ESP sockets and test sockets standing in for the peer,
// all inside a private network namespace. Needs root; main() moves the whole
// process into a fresh network namespace first, so nothing touches the
// host's network (the ctest wrapper does the same and maps "not root" to a
// skip). A second, unnamed namespace holds the far gateway of the
// two-gateway TCP test.
#include "dataplane/userspace_dataplane.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/bytes.h"
#include "esp/cipher.h"
#include "privileged.h"

namespace xgw::dp {
namespace {

using Bytes = std::vector<uint8_t>;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// ---- small helpers ---------------------------------------------------------

net::IpAddr ip(const std::string& s) {
  auto a = net::IpAddr::parse(s);
  EXPECT_TRUE(a) << s;
  return a.value_or(net::IpAddr{});
}

net::Cidr cidr(const std::string& s) {
  auto c = net::Cidr::parse(s);
  EXPECT_TRUE(c) << s;
  return c ? *c : net::Cidr{};
}

bool ipv6_available() {
  return ::access("/proc/sys/net/ipv6", F_OK) == 0;
}

// Runs a shell command (ip ...), showing its output on failure.
bool run(const std::string& cmd) {
  std::string out;
  FILE* f = ::popen((cmd + " 2>&1").c_str(), "r");
  if (f == nullptr) return false;
  char buf[256];
  while (std::fgets(buf, sizeof buf, f) != nullptr) out += buf;
  const int rc = ::pclose(f);
  if (rc != 0) ADD_FAILURE() << "`" << cmd << "` failed (" << rc << "): " << out;
  return rc == 0;
}

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 3s) {
  const auto deadline = Clock::now() + timeout;
  while (!pred()) {
    if (Clock::now() > deadline) return pred();
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// RFC 1071 sum, byte by byte (folded, not complemented).
uint16_t sum16(const uint8_t* d, size_t n, uint32_t s = 0) {
  for (size_t i = 0; i < n; i += 2) {
    s += uint32_t{d[i]} << 8 | (i + 1 < n ? d[i + 1] : 0u);
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
  }
  return static_cast<uint16_t>(s);
}

uint16_t l4_sum(const uint8_t* pkt, size_t len, bool v6, uint8_t proto) {
  const size_t l3 = v6 ? 40 : size_t{pkt[0] & 0x0fu} * 4;
  const size_t l4 = len - l3;
  Bytes ph;
  if (v6) {
    ph.assign(pkt + 8, pkt + 40);
    ph.insert(ph.end(),
              {0, 0, static_cast<uint8_t>(l4 >> 8), static_cast<uint8_t>(l4), 0, 0, 0, proto});
  } else {
    ph.assign(pkt + 12, pkt + 20);
    ph.insert(ph.end(), {0, proto, static_cast<uint8_t>(l4 >> 8), static_cast<uint8_t>(l4)});
  }
  return sum16(pkt + l3, l4, sum16(ph.data(), ph.size()));
}

// An IPv4 or IPv6 UDP packet with valid checksums.
Bytes udp_packet(const net::IpAddr& src, uint16_t sport, const net::IpAddr& dst, uint16_t dport,
                 const Bytes& payload) {
  const bool v6 = src.family == net::Family::V6;
  const size_t l3 = v6 ? 40 : 20, l4 = 8 + payload.size();
  Bytes p(l3 + l4, 0);
  if (v6) {
    p[0] = 0x60;
    store_be16(&p[4], static_cast<uint16_t>(l4));
    p[6] = 17;
    p[7] = 64;
    std::memcpy(&p[8], src.bytes.data(), 16);
    std::memcpy(&p[24], dst.bytes.data(), 16);
  } else {
    p[0] = 0x45;
    store_be16(&p[2], static_cast<uint16_t>(p.size()));
    store_be16(&p[4], 0x4242);
    p[8] = 64;
    p[9] = 17;
    std::memcpy(&p[12], src.bytes.data(), 4);
    std::memcpy(&p[16], dst.bytes.data(), 4);
    store_be16(&p[10], static_cast<uint16_t>(~sum16(p.data(), 20)));
  }
  store_be16(&p[l3], sport);
  store_be16(&p[l3 + 2], dport);
  store_be16(&p[l3 + 4], static_cast<uint16_t>(l4));
  if (!payload.empty()) std::memcpy(&p[l3 + 8], payload.data(), payload.size());
  uint16_t c = static_cast<uint16_t>(~l4_sum(p.data(), p.size(), v6, 17));
  store_be16(&p[l3 + 6], c == 0 ? 0xffff : c);
  return p;
}

Bytes text(const std::string& s) {
  return Bytes(s.begin(), s.end());
}

Bytes random_key(size_t n) {
  static std::mt19937 rng(4303);
  Bytes k(n);
  for (auto& b : k) b = static_cast<uint8_t>(rng());
  return k;
}

struct SockAddr {
  sockaddr_storage ss{};
  socklen_t len = 0;
};

SockAddr sockaddr_of(const net::IpAddr& a, uint16_t port) {
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

Endpoint endpoint_of(const sockaddr_storage& ss) {
  Endpoint e;
  if (ss.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    e.addr.family = net::Family::V4;
    std::memcpy(e.addr.bytes.data(), &in->sin_addr, 4);
    e.port = ntohs(in->sin_port);
  } else {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    e.addr.family = net::Family::V6;
    std::memcpy(e.addr.bytes.data(), &in6->sin6_addr, 16);
    e.port = ntohs(in6->sin6_port);
  }
  return e;
}

// A datagram (UDP or raw ESP) socket.
class Sock {
 public:
  Sock(net::Family f, int type = SOCK_DGRAM, int proto = 0)
      : fd_(::socket(f == net::Family::V4 ? AF_INET : AF_INET6, type | SOCK_CLOEXEC, proto)) {
    EXPECT_GE(fd_, 0) << std::strerror(errno);
  }
  ~Sock() {
    if (fd_ >= 0) ::close(fd_);
  }
  Sock(const Sock&) = delete;
  Sock& operator=(const Sock&) = delete;

  int fd() const { return fd_; }
  bool bind(const net::IpAddr& a, uint16_t port) {
    SockAddr s = sockaddr_of(a, port);
    const bool ok = ::bind(fd_, reinterpret_cast<sockaddr*>(&s.ss), s.len) == 0;
    EXPECT_TRUE(ok) << "bind " << a.str() << ":" << port << ": " << std::strerror(errno);
    return ok;
  }
  uint16_t port() const {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len);
    return endpoint_of(ss).port;
  }
  bool send_to(const Bytes& d, const net::IpAddr& a, uint16_t port) {
    SockAddr s = sockaddr_of(a, port);
    const auto n = ::sendto(fd_, d.data(), d.size(), 0, reinterpret_cast<sockaddr*>(&s.ss), s.len);
    EXPECT_EQ(n, static_cast<ssize_t>(d.size())) << std::strerror(errno);
    return n == static_cast<ssize_t>(d.size());
  }
  // One datagram, or nullopt after `timeout`.
  std::optional<Bytes> recv(std::chrono::milliseconds timeout, Endpoint* from = nullptr) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
    Bytes b(70000);
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    const auto n = ::recvfrom(fd_, b.data(), b.size(), 0, reinterpret_cast<sockaddr*>(&ss), &len);
    if (n < 0) return std::nullopt;
    b.resize(static_cast<size_t>(n));
    if (from) *from = endpoint_of(ss);
    return b;
  }

 private:
  int fd_;
};

// Collects engine events, waiting on event_fd().
class Events {
 public:
  explicit Events(Dataplane& dp) : dp_(dp) {}
  std::optional<Event> wait(const std::function<bool(const Event&)>& pred,
                            std::chrono::milliseconds timeout = 3s) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      for (auto it = seen_.begin(); it != seen_.end(); ++it) {
        if (pred(*it)) {
          Event e = *it;
          seen_.erase(it);
          return e;
        }
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{dp_.event_fd(), POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(left.count()));
      for (Event& e : dp_.poll_events()) seen_.push_back(e);
    }
  }
  std::optional<Event> wait(Event::Kind k, std::chrono::milliseconds timeout = 3s) {
    return wait([k](const Event& e) { return e.kind == k; }, timeout);
  }
  // Everything raised so far (drains the engine).
  std::vector<Event> all() {
    for (Event& e : dp_.poll_events()) seen_.push_back(e);
    return seen_;
  }
  size_t count(Event::Kind k) {
    size_t n = 0;
    for (const Event& e : all()) n += e.kind == k;
    return n;
  }

 private:
  Dataplane& dp_;
  std::vector<Event> seen_;
};

// Reads an interface's packet counters from /proc/thread-self/net/dev (the
// calling thread's namespace; /sys/class/net would show the host's).
struct IfStats {
  uint64_t rx_packets = 0, tx_packets = 0;
};
std::optional<IfStats> if_stats(const std::string& dev) {
  std::ifstream f("/proc/thread-self/net/dev");
  std::string line;
  while (std::getline(f, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    name.erase(0, name.find_first_not_of(' '));
    if (name != dev) continue;
    std::istringstream in(line.substr(colon + 1));
    uint64_t v[10] = {};
    for (auto& x : v) in >> x;
    return IfStats{v[1], v[9]};
  }
  return std::nullopt;
}

// ---- the engine under test -------------------------------------------------

// Every test gets its own TUN name, UDP port and inner subnets: a previous
// test's engine may still be tearing down when the next one starts.
int next_index() {
  static int n = 0;
  return ++n;
}

struct Net {
  int n = 0;
  std::string tun;
  uint16_t port = 0;
  net::IpAddr tun_ip, tun_ip6;    // the gateway's own inner addresses (on the TUN)
  net::Cidr lan, remote;          // policy selectors: local -> remote subnet
  net::Cidr lan6, remote6;        //
  net::IpAddr remote_host;        // inside `remote`
  net::IpAddr remote_host6;       //
  net::IpAddr outside, outside6;  // routed into the TUN but matching no policy
  net::IpAddr remote_src;         // a host of `remote` sending to us
  net::IpAddr remote_src6;        //
  net::IpAddr stranger;           // a source no policy of the tunnel covers

  explicit Net(int i) : n(i) {
    const std::string b = std::to_string(i);
    tun = "xot" + b;
    port = static_cast<uint16_t>(20000 + i);
    tun_ip = ip("10.98." + b + ".1");
    lan = cidr("10.98." + b + ".0/24");
    remote = cidr("10.99." + b + ".0/24");
    remote_host = ip("10.99." + b + ".1");
    remote_src = ip("10.99." + b + ".5");
    outside = ip("10.97." + b + ".1");
    stranger = ip("10.97." + b + ".5");
    tun_ip6 = ip("fd00:98:" + b + "::1");
    lan6 = cidr("fd00:98:" + b + "::/64");
    remote6 = cidr("fd00:99:" + b + "::/64");
    remote_host6 = ip("fd00:99:" + b + "::1");
    remote_src6 = ip("fd00:99:" + b + "::5");
    outside6 = ip("fd00:97:" + b + "::1");
  }

  // Addresses and routes on the TUN device (the engine brought it up).
  bool configure(bool v6) const {
    bool ok = run("ip addr add " + tun_ip.str() + "/24 dev " + tun) &&
              run("ip route add " + remote.str() + " dev " + tun) &&
              run("ip route add 10.97." + std::to_string(n) + ".0/24 dev " + tun);
    if (ok && v6)
      ok = run("ip -6 addr add " + tun_ip6.str() + "/64 dev " + tun + " nodad") &&
           run("ip -6 route add " + remote6.str() + " dev " + tun) &&
           run("ip -6 route add fd00:97:" + std::to_string(n) + "::/64 dev " + tun);
    return ok;
  }
};

std::unique_ptr<UserspaceDataplane> make_engine(const Net& net, unsigned workers, bool offload,
                                                bool raw = true, std::optional<bool> tap = {}) {
  UserspaceOptions o;
  o.tun_name = net.tun;
  o.workers = workers;
  o.udp_port = net.port;
  o.tun_offload = offload;
  o.raw_esp = raw;
  if (tap) o.tap = *tap;  // otherwise the default device type
  o.ipv6 = ipv6_available();
  auto dp = UserspaceDataplane::create(o);
  EXPECT_TRUE(dp) << (dp ? "" : dp.error());
  return dp ? std::move(*dp) : nullptr;
}

// Waits until the engine's TUN device is gone (the device lives as long as
// a queue fd is open).
bool tun_gone(const std::string& name, std::chrono::milliseconds timeout = 3s) {
  return wait_until([&] { return ::if_nametoindex(name.c_str()) == 0; }, timeout);
}

enum class Alg { Gcm128, CbcSha256 };

SaSpec make_sa(uint32_t spi, Direction dir, uint32_t tunnel, Alg alg, const Bytes& ekey,
               const Bytes& ikey) {
  SaSpec sa;
  sa.name = "sa" + std::to_string(spi);
  sa.spi = spi;
  sa.dir = dir;
  sa.tunnel_id = tunnel;
  sa.local = ip("127.0.0.1");
  sa.remote = ip("127.0.0.1");
  sa.encr = alg == Alg::Gcm128 ? esp::Encr::AesGcm16_128 : esp::Encr::AesCbc256;
  sa.integ = alg == Alg::Gcm128 ? esp::Integ::None : esp::Integ::HmacSha256_128;
  sa.encr_key = ekey;
  sa.integ_key = ikey;
  sa.keepalive_seconds = 0;
  return sa;
}

// Keys and a test-side cipher for one SA.
struct Keys {
  Alg alg;
  Bytes ekey, ikey;
  std::unique_ptr<esp::EspCipher> cipher;

  explicit Keys(Alg a) : alg(a) {
    ekey = random_key(a == Alg::Gcm128 ? 20 : 32);
    if (a == Alg::CbcSha256) ikey = random_key(32);
    auto c = esp::EspCipher::create(
        a == Alg::Gcm128 ? esp::Encr::AesGcm16_128 : esp::Encr::AesCbc256,
        a == Alg::Gcm128 ? esp::Integ::None : esp::Integ::HmacSha256_128, ekey, ikey, false);
    EXPECT_TRUE(c) << (c ? "" : c.error());
    if (c) cipher = std::move(*c);
  }
  SaSpec sa(uint32_t spi, Direction dir, uint32_t tunnel) const {
    return make_sa(spi, dir, tunnel, alg, ekey, ikey);
  }
  Bytes seal(uint32_t spi, uint64_t seq, const Bytes& inner, uint8_t nh) const {
    Bytes out(inner.size() + cipher->overhead(inner.size()));
    const size_t n = cipher->seal(spi, seq, inner, nh, out);
    EXPECT_EQ(n, out.size());
    out.resize(n);
    return out;
  }
};

PolicySpec policy(uint32_t id, const net::Cidr& src, const net::Cidr& dst, uint32_t tunnel) {
  PolicySpec p;
  p.id = id;
  p.src = src;
  p.dst = dst;
  p.tunnel_id = tunnel;
  return p;
}

// Checks an inner UDP packet from the kernel: addresses, ports, payload and
// valid IP / UDP checksums.
void expect_udp(const Bytes& pkt, const net::IpAddr& src, uint16_t sport, const net::IpAddr& dst,
                uint16_t dport, const Bytes& payload) {
  const bool v6 = src.family == net::Family::V6;
  const size_t l3 = v6 ? 40 : 20;
  ASSERT_EQ(pkt.size(), l3 + 8 + payload.size());
  if (v6) {
    EXPECT_EQ(pkt[0] >> 4, 6);
    EXPECT_EQ(load_be16(&pkt[4]), pkt.size() - 40);
    EXPECT_EQ(pkt[6], 17);
    EXPECT_EQ(std::memcmp(&pkt[8], src.bytes.data(), 16), 0);
    EXPECT_EQ(std::memcmp(&pkt[24], dst.bytes.data(), 16), 0);
  } else {
    EXPECT_EQ(pkt[0], 0x45);
    EXPECT_EQ(load_be16(&pkt[2]), pkt.size());
    EXPECT_EQ(pkt[9], 17);
    EXPECT_EQ(std::memcmp(&pkt[12], src.bytes.data(), 4), 0);
    EXPECT_EQ(std::memcmp(&pkt[16], dst.bytes.data(), 4), 0);
    EXPECT_EQ(sum16(pkt.data(), 20), 0xffff) << "IPv4 header checksum";
  }
  EXPECT_EQ(load_be16(&pkt[l3]), sport);
  EXPECT_EQ(load_be16(&pkt[l3 + 2]), dport);
  EXPECT_EQ(load_be16(&pkt[l3 + 4]), 8 + payload.size());
  EXPECT_NE(load_be16(&pkt[l3 + 6]), 0) << "UDP checksum missing";
  EXPECT_EQ(l4_sum(pkt.data(), pkt.size(), v6, 17), 0xffff) << "UDP checksum";
  EXPECT_EQ(Bytes(pkt.begin() + static_cast<std::ptrdiff_t>(l3 + 8), pkt.end()), payload);
}

// ===========================================================================
// API (no traffic)

class Api : public ::testing::TestWithParam<unsigned> {
 protected:
  void SetUp() override { XGW_REQUIRE_ROOT(); }
};

TEST_P(Api, CreatesTheTunAndReportsCapabilities) {
  Net net(next_index());
  {
    auto dp = make_engine(net, GetParam(), true);
    ASSERT_TRUE(dp);
    EXPECT_EQ(dp->workers(), GetParam());
    EXPECT_EQ(dp->tun_name(), net.tun);
    ASSERT_NE(::if_nametoindex(net.tun.c_str()), 0u);
    {
      // Up, with the default MTU.
      int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      ifreq ifr{};
      std::strncpy(ifr.ifr_name, net.tun.c_str(), IFNAMSIZ - 1);
      ASSERT_EQ(::ioctl(s, SIOCGIFMTU, &ifr), 0);
      EXPECT_EQ(ifr.ifr_mtu, 1400);
      ASSERT_EQ(::ioctl(s, SIOCGIFFLAGS, &ifr), 0);
      EXPECT_TRUE(ifr.ifr_flags & IFF_UP);
      ::close(s);
    }
    const Capabilities c = dp->capabilities();
    EXPECT_EQ(c.backend, "userspace");
    auto has_encr = [&](esp::Encr e) {
      return std::find(c.encr.begin(), c.encr.end(), e) != c.encr.end();
    };
    auto has_integ = [&](esp::Integ i) {
      return std::find(c.integ.begin(), c.integ.end(), i) != c.integ.end();
    };
    EXPECT_TRUE(has_encr(esp::Encr::AesGcm16_128));
    EXPECT_TRUE(has_encr(esp::Encr::AesGcm16_256));
    EXPECT_TRUE(has_encr(esp::Encr::AesCbc128));
    EXPECT_TRUE(has_integ(esp::Integ::HmacSha256_128));
    EXPECT_TRUE(has_integ(esp::Integ::None));
    EXPECT_TRUE(c.udp_encap);
    EXPECT_TRUE(c.raw_esp);
    EXPECT_TRUE(c.esn);
    EXPECT_EQ(c.max_replay_window, 65536u);
    EXPECT_TRUE(c.owns_nat_t_port);
    EXPECT_GE(dp->event_fd(), 0);
    EXPECT_TRUE(dp->poll_events().empty());
  }
  EXPECT_TRUE(tun_gone(net.tun)) << "TUN device left behind after the engine was destroyed";
}

TEST_P(Api, CreateErrors) {
  Net net(next_index());
  UserspaceOptions o;
  o.tun_name = net.tun;
  o.workers = GetParam();
  o.udp_port = net.port;
  o.mtu = 500;
  EXPECT_FALSE(UserspaceDataplane::create(o));
  o.mtu = 9001;
  EXPECT_FALSE(UserspaceDataplane::create(o));
  o.mtu = 1400;
  o.udp_port = 0;
  EXPECT_FALSE(UserspaceDataplane::create(o));
  o.udp_port = net.port;
  o.workers = 65;
  EXPECT_FALSE(UserspaceDataplane::create(o));
  o.workers = GetParam();
  o.tun_name = "xo-name-too-long-for-ifnamsiz";
  EXPECT_FALSE(UserspaceDataplane::create(o));
  o.tun_name = net.tun;
  {
    // The port is taken (no SO_REUSEPORT): create fails and leaves no TUN.
    Sock taken(net::Family::V4);
    ASSERT_TRUE(taken.bind(net::IpAddr{}, net.port));
    auto dp = UserspaceDataplane::create(o);
    ASSERT_FALSE(dp);
    EXPECT_NE(dp.error().find(std::to_string(net.port)), std::string::npos) << dp.error();
    EXPECT_TRUE(tun_gone(net.tun)) << "a failed create left its TUN device";
  }
  auto dp = UserspaceDataplane::create(o);  // and now it works
  EXPECT_TRUE(dp) << (dp ? "" : dp.error());
}

TEST_P(Api, AllocateSpi) {
  Net net(next_index());
  auto dp = make_engine(net, GetParam(), false);
  ASSERT_TRUE(dp);
  std::set<uint32_t> seen;
  for (int i = 0; i < 2000; ++i) {
    auto spi = dp->allocate_spi();
    ASSERT_TRUE(spi) << spi.error();
    EXPECT_GE(*spi, 256u);
    EXPECT_TRUE(seen.insert(*spi).second) << "SPI " << *spi << " handed out twice";
  }
  // An allocated SPI is installed as an inbound SA; none of those SPIs
  // come back afterwards.
  Keys k(Alg::Gcm128);
  std::vector<uint32_t> installed;
  for (int i = 0; i < 8; ++i) {
    auto spi = dp->allocate_spi();
    ASSERT_TRUE(spi);
    SaSpec sa = k.sa(*spi, Direction::In, 1);
    sa.local_port = net.port;
    ASSERT_TRUE(dp->add_sa(sa));
    installed.push_back(*spi);
  }
  for (int i = 0; i < 2000; ++i) {
    auto spi = dp->allocate_spi();
    ASSERT_TRUE(spi);
    EXPECT_EQ(std::find(installed.begin(), installed.end(), *spi), installed.end());
    EXPECT_TRUE(seen.insert(*spi).second);
  }
}

TEST_P(Api, AddSaErrors) {
  Net net(next_index());
  auto dp = make_engine(net, GetParam(), true);
  ASSERT_TRUE(dp);
  Keys k(Alg::Gcm128);
  auto good_in = [&] {
    SaSpec sa = k.sa(0x5000, Direction::In, 1);
    sa.local_port = net.port;
    return sa;
  };
  auto err = [&](const SaSpec& sa, const char* what) {
    auto r = dp->add_sa(sa);
    EXPECT_FALSE(r) << what;
    return r ? std::string() : r.error();
  };

  SaSpec sa = good_in();
  sa.encr_key.resize(16);  // GCM-128 needs key + 4-byte salt
  EXPECT_NE(err(sa, "short key").find("20-byte"), std::string::npos);
  sa = good_in();
  sa.integ = esp::Integ::HmacSha256_128;
  sa.integ_key = random_key(32);
  EXPECT_NE(err(sa, "AEAD with integrity").find("AEAD"), std::string::npos);
  sa = good_in();
  sa.encr = esp::Encr::AesCbc128;  // CBC needs integrity: key length is checked first
  sa.encr_key = random_key(16);
  sa.integ = esp::Integ::HmacSha256_128;
  sa.integ_key = random_key(20);
  err(sa, "short integrity key");
  sa = good_in();
  sa.encr = esp::Encr::Null;
  sa.encr_key.clear();
  err(sa, "null encryption without integrity");
  sa = good_in();
  sa.remote = ip("::1");
  EXPECT_NE(err(sa, "mixed families").find("famil"), std::string::npos);
  sa = good_in();
  sa.spi = 255;
  err(sa, "reserved SPI");
  sa = good_in();
  sa.local_port = static_cast<uint16_t>(net.port + 1);
  EXPECT_NE(err(sa, "inbound UDP on another port").find("listens on"), std::string::npos);
  sa = good_in();
  sa.remote_port = 0;
  err(sa, "UDP without a remote port");
  sa = good_in();
  sa.replay_window = 65537;
  err(sa, "replay window too large");
  sa = good_in();
  sa.lifetime.soft_packets = 10;
  sa.lifetime.hard_packets = 5;
  err(sa, "soft lifetime above hard");

  ASSERT_TRUE(dp->add_sa(good_in()));
  EXPECT_NE(err(good_in(), "duplicate SPI").find("exists"), std::string::npos);
  // The same SPI in the other direction is a different SA.
  EXPECT_TRUE(dp->add_sa(k.sa(0x5000, Direction::Out, 1)));
  EXPECT_FALSE(dp->add_sa(k.sa(0x5000, Direction::Out, 1)));
  // Outbound SAs send from the engine's port, whatever their local_port; raw
  // ESP needs no port.
  SaSpec raw = k.sa(0x5001, Direction::In, 1);
  raw.encap = Encap::None;
  raw.local_port = raw.remote_port = 0;
  EXPECT_TRUE(dp->add_sa(raw));
  SaSpec v6 = k.sa(0x5002, Direction::In, 1);
  v6.local = ip("::1");
  v6.remote = ip("2001:db8::7");
  v6.local_port = net.port;
  EXPECT_TRUE(dp->add_sa(v6));

  // With raw ESP disabled, raw SAs are refused.
  Net net2(next_index());
  auto noraw = make_engine(net2, GetParam(), true, /*raw=*/false);
  ASSERT_TRUE(noraw);
  EXPECT_FALSE(noraw->capabilities().raw_esp);
  auto r = noraw->add_sa(raw);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("raw ESP"), std::string::npos) << r.error();
}

TEST_P(Api, PoliciesAndSaLifecycle) {
  Net net(next_index());
  auto dp = make_engine(net, GetParam(), true);
  ASSERT_TRUE(dp);
  Keys k(Alg::CbcSha256);

  EXPECT_TRUE(dp->add_policy(policy(1, net.lan, net.remote, 10)));
  EXPECT_TRUE(dp->add_policy(policy(1, net.lan, net.remote, 11)));    // replaces
  EXPECT_FALSE(dp->add_policy(policy(2, net.lan, net.remote, 0)));    // tunnel 0
  EXPECT_FALSE(dp->add_policy(policy(3, net.lan, net.remote6, 10)));  // families differ
  EXPECT_TRUE(dp->add_policy(policy(4, net.lan6, net.remote6, 10)));
  EXPECT_TRUE(dp->delete_policy(1));
  EXPECT_FALSE(dp->delete_policy(1));
  EXPECT_FALSE(dp->delete_policy(2));
  EXPECT_TRUE(dp->delete_policy(4));

  // Counters of SAs that do not exist.
  EXPECT_FALSE(dp->sa_counters(Direction::In, 0x6000));
  EXPECT_FALSE(dp->sa_counters(Direction::Out, 0x6000));
  EXPECT_FALSE(dp->tunnel_counters(4242));

  SaSpec out = k.sa(0x6000, Direction::Out, 10);
  SaSpec in = k.sa(0x6001, Direction::In, 10);
  in.local_port = net.port;
  ASSERT_TRUE(dp->add_sa(out));
  ASSERT_TRUE(dp->add_sa(in));
  auto c = dp->sa_counters(Direction::Out, 0x6000);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->packets, 0u);
  EXPECT_EQ(c->seq, 0u);
  EXPECT_FALSE(c->soft_expired);
  EXPECT_FALSE(dp->sa_counters(Direction::In, 0x6000)) << "directions are separate tables";
  ASSERT_TRUE(dp->sa_counters(Direction::In, 0x6001));
  auto t = dp->tunnel_counters(10);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->tx_packets, 0u);

  // update_sa: addresses, ports, lifetimes and encapsulation may change...
  SaSpec upd = out;
  upd.encr_key.clear();  // keys are not needed (and not changed) by an update
  upd.integ_key.clear();
  upd.remote = ip("127.0.0.2");
  upd.remote_port = 4501;
  upd.lifetime.hard_packets = 1000;
  EXPECT_TRUE(dp->update_sa(upd)) << "update with new addresses/ports/lifetimes";
  upd.remote = ip("::1");
  upd.local = ip("::1");
  EXPECT_TRUE(dp->update_sa(upd)) << "both addresses to IPv6";
  upd.local = ip("127.0.0.1");
  EXPECT_FALSE(dp->update_sa(upd)) << "mixed families";
  upd.local = ip("::1");
  // ...algorithms, ESN and the tunnel may not.
  SaSpec bad = upd;
  bad.encr = esp::Encr::AesCbc128;
  EXPECT_FALSE(dp->update_sa(bad));
  bad = upd;
  bad.integ = esp::Integ::HmacSha512_256;
  EXPECT_FALSE(dp->update_sa(bad));
  bad = upd;
  bad.esn = true;
  EXPECT_FALSE(dp->update_sa(bad));
  bad = upd;
  bad.tunnel_id = 11;
  EXPECT_FALSE(dp->update_sa(bad));
  bad = upd;
  bad.spi = 0x6002;
  EXPECT_FALSE(dp->update_sa(bad)) << "unknown SPI";
  bad = upd;
  bad.dir = Direction::In;
  EXPECT_FALSE(dp->update_sa(bad)) << "no inbound SA with that SPI";

  EXPECT_TRUE(dp->delete_sa(Direction::Out, 0x6000));
  EXPECT_FALSE(dp->sa_counters(Direction::Out, 0x6000));
  EXPECT_FALSE(dp->delete_sa(Direction::Out, 0x6000));
  EXPECT_FALSE(dp->delete_sa(Direction::Out, 0x6001)) << "0x6001 is inbound";
  EXPECT_TRUE(dp->delete_sa(Direction::In, 0x6001));
  EXPECT_FALSE(dp->sa_counters(Direction::In, 0x6001));
  // The tunnel's counters outlive its SAs (monotonic across rekeys).
  EXPECT_TRUE(dp->tunnel_counters(10));
}

INSTANTIATE_TEST_SUITE_P(Workers, Api, ::testing::Values(1u, 2u),
                         [](const auto& info) { return std::to_string(info.param) + "w"; });

// ===========================================================================
// Traffic

struct TrafficCase {
  const char* name;
  unsigned workers;
  bool offload;
  bool v6_outer;
  Alg alg;
  bool raw = false;  // raw ESP (IP protocol 50) instead of UDP 4500
  bool tap = false;  // a TAP (Ethernet, NOARP) device instead of TUN
};

class Traffic : public ::testing::TestWithParam<TrafficCase> {
 protected:
  void SetUp() override {
    XGW_REQUIRE_ROOT();
    const TrafficCase& c = GetParam();
    if (c.v6_outer && !ipv6_available()) GTEST_SKIP() << "no IPv6";
    net_ = std::make_unique<Net>(next_index());
    dp_ = make_engine(*net_, c.workers, c.offload, true, c.tap);
    ASSERT_TRUE(dp_);
    // Set before traffic arrives (the receiver is read without a lock).
    dp_->set_ike_receiver(
        [this](std::span<const uint8_t> msg, const Endpoint& from, const Endpoint& to) {
          std::lock_guard lk(ike_mu_);
          ike_msgs_.push_back({Bytes(msg.begin(), msg.end()), from, to});
          ike_cv_.notify_all();
        });
    ASSERT_TRUE(net_->configure(ipv6_available()));
    ev_ = std::make_unique<Events>(*dp_);
  }
  void TearDown() override {
    if (!dp_) return;
    const std::string tun = net_->tun;
    dp_.reset();
    EXPECT_TRUE(tun_gone(tun));
  }

  const TrafficCase& tc() const { return GetParam(); }
  net::IpAddr outer() const { return ip(tc().v6_outer ? "::1" : "127.0.0.1"); }
  net::Family outer_family() const { return tc().v6_outer ? net::Family::V6 : net::Family::V4; }
  SaSpec sa(const Keys& k, uint32_t spi, Direction dir, uint32_t tunnel, uint16_t peer_port) {
    SaSpec s = k.sa(spi, dir, tunnel);
    s.local = s.remote = outer();
    if (tc().raw) {
      s.encap = Encap::None;
      s.local_port = s.remote_port = 0;
    } else {
      s.local_port = net_->port;
      s.remote_port = peer_port;
    }
    return s;
  }
  // The peer's socket: UDP on the loopback, or a raw ESP socket.
  std::unique_ptr<Sock> peer_socket() {
    std::unique_ptr<Sock> s;
    if (tc().raw) {
      s = std::make_unique<Sock>(outer_family(), SOCK_RAW, IPPROTO_ESP);
    } else {
      s = std::make_unique<Sock>(outer_family());
      s->bind(outer(), 0);
    }
    return s;
  }
  // Raw sockets take port 0 (IPv6 raw sockets reject any other).
  void send_esp(Sock& peer, const Bytes& esp) {
    peer.send_to(esp, outer(), tc().raw ? 0 : net_->port);
  }
  // The next ESP packet with `spi` the peer receives (outer header stripped).
  std::optional<Bytes> recv_esp(Sock& peer, uint32_t spi, std::chrono::milliseconds timeout = 3s) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return std::nullopt;
      Endpoint from;
      auto d = peer.recv(left, &from);
      if (!d) return std::nullopt;
      if (tc().raw && !tc().v6_outer) {  // IPv4 raw sockets see the IP header
        const size_t ihl = size_t{(*d)[0] & 0x0fu} * 4;
        d->erase(d->begin(), d->begin() + static_cast<std::ptrdiff_t>(ihl));
      }
      if (d->size() < 8 || load_be32(d->data()) != spi) continue;  // e.g. our own sends (raw)
      EXPECT_EQ(from.addr, outer());
      if (!tc().raw) {
        EXPECT_EQ(from.port, net_->port) << "ESP must leave from the engine's port";
      }
      return d;
    }
  }
  // Opens an ESP packet with the test's cipher; checks SPI, sequence number,
  // length and next header; returns the inner packet.
  Bytes open_esp(const Keys& k, const Bytes& esp, uint32_t spi, uint64_t seq, uint8_t nh) {
    EXPECT_EQ(load_be32(&esp[0]), spi);
    EXPECT_EQ(load_be32(&esp[4]), static_cast<uint32_t>(seq));
    Bytes out(esp.size());
    size_t len = 0;
    uint8_t got_nh = 0;
    EXPECT_EQ(k.cipher->open(esp, seq, out, &len, &got_nh), esp::OpenStatus::Ok);
    out.resize(len);
    EXPECT_EQ(got_nh, nh);
    EXPECT_EQ(esp.size(), len + k.cipher->overhead(len)) << "ESP length vs EspCipher::overhead";
    return out;
  }

  struct IkeMsg {
    Bytes msg;
    Endpoint from, to;
  };
  std::optional<IkeMsg> wait_ike(std::chrono::milliseconds timeout = 3s) {
    std::unique_lock lk(ike_mu_);
    if (!ike_cv_.wait_for(lk, timeout, [&] { return !ike_msgs_.empty(); })) return std::nullopt;
    IkeMsg m = ike_msgs_.front();
    ike_msgs_.erase(ike_msgs_.begin());
    return m;
  }

  std::unique_ptr<Net> net_;
  std::unique_ptr<UserspaceDataplane> dp_;
  std::unique_ptr<Events> ev_;
  std::mutex ike_mu_;
  std::condition_variable ike_cv_;
  std::vector<IkeMsg> ike_msgs_;
};

TEST_P(Traffic, AcquireWhenThePolicyHasNoSa) {
  const Net& n = *net_;
  ASSERT_TRUE(dp_->add_policy(policy(7, n.lan, n.remote, 70)));
  Sock app(net::Family::V4);
  ASSERT_TRUE(app.bind(n.tun_ip, 5000));
  ASSERT_TRUE(app.send_to(text("who is there?"), n.remote_host, 9));

  auto acq = ev_->wait(Event::Kind::Acquire);
  ASSERT_TRUE(acq) << "no Acquire event";
  EXPECT_EQ(acq->policy_id, 7u);
  EXPECT_EQ(acq->tunnel_id, 70u);
  EXPECT_EQ(acq->src, n.tun_ip);
  EXPECT_EQ(acq->dst, n.remote_host);
  EXPECT_GE(dp_->counters().no_sa, 1u);

  // Within the second: counted, but no new acquire.
  const uint64_t before = dp_->counters().no_sa;
  ASSERT_TRUE(app.send_to(text("anyone?"), n.remote_host, 9));
  ASSERT_TRUE(wait_until([&] { return dp_->counters().no_sa > before; }));
  EXPECT_FALSE(ev_->wait(Event::Kind::Acquire, 100ms)) << "acquire not rate-limited";

  // A destination no policy covers is counted as such, with no acquire.
  const uint64_t np = dp_->counters().no_policy;
  ASSERT_TRUE(app.send_to(text("nobody"), n.outside, 9));
  EXPECT_TRUE(wait_until([&] { return dp_->counters().no_policy > np; }));
  EXPECT_FALSE(ev_->wait(Event::Kind::Acquire, 50ms));

  if (ipv6_available()) {
    ASSERT_TRUE(dp_->add_policy(policy(8, n.lan6, n.remote6, 71)));
    Sock app6(net::Family::V6);
    ASSERT_TRUE(app6.bind(n.tun_ip6, 5000));
    ASSERT_TRUE(app6.send_to(text("v6?"), n.remote_host6, 9));
    auto a6 = ev_->wait(Event::Kind::Acquire);
    ASSERT_TRUE(a6) << "no IPv6 Acquire event";
    EXPECT_EQ(a6->policy_id, 8u);
    EXPECT_EQ(a6->tunnel_id, 71u);
    EXPECT_EQ(a6->src, n.tun_ip6);
    EXPECT_EQ(a6->dst, n.remote_host6);
  }
  EXPECT_EQ(dp_->counters().malformed, 0u);
}

TEST_P(Traffic, OutboundEsp) {
  const Net& n = *net_;
  auto peer = peer_socket();
  Keys k(tc().alg);
  const uint32_t spi = 0x2001;
  ASSERT_TRUE(dp_->add_policy(policy(7, n.lan, n.remote, 70)));
  ASSERT_TRUE(dp_->add_sa(sa(k, spi, Direction::Out, 70, peer->port())));

  Sock app(net::Family::V4);
  ASSERT_TRUE(app.bind(n.tun_ip, 5000));
  uint64_t inner_bytes = 0;
  for (uint64_t seq = 1; seq <= 2; ++seq) {
    SCOPED_TRACE("packet " + std::to_string(seq));
    const Bytes payload = text("hello through the tunnel #" + std::to_string(seq));
    ASSERT_TRUE(app.send_to(payload, n.remote_host, 9));
    auto esp = recv_esp(*peer, spi);
    ASSERT_TRUE(esp) << "no ESP packet";
    const Bytes inner = open_esp(k, *esp, spi, seq, 4);
    expect_udp(inner, n.tun_ip, 5000, n.remote_host, 9, payload);
    inner_bytes += inner.size();
  }
  uint64_t seq = 2;
  if (ipv6_available()) {  // IPv6 inner packets on the same tunnel
    ASSERT_TRUE(dp_->add_policy(policy(8, n.lan6, n.remote6, 70)));
    Sock app6(net::Family::V6);
    ASSERT_TRUE(app6.bind(n.tun_ip6, 5000));
    const Bytes payload = text("hello over IPv6");
    ASSERT_TRUE(app6.send_to(payload, n.remote_host6, 9));
    auto esp = recv_esp(*peer, spi);
    ASSERT_TRUE(esp) << "no ESP packet for IPv6";
    const Bytes inner = open_esp(k, *esp, spi, ++seq, 41);
    expect_udp(inner, n.tun_ip6, 5000, n.remote_host6, 9, payload);
    inner_bytes += inner.size();
  }
  // A burst of equal-sized packets (UDP GSO batches on the engine side):
  // every one arrives once, in sequence.
  const Bytes burst(1000, 0x5a);
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(app.send_to(burst, n.remote_host, 9));
  }
  std::set<uint64_t> seqs;
  for (int i = 0; i < 30; ++i) {
    auto esp = recv_esp(*peer, spi);
    ASSERT_TRUE(esp) << "burst packet " << i << " missing";
    const uint64_t s = load_be32(&(*esp)[4]);
    EXPECT_TRUE(seqs.insert(s).second);
    const Bytes inner = open_esp(k, *esp, spi, s, 4);
    expect_udp(inner, n.tun_ip, 5000, n.remote_host, 9, burst);
    inner_bytes += inner.size();
  }
  EXPECT_EQ(*seqs.begin(), seq + 1);
  EXPECT_EQ(*seqs.rbegin(), seq + 30);
  seq += 30;

  auto c = dp_->sa_counters(Direction::Out, spi);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->packets, seq);
  EXPECT_EQ(c->bytes, inner_bytes);
  EXPECT_EQ(c->seq, seq);
  auto t = dp_->tunnel_counters(70);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->tx_packets, seq);
  EXPECT_EQ(t->tx_bytes, inner_bytes);
  EXPECT_EQ(ev_->count(Event::Kind::Acquire), 0u);
  const GlobalCounters g = dp_->counters();
  EXPECT_EQ(g.malformed, 0u);
  EXPECT_EQ(g.send_errors, 0u);
  EXPECT_EQ(g.no_sa, 0u);
}

TEST_P(Traffic, RekeyAndUpdateSa) {
  const Net& n = *net_;
  auto peer = peer_socket();
  Keys k1(tc().alg), k2(tc().alg);
  ASSERT_TRUE(dp_->add_policy(policy(7, n.lan, n.remote, 70)));
  ASSERT_TRUE(dp_->add_sa(sa(k1, 0x2001, Direction::Out, 70, peer->port())));
  Sock app(net::Family::V4);
  ASSERT_TRUE(app.bind(n.tun_ip, 5000));
  auto send_and_open = [&](const Keys& k, Sock& rx, uint32_t spi, uint64_t seq) {
    const Bytes payload = text("rekey " + std::to_string(spi) + "/" + std::to_string(seq));
    ASSERT_TRUE(app.send_to(payload, n.remote_host, 9));
    auto esp = recv_esp(rx, spi);
    ASSERT_TRUE(esp) << "no ESP with SPI " << spi << " seq " << seq;
    expect_udp(open_esp(k, *esp, spi, seq, 4), n.tun_ip, 5000, n.remote_host, 9, payload);
  };
  send_and_open(k1, *peer, 0x2001, 1);
  // Make before break: the newest SA of the tunnel carries the traffic.
  ASSERT_TRUE(dp_->add_sa(sa(k2, 0x2002, Direction::Out, 70, peer->port())));
  send_and_open(k2, *peer, 0x2002, 1);
  send_and_open(k2, *peer, 0x2002, 2);
  ASSERT_TRUE(dp_->delete_sa(Direction::Out, 0x2002));
  send_and_open(k1, *peer, 0x2001, 2);  // back on the old one, its counter intact
  EXPECT_EQ(dp_->tunnel_counters(70)->tx_packets, 4u);

  if (!tc().raw) {
    // update_sa: a new peer port (NAT mapping change); sequence and keys stay.
    auto peer2 = peer_socket();
    SaSpec upd = sa(k1, 0x2001, Direction::Out, 70, peer2->port());
    upd.encr_key.clear();
    upd.integ_key.clear();
    ASSERT_TRUE(dp_->update_sa(upd));
    send_and_open(k1, *peer2, 0x2001, 3);
    EXPECT_FALSE(peer->recv(50ms)) << "the old peer port still gets packets";
  }
  // No SA left: back to acquires.
  ASSERT_TRUE(dp_->delete_sa(Direction::Out, 0x2001));
  ASSERT_TRUE(app.send_to(text("x"), n.remote_host, 9));
  EXPECT_TRUE(ev_->wait(Event::Kind::Acquire));
}

TEST_P(Traffic, InboundEsp) {
  const Net& n = *net_;
  auto peer = peer_socket();
  Keys k(tc().alg);
  ASSERT_TRUE(dp_->add_policy(policy(7, n.lan, n.remote, 70)));
  if (ipv6_available()) {
    ASSERT_TRUE(dp_->add_policy(policy(8, n.lan6, n.remote6, 70)));
  }
  // Two SPIs of different parity: with two workers, each worker owns one.
  const uint32_t spis[] = {0x3001, 0x3002};
  for (uint32_t spi : spis) {
    ASSERT_TRUE(dp_->add_sa(sa(k, spi, Direction::In, 70, peer->port())));
  }
  Sock app(net::Family::V4);
  ASSERT_TRUE(app.bind(n.tun_ip, 6000));

  uint64_t delivered = 0, bytes = 0;
  for (uint32_t spi : spis) {
    SCOPED_TRACE("SPI " + std::to_string(spi));
    for (uint64_t seq = 1; seq <= 2; ++seq) {
      const Bytes payload = text("inbound " + std::to_string(spi) + "#" + std::to_string(seq));
      const Bytes inner = udp_packet(n.remote_src, 7000, n.tun_ip, 6000, payload);
      const Bytes esp = k.seal(spi, seq, inner, 4);
      send_esp(*peer, esp);
      Endpoint from;
      auto got = app.recv(3s, &from);
      ASSERT_TRUE(got) << "inner packet not delivered through the TUN";
      EXPECT_EQ(*got, payload);
      EXPECT_EQ(from.addr, n.remote_src);
      EXPECT_EQ(from.port, 7000);
      ++delivered;
      bytes += inner.size();
      auto c = dp_->sa_counters(Direction::In, spi);
      ASSERT_TRUE(c);
      EXPECT_EQ(c->packets, seq);
      EXPECT_EQ(c->seq, seq);

      // The same datagram again is a replay.
      const uint64_t replays = c->replay_drops;
      send_esp(*peer, esp);
      EXPECT_TRUE(wait_until([&] {
        return dp_->sa_counters(Direction::In, spi)->replay_drops == replays + 1;
      })) << "replay not counted";
      EXPECT_FALSE(app.recv(20ms)) << "a replayed packet was delivered";
    }
  }
  auto t = dp_->tunnel_counters(70);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->rx_packets, delivered);
  EXPECT_EQ(t->rx_bytes, bytes);

  const uint32_t spi = spis[0];
  uint64_t seq = 2;
  if (ipv6_available()) {  // an IPv6 inner packet
    Sock app6(net::Family::V6);
    ASSERT_TRUE(app6.bind(n.tun_ip6, 6000));
    const Bytes payload = text("inbound over IPv6");
    send_esp(*peer,
             k.seal(spi, ++seq, udp_packet(n.remote_src6, 7000, n.tun_ip6, 6000, payload), 41));
    auto got = app6.recv(3s);
    ASSERT_TRUE(got) << "IPv6 inner packet not delivered";
    EXPECT_EQ(*got, payload);
  }
  const Bytes inner = udp_packet(n.remote_src, 7000, n.tun_ip, 6000, text("tampered"));
  {
    Bytes esp = k.seal(spi, ++seq, inner, 4);
    esp.back() ^= 1;  // ICV
    send_esp(*peer, esp);
    EXPECT_TRUE(
        wait_until([&] { return dp_->sa_counters(Direction::In, spi)->icv_failures == 1; }));
  }
  {
    const uint64_t unknown = dp_->counters().unknown_spi;
    send_esp(*peer, k.seal(0x3999, 1, inner, 4));
    EXPECT_TRUE(wait_until([&] { return dp_->counters().unknown_spi > unknown; }));
  }
  {
    // RFC 4301 §5.2: an inner source outside the tunnel's remote selectors.
    send_esp(*peer, k.seal(spi, ++seq, udp_packet(n.stranger, 7000, n.tun_ip, 6000, text("?")), 4));
    EXPECT_TRUE(
        wait_until([&] { return dp_->sa_counters(Direction::In, spi)->policy_mismatch == 1; }));
  }
  {
    // TFC dummy packet (next header 59) and a payload that is not IP.
    const GlobalCounters g = dp_->counters();
    send_esp(*peer, k.seal(spi, ++seq, Bytes(40, 0), 59));
    send_esp(*peer, k.seal(spi, ++seq, Bytes(40, 0xee), 4));
    EXPECT_TRUE(wait_until([&] {
      const GlobalCounters now = dp_->counters();
      return now.dummy_packets == g.dummy_packets + 1 &&
             now.bad_next_header == g.bad_next_header + 1;
    }));
  }
  EXPECT_FALSE(app.recv(20ms)) << "a dropped packet reached the application";
  {
    // A truncated ESP packet.
    const uint64_t m = dp_->counters().malformed;
    send_esp(*peer, Bytes{0, 0, 0x30, 0x01, 0});
    EXPECT_TRUE(wait_until([&] { return dp_->counters().malformed > m; }));
  }
  if (!tc().raw) {
    // The peer shows up from another port: reported once, still delivered.
    auto moved = peer_socket();
    const Bytes payload = text("after NAT rebinding");
    const Bytes esp =
        k.seal(spi, ++seq, udp_packet(n.remote_src, 7000, n.tun_ip, 6000, payload), 4);
    moved->send_to(esp, outer(), n.port);
    auto got = app.recv(3s);
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, payload);
    auto ev = ev_->wait(Event::Kind::NatMapping);
    ASSERT_TRUE(ev) << "no NatMapping event";
    EXPECT_EQ(ev->spi, spi);
    EXPECT_EQ(ev->dir, Direction::In);
    EXPECT_EQ(ev->tunnel_id, 70u);
    EXPECT_EQ(ev->new_addr, outer());
    EXPECT_EQ(ev->new_port, moved->port());
    moved->send_to(k.seal(spi, ++seq, inner, 4), outer(), n.port);
    ASSERT_TRUE(app.recv(3s));
    EXPECT_FALSE(ev_->wait(Event::Kind::NatMapping, 50ms)) << "the same mapping reported twice";
  }
  const GlobalCounters g = dp_->counters();
  EXPECT_EQ(g.send_errors, 0u);
  EXPECT_EQ(g.no_buffer, 0u);
}

TEST_P(Traffic, IkeAndKeepalivesShareThePort) {
  if (tc().raw) GTEST_SKIP() << "UDP only";
  const Net& n = *net_;
  Sock peer(outer_family());
  ASSERT_TRUE(peer.bind(outer(), 0));

  // Non-ESP marker: the receiver gets the message without it.
  const Bytes ike = text("IKE_SA_INIT request");
  Bytes wire = {0, 0, 0, 0};
  wire.insert(wire.end(), ike.begin(), ike.end());
  ASSERT_TRUE(peer.send_to(wire, outer(), n.port));
  auto m = wait_ike();
  ASSERT_TRUE(m) << "IKE receiver not called";
  EXPECT_EQ(m->msg, ike);
  EXPECT_EQ(m->from.addr, outer());
  EXPECT_EQ(m->from.port, peer.port());
  EXPECT_EQ(m->to.addr, outer());
  EXPECT_EQ(m->to.port, n.port);
  EXPECT_EQ(dp_->counters().ike_rx, 1u);

  // An empty IKE payload after the marker is still IKE, not ESP.
  ASSERT_TRUE(peer.send_to(Bytes{0, 0, 0, 0}, outer(), n.port));
  m = wait_ike();
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->msg.empty());

  // NAT keepalive (RFC 3948 §2.3).
  ASSERT_TRUE(peer.send_to(Bytes{0xff}, outer(), n.port));
  EXPECT_TRUE(wait_until([&] { return dp_->counters().keepalives_rx == 1; }));
  EXPECT_FALSE(wait_ike(20ms));
  EXPECT_EQ(dp_->counters().unknown_spi, 0u);

  // send_ike prepends the marker and leaves from the engine's port.
  const Bytes reply = text("IKE_SA_INIT response");
  Endpoint from{outer(), n.port}, to{outer(), peer.port()};
  ASSERT_TRUE(dp_->send_ike(from, to, reply));
  Endpoint src;
  auto got = peer.recv(3s, &src);
  ASSERT_TRUE(got);
  Bytes want = {0, 0, 0, 0};
  want.insert(want.end(), reply.begin(), reply.end());
  EXPECT_EQ(*got, want);
  EXPECT_EQ(src.port, n.port);
  EXPECT_EQ(src.addr, outer());
  // From the wildcard address too.
  Endpoint any{net::IpAddr{outer_family(), {}}, n.port};
  ASSERT_TRUE(dp_->send_ike(any, to, reply));
  ASSERT_TRUE(peer.recv(3s, &src));
  EXPECT_EQ(src.port, n.port);
  // Only from the engine's own port.
  Endpoint other{outer(), static_cast<uint16_t>(n.port + 1)};
  EXPECT_FALSE(dp_->send_ike(other, to, reply));
}

TEST_P(Traffic, PacketLifetimes) {
  const Net& n = *net_;
  auto peer = peer_socket();
  Keys k(tc().alg);
  ASSERT_TRUE(dp_->add_policy(policy(7, n.lan, n.remote, 70)));
  SaSpec out = sa(k, 0x4001, Direction::Out, 70, peer->port());
  out.lifetime.soft_packets = 2;
  out.lifetime.hard_packets = 3;
  ASSERT_TRUE(dp_->add_sa(out));
  Sock app(net::Family::V4);
  ASSERT_TRUE(app.bind(n.tun_ip, 5000));

  for (uint64_t seq = 1; seq <= 3; ++seq) {
    ASSERT_TRUE(app.send_to(text("p"), n.remote_host, 9));
    ASSERT_TRUE(recv_esp(*peer, 0x4001)) << "packet " << seq << " not sent";
    if (seq == 1) {
      EXPECT_FALSE(ev_->wait(Event::Kind::SoftExpire, 20ms));
    }
  }
  auto soft = ev_->wait(Event::Kind::SoftExpire);
  ASSERT_TRUE(soft);
  EXPECT_EQ(soft->limit, Event::Limit::Packets);
  EXPECT_EQ(soft->dir, Direction::Out);
  EXPECT_EQ(soft->spi, 0x4001u);
  EXPECT_EQ(soft->tunnel_id, 70u);
  auto hard = ev_->wait(Event::Kind::HardExpire);
  ASSERT_TRUE(hard);
  EXPECT_EQ(hard->limit, Event::Limit::Packets);
  EXPECT_EQ(hard->spi, 0x4001u);
  EXPECT_EQ(hard->dir, Direction::Out);

  ASSERT_TRUE(app.send_to(text("too late"), n.remote_host, 9));
  EXPECT_TRUE(
      wait_until([&] { return dp_->sa_counters(Direction::Out, 0x4001)->expired_drops == 1; }));
  EXPECT_FALSE(recv_esp(*peer, 0x4001, 50ms)) << "a packet left on a hard-expired SA";
  auto c = dp_->sa_counters(Direction::Out, 0x4001);
  EXPECT_EQ(c->packets, 3u);
  EXPECT_TRUE(c->soft_expired);
  EXPECT_TRUE(c->hard_expired);
  EXPECT_EQ(ev_->count(Event::Kind::SoftExpire), 0u) << "soft expiry raised twice";
  EXPECT_EQ(ev_->count(Event::Kind::HardExpire), 0u) << "hard expiry raised twice";

  // Inbound by bytes: the second packet crosses the hard limit and is the
  // last one delivered.
  SaSpec in = sa(k, 0x4002, Direction::In, 70, peer->port());
  const Bytes inner = udp_packet(n.remote_src, 7000, n.tun_ip, 6000, Bytes(100, 1));
  in.lifetime.soft_bytes = inner.size();
  in.lifetime.hard_bytes = 2 * inner.size();
  ASSERT_TRUE(dp_->add_sa(in));
  Sock rx(net::Family::V4);
  ASSERT_TRUE(rx.bind(n.tun_ip, 6000));
  for (uint64_t seq = 1; seq <= 3; ++seq) send_esp(*peer, k.seal(0x4002, seq, inner, 4));
  EXPECT_TRUE(rx.recv(3s));
  EXPECT_TRUE(rx.recv(3s));
  EXPECT_FALSE(rx.recv(50ms)) << "delivered after the hard byte limit";
  auto is = ev_->wait([](const Event& e) { return e.kind == Event::Kind::SoftExpire; });
  ASSERT_TRUE(is);
  EXPECT_EQ(is->limit, Event::Limit::Bytes);
  EXPECT_EQ(is->dir, Direction::In);
  EXPECT_EQ(is->spi, 0x4002u);
  auto ih = ev_->wait(Event::Kind::HardExpire);
  ASSERT_TRUE(ih);
  EXPECT_EQ(ih->limit, Event::Limit::Bytes);
  EXPECT_EQ(ih->dir, Direction::In);
  EXPECT_TRUE(
      wait_until([&] { return dp_->sa_counters(Direction::In, 0x4002)->expired_drops == 1; }));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, Traffic,
    ::testing::Values(TrafficCase{"gcm_1w_offload", 1, true, false, Alg::Gcm128},
                      TrafficCase{"gcm_2w_offload", 2, true, false, Alg::Gcm128},
                      TrafficCase{"gcm_1w_plain", 1, false, false, Alg::Gcm128},
                      TrafficCase{"gcm_2w_plain_v6outer", 2, false, true, Alg::Gcm128},
                      TrafficCase{"cbc_1w_offload_v6outer", 1, true, true, Alg::CbcSha256},
                      TrafficCase{"cbc_2w_offload", 2, true, false, Alg::CbcSha256},
                      TrafficCase{"gcm_2w_raw", 2, true, false, Alg::Gcm128, true},
                      TrafficCase{"gcm_1w_raw_v6outer", 1, true, true, Alg::Gcm128, true},
                      TrafficCase{"tap_gcm_2w_offload", 2, true, false, Alg::Gcm128, false, true},
                      TrafficCase{"tap_cbc_1w_plain_v6outer", 1, false, true, Alg::CbcSha256, false,
                                  true},
                      TrafficCase{"tap_gcm_1w_raw", 1, true, false, Alg::Gcm128, true, true}),
    [](const auto& info) { return std::string(info.param.name); });

// RFC 3948 §2.3: an idle outbound UDP SA sends 0xFF keepalives from the
// engine's port; one that carries traffic does not need them.
TEST(TrafficTime, NatKeepalivesWhenIdle) {
  XGW_REQUIRE_ROOT();
  Net net(next_index());
  auto dp = make_engine(net, 2, true);
  ASSERT_TRUE(dp);
  Sock peer(net::Family::V4);
  ASSERT_TRUE(peer.bind(ip("127.0.0.1"), 0));
  Keys k(Alg::Gcm128);
  SaSpec out = k.sa(0x7002, Direction::Out, 1);
  out.remote_port = peer.port();
  out.keepalive_seconds = 1;
  SaSpec quiet = k.sa(0x7003, Direction::Out, 2);  // keepalives off
  quiet.remote_port = peer.port();
  quiet.keepalive_seconds = 0;
  ASSERT_TRUE(dp->add_sa(out));
  ASSERT_TRUE(dp->add_sa(quiet));
  const auto t0 = Clock::now();
  Endpoint from;
  auto ka = peer.recv(3s, &from);
  ASSERT_TRUE(ka) << "no keepalive";
  EXPECT_EQ(*ka, Bytes{0xff});
  EXPECT_EQ(from.port, net.port);
  EXPECT_GE(Clock::now() - t0, 900ms);
  EXPECT_TRUE(wait_until([&] { return dp->counters().keepalives_tx == 1; }));
  EXPECT_FALSE(peer.recv(700ms)) << "keepalives more often than keepalive_seconds";
}

// Time lifetimes come from the housekeeping thread (every 200 ms).
TEST(TrafficTime, SoftThenHardBySeconds) {
  XGW_REQUIRE_ROOT();
  Net net(next_index());
  auto dp = make_engine(net, 1, true);
  ASSERT_TRUE(dp);
  Keys k(Alg::Gcm128);
  SaSpec in = k.sa(0x7001, Direction::In, 1);
  in.local_port = net.port;
  in.lifetime.soft_seconds = 1;
  in.lifetime.hard_seconds = 2;
  ASSERT_TRUE(dp->add_sa(in));
  Events ev(*dp);
  const auto t0 = Clock::now();
  auto soft = ev.wait(Event::Kind::SoftExpire, 3s);
  ASSERT_TRUE(soft);
  EXPECT_EQ(soft->limit, Event::Limit::Time);
  EXPECT_EQ(soft->spi, 0x7001u);
  EXPECT_GE(Clock::now() - t0, 900ms);
  auto hard = ev.wait(Event::Kind::HardExpire, 3s);
  ASSERT_TRUE(hard);
  EXPECT_EQ(hard->limit, Event::Limit::Time);
  EXPECT_GE(Clock::now() - t0, 1900ms);
  EXPECT_TRUE(dp->sa_counters(Direction::In, 0x7001)->hard_expired);
}

// ===========================================================================
// Two gateways, two namespaces: TCP through the tunnel

// A new, unnamed network namespace (an fd); the caller stays where it was.
int new_netns() {
  const int self = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0 || ::unshare(CLONE_NEWNET) != 0) return -1;
  const int fd = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  ::setns(self, CLONE_NEWNET);
  ::close(self);
  return fd;
}

// The calling thread works in another namespace for a scope: sockets,
// TUN devices, threads and `ip` commands started meanwhile belong to it.
class InNetns {
 public:
  explicit InNetns(int fd) : back_(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) {
    EXPECT_EQ(::setns(fd, CLONE_NEWNET), 0) << std::strerror(errno);
  }
  ~InNetns() {
    ::setns(back_, CLONE_NEWNET);
    ::close(back_);
  }
  InNetns(const InNetns&) = delete;
  InNetns& operator=(const InNetns&) = delete;

 private:
  int back_;
};

uint64_t fnv1a(const uint8_t* p, size_t n, uint64_t h = 1469598103934665603ull) {
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

Bytes pattern(size_t n, uint32_t seed) {
  Bytes b(n);
  std::mt19937 rng(seed);
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  return b;
}

void set_timeouts(int fd, int seconds) {
  timeval tv{seconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

bool send_all(int fd, const Bytes& b) {
  size_t off = 0;
  while (off < b.size()) {
    const auto n =
        ::send(fd, b.data() + off, std::min<size_t>(b.size() - off, 256 * 1024), MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// Reads exactly `n` bytes; returns their hash, or nullopt on error/EOF.
std::optional<uint64_t> recv_hash(int fd, size_t n) {
  Bytes buf(256 * 1024);
  uint64_t h = 1469598103934665603ull;
  size_t got = 0;
  while (got < n) {
    const auto r = ::recv(fd, buf.data(), std::min(buf.size(), n - got), 0);
    if (r <= 0) return std::nullopt;
    h = fnv1a(buf.data(), static_cast<size_t>(r), h);
    got += static_cast<size_t>(r);
  }
  return h;
}

struct GwCase {
  const char* name;
  unsigned workers;
  bool offload;
  bool tap = false;
};

class TwoGateways : public ::testing::TestWithParam<GwCase> {
 protected:
  void SetUp() override { XGW_REQUIRE_ROOT(); }
};

//   A (this namespace)                           B (new namespace)
//   app 10.98.n.1 -- TUN xotN [engine A] 192.0.2.1 == veth == 192.0.2.2
//   [engine B] TUN xobN -- app 10.99.n.1
TEST_P(TwoGateways, TcpBothWays) {
  const GwCase& c = GetParam();
  const int i = next_index();
  const std::string b = std::to_string(i);
  const std::string tun_a = "xot" + b, tun_b = "xob" + b;
  const std::string veth_a = "xova" + b, veth_b = "xovb" + b;
  const uint16_t port_a = static_cast<uint16_t>(20000 + i), port_b = 4500;
  const net::IpAddr wan_a = ip("192.0.2.1"), wan_b = ip("192.0.2.2");
  const net::IpAddr host_a = ip("10.98." + b + ".1"), host_b = ip("10.99." + b + ".1");
  const net::Cidr net_a = cidr("10.98." + b + ".0/24"), net_b = cidr("10.99." + b + ".0/24");

  const int ns_b = new_netns();
  ASSERT_GE(ns_b, 0) << std::strerror(errno);
  struct CloseFd {
    int fd;
    ~CloseFd() { ::close(fd); }
  } close_ns{ns_b};

  ASSERT_TRUE(run("ip link add " + veth_a + " type veth peer name " + veth_b + " netns /proc/" +
                  std::to_string(::getpid()) + "/fd/" + std::to_string(ns_b)));
  ASSERT_TRUE(run("ip addr add 192.0.2.1/24 dev " + veth_a) &&
              run("ip link set " + veth_a + " up"));
  {
    InNetns in_b(ns_b);
    ASSERT_TRUE(run("ip link set lo up") && run("ip addr add 192.0.2.2/24 dev " + veth_b) &&
                run("ip link set " + veth_b + " up"));
  }

  auto make = [&](const std::string& tun, uint16_t port) {
    UserspaceOptions o;
    o.tun_name = tun;
    o.workers = c.workers;
    o.udp_port = port;
    o.tun_offload = c.offload;
    o.tap = c.tap;
    o.raw_esp = false;
    o.ipv6 = false;
    auto dp = UserspaceDataplane::create(o);
    EXPECT_TRUE(dp) << (dp ? "" : dp.error());
    return dp ? std::move(*dp) : nullptr;
  };
  Keys k_ab(Alg::Gcm128), k_ba(Alg::Gcm128);
  auto program = [&](UserspaceDataplane& dp, bool is_a) {
    const net::IpAddr me = is_a ? wan_a : wan_b, peer = is_a ? wan_b : wan_a;
    const uint16_t my_port = is_a ? port_a : port_b, peer_port = is_a ? port_b : port_a;
    ASSERT_TRUE(dp.add_policy(policy(1, is_a ? net_a : net_b, is_a ? net_b : net_a, 1)));
    for (Direction d : {Direction::Out, Direction::In}) {
      const bool ab = is_a == (d == Direction::Out);
      SaSpec s = (ab ? k_ab : k_ba).sa(ab ? 0x1001 : 0x2002, d, 1);
      s.local = me;
      s.remote = peer;
      s.local_port = my_port;
      s.remote_port = peer_port;
      ASSERT_TRUE(dp.add_sa(s));
    }
  };

  auto dp_a = make(tun_a, port_a);
  ASSERT_TRUE(dp_a);
  program(*dp_a, true);
  ASSERT_TRUE(run("ip addr add " + host_a.str() + "/24 dev " + tun_a) &&
              run("ip route add " + net_b.str() + " dev " + tun_a));
  std::unique_ptr<UserspaceDataplane> dp_b;
  int listener = -1;
  {
    InNetns in_b(ns_b);
    dp_b = make(tun_b, port_b);
    ASSERT_TRUE(dp_b);
    program(*dp_b, false);
    ASSERT_TRUE(run("ip addr add " + host_b.str() + "/24 dev " + tun_b) &&
                run("ip route add " + net_a.str() + " dev " + tun_b));
    listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  }
  struct CloseFd close_listener {
    listener
  };
  const int one = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  SockAddr la = sockaddr_of(host_b, 5201);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&la.ss), la.len), 0)
      << std::strerror(errno);
  ASSERT_EQ(::listen(listener, 1), 0);

  constexpr size_t kUp = 8 << 20, kDown = 2 << 20;
  const Bytes up = pattern(kUp, 1), down = pattern(kDown, 2);
  std::atomic<bool> server_ok{false};
  std::thread server([&] {
    pollfd p{listener, POLLIN, 0};
    if (::poll(&p, 1, 8000) != 1) return;
    const int s = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (s < 0) return;
    set_timeouts(s, 8);
    const auto h = recv_hash(s, kUp);
    const bool ok = h && *h == fnv1a(up.data(), up.size()) && send_all(s, down);
    ::shutdown(s, SHUT_WR);
    char x;
    (void)!::recv(s, &x, 1, 0);  // wait for the client's close
    ::close(s);
    server_ok = ok;
  });

  const auto t0 = Clock::now();
  const int cl = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  set_timeouts(cl, 8);
  SockAddr sa = sockaddr_of(host_b, 5201);
  const bool connected = ::connect(cl, reinterpret_cast<sockaddr*>(&sa.ss), sa.len) == 0;
  EXPECT_TRUE(connected) << std::strerror(errno);
  bool sent = false;
  std::optional<uint64_t> back;
  if (connected) {
    sent = send_all(cl, up);
    back = recv_hash(cl, kDown);
  }
  ::close(cl);
  server.join();
  const auto secs = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_TRUE(sent) << "client could not send " << kUp << " bytes";
  EXPECT_TRUE(server_ok) << "server did not get the client's bytes intact";
  ASSERT_TRUE(back) << "client did not get the server's bytes";
  EXPECT_EQ(*back, fnv1a(down.data(), down.size()));

  const auto out_a = dp_a->sa_counters(Direction::Out, 0x1001);
  const auto in_b = dp_b->sa_counters(Direction::In, 0x1001);
  const auto out_b = dp_b->sa_counters(Direction::Out, 0x2002);
  const auto in_a = dp_a->sa_counters(Direction::In, 0x2002);
  ASSERT_TRUE(out_a && in_b && out_b && in_a);
  const GlobalCounters ga = dp_a->counters(), gb = dp_b->counters();
  const auto tun_stats_a = if_stats(tun_a);
  std::optional<IfStats> tun_stats_b;
  {
    InNetns in_b(ns_b);
    tun_stats_b = if_stats(tun_b);
  }
  ASSERT_TRUE(tun_stats_a && tun_stats_b);
  std::printf(
      "  %.2f s; A->B: %llu ESP packets from %llu TUN reads, %llu TUN writes at B; "
      "B->A: %llu ESP packets, %llu TUN writes at A; send errors A %llu B %llu\n",
      secs, static_cast<unsigned long long>(out_a->packets),
      static_cast<unsigned long long>(tun_stats_a->tx_packets),
      static_cast<unsigned long long>(tun_stats_b->rx_packets),
      static_cast<unsigned long long>(out_b->packets),
      static_cast<unsigned long long>(tun_stats_a->rx_packets),
      static_cast<unsigned long long>(ga.send_errors),
      static_cast<unsigned long long>(gb.send_errors));
  EXPECT_EQ(ga.malformed, 0u);
  EXPECT_EQ(gb.malformed, 0u);
  EXPECT_EQ(in_b->icv_failures + in_b->policy_mismatch + in_a->icv_failures + in_a->policy_mismatch,
            0u);
  EXPECT_GE(out_a->bytes, kUp);
  EXPECT_GE(out_b->bytes, kDown);
  // Every ESP packet A sent arrived at B (a loss-free veth), give or take
  // replays of none: the inbound count can only trail by drops.
  EXPECT_LE(in_b->packets, out_a->packets);
  if (c.offload) {
    // TSO: the kernel handed A fewer, larger packets than A sent ESP packets.
    EXPECT_LT(tun_stats_a->tx_packets, out_a->packets) << "no TSO super-packets were segmented";
    // GRO: B wrote fewer packets to its TUN than it decrypted.
    EXPECT_LT(tun_stats_b->rx_packets, in_b->packets) << "no segments were coalesced";
  }
  dp_b.reset();
  dp_a.reset();
}

INSTANTIATE_TEST_SUITE_P(Cases, TwoGateways,
                         ::testing::Values(GwCase{"offload_1w", 1, true},
                                           GwCase{"offload_2w", 2, true},
                                           GwCase{"plain_2w", 2, false},
                                           GwCase{"tap_offload_2w", 2, true, true},
                                           GwCase{"tap_plain_1w", 1, false, true}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace xgw::dp

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (geteuid() == 0) {
    // A private network namespace for the whole run: TUN devices, ports
    // and routes never touch the host's (or a parallel test's) network.
    if (::unshare(CLONE_NEWNET) != 0) {
      std::perror("unshare(CLONE_NEWNET)");
      return 1;
    }
    if (std::system("ip link set lo up") != 0) {
      std::fprintf(stderr, "cannot bring up lo in the test namespace\n");
      return 1;
    }
  }
  return RUN_ALL_TESTS();
}
