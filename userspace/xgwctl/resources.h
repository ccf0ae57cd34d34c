// The three API collections as xgwctl names them, and lookups by id or name.
#pragma once

#include <string>
#include <vector>

#include "xgwctl/api_client.h"

namespace xgw::ctl {

struct Resource {
  const char* noun;      // the CLI noun: gateway, peer, connection
  const char* path;      // collection path
  const char* key;       // body wrapper of one object
  const char* list_key;  // body wrapper of the list
};

inline constexpr Resource kGateway{"gateway", "/v1/vpn-gateways", "vpn_gateway", "vpn_gateways"};
inline constexpr Resource kPeer{"peer", "/v1/customer-gateways", "customer_gateway",
                                "customer_gateways"};
inline constexpr Resource kConnection{"connection", "/v1/vpn-connections", "vpn_connection",
                                      "vpn_connections"};

// GET the collection: the array of objects.
Expected<Json, ApiError> list_objects(Api& api, const Resource& r);

// Finds `ref` in `items`: an exact id wins, else a unique name. Errors
// (status 404 for none, 409 for an ambiguous name) read like the server's.
Expected<Json, ApiError> find_by_ref(const Json& items, const Resource& r, const std::string& ref);

// list_objects + find_by_ref.
Expected<Json, ApiError> resolve(Api& api, const Resource& r, const std::string& ref);

// The "name (id)" of an object, for messages.
std::string label(const Json& obj);

}  // namespace xgw::ctl
