#include "api/rest_api.h"

#include <nlohmann/json.hpp>

namespace xgw::api {
namespace {

using control::Json;

HttpResponse from_result(const control::ControlPlane::Result& r, int ok_status) {
  if (!r) {
    const auto& e = r.error();
    return json_error(e.http_status, e.code, e.message, e.field);
  }
  if (ok_status == 204) return {204, "", {}};
  return {ok_status, r->dump(-1, ' ', false, Json::error_handler_t::replace), {}};
}

// Parses a request body: JSON object, bounded depth, declared as JSON.
Expected<Json, HttpResponse> parse_body(const HttpRequest& req) {
  if (!req.content_type.empty() && req.content_type.rfind("application/json", 0) != 0) {
    return unexpected(json_error(415, "UnsupportedMediaType",
                                 "the body must be application/json, not " + req.content_type));
  }
  if (req.body.empty()) return unexpected(json_error(400, "InvalidJson", "the body is empty"));
  bool too_deep = false;
  Json::parser_callback_t cb = [&](int depth, Json::parse_event_t, Json&) {
    if (depth > kMaxJsonDepth) too_deep = true;
    return !too_deep;
  };
  Json j = Json::parse(req.body, cb, /*allow_exceptions=*/false);
  if (too_deep) {
    return unexpected(
        json_error(400, "InvalidJson",
                   "the body nests deeper than " + std::to_string(kMaxJsonDepth) + " levels"));
  }
  if (j.is_discarded()) {
    return unexpected(json_error(400, "InvalidJson", "the body is not valid JSON"));
  }
  return j;
}

template <typename Fn>
Handler with_body(Fn fn, int ok_status) {
  return [fn, ok_status](const PathParams& p, const HttpRequest& req) {
    auto body = parse_body(req);
    if (!body) return body.error();
    return from_result(fn(p, *body), ok_status);
  };
}

template <typename Fn>
Handler without_body(Fn fn, int ok_status) {
  return [fn, ok_status](const PathParams& p, const HttpRequest&) {
    return from_result(fn(p), ok_status);
  };
}

// The same five operations for each collection.
template <auto Create, auto List, auto Get, auto Update, auto Delete>
void collection(Router& r, control::ControlPlane& cp, const std::string& base) {
  r.add("POST", base,
        with_body([&cp](const PathParams&, const Json& b) { return (cp.*Create)(b); }, 201));
  r.add("GET", base, without_body([&cp](const PathParams&) { return (cp.*List)(); }, 200));
  const std::string item = base + "/{id}";
  r.add("GET", item, without_body([&cp](const PathParams& p) { return (cp.*Get)(p[0]); }, 200));
  r.add(
      "PATCH", item,
      with_body([&cp](const PathParams& p, const Json& b) { return (cp.*Update)(p[0], b); }, 200));
  r.add("DELETE", item,
        without_body([&cp](const PathParams& p) { return (cp.*Delete)(p[0]); }, 204));
}

}  // namespace

Router make_rest_api(control::ControlPlane& cp) {
  using CP = control::ControlPlane;
  Router r;
  collection<&CP::create_gateway, &CP::list_gateways, &CP::get_gateway, &CP::update_gateway,
             &CP::delete_gateway>(r, cp, "/v1/vpn-gateways");
  collection<&CP::create_customer_gateway, &CP::list_customer_gateways, &CP::get_customer_gateway,
             &CP::update_customer_gateway, &CP::delete_customer_gateway>(r, cp,
                                                                         "/v1/customer-gateways");
  collection<&CP::create_connection, &CP::list_connections, &CP::get_connection,
             &CP::update_connection, &CP::delete_connection>(r, cp, "/v1/vpn-connections");
  r.add("GET", "/v1/dataplane",
        without_body([&cp](const PathParams&) { return cp.dataplane_status(); }, 200));
  r.add("GET", "/v1/ike-sas",
        without_body([&cp](const PathParams&) { return cp.list_ike_sas(); }, 200));
  return r;
}

}  // namespace xgw::api
