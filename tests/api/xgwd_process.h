// Test harness: a real xgwd on an ephemeral port with a temp state dir,
// and a small blocking HTTP client for its API.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace xgw::test {

namespace fs = std::filesystem;

inline std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct HttpResult {
  int status = 0;
  std::string body;
  nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
};

class XgwdProcess {
 public:
  // `extra_config`: YAML written to <dir>/xgwd.yaml and passed with --config.
  explicit XgwdProcess(std::string extra_config = "") {
    dir_ = fs::temp_directory_path() /
           ("xgwd-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    config_ = std::move(extra_config);
    start();
  }
  ~XgwdProcess() {
    stop(SIGKILL);
    fs::remove_all(dir_);
  }

  static std::string binary() {
    const char* p = std::getenv("XGWD_BIN");
    return p ? p : "xgwd";
  }

  void start() {
    std::vector<std::string> args{binary(),       "--state-dir", dir_.string(),
                                  "--api-listen", "127.0.0.1:0", "--metrics-listen",
                                  "127.0.0.1:0",  "--log-level", "debug"};
    if (!config_.empty()) {
      std::ofstream(dir_ / "xgwd.yaml") << config_;
      args.push_back("--config");
      args.push_back((dir_ / "xgwd.yaml").string());
    }
    fs::remove(dir_ / "api.addr");
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open((dir_ / "xgwd.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 2);
      ::dup2(fd, 1);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      _exit(127);
    }
    // Bounded wait for the API address file.
    for (int i = 0; i < 200 && !fs::exists(dir_ / "api.addr"); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    std::string addr = read_file(dir_ / "api.addr");
    while (!addr.empty() && addr.back() == '\n') addr.pop_back();
    const auto colon = addr.rfind(':');
    if (colon != std::string::npos) {
      host_ = addr.substr(0, colon);
      port_ = addr.substr(colon + 1);
    }
    token_ = read_file(dir_ / "api-token");
    while (!token_.empty() && token_.back() == '\n') token_.pop_back();
  }

  // One blocking HTTP/1.1 exchange with a 10 s deadline.
  static HttpResult send(const std::string& host, const std::string& port,
                         const std::string& method, const std::string& target,
                         const std::string& body, const std::string& token,
                         const std::string& content_type) {
    namespace beast = boost::beast;
    namespace http = beast::http;
    boost::asio::io_context io;
    boost::asio::ip::tcp::resolver resolver(io);
    beast::tcp_stream stream(io);
    stream.expires_after(std::chrono::seconds(10));
    stream.connect(resolver.resolve(host, port));
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, host);
    if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
    if (!body.empty()) {
      req.set(http::field::content_type, content_type);
      req.body() = body;
    }
    req.prepare_payload();
    http::write(stream, req);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(stream, buf, res);
    return {static_cast<int>(res.result_int()), res.body()};
  }

  // Sends `sig` and reaps; returns the exit status (or -signal).
  int stop(int sig = SIGTERM) {
    if (pid_ <= 0) return 0;
    ::kill(pid_, sig);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
  }
  void signal(int sig) { ::kill(pid_, sig); }
  bool running() const { return pid_ > 0; }

  HttpResult request(const std::string& method, const std::string& target,
                     const std::string& body = "", std::optional<std::string> token = {},
                     const std::string& content_type = "application/json") {
    return send(host_, port_, method, target, body, token ? *token : token_, content_type);
  }
  HttpResult get(const std::string& t) { return request("GET", t); }
  HttpResult post(const std::string& t, const nlohmann::json& b) {
    return request("POST", t, b.dump());
  }
  HttpResult patch(const std::string& t, const nlohmann::json& b) {
    return request("PATCH", t, b.dump());
  }
  HttpResult del(const std::string& t) { return request("DELETE", t); }

  const fs::path& dir() const { return dir_; }
  // GET on the metrics address (no token: Prometheus scrapes without one).
  // "host:port" of the metrics listener.
  std::string metrics_addr() const {
    std::string addr = read_file(dir_ / "metrics.addr");
    while (!addr.empty() && addr.back() == '\n') addr.pop_back();
    return addr;
  }
  HttpResult metrics() {
    const std::string addr = metrics_addr();
    const auto colon = addr.rfind(':');
    return send(addr.substr(0, colon), addr.substr(colon + 1), "GET", "/metrics", "", "", "");
  }
  const std::string& token() const { return token_; }
  std::string log() const { return read_file(dir_ / "xgwd.log"); }
  // The database's bytes on disk (main file and WAL).
  std::string db_bytes() const {
    return read_file(dir_ / "xgw.db") + "|WAL|" + read_file(dir_ / "xgw.db-wal");
  }
  void set_config(const std::string& yaml) {
    config_ = yaml;
    std::ofstream(dir_ / "xgwd.yaml") << config_;
  }

 private:
  static int& counter() {
    static int n = 0;
    return n;
  }
  fs::path dir_;
  std::string config_;
  pid_t pid_ = -1;
  std::string host_, port_, token_;
};

}  // namespace xgw::test
