// /metrics of a real xgwd (no data plane): the object families, every
// configured tunnel exported, promtool's lint clean, no secrets.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

#include "tests/api/xgwd_process.h"

namespace xgw::test {
namespace {

using nlohmann::json;

std::string run_promtool(const std::string& exposition, int& rc) {
  const auto path =
      fs::temp_directory_path() / ("xgw-metrics-" + std::to_string(::getpid()) + ".txt");
  std::ofstream(path) << exposition;
  const std::string cmd = "promtool check metrics < '" + path.string() + "' 2>&1";
  FILE* f = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[512];
  while (f && fgets(buf, sizeof buf, f)) out += buf;
  rc = f ? WEXITSTATUS(::pclose(f)) : -1;
  fs::remove(path);
  return out;
}

TEST(Metrics, ObjectsAreExportedAndLintClean) {
  XgwdProcess d;
  auto gw = d.post("/v1/vpn-gateways", {{"vpn_gateway",
                                         {{"name", "gw-a"},
                                          {"bandwidth", 100},
                                          {"local_cidr", "10.0.0.0/16"},
                                          {"public_ips", {"198.51.100.10", "198.51.100.11"}}}}});
  ASSERT_EQ(gw.status, 201) << gw.body;
  auto cgw = d.post("/v1/customer-gateways",
                    {{"customer_gateway", {{"name", "peer"}, {"ip", "203.0.113.20"}}}});
  ASSERT_EQ(cgw.status, 201);
  const std::string secret = "Metrics-Secret-Psk1";
  auto c = d.post(
      "/v1/vpn-connections",
      {{"vpn_connection",
        {{"name", "c1"},
         {"vgw_id", gw.json()["vpn_gateway"]["id"]},
         {"cgw_id", cgw.json()["customer_gateway"]["id"]},
         {"psk", secret},
         {"policy_rules", {{{"source", "10.0.1.0/24"}, {"destination", {"192.168.1.0/24"}}}}}}}});
  ASSERT_EQ(c.status, 201) << c.body;

  // The topology is republished after the change, asynchronously.
  std::string body;
  for (int i = 0; i < 100; ++i) {
    auto m = d.metrics();
    ASSERT_EQ(m.status, 200);
    body = m.body;
    if (body.find("connection=\"c1\"") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_NE(body.find("xgw_build_info{version=\""), std::string::npos) << body;
  EXPECT_NE(body.find("xgw_start_time_seconds "), std::string::npos);
  EXPECT_NE(body.find("xgw_gateway_bandwidth_tier_bytes_per_second{gateway=\"gw-a\"} 12500000"),
            std::string::npos)
      << body;
  // Both tunnels of the dual-tunnel connection, down (no IKE yet) but present.
  EXPECT_NE(body.find("xgw_tunnel_up{gateway=\"gw-a\",connection=\"c1\",role=\"master\"} 0"),
            std::string::npos)
      << body;
  EXPECT_NE(body.find("xgw_tunnel_up{gateway=\"gw-a\",connection=\"c1\",role=\"slave\"} 0"),
            std::string::npos);
  // Without a data plane there are no traffic counters to report.
  EXPECT_EQ(body.find("xgw_gateway_transmit_bytes_total"), std::string::npos);
  EXPECT_EQ(body.find(secret), std::string::npos);

  int rc = -1;
  const std::string lint = run_promtool(body, rc);
  if (rc == 127 && std::getenv("XGW_REQUIRE_PRIVILEGED") == nullptr)
    GTEST_SKIP() << "promtool not installed";
  EXPECT_EQ(rc, 0) << lint;

  // A deleted connection's tunnels disappear from the exposition.
  ASSERT_EQ(
      d.del("/v1/vpn-connections/" + c.json()["vpn_connection"]["id"].get<std::string>()).status,
      204);
  for (int i = 0; i < 100; ++i) {
    body = d.metrics().body;
    if (body.find("connection=\"c1\"") == std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(body.find("connection=\"c1\""), std::string::npos) << body;
}

// Issue 16: idle connections to the metrics port (never sending a request)
// must not stall scrapes. With prometheus-cpp's one-thread exposer one of
// them stalled /metrics for 29.5 s; now the API's asynchronous server
// serves it. 50 idle connections, then scrapes, each answered at once.
TEST(Metrics, IdleConnectionsDoNotStallScrapes) {
  XgwdProcess d;
  ASSERT_EQ(d.metrics().status, 200);
  std::string addr = d.metrics_addr();
  const auto colon = addr.rfind(':');
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(std::stoi(addr.substr(colon + 1))));
  ASSERT_EQ(::inet_pton(AF_INET, addr.substr(0, colon).c_str(), &sa.sin_addr), 1);
  std::vector<int> idle;
  for (int i = 0; i < 50; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    idle.push_back(fd);
  }
  for (int i = 0; i < 5; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    auto m = d.metrics();
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    EXPECT_EQ(m.status, 200);
    EXPECT_NE(m.body.find("xgw_build_info"), std::string::npos);
    EXPECT_LT(ms, 2000) << "scrape " << i << " took " << ms << " ms with 50 idle connections";
  }
  for (int fd : idle) ::close(fd);
}

}  // namespace
}  // namespace xgw::test
