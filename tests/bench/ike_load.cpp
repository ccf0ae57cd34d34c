// xgw-ike-load: an IKEv2 load initiator for the setup-cost benchmark
// (scripts/bench-ike). It runs xgw's own daemon (ike::Runtime) over a
// MockDataplane — its CHILD_SAs carry no traffic — with N connections that
// differ only by name (same addresses, identities, PSK, proposals and one
// CHILD_SA), and initiates them with at most --window negotiations in
// flight. IKE starts on --port (500); only when the responder reports a NAT
// does it float to --nat-t-port (4500), which the tool owns for that —
// strongSwan with kernel-libipsec always does (libipsec only has ESP in
// UDP); xgwd, with raw ESP, does not. Then it deletes them all (the responder frees its state) and
// prints what happened:
//
//   n=300 established=300 failed=0 wall_s=2.41 sas_per_s=124.5
//   responder_cpu_ms=312.0 responder_cpu_ms_per_sa=1.040 initiator_cpu_ms_per_sa=1.87
//   failures={}
//
// or the same as one JSON object with --json. With --cpu-pid PID the
// responder's CPU time (utime + stime of all its threads, /proc/PID/stat)
// is sampled when the first measured SA starts and when the last one
// resolves; --warmup K establishes K SAs before that (first-use costs:
// allocator, OpenSSL tables, the responder's first connection lookup).
//
// Note: every xgw initiator sends INITIAL_CONTACT, and all N SAs share
// identities, so a responder that honours it (xgwd, strongSwan) drops the
// earlier SAs as each new one authenticates: its state stays small.
//
// Exit status: 0 all established, 1 some failed or timed out, 2 setup error.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/log.h"
#include "mock_dataplane.h"
#include "ike/runtime.h"

namespace {

using namespace xgw;
using Clock = std::chrono::steady_clock;

// utime + stime of PID in milliseconds (all threads), or -1.
double proc_cpu_ms(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s;
  if (!f || !std::getline(f, s)) return -1;
  const auto rp = s.rfind(')');
  if (rp == std::string::npos) return -1;
  std::istringstream in(s.substr(rp + 2));
  // After the command: state(3) ppid pgrp session tty_nr tpgid flags minflt
  // cminflt majflt cmajflt utime(14) stime(15).
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  const long hz = ::sysconf(_SC_CLK_TCK);
  return static_cast<double>(utime + stime) * 1000.0 / static_cast<double>(hz > 0 ? hz : 100);
}

double self_cpu_ms() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto ms = [](const timeval& t) { return t.tv_sec * 1000.0 + t.tv_usec / 1000.0; };
  return ms(ru.ru_utime) + ms(ru.ru_stime);
}

// The initiator's data plane: SAs and policies go to a MockDataplane (no
// traffic), but it owns UDP 4500 for real so that IKE can float there
// (RFC 3948) when the responder reports a NAT — strongSwan with
// kernel-libipsec always does, since libipsec only does ESP in UDP.
class LoadDataplane final : public dp::Dataplane {
 public:
  explicit LoadDataplane(boost::asio::io_context& io) : sock_(io) {}
  ~LoadDataplane() override { close(); }

