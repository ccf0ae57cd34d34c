// xgwctl's side of the REST API: a small synchronous HTTP/1.1 client
// (Boost.Beast, one connection per request, every step under a deadline)
// and the JSON calls made over it.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "xgwctl/yaml_json.h"

namespace xgw::ctl {

// A failed call: status 0 when the daemon was never reached or answered
// garbage, else the HTTP status with the server's error object.
struct ApiError {
  int status = 0;
  std::string code;
  std::string message;
  std::string field;
  // "message (field: x)", the line printed to the user.
  std::string describe() const;
};

// The JSON calls `apply` and the commands need; an interface so tests can
// drive them without a daemon.
class Api {
 public:
  virtual ~Api() = default;
  // `body` null: no body. Returns the parsed JSON reply (null for 204).
  virtual Expected<Json, ApiError> call(std::string_view method, const std::string& path,
                                        const Json* body) = 0;
};

struct Endpoint {
  std::string host;
  std::string port;
  std::string str() const;
};

// "host:port", "[v6]:port" or either with an http:// prefix; the port
// defaults to 9740.
Expected<Endpoint, std::string> parse_endpoint(std::string s);

class HttpApi : public Api {
 public:
  HttpApi(Endpoint ep, std::string token, std::chrono::milliseconds timeout)
      : ep_(std::move(ep)), token_(std::move(token)), timeout_(timeout) {}
  Expected<Json, ApiError> call(std::string_view method, const std::string& path,
                                const Json* body) override;

 private:
  Endpoint ep_;
  std::string token_;
  std::chrono::milliseconds timeout_;
};

}  // namespace xgw::ctl
