// xgwctl against a real xgwd: each test starts its own daemon on an
// ephemeral port with a temporary state directory, runs the xgwctl binary
// and checks its output and exit status. No root, no fixed ports.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using namespace std::chrono_literals;

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The environment minus anything that could point xgwctl elsewhere.
std::vector<std::string> clean_env() {
  std::vector<std::string> out;
  for (char** e = environ; *e; ++e)
    if (std::string(*e).rfind("XGW_", 0) != 0) out.emplace_back(*e);
  return out;
}

// Starts argv[0] with stdout and stderr in the given files.
pid_t spawn(const std::vector<std::string>& args, const std::vector<std::string>& env,
            const fs::path& out, const fs::path& err) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> argv, envp;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, args[0].c_str(), &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

struct CtlResult {
  int code = -1;
  std::string out;
  std::string err;
};

std::ostream& operator<<(std::ostream& os, const CtlResult& r) {
  return os << "exit " << r.code << "\n--- stdout\n" << r.out << "--- stderr\n" << r.err;
}

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

int count_lines_starting(const std::string& text, const std::string& prefix) {
  int n = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) n += line.rfind(prefix, 0) == 0;
  return n;
}

class XgwctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/xgwctl-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    state_ = dir_ / "state";
    daemon_ = spawn({XGWD_BIN, "--state-dir", state_.string(), "--api-listen", "127.0.0.1:0",
                     "--metrics-listen", "127.0.0.1:0", "--log-level", "warn"},
                    clean_env(), dir_ / "xgwd.out", dir_ / "xgwd.log");
    ASSERT_GT(daemon_, 0) << "cannot start " << XGWD_BIN;
    // xgwd writes api.addr once it listens.
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!fs::exists(state_ / "api.addr")) {
      int status = 0;
      if (waitpid(daemon_, &status, WNOHANG) == daemon_) {
        daemon_ = -1;
        FAIL() << "xgwd exited early:\n" << slurp(dir_ / "xgwd.log");
      }
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "xgwd did not write api.addr";
      std::this_thread::sleep_for(20ms);
    }
  }

  void TearDown() override {
    if (daemon_ > 0) {
      kill(daemon_, SIGTERM);
      int status = 0;
      const auto deadline = std::chrono::steady_clock::now() + 5s;
      while (waitpid(daemon_, &status, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() > deadline) {
          kill(daemon_, SIGKILL);
          waitpid(daemon_, &status, 0);
          break;
        }
        std::this_thread::sleep_for(10ms);
      }
    }
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  // Runs xgwctl with XGW_STATE_DIR pointing at the test daemon (the
  // default discovery path), unless `use_state_env` is false.
  CtlResult ctl(std::vector<std::string> args, bool use_state_env = true) {
    args.insert(args.begin(), XGWCTL_BIN);
    auto env = clean_env();
    if (use_state_env) env.push_back("XGW_STATE_DIR=" + state_.string());
    CtlResult r;
    const pid_t pid = spawn(args, env, dir_ / "ctl.out", dir_ / "ctl.err");
    if (pid <= 0) return r;
    int status = 0;
    waitpid(pid, &status, 0);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = slurp(dir_ / "ctl.out");
    r.err = slurp(dir_ / "ctl.err");
    return r;
  }

  Json ctl_json(std::vector<std::string> args) {
    args.push_back("--json");
    CtlResult r = ctl(args);
    EXPECT_EQ(r.code, 0) << r;
    Json j = Json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r;
    return j;
  }

  // A new gateway is "pending" until the reconciler activates it, and a
  // pending gateway cannot be deleted.
  void wait_running(const std::string& gateway) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (ctl_json({"gateway", "show", gateway})["vpn_gateway"]["status"] != "running") {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << gateway << " never ran";
      std::this_thread::sleep_for(20ms);
    }
  }

  void make_gateway(const std::string& name, const std::string& cidr = "10.0.0.0/16") {
    CtlResult r = ctl({"gateway", "create", "--name", name, "--bandwidth", "20", "--local-cidr",
                       cidr, "--public-ip", "198.51.100.10"});
    ASSERT_EQ(r.code, 0) << r;
  }

  void make_peer(const std::string& name, const std::string& ip) {
    CtlResult r = ctl({"peer", "create", "--name", name, "--ip", ip});
    ASSERT_EQ(r.code, 0) << r;
  }

  fs::path example(const std::string& name) { return fs::path(XGW_SOURCE_DIR) / "examples" / name; }

  fs::path dir_, state_;
  pid_t daemon_ = -1;
};

