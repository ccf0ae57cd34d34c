// The one error shape of the control plane. API handlers turn it into
// {"error": {"code", "message", "field"}} with `http_status`.
#pragma once

#include <string>

namespace xgw::control {

struct Error {
  int http_status = 400;
  std::string code;     // machine-readable, e.g. "SpdOverlap"
  std::string message;  // one human sentence
  std::string field;    // JSON path of the offending field, or empty
};

inline Error bad_request(std::string code, std::string message, std::string field = {}) {
  return {400, std::move(code), std::move(message), std::move(field)};
}
inline Error invalid(std::string field, std::string message) {
  return {400, "InvalidValue", std::move(message), std::move(field)};
}
inline Error not_found(std::string what, std::string field = {}) {
  return {404, "NotFound", std::move(what), std::move(field)};
}
inline Error conflict(std::string code, std::string message, std::string field = {}) {
  return {409, std::move(code), std::move(message), std::move(field)};
}

}  // namespace xgw::control
