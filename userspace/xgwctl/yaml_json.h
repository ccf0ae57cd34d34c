// YAML -> JSON for xgwctl's declarative files and typed command-line
// values. Plain scalars follow the YAML 1.2 core schema (null, true/false,
// integers, floats; everything else is a string); quoted and block scalars
// are always strings, so "10.0.0.0/24", '100' and 'yes' stay text.
#pragma once

#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>
#include <string>

#include "common/expected.h"

namespace xgw::ctl {

using Json = nlohmann::json;

// Converts one YAML node. Errors name the offending path ("a.b[2]") and
// cover duplicate keys, unsupported tags, non-scalar keys and values JSON
// cannot hold (.inf, .nan).
Expected<Json, std::string> yaml_to_json(const YAML::Node& node);

// Parses YAML text (the first document; an empty text is null). `origin`
// prefixes parse errors, e.g. the file name.
Expected<Json, std::string> parse_yaml(const std::string& text, const std::string& origin);

// Reads a file holding JSON or YAML.
Expected<Json, std::string> load_document_file(const std::string& path);

// The typed value of a plain scalar under the core schema.
Json plain_scalar(const std::string& s);

}  // namespace xgw::ctl
