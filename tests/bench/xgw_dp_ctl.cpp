// xgw_dp_ctl: programs the XDP data plane through the loader API
// (loader/xdp_dataplane.h) for shell-driven benchmarks and lab tests
// (scripts/bench-xdp-tier, tests/lab/xdp_dataplane_test.sh). Not an operator
// tool: in production xgwd owns the data plane.
//
//   xgw_dp_ctl --pin-dir DIR [--netns NAME] [--tier-percpu] [--no-flow-cache]
//              COMMAND [ARGS] [: COMMAND [ARGS]]...
//
// Every run opens the pinned instance in DIR the way a restarted xgwd does
// (maps reused, programs loaded anew and re-pinned), then runs the commands
// in order. --netns enters a network namespace (setns, network only: the
// mount namespace, and so the bpffs under /sys/fs/bpf, stays; `ip netns
// exec` would mount a fresh sysfs over it and hide the pins).
//
// Commands:
//   attach IFNAME GW lan|wan [native]   attach (replace) the LAN/WAN program;
//                                       prints "attached IFNAME native|generic
//                                       prog_id=N"
//   detach IFNAME
//   gateway GW [tier=BPS] [burst=BYTES] [drop-unmatched] [drop-no-sa]
//   spd GW [LOCAL REMOTE CONN]...       replace the gateway's whole SPD
//   conn CONN GW TUN [TUN2] [active=N]
//   tunnel TUN CONN [xfrm|userspace] [sa-ready]
//   us-tun GW IFNAME|- MTU              userspace ESP TUN device for XDP redirects
//   sa SPI TUN GW                       SPI decimal or 0x-hex, host order
//   sa-del SPI
//   reset GW [TUN]...                   zero the gateway's (and tunnels')
//                                       counters
//   counters GW [TUN]...                print key=value lines: gw.tx_packets,
//                                       tun.N.rx_bytes, drop.<reason>,
//                                       pass.<reason>
//   detach-all                          detach everything DIR's instance serves
//                                       and remove DIR (must be the only
//                                       command; runs without opening DIR)
#include <bpf/bpf.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "common/net.h"
#include "loader/xdp_dataplane.h"

namespace {

using xgw::loader::XdpDataplane;
using Args = std::vector<std::string>;

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "xgw_dp_ctl: %s\n", msg.c_str());
  std::exit(1);
}

template <typename T>
void check(const xgw::loader::Result<T>& r, const std::string& what) {
  if (!r) die(what + ": " + r.error().message());
}

uint64_t num(std::string_view s, const std::string& what) {
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s.remove_prefix(2);
    base = 16;
  }
  uint64_t v = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty())
    die(what + ": not a number: " + std::string(s));
  return v;
}

uint32_t num32(std::string_view s, const std::string& what) {
  const uint64_t v = num(s, what);
  if (v > UINT32_MAX) die(what + ": out of range: " + std::string(s));
  return static_cast<uint32_t>(v);
}

// "key=value" -> value if the key matches.
bool kv(const std::string& arg, std::string_view key, std::string_view* value) {
  if (arg.size() <= key.size() || arg.compare(0, key.size(), key) != 0 || arg[key.size()] != '=')
    return false;
  *value = std::string_view(arg).substr(key.size() + 1);
  return true;
}

int ifindex_of(const std::string& name) {
  const unsigned idx = if_nametoindex(name.c_str());
  if (idx == 0) die("no interface " + name + ": " + std::strerror(errno));
  return static_cast<int>(idx);
}

uint32_t prog_id(int fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return 0;
  return info.id;
}

void need(const Args& a, size_t n, const char* usage) {
  if (a.size() < n) die(std::string("usage: ") + usage);
}

xgw::net::Cidr cidr(const std::string& s) {
  auto c = xgw::net::Cidr::parse(s);
  if (!c) die("bad prefix " + s + ": " + c.error());
  return *c;
}

void print_traffic(const std::string& prefix, const xgw::loader::Traffic& t) {
  std::printf("%s.tx_packets=%llu\n%s.tx_bytes=%llu\n%s.rx_packets=%llu\n%s.rx_bytes=%llu\n",
              prefix.c_str(), static_cast<unsigned long long>(t.tx_packets), prefix.c_str(),
              static_cast<unsigned long long>(t.tx_bytes), prefix.c_str(),
              static_cast<unsigned long long>(t.rx_packets), prefix.c_str(),
              static_cast<unsigned long long>(t.rx_bytes));
}

