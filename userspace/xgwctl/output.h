// Human output: aligned tables for `list`, "key: value" lines for `show`.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "xgwctl/resources.h"

namespace xgw::ctl {

using Row = std::vector<std::string>;

// Columns padded to their widest cell, two spaces apart, no trailing blanks.
std::string format_table(const Row& header, const std::vector<Row>& rows);

// Names of gateways and peers by id, so connection rows can show names.
using NameIndex = std::map<std::string, std::string>;

// The list table of one collection. `names` maps ids to names (may be empty).
std::string format_list(const Resource& r, const Json& items, const NameIndex& names);

// "key: value" lines: name, id and status first, then the other fields in
// order, nested objects as dotted keys, scalar lists comma-joined, SPD rules
// as "SRC -> DST1, DST2". References get the referenced name in brackets.
std::string format_show(const Json& obj, const NameIndex& names);

// `xgwctl list-sas`: IKE SAs and their CHILD_SAs in swanctl --list-sas style.
std::string format_sas(const Json& ike_sas);

// `xgwctl dataplane`: per gateway its XDP interfaces, tier, traffic,
// non-zero outcomes, and each tunnel's SA state and counters.
std::string format_dataplane(const Json& dataplane);

// The compact SPD summary used in tables, in --rule syntax: "SRC=DST1,DST2; ...".
std::string rules_summary(const Json& conn);

}  // namespace xgw::ctl
