#include "api/router.h"

#include <nlohmann/json.hpp>

namespace xgw::api {
namespace {

std::vector<std::string_view> split(std::string_view path) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos < path.size()) {
    if (path[pos] != '/') return {};
    const size_t next = path.find('/', pos + 1);
    out.push_back(
        path.substr(pos + 1, (next == std::string_view::npos ? path.size() : next) - pos - 1));
    pos = next == std::string_view::npos ? path.size() : next;
  }
  return out;
}

bool match(std::string_view pattern, std::string_view path, PathParams& params) {
  const auto ps = split(pattern), xs = split(path);
  if (ps.size() != xs.size() || xs.empty()) return false;
  PathParams got;
  for (size_t i = 0; i < ps.size(); ++i) {
    if (ps[i].size() > 2 && ps[i].front() == '{' && ps[i].back() == '}') {
      if (xs[i].empty()) return false;
      got.emplace_back(xs[i]);
    } else if (ps[i] != xs[i]) {
      return false;
    }
  }
  params = std::move(got);
  return true;
}

}  // namespace

HttpResponse json_error(int status, std::string_view code, std::string_view message,
                        std::string_view field) {
  nlohmann::json e{{"code", code}, {"message", message}};
  if (!field.empty()) e["field"] = field;
  // Replace, not throw, on invalid UTF-8 echoed from a request.
  return {
      status,
      nlohmann::json{{"error", e}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
      {}};
}

void Router::add(std::string method, std::string pattern, Handler h) {
  routes_.push_back({std::move(method), std::move(pattern), std::move(h)});
}

HttpResponse Router::dispatch(const HttpRequest& req) const {
  std::string allow;
  for (const auto& r : routes_) {
    PathParams params;
    if (!match(r.pattern, req.path, params)) continue;
    if (r.method == req.method) return r.handler(params, req);
    if (!allow.empty()) allow += ", ";
    allow += r.method;
  }
  if (!allow.empty()) {
    auto resp = json_error(405, "MethodNotAllowed", req.method + " is not allowed on " + req.path);
    resp.headers.emplace_back("Allow", allow);
    return resp;
  }
  return json_error(404, "NotFound", "no such resource: " + req.path);
}

}  // namespace xgw::api