void run(XdpDataplane& dp, const Args& a) {
  const std::string& cmd = a[0];
  if (cmd == "attach") {
    need(a, 4, "attach IFNAME GW lan|wan [native]");
    const int ifindex = ifindex_of(a[1]);
    const uint32_t gw = num32(a[2], "gateway");
    if (a[3] != "lan" && a[3] != "wan") die("attach: role must be lan or wan");
    const auto role = a[3] == "lan" ? xgw::loader::IfRole::Lan : xgw::loader::IfRole::Wan;
    const bool native_only = a.size() > 4 && a[4] == "native";
    auto m = dp.attach(ifindex, gw, role, !native_only);
    check(m, "attach " + a[1]);
    const int fd = role == xgw::loader::IfRole::Lan ? dp.lan_prog_fd() : dp.wan_prog_fd();
    std::printf("attached %s %s prog_id=%u\n", a[1].c_str(),
                *m == xgw::loader::AttachMode::Native ? "native" : "generic", prog_id(fd));
  } else if (cmd == "detach") {
    need(a, 2, "detach IFNAME");
    check(dp.detach(ifindex_of(a[1])), "detach " + a[1]);
  } else if (cmd == "gateway") {
    need(a, 2, "gateway GW [tier=BPS] [burst=BYTES] [drop-unmatched] [drop-no-sa]");
    xgw::loader::GatewayConfig g;
    for (size_t i = 2; i < a.size(); ++i) {
      std::string_view v;
      if (kv(a[i], "tier", &v))
        g.tier_bps = num(v, "tier");
      else if (kv(a[i], "burst", &v))
        g.burst_bytes = num(v, "burst");
      else if (a[i] == "drop-unmatched")
        g.drop_unmatched = true;
      else if (a[i] == "drop-no-sa")
        g.drop_no_sa = true;
      else
        die("gateway: unknown option " + a[i]);
    }
    check(dp.set_gateway(num32(a[1], "gateway"), g), "gateway");
  } else if (cmd == "spd") {
    need(a, 2, "spd GW [LOCAL REMOTE CONN]...");
    if ((a.size() - 2) % 3 != 0) die("spd: relations come as LOCAL REMOTE CONN triples");
    std::vector<xgw::loader::SpdRelation> rels;
    for (size_t i = 2; i < a.size(); i += 3)
      rels.push_back({cidr(a[i]), cidr(a[i + 1]), num32(a[i + 2], "connection")});
    check(dp.replace_spd(num32(a[1], "gateway"), rels), "spd");
  } else if (cmd == "conn") {
    need(a, 4, "conn CONN GW TUN [TUN2] [active=N]");
    xgw::loader::ConnectionEntry c;
    c.gw_idx = num32(a[2], "gateway");
    c.tunnels[0] = num32(a[3], "tunnel");
    for (size_t i = 4; i < a.size(); ++i) {
      std::string_view v;
      if (kv(a[i], "active", &v)) {
        c.active = num32(v, "active");
      } else {
        c.tunnels[1] = num32(a[i], "tunnel");
        c.ntunnels = 2;
      }
    }
    check(dp.set_connection(num32(a[1], "connection"), c), "conn");
  } else if (cmd == "tunnel") {
    need(a, 3, "tunnel TUN CONN [xfrm|userspace] [sa-ready]");
    xgw::loader::TunnelEntry t;
    t.conn_idx = num32(a[2], "connection");
    for (size_t i = 3; i < a.size(); ++i) {
      if (a[i] == "xfrm")
        t.backend = xgw::loader::Backend::Xfrm;
      else if (a[i] == "userspace")
        t.backend = xgw::loader::Backend::Userspace;
      else if (a[i] == "sa-ready")
        t.sa_ready = true;
      else
        die("tunnel: unknown option " + a[i]);
    }
    check(dp.set_tunnel(num32(a[1], "tunnel"), t), "tunnel");
  } else if (cmd == "us-tun") {
    need(a, 4, "us-tun GW IFNAME|- MTU");
    const uint32_t ifindex = a[2] == "-" ? 0 : if_nametoindex(a[2].c_str());
    if (a[2] != "-" && ifindex == 0) die("us-tun: no interface " + a[2]);
    check(dp.set_userspace_tun(num32(a[1], "gateway"), ifindex, num32(a[3], "mtu")), "us-tun");
  } else if (cmd == "sa") {
    need(a, 4, "sa SPI TUN GW");
    check(dp.add_sa(num32(a[1], "spi"), num32(a[2], "tunnel"), num32(a[3], "gateway")), "sa");
  } else if (cmd == "sa-del") {
    need(a, 2, "sa-del SPI");
    check(dp.remove_sa(num32(a[1], "spi")), "sa-del");
  } else if (cmd == "reset") {
    need(a, 2, "reset GW [TUN]...");
    check(dp.reset_gateway_counters(num32(a[1], "gateway")), "reset gateway");
    for (size_t i = 2; i < a.size(); ++i)
      check(dp.reset_tunnel_counters(num32(a[i], "tunnel")), "reset tunnel");
  } else if (cmd == "counters") {
    need(a, 2, "counters GW [TUN]...");
    const uint32_t gw = num32(a[1], "gateway");
    auto t = dp.gateway_traffic(gw);
    check(t, "gateway counters");
    print_traffic("gw", *t);
    for (size_t i = 2; i < a.size(); ++i) {
      auto tt = dp.tunnel_traffic(num32(a[i], "tunnel"));
      check(tt, "tunnel counters");
      print_traffic("tun." + a[i], *tt);
    }
    auto r = dp.reasons(gw);
    check(r, "reasons");
    for (size_t i = 0; i < r->drop.size(); ++i)
      std::printf("drop.%s=%llu\n", std::string(xgw::loader::drop_reason_name(i)).c_str(),
                  static_cast<unsigned long long>(r->drop[i]));
    for (size_t i = 0; i < r->pass.size(); ++i)
      std::printf("pass.%s=%llu\n", std::string(xgw::loader::pass_reason_name(i)).c_str(),
                  static_cast<unsigned long long>(r->pass[i]));
  } else {
    die("unknown command " + cmd);
  }
}

}  // namespace

