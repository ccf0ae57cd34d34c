#include "xgwctl/yaml_json.h"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

namespace xgw::ctl {
namespace {

constexpr std::string_view kTagPrefix = "tag:yaml.org,2002:";

bool parse_int(const std::string& s, Json& out) {
  static const std::regex dec("[-+]?[0-9]+"), oct("0o[0-7]+"), hex("0x[0-9a-fA-F]+");
  int base = 10;
  std::string digits = s;
  if (std::regex_match(s, oct)) {
    base = 8;
    digits = s.substr(2);
  } else if (std::regex_match(s, hex)) {
    base = 16;
    digits = s.substr(2);
  } else if (!std::regex_match(s, dec)) {
    return false;
  }
  if (!digits.empty() && digits[0] == '+') digits.erase(0, 1);
  const char* b = digits.data();
  const char* e = b + digits.size();
  if (digits[0] != '-') {
    uint64_t u = 0;
    if (auto r = std::from_chars(b, e, u, base); r.ec == std::errc() && r.ptr == e) {
      out = u;
      return true;
    }
  } else {
    int64_t i = 0;
    if (auto r = std::from_chars(b, e, i, base); r.ec == std::errc() && r.ptr == e) {
      out = i;
      return true;
    }
  }
  return false;  // out of range: not an integer JSON can carry exactly
}

bool parse_float(const std::string& s, Json& out) {
  static const std::regex num("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
  if (!std::regex_match(s, num)) return false;
  out = std::strtod(s.c_str(), nullptr);
  return true;
}

bool is_null_word(const std::string& s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}

std::string join(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

Expected<Json, std::string> scalar(const YAML::Node& n, const std::string& path) {
  const std::string& s = n.Scalar();
  const std::string& tag = n.Tag();
  const std::string where = path.empty() ? "the document" : path;
  if (tag == "!") return Json(s);  // quoted or block scalar
  if (tag == "?" || tag.empty()) {
    if (s == ".inf" || s == "-.inf" || s == "+.inf" || s == ".nan" || s == ".Inf" || s == ".NaN" ||
        s == "-.Inf" || s == ".INF" || s == "-.INF" || s == ".NAN") {
      return unexpected(where + ": " + s + " cannot be represented in JSON");
    }
    return plain_scalar(s);
  }
  if (tag.rfind(kTagPrefix, 0) == 0) {
    const std::string t = tag.substr(kTagPrefix.size());
    Json v;
    if (t == "str") return Json(s);
    if (t == "null" && is_null_word(s)) return Json(nullptr);
    if (t == "bool") {
      v = plain_scalar(s);
      if (v.is_boolean()) return v;
    }
    if (t == "int" && parse_int(s, v)) return v;
    if (t == "float" && (parse_int(s, v) || parse_float(s, v))) {
      return Json(v.get<double>());
    }
    return unexpected(where + ": '" + s + "' is not a valid !!" + t);
  }
  return unexpected(where + ": unsupported YAML tag " + tag);
}

Expected<Json, std::string> convert(const YAML::Node& n, const std::string& path) {
  switch (n.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return Json(nullptr);
    case YAML::NodeType::Scalar:
      return scalar(n, path);
    case YAML::NodeType::Sequence: {
      Json arr = Json::array();
      size_t i = 0;
      for (const auto& item : n) {
        auto v = convert(item, path + "[" + std::to_string(i++) + "]");
        if (!v) return v;
        arr.push_back(std::move(*v));
      }
      return arr;
    }
    case YAML::NodeType::Map: {
      Json obj = Json::object();
      for (const auto& kv : n) {
        if (!kv.first.IsScalar()) {
          return unexpected((path.empty() ? std::string("the document") : path) +
                            ": mapping keys must be plain strings");
        }
        const std::string key = kv.first.Scalar();
        // JSON objects cannot hold the same key twice; silently keeping
        // one would hide a typo in the file.
        if (obj.contains(key)) return unexpected(join(path, key) + ": duplicate key");
        auto v = convert(kv.second, join(path, key));
        if (!v) return v;
        obj[key] = std::move(*v);
      }
      return obj;
    }
  }
  return Json(nullptr);
}

}  // namespace

Json plain_scalar(const std::string& s) {
  if (is_null_word(s)) return Json(nullptr);
  if (s == "true" || s == "True" || s == "TRUE") return Json(true);
  if (s == "false" || s == "False" || s == "FALSE") return Json(false);
  Json v;
  if (parse_int(s, v)) return v;
  if (parse_float(s, v)) return v;
  return Json(s);
}

Expected<Json, std::string> yaml_to_json(const YAML::Node& node) {
  return convert(node, "");
}

Expected<Json, std::string> parse_yaml(const std::string& text, const std::string& origin) {
  try {
    return yaml_to_json(YAML::Load(text));
  } catch (const YAML::Exception& e) {
    std::string msg = origin;
    if (!e.mark.is_null()) {
      msg += ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
    }
    return unexpected(msg + ": " + e.msg);
  }
}

Expected<Json, std::string> load_document_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) return unexpected("cannot read " + path + ": " + std::strerror(errno));
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string text = ss.str();
  // JSON first: it is exact about types; YAML is the fallback.
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_discarded()) return j;
  return parse_yaml(text, path);
}

}  // namespace xgw::ctl
