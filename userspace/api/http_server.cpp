#include "api/http_server.h"

#include <openssl/crypto.h>

#include <array>
#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <optional>

#include "common/log.h"

namespace xgw::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  Impl(asio::io_context& io, const Router& r, HttpServerOptions o)
      : io(io), router(r), opts(std::move(o)), acceptor(io) {}

  asio::io_context& io;
  const Router& router;
  HttpServerOptions opts;
  tcp::acceptor acceptor;
  asio::steady_timer retry{io};
  std::atomic<size_t> sessions{0};
  uint64_t accept_errors = 0;

  bool authorized(std::string_view header) const {
    constexpr std::string_view kBearer = "Bearer ";
    if (header.size() <= kBearer.size() || header.substr(0, kBearer.size()) != kBearer)
      return false;
    const auto got = header.substr(kBearer.size());
    return got.size() == opts.token.size() && !opts.token.empty() &&
           CRYPTO_memcmp(got.data(), opts.token.data(), got.size()) == 0;
  }

  void accept() {
    acceptor.async_accept(asio::make_strand(io), [self = shared_from_this()](beast::error_code ec,
                                                                             tcp::socket sock) {
      if (ec == asio::error::operation_aborted || !self->acceptor.is_open()) return;
      if (ec) {
        // Out of descriptors (EMFILE/ENFILE) or memory: the pending
        // connection stays queued, so accepting again at once would spin
        // a core. Back off, then try again; log once per 100 errors.
        if (self->accept_errors++ % 100 == 0)
          log::warn("api.accept_failed", {{"error", ec.message()}, {"count", self->accept_errors}});
        self->retry.expires_after(std::chrono::milliseconds(100));
        self->retry.async_wait([self](beast::error_code e) {
          if (!e && self->acceptor.is_open()) self->accept();
        });
        return;
      }
      if (self->sessions.load() >= self->opts.max_connections) {
        // Over the cap: a canned 503 without reading the request, then
        // close, so the client learns at once instead of hanging.
        static const std::string k503 = [] {
          const std::string body =
              "{\"error\":{\"code\":\"Busy\",\"message\":\"too many open connections\"}}\n";
          return "HTTP/1.1 503 Service Unavailable\r\nServer: xgwd\r\nConnection: close\r\n"
                 "Content-Type: application/json\r\nContent-Length: " +
                 std::to_string(body.size()) + "\r\n\r\n" + body;
        }();
        auto s = std::make_shared<tcp::socket>(std::move(sock));
        asio::async_write(*s, asio::buffer(k503), [s](beast::error_code, size_t) {
          beast::error_code ignored;
          s->shutdown(tcp::socket::shutdown_both, ignored);
          s->close(ignored);
        });
      } else {
        std::make_shared<Session>(std::move(sock), self)->read();
      }
      self->accept();
    });
  }

  class Session : public std::enable_shared_from_this<Session> {
   public:
    Session(tcp::socket s, std::shared_ptr<Impl> srv)
        : stream_(std::move(s)), srv_(std::move(srv)) {
      ++srv_->sessions;
    }
    ~Session() { --srv_->sessions; }

    void read() {
      parser_.emplace();
      parser_->body_limit(srv_->opts.body_limit);
      parser_->header_limit(16 * 1024);
      stream_.expires_after(srv_->opts.read_timeout);
      http::async_read(
          stream_, buf_, *parser_,
          [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
    }

   private:
    void on_read(beast::error_code ec) {
      if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
          ec == asio::error::connection_reset || ec == asio::error::operation_aborted) {
        return close();
      }
      start_ = std::chrono::steady_clock::now();
      if (ec == http::error::body_limit) {
        const auto& h = parser_->get();
        std::string target(h.target());
        return reply(
            std::string(h.method_string()), target.substr(0, target.find('?')),
            json_error(413, "PayloadTooLarge",
                       "the body exceeds " + std::to_string(srv_->opts.body_limit) + " bytes"),
            false);
      }
      if (ec) {
        return reply("?", "?",
                     json_error(400, "BadRequest", "malformed HTTP request: " + ec.message()),
                     false);
      }
      auto& req = parser_->get();
      std::string target(req.target());
      const auto q = target.find('?');
      HttpRequest r{std::string(req.method_string()), target.substr(0, q), "", ""};
      if (auto it = req.find(http::field::content_type); it != req.end())
        r.content_type = std::string(it->value());
      const bool keep = req.keep_alive();
      auto auth = req.find(http::field::authorization);
      if (srv_->opts.require_token &&
          (auth == req.end() ||
           !srv_->authorized(std::string_view(auth->value().data(), auth->value().size())))) {
        auto resp = json_error(401, "Unauthorized", "missing or wrong bearer token");
        resp.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"xgw\"");
        return reply(r.method, r.path, std::move(resp), keep);
      }
      r.body = std::move(req.body());
      reply(r.method, r.path, srv_->router.dispatch(r), keep);
    }

    void reply(const std::string& method, const std::string& path, HttpResponse resp, bool keep) {
      auto res = std::make_shared<http::response<http::string_body>>();
      res->version(11);
      res->result(static_cast<unsigned>(resp.status));
      res->set(http::field::server, "xgwd");
      if (!resp.body.empty()) res->set(http::field::content_type, "application/json");
      for (auto& [k, v] : resp.headers) res->set(k, v);
      res->body() = std::move(resp.body);
      res->keep_alive(keep);
      res->prepare_payload();
      const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::steady_clock::now() - start_)
                          .count();
      if (srv_->opts.log_requests || resp.status >= 400)
        log::event(
            resp.status >= 500 ? spdlog::level::err : spdlog::level::info, "api.request",
            {{"method", method}, {"path", path}, {"status", resp.status}, {"duration_us", us}});
      http::async_write(stream_, *res,
                        [self = shared_from_this(), res, keep](beast::error_code ec, size_t) {
                          if (ec || !keep) return self->close();
                          self->read();
                        });
    }

    // Lingering close: stop sending, then drain what the client still
    // sends (e.g. the rest of an oversized body) so it reads our reply
    // instead of a reset.
    void close() {
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      stream_.expires_after(std::chrono::seconds(5));
      drain();
    }
    void drain() {
      stream_.async_read_some(asio::buffer(scratch_),
                              [self = shared_from_this()](beast::error_code ec, size_t) {
                                if (ec) {
                                  beast::error_code ignored;
                                  self->stream_.socket().close(ignored);
                                  return;
                                }
                                self->drain();
                              });
    }

    beast::tcp_stream stream_;
    beast::flat_buffer buf_;
    std::optional<http::request_parser<http::string_body>> parser_;
    std::shared_ptr<Impl> srv_;
    std::chrono::steady_clock::time_point start_;
    std::array<char, 16384> scratch_;
  };
};