int main(int argc, char** argv) {
  xgw::loader::LoadOptions opts;
  opts.pin_dir.clear();
  std::string netns;
  int i = 1;
  for (; i < argc && std::strncmp(argv[i], "--", 2) == 0; ++i) {
    const std::string_view o = argv[i];
    if (o == "--pin-dir" && i + 1 < argc)
      opts.pin_dir = argv[++i];
    else if (o == "--netns" && i + 1 < argc)
      netns = argv[++i];
    else if (o == "--tier-percpu")
      opts.tier_percpu = true;
    else if (o == "--no-flow-cache")
      opts.flow_cache = false;
    else
      die("unknown option " + std::string(o));
  }
  if (opts.pin_dir.empty()) die("--pin-dir is required (the instance to program)");
  std::vector<Args> cmds(1);
  for (; i < argc; ++i) {
    if (std::strcmp(argv[i], ":") == 0)
      cmds.emplace_back();
    else
      cmds.back().push_back(argv[i]);
  }
  static const std::string_view kCommands[] = {"attach", "detach",   "gateway",    "spd",
                                               "conn",   "tunnel",   "sa",         "sa-del",
                                               "reset",  "counters", "detach-all", "us-tun"};
  for (const auto& c : cmds) {
    if (c.empty()) die("empty command (see the usage in tests/bench/xgw_dp_ctl.cpp)");
    if (std::find(std::begin(kCommands), std::end(kCommands), c[0]) == std::end(kCommands))
      die("unknown command " + c[0]);  // before open() creates any pin
  }

  if (!netns.empty()) {
    const std::string path = "/run/netns/" + netns;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0)
      die("enter network namespace " + netns + ": " + std::strerror(errno));
    ::close(fd);
  }

  if (cmds[0][0] == "detach-all") {
    if (cmds.size() != 1 || cmds[0].size() != 1) die("detach-all must be the only command");
    check(XdpDataplane::detach_all(opts.pin_dir), "detach-all");
    return 0;
  }
  auto dp = XdpDataplane::open(opts);
  check(dp, "open " + opts.pin_dir);
  for (const auto& c : cmds) run(*dp, c);
  std::fflush(stdout);
  return 0;
}