  Expected<void, std::string> open(const net::IpAddr& local, uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return unexpected(std::string("socket: ") + std::strerror(errno));
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    std::memcpy(&a.sin_addr, local.bytes.data(), 4);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      const int e = errno;
      ::close(fd);
      return unexpected("bind UDP port " + std::to_string(port) + ": " + std::strerror(e));
    }
    sock_.assign(fd);
    local_ = {local, port};
    read_loop();
    return {};
  }
  void close() {
    boost::system::error_code ec;
    if (sock_.is_open()) sock_.close(ec);
  }

  dp::Capabilities capabilities() const override {
    auto c = mock_.capabilities();
    c.backend = "load";
    c.owns_nat_t_port = sock_.is_open();
    return c;
  }
  Expected<uint32_t, std::string> allocate_spi() override { return mock_.allocate_spi(); }
  Expected<void, std::string> add_sa(const dp::SaSpec& sa) override { return mock_.add_sa(sa); }
  Expected<void, std::string> update_sa(const dp::SaSpec& sa) override {
    return mock_.update_sa(sa);
  }
  Expected<void, std::string> delete_sa(dp::Direction dir, uint32_t spi) override {
    return mock_.delete_sa(dir, spi);
  }
  Expected<void, std::string> add_policy(const dp::PolicySpec& p) override {
    return mock_.add_policy(p);
  }
  Expected<void, std::string> delete_policy(uint32_t id) override {
    return mock_.delete_policy(id);
  }
  std::optional<dp::SaCounters> sa_counters(dp::Direction dir, uint32_t spi) const override {
    return mock_.sa_counters(dir, spi);
  }
  std::optional<dp::TunnelCounters> tunnel_counters(uint32_t tunnel_id) const override {
    return mock_.tunnel_counters(tunnel_id);
  }
  dp::GlobalCounters counters() const override { return mock_.counters(); }
  std::vector<dp::Event> poll_events() override { return mock_.poll_events(); }
  int event_fd() const override { return -1; }
  void set_ike_receiver(IkeReceiver r) override { receiver_ = std::move(r); }
  Expected<void, std::string> send_ike(const dp::Endpoint&, const dp::Endpoint& to,
                                       std::span<const uint8_t> msg) override {
    if (!sock_.is_open()) return unexpected(std::string("no NAT-T socket"));
    std::vector<uint8_t> buf(4 + msg.size(), 0);  // non-ESP marker
    std::memcpy(buf.data() + 4, msg.data(), msg.size());
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(to.port);
    std::memcpy(&a.sin_addr, to.addr.bytes.data(), 4);
    if (::sendto(sock_.native_handle(), buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&a),
                 sizeof a) < 0)
      return unexpected(std::string("sendto: ") + std::strerror(errno));
    return {};
  }

 private:
  void read_loop() {
    sock_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                     [this](const boost::system::error_code& ec) {
                       if (ec) return;
                       drain();
                       read_loop();
                     });
  }
  void drain() {
    uint8_t buf[65536];
    for (;;) {
      sockaddr_in a{};
      socklen_t al = sizeof a;
      const ssize_t len = ::recvfrom(sock_.native_handle(), buf, sizeof buf, MSG_DONTWAIT,
                                     reinterpret_cast<sockaddr*>(&a), &al);
      if (len < 0) return;
      // IKE carries the 4-byte zero marker; ESP and keepalives are ignored.
      if (len < 8 || buf[0] || buf[1] || buf[2] || buf[3] || !receiver_) continue;
      dp::Endpoint from;
      from.addr.family = net::Family::V4;
      std::memcpy(from.addr.bytes.data(), &a.sin_addr, 4);
      from.port = ntohs(a.sin_port);
      receiver_(std::span<const uint8_t>(buf + 4, static_cast<size_t>(len - 4)), from, local_);
    }
  }

  dp::MockDataplane mock_;
  boost::asio::posix::stream_descriptor sock_;
  dp::Endpoint local_;
  IkeReceiver receiver_;
};

ike::Identity identity(const std::string& s) {
  if (auto a = net::IpAddr::parse(s)) return ike::Identity::from_ip(*a);
  return ike::Identity::fqdn(s);
}

struct Batch {
  size_t established = 0;
  std::map<std::string, size_t> failures;  // reason -> count
  double wall_s = 0;
  size_t failed() const {
    size_t n = 0;
    for (const auto& [r, c] : failures) n += c;
    return n;
  }
};

