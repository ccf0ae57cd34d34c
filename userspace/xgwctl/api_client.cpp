#include "xgwctl/api_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <optional>

namespace xgw::ctl {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

std::string ApiError::describe() const {
  std::string s = message.empty() ? code : message;
  if (!field.empty()) s += " (field: " + field + ")";
  if (status != 0) s += " [HTTP " + std::to_string(status) + (code.empty() ? "" : " " + code) + "]";
  return s;
}

std::string Endpoint::str() const {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + port;
}

Expected<Endpoint, std::string> parse_endpoint(std::string s) {
  const std::string orig = s;
  if (s.rfind("http://", 0) == 0) s.erase(0, 7);
  while (!s.empty() && s.back() == '/') s.pop_back();
  Endpoint ep{"", "9740"};
  if (!s.empty() && s[0] == '[') {
    const size_t close = s.find(']');
    if (close == std::string::npos) return unexpected("bad API address '" + orig + "'");
    ep.host = s.substr(1, close - 1);
    if (close + 1 < s.size()) {
      if (s[close + 1] != ':') return unexpected("bad API address '" + orig + "'");
      ep.port = s.substr(close + 2);
    }
  } else {
    const size_t colon = s.rfind(':');
    ep.host = s.substr(0, colon);
    if (colon != std::string::npos) ep.port = s.substr(colon + 1);
  }
  if (ep.host.empty() || ep.port.empty() ||
      ep.port.find_first_not_of("0123456789") != std::string::npos) {
    return unexpected("bad API address '" + orig + "' (want HOST:PORT)");
  }
  return ep;
}

namespace {

struct Exchange {
  beast::error_code ec;
  const char* step = "connect to";
  http::response<http::string_body> res;
};

// One request on a fresh connection. The async operations run to
// completion on a private io_context, so the caller sees a blocking call
// whose every step is bounded by the stream's deadline.
Exchange exchange(const Endpoint& ep, http::request<http::string_body>& req,
                  std::chrono::milliseconds timeout) {
  Exchange x;
  asio::io_context io;
  tcp::resolver resolver(io);
  beast::tcp_stream stream(io);
  beast::flat_buffer buf;
  auto fail = [&x](beast::error_code ec, const char* step) {
    x.ec = ec;
    x.step = step;
  };
  resolver.async_resolve(
      ep.host, ep.port, [&](beast::error_code ec, tcp::resolver::results_type r) {
        if (ec) return fail(ec, "resolve");
        stream.expires_after(timeout);
        stream.async_connect(r, [&](beast::error_code ec, const tcp::endpoint&) {
          if (ec) return fail(ec, "connect to");
          stream.expires_after(timeout);
          http::async_write(stream, req, [&](beast::error_code ec, size_t) {
            if (ec) return fail(ec, "send to");
            stream.expires_after(timeout);
            http::async_read(stream, buf, x.res, [&](beast::error_code ec, size_t) {
              if (ec) return fail(ec, "read from");
              beast::error_code ignored;
              stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
            });
          });
        });
      });
  io.run();
  return x;
}

}  // namespace

Expected<Json, ApiError> HttpApi::call(std::string_view method, const std::string& path,
                                       const Json* body) {
  http::request<http::string_body> req;
  req.method(http::string_to_verb(beast::string_view(method.data(), method.size())));
  req.target(path);
  req.version(11);
  req.set(http::field::host, ep_.str());
  req.set(http::field::user_agent, "xgwctl");
  req.set(http::field::accept, "application/json");
  req.set(http::field::authorization, "Bearer " + token_);
  if (body) {
    req.set(http::field::content_type, "application/json");
    req.body() = body->dump();
  }
  req.prepare_payload();

  Exchange x = exchange(ep_, req, timeout_);
  if (x.ec) {
    std::string msg = std::string("cannot ") + x.step + " xgwd at " + ep_.str() + ": ";
    msg += x.ec == beast::error::timeout ? std::string("timed out") : x.ec.message();
    if (std::string_view(x.step) == "connect to" || std::string_view(x.step) == "resolve") {
      msg += " (is xgwd running? set the address with --api, XGW_API or --state-dir)";
    }
    return unexpected(ApiError{0, "Unreachable", msg, ""});
  }
  const int status = static_cast<int>(x.res.result_int());
  const std::string& text = x.res.body();
  Json j;
  if (!text.empty()) {
    j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      return unexpected(ApiError{
          status, "BadResponse",
          "xgwd answered HTTP " + std::to_string(status) + " with a body that is not JSON", ""});
    }
  }
  if (status >= 400) {
    ApiError e{status, "", "", ""};
    const Json& err = j.is_object() && j.contains("error") ? j["error"] : j;
    if (err.is_object()) {
      auto str = [&err](const char* k) {
        auto it = err.find(k);
        return it != err.end() && it->is_string() ? it->get<std::string>() : std::string();
      };
      e.code = str("code");
      e.message = str("message");
      e.field = str("field");
    }
    if (e.message.empty()) e.message = "xgwd answered HTTP " + std::to_string(status);
    return unexpected(e);
  }
  return j;
}

}  // namespace xgw::ctl
