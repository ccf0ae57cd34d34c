// HTTP routing for the REST API, independent of the transport: a table of
// (method, path pattern, handler). Patterns use {name} for one path
// segment. The table is what the OpenAPI document is checked against.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace xgw::api {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // without the query string
  std::string content_type;
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string body;  // JSON, or empty
  std::vector<std::pair<std::string, std::string>> headers;
};

using PathParams = std::vector<std::string>;
using Handler = std::function<HttpResponse(const PathParams&, const HttpRequest&)>;

struct Route {
  std::string method;
  std::string pattern;  // e.g. "/v1/vpn-gateways/{id}"
  Handler handler;
};

class Router {
 public:
  void add(std::string method, std::string pattern, Handler h);
  // 404 for an unknown path, 405 (with Allow) for a known path and another
  // method; never throws.
  HttpResponse dispatch(const HttpRequest& req) const;
  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
};

HttpResponse json_error(int status, std::string_view code, std::string_view message,
                        std::string_view field = {});

}  // namespace xgw::api
