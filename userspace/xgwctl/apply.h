// `xgwctl apply`: makes the server hold the objects a declarative file
// describes. Objects match by name; a missing one is created, an existing
// one is PATCHed with only the fields whose desired value differs (see
// diff.h), anything else is left alone. Nothing is ever deleted.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "xgwctl/api_client.h"
#include "xgwctl/resources.h"

namespace xgw::ctl {

struct ApplyEvent {
  enum class Action { Created, Updated, Unchanged } action;
  const Resource* resource;
  std::string name;
  std::string id;
  std::vector<std::string> fields;  // Updated: the dotted paths sent
};

struct ApplySummary {
  int created = 0;
  int updated = 0;
  int unchanged = 0;
};

struct ApplyCallbacks {
  bool dry_run = false;                             // compare and report, change nothing
  std::function<void(const ApplyEvent&)> on_event;  // one per object, in order
  std::function<void(const std::string&)> on_note;  // advice, e.g. about the PSK
};

// The file's shape, checked before any request: only the sections
// vpn_gateways, customer_gateways and vpn_connections, each a list of
// objects with a unique string name; connections name their gateway and
// peer (vpn_gateway/vgw_id, customer_gateway/cgw_id); no read-only fields.
std::optional<std::string> validate_apply_doc(const Json& doc);

// Applies a validated document in order gateways, peers, connections.
// References are resolved (file or server) before the first change, so a
// typo fails without touching anything; a server error stops the run.
Expected<ApplySummary, ApiError> apply(Api& api, const Json& doc, const ApplyCallbacks& cb);

// The exact line printed for an event, e.g.
// "updated connection c1 (vpnconn-…): fields bandwidth, ikepolicy.dpd.interval".
std::string describe(const ApplyEvent& e);

}  // namespace xgw::ctl