// Initiates `names` with at most `window` in flight until each is
// established or failed, or `timeout_s` passes (the rest count as
// "timeout"). `on_first` runs just before the first initiate, `on_last`
// as soon as the last one resolves.
Batch run_batch(boost::asio::io_context& io, ike::Runtime& rt,
                const std::vector<std::string>& names, size_t window, double timeout_s,
                const std::function<void()>& on_first, const std::function<void()>& on_last) {
  Batch b;
  ike::Daemon& d = rt.daemon();
  std::deque<std::string> todo(names.begin(), names.end());
  std::vector<std::string> flying;
  if (on_first) on_first();
  const auto t0 = Clock::now();
  const auto deadline =
      t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  bool started_any = false;
  while (!todo.empty() || !flying.empty()) {
    while (flying.size() < window && !todo.empty()) {
      std::string n = std::move(todo.front());
      todo.pop_front();
      if (auto r = d.initiate(n); !r) {
        ++b.failures["initiate_error"];
        continue;
      }
      flying.push_back(std::move(n));
      started_any = true;
    }
    if (started_any) rt.kick();
    started_any = false;
    if (Clock::now() >= deadline) {
      b.failures["timeout"] += flying.size() + todo.size();
      flying.clear();
      todo.clear();
      break;
    }
    io.run_one_for(std::chrono::milliseconds(5));
    for (size_t i = 0; i < flying.size();) {
      const auto st = d.status(flying[i]);
      bool done = true;
      if (!st) {
        ++b.failures["connection_vanished"];
      } else if (st->up) {
        ++b.established;
      } else if (st->state == "connecting") {
        done = false;
      } else if (st->failure != ike::Failure::None) {
        ++b.failures[ike::to_string(st->failure)];
      } else {
        ++b.failures[st->state == "partial" ? "partial" : "down"];
      }
      if (done) {
        flying[i] = std::move(flying.back());
        flying.pop_back();
      } else {
        ++i;
      }
    }
  }
  b.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (on_last) on_last();
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "xgw-ike-load: establishes N IKEv2 SAs (PSK) against a responder with xgw's own daemon and "
      "reports SAs per second and, with --cpu-pid, the responder's CPU per SA"};
  std::string local, remote, psk, ike_prop = "aes128-sha256-modp2048", esp_prop = "aes128gcm16";
  std::string local_id, remote_id, local_ts = "10.200.0.0/24", remote_ts = "10.201.0.0/24";
  std::string log_level = "warn", prefix = "load";
  uint16_t port = 500, remote_port = 500, nat_t_port = 4500;
  size_t n = 300, window = 8, warmup = 0;
  double timeout_s = 120, warmup_timeout_s = 30;
  int cpu_pid = 0;
  bool json = false, no_nat_t = false;
  app.add_option("--local", local, "local IPv4 address (bound, and the IKE source)")->required();
  app.add_option("--remote", remote, "the responder's address")->required();
  app.add_option("--port", port, "local UDP port")->capture_default_str();
  app.add_option("--remote-port", remote_port, "the responder's UDP port")->capture_default_str();
  app.add_option("--nat-t-port", nat_t_port, "local UDP port IKE floats to after a NAT")
      ->capture_default_str();
  app.add_flag("--no-nat-t", no_nat_t,
               "send no NAT detection: everything stays on --port (strongSwan with "
               "kernel-libipsec then cannot install its CHILD_SAs)");
  app.add_option("--psk", psk, "pre-shared key")->required();
  app.add_option("--ike", ike_prop, "IKE proposal, strongSwan syntax")->capture_default_str();
  app.add_option("--esp", esp_prop, "ESP proposal, strongSwan syntax")->capture_default_str();
  app.add_option("--local-id", local_id, "our identity (address or FQDN; default --local)");
  app.add_option("--remote-id", remote_id, "the responder's identity (default --remote)");
  app.add_option("--local-ts", local_ts, "our side of the CHILD_SA")->capture_default_str();
  app.add_option("--remote-ts", remote_ts, "the responder's side")->capture_default_str();
  app.add_option("-n,--count", n, "IKE SAs to establish (measured)")->capture_default_str();
  app.add_option("--window", window, "negotiations in flight at most")->capture_default_str();
  app.add_option("--warmup", warmup, "SAs established before measuring")->capture_default_str();
  app.add_option("--timeout", timeout_s, "seconds for the measured SAs")->capture_default_str();
  app.add_option("--warmup-timeout", warmup_timeout_s, "seconds for the warm-up SAs")
      ->capture_default_str();
  app.add_option("--cpu-pid", cpu_pid, "the responder's PID: report its CPU time per SA");
  app.add_option("--prefix", prefix, "connection name prefix")->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn or error")
      ->capture_default_str();
  app.add_flag("--json", json, "print one JSON object");
  CLI11_PARSE(app, argc, argv);
  log::init(log_level);

  auto fail = [](const std::string& m) {
    std::cerr << "xgw-ike-load: " << m << "\n";
    return 2;
  };
  if (n == 0 || window == 0) return fail("--count and --window must be positive");
  const auto la = net::IpAddr::parse(local), ra = net::IpAddr::parse(remote);
  if (!la || !ra) return fail("--local and --remote must be IP addresses");
  if (la->family != net::Family::V4) return fail("--local must be IPv4");
  const auto ike = ike::parse_ike_proposal(ike_prop);
  if (!ike) return fail("bad IKE proposal '" + ike_prop + "'");
  const auto esp = ike::parse_esp_proposal(esp_prop);
  if (!esp) return fail("bad ESP proposal '" + esp_prop + "'");
  const auto lts = net::Cidr::parse(local_ts), rts = net::Cidr::parse(remote_ts);
  if (!lts) return fail("--local-ts: " + lts.error());
  if (!rts) return fail("--remote-ts: " + rts.error());
  if (cpu_pid > 0 && proc_cpu_ms(cpu_pid) < 0)
    return fail("cannot read /proc/" + std::to_string(cpu_pid) + "/stat");

  boost::asio::io_context io;
  LoadDataplane dataplane(io);
  if (!no_nat_t)
    if (auto r = dataplane.open(*la, nat_t_port); !r) return fail(r.error());
  ike::RuntimeOptions ro;
  ro.port = port;
  ro.ipv6 = false;
  ro.bind_v4 = local;
  auto rt = ike::Runtime::create(io, dataplane, ro);
  if (!rt) return fail(rt.error());
  ike::Daemon& d = (*rt)->daemon();

  ike::ConnConfig base;
  base.local = *la;
  base.remote = *ra;
  base.local_port = port;
  base.remote_port = remote_port;
  base.local_id = identity(local_id.empty() ? local : local_id);
  base.remote_id = identity(remote_id.empty() ? remote : remote_id);
  base.psk = psk;
  base.ike = {*ike};
  base.esp = {*esp};
  ike::ChildConfig ch;
  ch.name = "net";
  ch.local_ts = {*lts};
  ch.remote_ts = {*rts};
  base.children = {ch};
  // NAT detection on: a responder that sees (or fakes) a NAT moves IKE to
  // the NAT-T port and encapsulates ESP; otherwise everything stays on --port.
  base.nat_t = !no_nat_t;
  base.start_immediately = false;
  base.dpd.interval_s = 0;
  auto add = [&](const std::string& tag, size_t count) -> std::optional<std::vector<std::string>> {
    std::vector<std::string> names;
    for (size_t i = 0; i < count; ++i) {
      ike::ConnConfig c = base;
      c.name = prefix + "-" + tag + std::to_string(i);
      c.id = c.name;
      if (auto r = d.upsert(c); !r) {
        std::cerr << "xgw-ike-load: " << r.error() << "\n";
        return std::nullopt;
      }
      names.push_back(c.name);
    }
    return names;
  };
  const auto warm_names = add("w", warmup);
  const auto names = add("", n);
  if (!warm_names || !names) return 2;

  Batch warm;
  if (warmup > 0) {
    warm = run_batch(io, **rt, *warm_names, window, warmup_timeout_s, nullptr, nullptr);
    for (const auto& w : *warm_names) d.terminate(w);
  }

  double r0 = 0, r1 = 0, s0 = 0, s1 = 0;
  const Batch b = run_batch(
      io, **rt, *names, window, timeout_s,
      [&] {
        s0 = self_cpu_ms();
        if (cpu_pid > 0) r0 = proc_cpu_ms(cpu_pid);
      },
      [&] {
        if (cpu_pid > 0) r1 = proc_cpu_ms(cpu_pid);
        s1 = self_cpu_ms();
      });

  // Delete everything (one best-effort INFORMATIONAL each) and give the
  // replies a moment to arrive.
  for (const auto& nm : *names) d.terminate(nm);
  io.run_for(std::chrono::milliseconds(200));
  (*rt)->stop();

  const size_t est = b.established;
  const double per_s = b.wall_s > 0 ? static_cast<double>(est) / b.wall_s : 0;
  const double rcpu = cpu_pid > 0 && r0 >= 0 && r1 >= 0 ? r1 - r0 : -1;
  const double icpu = s1 - s0;
  nlohmann::json failures = nlohmann::json::object(), warm_failures = nlohmann::json::object();
  for (const auto& [r, c] : b.failures) failures[r] = c;
  for (const auto& [r, c] : warm.failures) warm_failures[r] = c;
  nlohmann::json j = {{"n", n},
                      {"established", est},
                      {"failed", b.failed()},
                      {"failures", failures},
                      {"window", window},
                      {"ike", ike_prop},
                      {"esp", esp_prop},
                      {"wall_s", b.wall_s},
                      {"sas_per_s", per_s},
                      {"initiator_cpu_ms", icpu},
                      {"initiator_cpu_ms_per_sa", est ? icpu / static_cast<double>(est) : 0.0},
                      {"warmup", warmup},
                      {"warmup_established", warm.established},
                      {"warmup_failures", warm_failures}};
  if (rcpu >= 0) {
    j["responder_pid"] = cpu_pid;
    j["responder_cpu_ms"] = rcpu;
    j["responder_cpu_ms_per_sa"] = est ? rcpu / static_cast<double>(est) : 0.0;
  }
  if (json) {
    std::cout << j.dump() << "\n";
  } else {
    char buf[512];
    std::snprintf(buf, sizeof buf, "n=%zu established=%zu failed=%zu wall_s=%.3f sas_per_s=%.1f", n,
                  est, b.failed(), b.wall_s, per_s);
    std::cout << buf;
    if (rcpu >= 0) {
      std::snprintf(buf, sizeof buf, " responder_cpu_ms=%.1f responder_cpu_ms_per_sa=%.3f", rcpu,
                    est ? rcpu / static_cast<double>(est) : 0.0);
      std::cout << buf;
    }
    std::snprintf(buf, sizeof buf, " initiator_cpu_ms_per_sa=%.3f",
                  est ? icpu / static_cast<double>(est) : 0.0);
    std::cout << buf << " failures=" << failures.dump() << "\n";
  }
  return b.failed() == 0 && (warmup == 0 || warm.failed() == 0) ? 0 : 1;
}