HttpServer::HttpServer(asio::io_context& io, const Router& router, HttpServerOptions opts)
    : impl_(std::make_shared<Impl>(io, router, std::move(opts))) {}

HttpServer::~HttpServer() {
  stop();
}

Expected<tcp::endpoint, SysError> HttpServer::listen(const std::string& host, uint16_t port) {
  beast::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) return unexpected(SysError{"parse listen address " + host, EINVAL});
  tcp::endpoint ep(addr, port);
  auto& a = impl_->acceptor;
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    a.close();
    return unexpected(SysError{"listen on " + host + ":" + std::to_string(port), ec.value()});
  }
  auto bound = a.local_endpoint(ec);
  impl_->accept();
  return bound;
}

void HttpServer::stop() {
  beast::error_code ec;
  if (impl_ && impl_->acceptor.is_open()) impl_->acceptor.close(ec);
  if (impl_) impl_->retry.cancel();
}

void HttpServer::set_token(std::string token) {
  impl_->opts.token = std::move(token);
}

Expected<std::pair<std::string, uint16_t>, std::string> parse_host_port(const std::string& s) {
  std::string host, port;
  if (!s.empty() && s[0] == '[') {
    const auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':')
      return unexpected("'" + s + "' is not [address]:port");
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    const auto colon = s.rfind(':');
    if (colon == std::string::npos) return unexpected("'" + s + "' is not address:port");
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  unsigned p = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || p > 65535)
    return unexpected("'" + s + "' has an invalid port");
  return std::pair{host, static_cast<uint16_t>(p)};
}

}  // namespace xgw::api