TEST_F(XgwctlTest, GatewayLifecycle) {
  CtlResult r =
      ctl({"gateway", "create", "--name", "gw-a", "--bandwidth", "20", "--local-cidr",
           "10.0.0.0/16", "--public-ip", "198.51.100.10", "--public-ip", "198.51.100.11"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_TRUE(contains(r.out, "created gateway gw-a (vpngw-")) << r;

  r = ctl({"gateway", "list"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_EQ(r.out.rfind("NAME  ID", 0), 0u) << r;
  EXPECT_TRUE(contains(r.out, "BANDWIDTH")) << r;
  EXPECT_TRUE(contains(r.out, "198.51.100.10,198.51.100.11")) << r;

  Json list = ctl_json({"gateway", "list"});
  ASSERT_EQ(list["vpn_gateways"].size(), 1u);
  const std::string id = list["vpn_gateways"][0]["id"];
  EXPECT_EQ(list["vpn_gateways"][0]["name"], "gw-a");

  r = ctl({"gateway", "show", "gw-a"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_EQ(r.out.rfind("name: gw-a\nid: " + id + "\n", 0), 0u) << r;
  EXPECT_TRUE(contains(r.out, "\nbandwidth: 20\n")) << r;
  EXPECT_EQ(ctl_json({"gateway", "show", id})["vpn_gateway"]["name"], "gw-a");

  r = ctl({"gateway", "update", "gw-a", "--bandwidth", "50", "--name", "gw-b"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_TRUE(contains(r.out, "updated gateway gw-b (" + id + ")")) << r;
  Json shown = ctl_json({"gateway", "show", id});
  EXPECT_EQ(shown["vpn_gateway"]["bandwidth"], 50);
  EXPECT_EQ(shown["vpn_gateway"]["name"], "gw-b");

  wait_running(id);
  r = ctl({"gateway", "delete", "gw-b"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_TRUE(contains(r.out, "deleted gateway gw-b (" + id + ")")) << r;
  EXPECT_TRUE(ctl_json({"gateway", "list"})["vpn_gateways"].empty());

  r = ctl({"gateway", "show", "gw-b"});
  EXPECT_EQ(r.code, 1) << r;
  EXPECT_TRUE(contains(r.err, "no gateway with id or name 'gw-b'")) << r;
}

TEST_F(XgwctlTest, PeerLifecycle) {
  CtlResult r =
      ctl({"peer", "create", "--name", "branch", "--ip", "203.0.113.20", "--bgp-asn", "65001"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_TRUE(contains(r.out, "created peer branch (cgw-")) << r;

  r = ctl({"peer", "list"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_TRUE(contains(r.out, "BGP_ASN")) << r;
  EXPECT_TRUE(contains(r.out, "203.0.113.20")) << r;
  EXPECT_TRUE(contains(r.out, "65001")) << r;

  r = ctl({"peer", "update", "branch", "--ip", "203.0.113.21"});
  ASSERT_EQ(r.code, 0) << r;
  r = ctl({"peer", "show", "branch"});
  EXPECT_TRUE(contains(r.out, "\nip: 203.0.113.21\n")) << r;

  Json list = ctl_json({"peer", "list"});
  ASSERT_EQ(list["customer_gateways"].size(), 1u);
  EXPECT_EQ(list["customer_gateways"][0]["bgp_asn"], 65001);

  r = ctl({"peer", "delete", "branch"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_TRUE(ctl_json({"peer", "list"})["customer_gateways"].empty());
}

TEST_F(XgwctlTest, ConnectionLifecycle) {
  make_gateway("gw");
  make_peer("branch", "203.0.113.20");
  CtlResult r = ctl({"connection", "create", "--name", "c1", "--gateway", "gw", "--peer", "branch",
                     "--psk", "s3cret!", "--rule", "10.0.1.0/24=192.168.10.0/24,192.168.11.0/24",
                     "--rule", "10.0.2.0/24=192.168.10.0/24", "--ike-version", "v2",
                     "--start-immediately", "--set", "ikepolicy.dpd.interval=20"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_TRUE(contains(r.out, "created connection c1 (vpnconn-")) << r;

  r = ctl({"connection", "list"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_EQ(r.out.rfind("NAME", 0), 0u) << r;
  for (const char* col : {"ID", "GATEWAY", "PEER", "STYLE", "STATUS", "RULES"})
    EXPECT_TRUE(contains(r.out, col)) << col << "\n" << r;
  // References show as names; rules in --rule syntax.
  EXPECT_TRUE(contains(r.out, "  gw  ")) << r;
  EXPECT_TRUE(contains(r.out, "  branch  ")) << r;
  EXPECT_TRUE(contains(r.out, "10.0.1.0/24=192.168.10.0/24,192.168.11.0/24")) << r;

  Json c = ctl_json({"connection", "show", "c1"})["vpn_connection"];
  EXPECT_FALSE(c.contains("psk"));
  EXPECT_EQ(c["ikepolicy"]["ike_version"], "v2");
  EXPECT_EQ(c["ikepolicy"]["dpd"]["interval"], 20);
  EXPECT_EQ(c["start_immediately"], true);
  EXPECT_EQ(c["policy_rules"].size(), 2u);

  r = ctl({"connection", "show", "c1"});
  EXPECT_TRUE(contains(r.out, "policy_rules[0]: 10.0.1.0/24 -> 192.168.10.0/24, 192.168.11.0/24"))
      << r;
  EXPECT_TRUE(contains(r.out, "(gw)")) << r;

  // The name after a repeatable option stays the positional argument.
  r = ctl({"connection", "update", "--rule", "10.0.3.0/24=192.168.12.0/24", "c1",
           "--no-start-immediately"});
  ASSERT_EQ(r.code, 0) << r;
  c = ctl_json({"connection", "show", c["id"]})["vpn_connection"];
  ASSERT_EQ(c["policy_rules"].size(), 1u);
  EXPECT_EQ(c["policy_rules"][0]["source"], "10.0.3.0/24");
  EXPECT_EQ(c["start_immediately"], false);

  r = ctl({"connection", "delete", "c1"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_TRUE(ctl_json({"connection", "list"})["vpn_connections"].empty());
}

TEST_F(XgwctlTest, SpdOverlapShowsTheServersMessage) {
  make_gateway("gw");
  make_peer("p1", "203.0.113.20");
  make_peer("p2", "203.0.113.21");
  CtlResult r = ctl({"connection", "create", "--name", "c1", "--gateway", "gw", "--peer", "p1",
                     "--rule", "10.0.0.0/24=192.168.0.0/24,192.168.1.0/24"});
  ASSERT_EQ(r.code, 0) << r;
  r = ctl({"connection", "create", "--name", "c2", "--gateway", "gw", "--peer", "p2", "--rule",
           "10.0.0.0/24=192.168.1.0/24"});
  EXPECT_EQ(r.code, 1) << r;
  EXPECT_TRUE(contains(r.err, "overlaps")) << r;
  EXPECT_TRUE(contains(r.err, "field: policy_rules[0]")) << r;
  EXPECT_TRUE(contains(r.err, "409")) << r;
  EXPECT_EQ(ctl_json({"connection", "list"})["vpn_connections"].size(), 1u);
}

TEST_F(XgwctlTest, NamesResolveAndAmbiguityIsAnError) {
  make_gateway("twin", "10.1.0.0/16");
  make_gateway("twin", "10.2.0.0/16");
  CtlResult r = ctl({"gateway", "show", "twin"});
  EXPECT_EQ(r.code, 1) << r;
  EXPECT_TRUE(contains(r.err, "matches 2 gateways")) << r;
  const Json list = ctl_json({"gateway", "list"})["vpn_gateways"];
  ASSERT_EQ(list.size(), 2u);
  r = ctl({"gateway", "show", list[1]["id"]});
  EXPECT_EQ(r.code, 0) << r;
  EXPECT_TRUE(contains(r.out, "local_cidr: " + list[1]["local_cidr"].get<std::string>())) << r;
  r = ctl({"peer", "delete", "ghost"});
  EXPECT_EQ(r.code, 1) << r;
  EXPECT_TRUE(contains(r.err, "no peer with id or name 'ghost'")) << r;
}

TEST_F(XgwctlTest, ApplyExampleTwice) {
  const std::string file = example("site-to-site.yaml").string();
  CtlResult r = ctl({"apply", "-f", file});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_TRUE(contains(r.out, "created gateway gw-hq (vpngw-")) << r;
  EXPECT_TRUE(contains(r.out, "created peer branch-1 (cgw-")) << r;
  EXPECT_TRUE(contains(r.out, "created connection hq-to-branch-1 (vpnconn-")) << r;
  EXPECT_TRUE(contains(r.out, "apply: 3 created, 0 updated, 0 unchanged")) << r;

  Json c = ctl_json({"connection", "show", "hq-to-branch-1"})["vpn_connection"];
  EXPECT_EQ(c["ikepolicy"]["ike_version"], "v2");
  EXPECT_EQ(c["ikepolicy"]["dh_group"], "group14");
  EXPECT_EQ(c["ipsecpolicy"]["encryption_algorithm"], "aes-128-gcm-16");
  EXPECT_EQ(c["ipsecpolicy"]["authentication_algorithm"], "none");
  EXPECT_EQ(c["ipsecpolicy"]["pfs"], "group14");
  EXPECT_EQ(c["policy_rules"].size(), 2u);
  EXPECT_EQ(c["start_immediately"], true);

  r = ctl({"apply", "-f", file});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_EQ(count_lines_starting(r.out, "unchanged "), 3) << r;
  EXPECT_EQ(count_lines_starting(r.out, "created "), 0) << r;
  EXPECT_EQ(count_lines_starting(r.out, "updated "), 0) << r;
  EXPECT_TRUE(contains(r.out, "apply: 0 created, 0 updated, 3 unchanged")) << r;
  EXPECT_TRUE(contains(r.err, "psk is write-only")) << r;
}

TEST_F(XgwctlTest, ApplyAfterEditingOneField) {
  const std::string file = example("site-to-site.yaml").string();
  ASSERT_EQ(ctl({"apply", "-f", file}).code, 0);
  std::string text = slurp(file);
  const size_t at = text.find("interval: 30");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 12, "interval: 20");
  const fs::path edited = dir_ / "edited.yaml";
  std::ofstream(edited) << text;

  CtlResult r = ctl({"apply", "-f", edited.string(), "--dry-run"});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_TRUE(contains(r.out, "nothing changed")) << r;
  EXPECT_EQ(ctl_json({"connection", "show",
                      "hq-to-branch-1"})["vpn_connection"]["ikepolicy"]["dpd"]["interval"],
            30);

  r = ctl({"apply", "-f", edited.string()});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_EQ(count_lines_starting(r.out, "updated "), 1) << r;
  EXPECT_TRUE(contains(r.out, "updated connection hq-to-branch-1 (vpnconn-")) << r;
  EXPECT_TRUE(contains(r.out, "fields ikepolicy.dpd.interval\n")) << r;
  EXPECT_TRUE(contains(r.out, "apply: 0 created, 1 updated, 2 unchanged")) << r;
  EXPECT_EQ(ctl_json({"connection", "show",
                      "hq-to-branch-1"})["vpn_connection"]["ikepolicy"]["dpd"]["interval"],
            20);

  Json j = ctl_json({"apply", "-f", edited.string()});
  EXPECT_EQ(j["summary"]["unchanged"], 3);
}

TEST_F(XgwctlTest, ApplyRejectsABadFileWithUsageStatus) {
  const fs::path bad = dir_ / "bad.yaml";
  std::ofstream(bad) << "vpn_gateways:\n  - name: a\n  - name: a\n";
  CtlResult r = ctl({"apply", "-f", bad.string()});
  EXPECT_EQ(r.code, 2) << r;
  EXPECT_TRUE(contains(r.err, "appears twice")) << r;
  std::ofstream(bad) << "vpn_gateways:\n  - name: gw\n    bandwidth: 7\n"
                        "    local_cidr: 10.0.0.0/16\n    public_ips: [198.51.100.10]\n";
  r = ctl({"apply", "-f", bad.string()});
  EXPECT_EQ(r.code, 1) << r;
  EXPECT_TRUE(contains(r.err, "gateway gw: ")) << r;
  EXPECT_TRUE(contains(r.err, "field: bandwidth")) << r;
}

TEST_F(XgwctlTest, WrongTokenIsRejected) {
  const fs::path tok = dir_ / "wrong-token";
  std::ofstream(tok) << "0123456789abcdef0123456789abcdef\n";
  CtlResult r = ctl({"--token-file", tok.string(), "gateway", "list"});
  EXPECT_EQ(r.code, 1) << r;
  EXPECT_TRUE(contains(r.err, "missing or wrong bearer token")) << r;
  EXPECT_TRUE(contains(r.err, "401")) << r;
}

TEST_F(XgwctlTest, ExplicitAddressAndTokenFile) {
  const std::string addr = slurp(state_ / "api.addr");
  CtlResult r = ctl({"--api", addr.substr(0, addr.find('\n')), "--token-file",
                     (state_ / "api-token").string(), "gateway", "list"},
                    /*use_state_env=*/false);
  EXPECT_EQ(r.code, 0) << r;
  r = ctl({"--state-dir", state_.string(), "peer", "list"}, false);
  EXPECT_EQ(r.code, 0) << r;
}

TEST_F(XgwctlTest, UnreachableDaemonIsAClearError) {
  // A port that was free a moment ago: nothing listens there.
  const int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  close(s);
  CtlResult r = ctl({"--api", "127.0.0.1:" + std::to_string(ntohs(a.sin_port)), "gateway", "list"});
  EXPECT_EQ(r.code, 1) << r;
  EXPECT_TRUE(contains(r.err, "cannot connect to xgwd at 127.0.0.1:")) << r;
}

TEST_F(XgwctlTest, UsageErrorsExitTwo) {
  CtlResult r = ctl({"gateway", "create", "--bogus"});
  EXPECT_EQ(r.code, 2) << r;
  r = ctl({"connection", "create", "--name", "c", "--rule", "no-equals-sign"});
  EXPECT_EQ(r.code, 2) << r;
  EXPECT_TRUE(contains(r.err, "SRC=DST1,DST2")) << r;
  r = ctl({"gateway", "update", "x"});
  EXPECT_EQ(r.code, 2) << r;
  r = ctl({"frobnicate"});
  EXPECT_EQ(r.code, 2) << r;
  r = ctl({"version"});
  EXPECT_EQ(r.code, 0) << r;
  EXPECT_EQ(r.out.rfind("xgwctl ", 0), 0u) << r;
}

}  // namespace
