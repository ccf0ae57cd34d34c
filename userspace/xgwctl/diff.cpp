#include "xgwctl/diff.h"

namespace xgw::ctl {

bool matches(const Json& desired, const Json& current) {
  if (desired.is_object()) {
    if (!current.is_object()) return false;
    for (auto it = desired.begin(); it != desired.end(); ++it) {
      auto c = current.find(it.key());
      if (it->is_null()) {
        if (c != current.end() && !c->is_null()) return false;
      } else if (c == current.end() || !matches(*it, *c)) {
        return false;
      }
    }
    return true;
  }
  if (desired.is_array()) {
    if (!current.is_array() || current.size() != desired.size()) return false;
    for (size_t i = 0; i < desired.size(); ++i)
      if (!matches(desired[i], current[i])) return false;
    return true;
  }
  return desired == current;
}

namespace {
void diff_into(const Json& desired, const Json& current, const std::string& prefix, Json& patch,
               std::vector<std::string>& fields) {
  for (auto it = desired.begin(); it != desired.end(); ++it) {
    const std::string path = prefix + it.key();
    auto c = current.find(it.key());
    const Json absent;
    const Json& cur = c == current.end() ? absent : *c;
    if (matches(*it, cur)) continue;
    if (it->is_object() && cur.is_object()) {
      // Merge patch merges objects, so only the differing members travel.
      Json sub = Json::object();
      diff_into(*it, cur, path + ".", sub, fields);
      patch[it.key()] = std::move(sub);
    } else {
      patch[it.key()] = *it;
      fields.push_back(path);
    }
  }
}
}  // namespace

FieldDiff diff_objects(const Json& desired, const Json& current) {
  FieldDiff d;
  diff_into(desired, current.is_object() ? current : Json::object(), "", d.patch, d.fields);
  return d;
}

Expected<void, std::string> set_path(Json& obj, const std::string& dotted, Json value) {
  if (dotted.empty()) return unexpected(std::string("empty key"));
  Json* cur = &obj;
  size_t start = 0;
  while (true) {
    const size_t dot = dotted.find('.', start);
    const std::string key = dotted.substr(start, dot == std::string::npos ? dot : dot - start);
    if (key.empty()) return unexpected("bad key '" + dotted + "'");
    if (!cur->is_object()) {
      return unexpected("'" + dotted.substr(0, start ? start - 1 : 0) + "' is not an object");
    }
    if (dot == std::string::npos) {
      (*cur)[key] = std::move(value);
      return {};
    }
    Json& next = (*cur)[key];
    if (next.is_null()) next = Json::object();
    cur = &next;
    start = dot + 1;
  }
}

}  // namespace xgw::ctl
