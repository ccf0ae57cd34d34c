// The comparison behind `xgwctl apply`: a desired object (from the file)
// against the server's current view. Only keys the desired object names
// are compared; nested objects recurse by the keys given; arrays compare
// whole (same length, each element matching, where an object element again
// matches by the keys it names, so a tunnel written without its read-only
// local_ip still equals the server's). Numbers compare by value.
#pragma once

#include <string>
#include <vector>

#include "xgwctl/yaml_json.h"

namespace xgw::ctl {

// True when everything `desired` names has the same value in `current`.
// A desired null matches an absent or null current value.
bool matches(const Json& desired, const Json& current);

struct FieldDiff {
  Json patch = Json::object();      // a JSON merge patch (RFC 7396) of the differences
  std::vector<std::string> fields;  // dotted paths of the differing fields
  bool empty() const { return fields.empty(); }
};

// What to PATCH so `current` takes the desired values. Both are objects.
FieldDiff diff_objects(const Json& desired, const Json& current);

// Sets `value` at a dotted path ("ikepolicy.dpd.interval"), creating the
// intermediate objects. Fails when a prefix holds a non-object.
Expected<void, std::string> set_path(Json& obj, const std::string& dotted, Json value);

}  // namespace xgw::ctl
