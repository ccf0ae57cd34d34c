// The REST API's HTTP/1.1 transport (Boost.Beast on one io_context):
// bearer-token auth on every request, bounded header and body sizes, a
// read deadline, keep-alive, and one structured log line per request
// (method, path, status, duration; never bodies, so never a PSK).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "api/router.h"
#include "common/expected.h"

namespace xgw::api {

struct HttpServerOptions {
  std::string token;  // required bearer token
  size_t body_limit = 1 << 20;
  std::chrono::seconds read_timeout{30};
  bool require_token = true;  // false: no Authorization needed (/metrics)
  // Open connections beyond this are closed as soon as accepted.
  size_t max_connections = 1024;
  bool log_requests = true;  // one api.request line per request
};

class HttpServer {
 public:
  HttpServer(boost::asio::io_context& io, const Router& router, HttpServerOptions opts);
  ~HttpServer();

  // Binds and starts accepting; returns the bound endpoint (port 0 picks one).
  Expected<boost::asio::ip::tcp::endpoint, SysError> listen(const std::string& host, uint16_t port);
  void stop();
  void set_token(std::string token);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// "host:port" or "[v6]:port".
Expected<std::pair<std::string, uint16_t>, std::string> parse_host_port(const std::string& s);

}  // namespace xgw::api
