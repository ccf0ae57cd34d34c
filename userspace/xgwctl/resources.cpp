#include "xgwctl/resources.h"

namespace xgw::ctl {

Expected<Json, ApiError> list_objects(Api& api, const Resource& r) {
  auto res = api.call("GET", r.path, nullptr);
  if (!res) return res;
  if (!res->is_object() || !res->contains(r.list_key) || !(*res)[r.list_key].is_array()) {
    return unexpected(ApiError{200, "BadResponse",
                               std::string("xgwd's reply has no ") + r.list_key + " list", ""});
  }
  return (*res)[r.list_key];
}

Expected<Json, ApiError> find_by_ref(const Json& items, const Resource& r, const std::string& ref) {
  std::vector<const Json*> by_name;
  for (const auto& o : items) {
    if (o.value("id", "") == ref) return o;
    if (o.value("name", "") == ref) by_name.push_back(&o);
  }
  if (by_name.size() == 1) return *by_name[0];
  if (by_name.empty()) {
    return unexpected(ApiError{404, "NotFound",
                               std::string("no ") + r.noun + " with id or name '" + ref + "'", ""});
  }
  std::string ids;
  for (const Json* o : by_name) ids += (ids.empty() ? "" : ", ") + o->value("id", "");
  return unexpected(ApiError{409, "Ambiguous",
                             std::string("the name '") + ref + "' matches " +
                                 std::to_string(by_name.size()) + " " + r.noun +
                                 "s; use an id: " + ids,
                             ""});
}

Expected<Json, ApiError> resolve(Api& api, const Resource& r, const std::string& ref) {
  auto items = list_objects(api, r);
  if (!items) return items;
  return find_by_ref(*items, r, ref);
}

std::string label(const Json& obj) {
  return obj.value("name", "?") + " (" + obj.value("id", "?") + ")";
}

}  // namespace xgw::ctl
