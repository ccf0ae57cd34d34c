// Structured logs: one event per line in logfmt (key=value), UTC
// timestamps, e.g.
//   2026-11-21T19:40:36.123Z level=info event=api.request method=POST status=201
// Secrets (PSKs, keys, tokens) are never passed as fields.
#pragma once

#include <spdlog/spdlog.h>

#include <initializer_list>
#include <string>
#include <string_view>

namespace xgw::log {

struct Field {
  std::string_view key;
  std::string value;
  Field(std::string_view k, std::string v) : key(k), value(std::move(v)) {}
  Field(std::string_view k, const char* v) : key(k), value(v) {}
  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  template <typename N, typename = std::enable_if_t<std::is_arithmetic_v<N>>>
  Field(std::string_view k, N v) : key(k), value(std::to_string(v)) {}
};

// level: trace, debug, info, warn, error. Logs go to stderr.
void init(std::string_view level);
bool set_level(std::string_view level);
std::string format(std::string_view event, std::initializer_list<Field> fields);
void event(spdlog::level::level_enum lvl, std::string_view event,
           std::initializer_list<Field> fields = {});

inline void info(std::string_view e, std::initializer_list<Field> f = {}) {
  event(spdlog::level::info, e, f);
}
inline void warn(std::string_view e, std::initializer_list<Field> f = {}) {
  event(spdlog::level::warn, e, f);
}
inline void error(std::string_view e, std::initializer_list<Field> f = {}) {
  event(spdlog::level::err, e, f);
}
inline void debug(std::string_view e, std::initializer_list<Field> f = {}) {
  event(spdlog::level::debug, e, f);
}

}  // namespace xgw::log
