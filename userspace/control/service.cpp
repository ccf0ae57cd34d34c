#include "control/service.h"

#include <openssl/rand.h>
#include <sqlite3.h>

#include <chrono>
#include <cstdio>
#include <ctime>

namespace xgw::control {
namespace {

Error store_error(const store::StoreError& e) {
  if ((e.code & 0xff) == SQLITE_CONSTRAINT) return conflict("Conflict", e.message);
  if (e.code == SQLITE_NOTFOUND) return not_found(e.message);
  return {500, "StoreError", e.message, ""};
}

// Unwraps {"<key>": {...}}: exactly one member, the named object.
Expected<Json, Error> unwrap(const Json& body, const char* key) {
  if (!body.is_object() || body.size() != 1 || !body.contains(key)) {
    return unexpected(bad_request("InvalidBody", std::string("the body must be {\"") + key +
                                                     "\": {...}} with no other members"));
  }
  const Json& inner = body.at(key);
  if (!inner.is_object()) {
    return unexpected(bad_request("WrongType", std::string(key) + " must be an object"));
  }
  return inner;
}

Expected<Json, Error> merge(Json base, const Json& body, const char* key) {
  auto patch = unwrap(body, key);
  if (!patch) return unexpected(patch.error());
  base.merge_patch(*patch);  // RFC 7396
  return base;
}

#define XGW_TRY_STORE(var, expr) \
  auto var = (expr);             \
  if (!var) return unexpected(store_error(var.error()))

Json wrap(const char* key, Json v) {
  return Json{{key, std::move(v)}};
}

PolicyDefaults defaults_for(size_t tunnels) {
  return tunnels >= 2 ? PolicyDefaults::DualTunnel : PolicyDefaults::Single;
}

// One master tunnel per gateway public IP when the body names none.
void default_tunnels(VpnConnection& c, const VpnGateway& gw) {
  if (!c.tunnels.empty()) return;
  for (size_t i = 0; i < gw.public_ips.size() && i < 2; ++i) {
    c.tunnels.push_back(Tunnel{i == 0 ? HaRole::Master : HaRole::Slave, {}, {}});
  }
}

}  // namespace

ControlPlane::ControlPlane(store::Store& store, Quotas quotas, Clock clock)
    : store_(store), quotas_(quotas), clock_(clock ? std::move(clock) : Clock(&utc_now)) {}

void ControlPlane::set_quotas(const Quotas& q) {
  std::lock_guard lk(mu_);
  quotas_ = q;
}

Quotas ControlPlane::quotas() const {
  std::lock_guard lk(mu_);
  return quotas_;
}

void ControlPlane::set_observer(std::function<void(const Change&)> f) {
  std::lock_guard lk(mu_);
  observer_ = std::move(f);
}

void ControlPlane::set_connection_overlay(std::function<void(Json&)> f) {
  std::lock_guard lk(mu_);
  overlay_ = std::move(f);
}

void ControlPlane::set_gateway_overlay(std::function<void(Json&)> f) {
  std::lock_guard lk(mu_);
  gw_overlay_ = std::move(f);
}

void ControlPlane::set_sa_provider(std::function<Json()> f) {
  std::lock_guard lk(mu_);
  sa_provider_ = std::move(f);
}

void ControlPlane::set_dataplane_provider(std::function<Json()> f) {
  std::lock_guard lk(mu_);
  dp_provider_ = std::move(f);
}

ControlPlane::Result ControlPlane::dataplane_status() {
  std::lock_guard lk(mu_);
  return Json{{"dataplane", dp_provider_ ? dp_provider_()
                                         : Json{{"enabled", false}, {"gateways", Json::array()}}}};
}

ControlPlane::Result ControlPlane::list_ike_sas() {
  std::lock_guard lk(mu_);
  return Json{{"ike_sas", sa_provider_ ? sa_provider_() : Json::array()}};
}

void ControlPlane::notify(const Change& c) {
  std::function<void(const Change&)> f;
  {
    std::lock_guard lk(mu_);
    f = observer_;
  }
  if (f) f(c);
}

std::string ControlPlane::utc_now() {
  const auto now = std::chrono::system_clock::now();
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

std::string ControlPlane::new_id(std::string_view prefix) {
  unsigned char b[8];
  if (RAND_bytes(b, sizeof b) != 1) abort();  // no entropy: nothing safe to do
  std::string id(prefix);
  id += '-';
  static const char* hex = "0123456789abcdef";
  for (unsigned char x : b) {
    id += hex[x >> 4];
    id += hex[x & 15];
  }
  return id;
}

// --- VPN gateways --------------------------------------------------------------

ControlPlane::Result ControlPlane::create_gateway(const Json& body) {
  auto inner = unwrap(body, "vpn_gateway");
  if (!inner) return unexpected(inner.error());
  auto g = gateway_from_json(*inner);
  if (!g) return unexpected(g.error());
  if (auto e = check_gateway(*g)) return unexpected(*e);
  Json view;
  {
    std::lock_guard lk(mu_);
    XGW_TRY_STORE(txn, store_.begin_write());
    XGW_TRY_STORE(all, store_.gateways());
    if (auto e = check_gateway_quota(all->size(), quotas_)) return unexpected(*e);
    g->id = new_id("vpngw");
    g->status = "pending";
    g->created_at = g->updated_at = clock_();
    XGW_TRY_STORE(ins, store_.insert_gateway(*g));
    XGW_TRY_STORE(done, txn->commit());
    view = to_json(*g);
  }
  notify({Change::Kind::Gateway, Change::Op::Created, g->id});
  return wrap("vpn_gateway", view);
}

ControlPlane::Result ControlPlane::list_gateways() {
  std::lock_guard lk(mu_);
  XGW_TRY_STORE(all, store_.gateways());
  Json out = Json::array();
  for (const auto& g : *all) {
    out.push_back(to_json(g));
    if (gw_overlay_) gw_overlay_(out.back());
  }
  return wrap("vpn_gateways", out);
}

ControlPlane::Result ControlPlane::get_gateway(const std::string& id) {
  std::lock_guard lk(mu_);
  XGW_TRY_STORE(g, store_.gateway(id));
  if (!*g) return unexpected(not_found("no VPN gateway " + id));
  Json view = to_json(**g);
  if (gw_overlay_) gw_overlay_(view);
  return wrap("vpn_gateway", view);
}

ControlPlane::Result ControlPlane::update_gateway(const std::string& id, const Json& body) {
  Json view;
  {
    std::lock_guard lk(mu_);
    XGW_TRY_STORE(txn, store_.begin_write());
    XGW_TRY_STORE(cur, store_.gateway(id));
    if (!*cur) return unexpected(not_found("no VPN gateway " + id));
    auto merged = merge(to_json(**cur, false), body, "vpn_gateway");
    if (!merged) return unexpected(merged.error());
    auto g = gateway_from_json(*merged);
    if (!g) return unexpected(g.error());
    XGW_TRY_STORE(conns, store_.connections_of_gateway(id));
    if (auto e = check_gateway_update(**cur, *g, *conns)) return unexpected(*e);
    g->id = id;
    g->status = (*cur)->status;
    g->created_at = (*cur)->created_at;
    g->updated_at = clock_();
    XGW_TRY_STORE(upd, store_.update_gateway(*g));
    XGW_TRY_STORE(done, txn->commit());
    view = to_json(*g);
  }
  notify({Change::Kind::Gateway, Change::Op::Updated, id});
  return wrap("vpn_gateway", view);
}

ControlPlane::Result ControlPlane::delete_gateway(const std::string& id) {
  {
    std::lock_guard lk(mu_);
    XGW_TRY_STORE(txn, store_.begin_write());
    XGW_TRY_STORE(cur, store_.gateway(id));
    if (!*cur) return unexpected(not_found("no VPN gateway " + id));
    XGW_TRY_STORE(conns, store_.connections_of_gateway(id));
    if (auto e = check_gateway_delete(**cur, conns->size())) return unexpected(*e);
    XGW_TRY_STORE(del, store_.delete_gateway(id));
    XGW_TRY_STORE(done, txn->commit());
  }
  notify({Change::Kind::Gateway, Change::Op::Deleted, id});
  return Json(nullptr);
}

ControlPlane::Result ControlPlane::set_gateway_status(const std::string& id,
                                                      const std::string& status) {
  std::lock_guard lk(mu_);
  XGW_TRY_STORE(txn, store_.begin_write());
  XGW_TRY_STORE(cur, store_.gateway(id));
  if (!*cur) return unexpected(not_found("no VPN gateway " + id));
  auto g = **cur;
  if (g.status == status) return wrap("vpn_gateway", to_json(g));
  g.status = status;
  g.updated_at = clock_();
  XGW_TRY_STORE(upd, store_.update_gateway(g));
  XGW_TRY_STORE(done, txn->commit());
  return wrap("vpn_gateway", to_json(g));
}

// --- customer gateways -----------------------------------------------------------

ControlPlane::Result ControlPlane::create_customer_gateway(const Json& body) {
  auto inner = unwrap(body, "customer_gateway");
  if (!inner) return unexpected(inner.error());
  auto c = customer_gateway_from_json(*inner);
  if (!c) return unexpected(c.error());
  if (auto e = check_customer_gateway(*c)) return unexpected(*e);
  Json view;
  {
    std::lock_guard lk(mu_);
    XGW_TRY_STORE(txn, store_.begin_write());
    XGW_TRY_STORE(all, store_.customer_gateways());
    if (auto e = check_customer_gateway_quota(all->size(), quotas_)) return unexpected(*e);
    if (auto e = check_customer_gateway_ip_unique(*c, *all)) return unexpected(*e);
    c->id = new_id("cgw");
    c->created_at = c->updated_at = clock_();
    XGW_TRY_STORE(ins, store_.insert_customer_gateway(*c));
    XGW_TRY_STORE(done, txn->commit());
    view = to_json(*c);
  }
  notify({Change::Kind::CustomerGateway, Change::Op::Created, c->id});
  return wrap("customer_gateway", view);
}

ControlPlane::Result ControlPlane::list_customer_gateways() {
  std::lock_guard lk(mu_);
  XGW_TRY_STORE(all, store_.customer_gateways());
  Json out = Json::array();
  for (const auto& c : *all) out.push_back(to_json(c));
  return wrap("customer_gateways", out);
}

ControlPlane::Result ControlPlane::get_customer_gateway(const std::string& id) {
  std::lock_guard lk(mu_);
  XGW_TRY_STORE(c, store_.customer_gateway(id));
  if (!*c) return unexpected(not_found("no customer gateway " + id));
  return wrap("customer_gateway", to_json(**c));
}

ControlPlane::Result ControlPlane::update_customer_gateway(const std::string& id,
                                                           const Json& body) {
  Json view;
  {
    std::lock_guard lk(mu_);
    XGW_TRY_STORE(txn, store_.begin_write());
    XGW_TRY_STORE(cur, store_.customer_gateway(id));
    if (!*cur) return unexpected(not_found("no customer gateway " + id));
    auto merged = merge(to_json(**cur, false), body, "customer_gateway");
    if (!merged) return unexpected(merged.error());
    auto c = customer_gateway_from_json(*merged);
    if (!c) return unexpected(c.error());
    c->id = id;
    XGW_TRY_STORE(conns, store_.connections_of_customer_gateway(id));
    if (auto e = check_customer_gateway_update(*c, *conns)) return unexpected(*e);
    XGW_TRY_STORE(all, store_.customer_gateways());
    if (auto e = check_customer_gateway_ip_unique(*c, *all)) return unexpected(*e);
    c->created_at = (*cur)->created_at;
    c->updated_at = clock_();
    XGW_TRY_STORE(upd, store_.update_customer_gateway(*c));
    XGW_TRY_STORE(done, txn->commit());
    view = to_json(*c);
  }
  notify({Change::Kind::CustomerGateway, Change::Op::Updated, id});
  return wrap("customer_gateway", view);
}

ControlPlane::Result ControlPlane::delete_customer_gateway(const std::string& id) {
  {
    std::lock_guard lk(mu_);
    XGW_TRY_STORE(txn, store_.begin_write());
    XGW_TRY_STORE(cur, store_.customer_gateway(id));
    if (!*cur) return unexpected(not_found("no customer gateway " + id));
    XGW_TRY_STORE(conns, store_.connections_of_customer_gateway(id));
    if (auto e = check_customer_gateway_delete(**cur, conns->size())) return unexpected(*e);
    XGW_TRY_STORE(del, store_.delete_customer_gateway(id));
    XGW_TRY_STORE(done, txn->commit());
  }
  notify({Change::Kind::CustomerGateway, Change::Op::Deleted, id});
  return Json(nullptr);
}

// --- VPN connections ---------------------------------------------------------------

ControlPlane::Result ControlPlane::create_connection(const Json& body) {
  auto inner = unwrap(body, "vpn_connection");
  if (!inner) return unexpected(inner.error());
  Json view;
  std::string id;
  {
    std::lock_guard lk(mu_);
    XGW_TRY_STORE(txn, store_.begin_write());
    // The referenced gateway decides the defaults (one or two tunnels), so
    // it is looked up before the body is parsed.
    const Json* vgw = inner->contains("vgw_id") ? &inner->at("vgw_id") : nullptr;
    std::optional<VpnGateway> gw;
    if (vgw && vgw->is_string()) {
      XGW_TRY_STORE(g, store_.gateway(vgw->get<std::string>()));
      gw = *g;
    }
    size_t tunnels = gw ? gw->public_ips.size() : 1;
    if (inner->contains("tunnels") && inner->at("tunnels").is_array())
      tunnels = inner->at("tunnels").size();
    auto c = connection_from_json(*inner, defaults_for(tunnels));
    if (!c) return unexpected(c.error());
    if (!gw) return unexpected(not_found("no VPN gateway " + c->vgw_id, "vgw_id"));
    XGW_TRY_STORE(cgw, store_.customer_gateway(c->cgw_id));
    if (!*cgw) return unexpected(not_found("no customer gateway " + c->cgw_id, "cgw_id"));
    if (c->psk.empty() && !inner->contains("psk")) c->psk = generate_psk();
    default_tunnels(*c, *gw);
    XGW_TRY_STORE(on_gw, store_.connections_of_gateway(gw->id));
    XGW_TRY_STORE(on_cgw, store_.connections_of_customer_gateway(c->cgw_id));
    if (auto e = check_connection_quota(*c, *on_gw, *on_cgw, quotas_)) return unexpected(*e);
    if (auto e = check_connection(*c, *gw, **cgw, *on_gw, quotas_)) return unexpected(*e);
    c->id = new_id("vpnconn");
    c->status = "down";
    c->created_at = c->updated_at = clock_();
    XGW_TRY_STORE(ins, store_.insert_connection(*c));
    XGW_TRY_STORE(done, txn->commit());
    view = to_json(*c, true, &*gw);
    id = c->id;
  }
  notify({Change::Kind::Connection, Change::Op::Created, id});
  return wrap("vpn_connection", view);
}

ControlPlane::Result ControlPlane::list_connections() {
  std::lock_guard lk(mu_);
  XGW_TRY_STORE(all, store_.connections());
  XGW_TRY_STORE(gws, store_.gateways());
  Json out = Json::array();
  for (const auto& c : *all) {
    const VpnGateway* gw = nullptr;
    for (const auto& g : *gws)
      if (g.id == c.vgw_id) gw = &g;
    out.push_back(to_json(c, true, gw));
    if (overlay_) overlay_(out.back());
  }
  return wrap("vpn_connections", out);
}

ControlPlane::Result ControlPlane::get_connection(const std::string& id) {
  std::lock_guard lk(mu_);
  XGW_TRY_STORE(c, store_.connection(id));
  if (!*c) return unexpected(not_found("no VPN connection " + id));
  XGW_TRY_STORE(gw, store_.gateway((*c)->vgw_id));
  Json view = to_json(**c, true, *gw ? &**gw : nullptr);
  if (overlay_) overlay_(view);
  return wrap("vpn_connection", view);
}

ControlPlane::Result ControlPlane::update_connection(const std::string& id, const Json& body) {
  Json view;
  {
    std::lock_guard lk(mu_);
    XGW_TRY_STORE(txn, store_.begin_write());
    XGW_TRY_STORE(cur, store_.connection(id));
    if (!*cur) return unexpected(not_found("no VPN connection " + id));
    auto merged = merge(to_json(**cur, false), body, "vpn_connection");
    if (!merged) return unexpected(merged.error());
    // Every policy field is explicit in the stored document, so the
    // defaults column does not matter here.
    auto c = connection_from_json(*merged, PolicyDefaults::Single);
    if (!c) return unexpected(c.error());
    if (!merged->contains("psk")) c->psk = (*cur)->psk;
    if (auto e = check_connection_update(**cur, *c)) return unexpected(*e);
    XGW_TRY_STORE(gw, store_.gateway(c->vgw_id));
    XGW_TRY_STORE(cgw, store_.customer_gateway(c->cgw_id));
    if (!*gw || !*cgw)
      return unexpected(Error{500, "StoreError", "connection references a missing object", ""});
    c->id = id;
    XGW_TRY_STORE(on_gw, store_.connections_of_gateway(c->vgw_id));
    if (auto e = check_connection(*c, **gw, **cgw, *on_gw, quotas_)) return unexpected(*e);
    c->status = (*cur)->status;
    c->created_at = (*cur)->created_at;
    c->updated_at = clock_();
    XGW_TRY_STORE(upd, store_.update_connection(*c));
    XGW_TRY_STORE(done, txn->commit());
    view = to_json(*c, true, &**gw);
  }
  notify({Change::Kind::Connection, Change::Op::Updated, id});
  return wrap("vpn_connection", view);
}

ControlPlane::Result ControlPlane::delete_connection(const std::string& id) {
  {
    std::lock_guard lk(mu_);
    XGW_TRY_STORE(txn, store_.begin_write());
    XGW_TRY_STORE(cur, store_.connection(id));
    if (!*cur) return unexpected(not_found("no VPN connection " + id));
    XGW_TRY_STORE(del, store_.delete_connection(id));
    XGW_TRY_STORE(done, txn->commit());
  }
  notify({Change::Kind::Connection, Change::Op::Deleted, id});
  return Json(nullptr);
}

}  // namespace xgw::control
