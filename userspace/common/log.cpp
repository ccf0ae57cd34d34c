#include "common/log.h"

#include <spdlog/sinks/stdout_sinks.h>

namespace xgw::log {
namespace {

void append_value(std::string& out, std::string_view v) {
  const bool plain = !v.empty() && v.find_first_of(" \"=\\\n\t") == std::string_view::npos;
  if (plain) {
    out += v;
    return;
  }
  out += '"';
  for (char c : v) {
    if (c == '"' || c == '\\')
      out += '\\', out += c;
    else if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += "\\t";
    else
      out += c;
  }
  out += '"';
}

}  // namespace

void init(std::string_view level) {
  auto logger = spdlog::stderr_logger_mt("xgw");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ level=%l %v", spdlog::pattern_time_type::utc);
  spdlog::set_default_logger(logger);
  set_level(level);
  spdlog::flush_on(spdlog::level::info);
}

bool set_level(std::string_view level) {
  const auto l = spdlog::level::from_str(std::string(level));
  if (l == spdlog::level::off && level != "off") return false;
  spdlog::set_level(l);
  return true;
}

std::string format(std::string_view event, std::initializer_list<Field> fields) {
  std::string out = "event=";
  append_value(out, event);
  for (const auto& f : fields) {
    out += ' ';
    out += f.key;
    out += '=';
    append_value(out, f.value);
  }
  return out;
}

void event(spdlog::level::level_enum lvl, std::string_view e, std::initializer_list<Field> fields) {
  if (!spdlog::should_log(lvl)) return;
  spdlog::log(lvl, "{}", format(e, fields));
}

}  // namespace xgw::log
