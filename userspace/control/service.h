// The control plane's operations, as the REST API and the reconciler see
// them: JSON request bodies in, JSON views out. Each mutation validates
// against control/rules.h and writes inside one store transaction; a
// rejected request leaves the store unchanged. Thread-safe (one mutex:
// control-plane writes are rare and small).
#pragma once

#include <functional>
#include <mutex>
#include <string>

#include "common/expected.h"
#include "control/codec.h"
#include "control/rules.h"
#include "store/store.h"

namespace xgw::control {

// What changed, for whoever drives the data plane after a commit.
struct Change {
  enum class Kind { Gateway, CustomerGateway, Connection } kind;
  enum class Op { Created, Updated, Deleted } op;
  std::string id;
};

class ControlPlane {
 public:
  using Result = Expected<Json, Error>;
  using Clock = std::function<std::string()>;  // returns an RFC 3339 UTC timestamp

  ControlPlane(store::Store& store, Quotas quotas, Clock clock = {});

  void set_quotas(const Quotas& q);
  Quotas quotas() const;
  // Called after each committed mutation, outside the lock.
  void set_observer(std::function<void(const Change&)> f);
  // Adds live state (tunnel status, negotiation status, failure reason) to
  // every connection view the API returns; called under the lock.
  void set_connection_overlay(std::function<void(Json&)> f);
  // Same for gateway views (why a gateway is in error: status_reason).
  void set_gateway_overlay(std::function<void(Json&)> f);
  // The live IKE SAs (GET /v1/ike-sas); empty when xgwd runs without IKE.
  void set_sa_provider(std::function<Json()> f);
  Result list_ike_sas();
  // The XDP data plane's live state (GET /v1/dataplane): per gateway its
  // interfaces, tier, outcomes and per-tunnel counters.
  void set_dataplane_provider(std::function<Json()> f);
  Result dataplane_status();

  Result create_gateway(const Json& body);
  Result list_gateways();
  Result get_gateway(const std::string& id);
  Result update_gateway(const std::string& id, const Json& body);
  Result delete_gateway(const std::string& id);
  // The reconciler moves a gateway between lifecycle states.
  Result set_gateway_status(const std::string& id, const std::string& status);

  Result create_customer_gateway(const Json& body);
  Result list_customer_gateways();
  Result get_customer_gateway(const std::string& id);
  Result update_customer_gateway(const std::string& id, const Json& body);
  Result delete_customer_gateway(const std::string& id);

  Result create_connection(const Json& body);
  Result list_connections();
  Result get_connection(const std::string& id);
  Result update_connection(const std::string& id, const Json& body);
  Result delete_connection(const std::string& id);

  static std::string utc_now();
  static std::string new_id(std::string_view prefix);

 private:
  Result with_gateway_view(const VpnConnection& c);
  void notify(const Change& c);

  store::Store& store_;
  Quotas quotas_;
  Clock clock_;
  mutable std::mutex mu_;
  std::function<void(const Change&)> observer_;
  std::function<void(Json&)> overlay_;
  std::function<void(Json&)> gw_overlay_;
  std::function<Json()> sa_provider_;
  std::function<Json()> dp_provider_;
};

}  // namespace xgw::control
