#include "xgwctl/apply.h"

#include <map>
#include <set>

#include "xgwctl/diff.h"

namespace xgw::ctl {
namespace {

struct Section {
  const char* key;  // the file's section
  const Resource* resource;
};
constexpr Section kSections[] = {
    {"vpn_gateways", &kGateway}, {"customer_gateways", &kPeer}, {"vpn_connections", &kConnection}};

const Json& section(const Json& doc, const char* key) {
  static const Json empty = Json::array();
  if (!doc.is_object()) return empty;
  auto it = doc.find(key);
  return it == doc.end() || it->is_null() ? empty : *it;
}

// A connection's reference: the by-name key, else the by-id key.
struct Ref {
  const char* name_key;
  const char* id_key;
  const Resource* resource;
};
constexpr Ref kRefs[] = {{"vpn_gateway", "vgw_id", &kGateway},
                         {"customer_gateway", "cgw_id", &kPeer}};

std::string ref_of(const Json& conn, const Ref& r) {
  if (auto it = conn.find(r.name_key); it != conn.end()) return it->get<std::string>();
  return conn.at(r.id_key).get<std::string>();
}

// The server objects carrying `name`; more than one is an error, since
// apply could not tell which to change.
Expected<const Json*, ApiError> current_named(const Json& items, const Resource& r,
                                              const std::string& name) {
  const Json* found = nullptr;
  for (const auto& o : items) {
    if (o.value("name", "") != name) continue;
    if (found) {
      return unexpected(ApiError{409, "Ambiguous",
                                 std::string("the server holds several ") + r.noun + "s named '" +
                                     name + "' (" + found->value("id", "") + ", " +
                                     o.value("id", "") + "); rename or delete one",
                                 ""});
    }
    found = &o;
  }
  return found;
}

ApiError in_context(ApiError e, const Resource& r, const std::string& name) {
  e.message = std::string(r.noun) + " " + name + ": " + e.message;
  return e;
}

}  // namespace

std::optional<std::string> validate_apply_doc(const Json& doc) {
  if (doc.is_null()) return std::nullopt;  // an empty file applies nothing
  if (!doc.is_object()) {
    return std::string(
        "the file must be a mapping with vpn_gateways, customer_gateways and/or vpn_connections");
  }
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    bool known = false;
    for (const auto& s : kSections) known |= it.key() == s.key;
    if (!known) {
      return "unknown section '" + it.key() +
             "' (expected vpn_gateways, customer_gateways, vpn_connections)";
    }
  }
  for (const auto& s : kSections) {
    const Json& items = section(doc, s.key);
    if (!items.is_array()) return std::string(s.key) + " must be a list";
    std::set<std::string> names;
    for (size_t i = 0; i < items.size(); ++i) {
      const std::string where = std::string(s.key) + "[" + std::to_string(i) + "]";
      const Json& o = items[i];
      if (!o.is_object()) return where + " must be a mapping of fields";
      if (!o.contains("name") || !o["name"].is_string() || o["name"].get<std::string>().empty())
        return where + ".name is required (objects are matched by name)";
      const std::string name = o["name"];
      if (!names.insert(name).second) return where + ": the name '" + name + "' appears twice";
      for (const char* ro : {"id", "status", "status_reason", "created_at", "updated_at"}) {
        if (o.contains(ro)) return where + "." + ro + " is read-only; remove it from the file";
      }
      if (s.resource != &kConnection) continue;
      for (const auto& r : kRefs) {
        const bool by_name = o.contains(r.name_key), by_id = o.contains(r.id_key);
        if (by_name == by_id) {
          return where + " (" + name + ") must name its " + r.resource->noun +
                 " with exactly one of " + r.name_key + " or " + r.id_key;
        }
        const Json& v = o[by_name ? r.name_key : r.id_key];
        if (!v.is_string()) {
          return where + "." + (by_name ? r.name_key : r.id_key) + " must be a string";
        }
      }
    }
  }
  return std::nullopt;
}

std::string describe(const ApplyEvent& e) {
  static const char* verbs[] = {"created", "updated", "unchanged"};
  std::string s = std::string(verbs[static_cast<int>(e.action)]) + " " + e.resource->noun + " " +
                  e.name + " (" + e.id + ")";
  if (!e.fields.empty()) {
    s += ": fields ";
    for (size_t i = 0; i < e.fields.size(); ++i) s += (i ? ", " : "") + e.fields[i];
  }
  return s;
}

Expected<ApplySummary, ApiError> apply(Api& api, const Json& doc, const ApplyCallbacks& cb) {
  ApplySummary sum;
  if (doc.is_null()) return sum;

  std::map<const Resource*, Json> current;
  for (const auto& s : kSections) {
    auto items = list_objects(api, *s.resource);
    if (!items) return unexpected(items.error());
    current[s.resource] = std::move(*items);
  }

  // Everything that can fail without the server's say is checked first.
  for (const auto& s : kSections) {
    for (const auto& o : section(doc, s.key)) {
      auto cur = current_named(current[s.resource], *s.resource, o["name"]);
      if (!cur) return unexpected(cur.error());
    }
  }
  for (const auto& c : section(doc, "vpn_connections")) {
    for (const auto& r : kRefs) {
      const std::string ref = ref_of(c, r);
      bool in_file = false;
      if (c.contains(r.name_key)) {
        for (const auto& s : kSections)
          if (s.resource == r.resource)
            for (const auto& o : section(doc, s.key)) in_file |= o["name"] == ref;
      }
      if (in_file) continue;
      auto found = find_by_ref(current[r.resource], *r.resource, ref);
      if (!found) return unexpected(in_context(found.error(), kConnection, c["name"]));
    }
  }

  // Ids by name (and id) for the connections' references, filled as
  // gateways and peers are created.
  std::map<const Resource*, std::map<std::string, std::string>> ids;
  auto remember = [&ids](const Resource* r, const Json& o) {
    ids[r][o.value("name", "")] = o.value("id", "");
  };
  for (const auto& [r, items] : current)
    for (const auto& o : items) remember(r, o);

  for (const auto& s : kSections) {
    const Resource& res = *s.resource;
    for (Json desired : section(doc, s.key)) {
      const std::string name = desired["name"];
      bool psk_given = false;
      if (&res == &kConnection) {
        for (const auto& r : kRefs) {
          const std::string ref = ref_of(desired, r);
          desired.erase(r.name_key);
          auto& known = ids[r.resource];
          // A name from the file or the server; otherwise `ref` is an id
          // (checked to exist above).
          desired[r.id_key] = known.count(ref) ? known[ref] : ref;
        }
        psk_given = desired.contains("psk");
      }
      auto cur = current_named(current[&res], res, name);
      if (!cur) return unexpected(cur.error());
      if (!*cur) {
        Json obj{{"name", name}, {"id", "new"}};
        if (!cb.dry_run) {
          const Json body{{res.key, desired}};
          auto created = api.call("POST", res.path, &body);
          if (!created) return unexpected(in_context(created.error(), res, name));
          obj = (*created)[res.key];
        }
        remember(&res, obj);
        ++sum.created;
        if (cb.on_event)
          cb.on_event({ApplyEvent::Action::Created, &res, name, obj.value("id", ""), {}});
        continue;
      }
      const Json& existing = **cur;
      const std::string id = existing.value("id", "");
      if (psk_given) {
        // The server never shows a PSK, so there is nothing to compare.
        desired.erase("psk");
        if (cb.on_note) {
          cb.on_note("connection " + name +
                     ": psk is write-only and not compared on an existing connection; rotate it "
                     "with `xgwctl connection update " +
                     name + " --psk NEW`");
        }
      }
      FieldDiff d = diff_objects(desired, existing);
      if (d.empty()) {
        ++sum.unchanged;
        if (cb.on_event) cb.on_event({ApplyEvent::Action::Unchanged, &res, name, id, {}});
        continue;
      }
      if (!cb.dry_run) {
        const Json body{{res.key, d.patch}};
        auto updated = api.call("PATCH", std::string(res.path) + "/" + id, &body);
        if (!updated) return unexpected(in_context(updated.error(), res, name));
      }
      ++sum.updated;
      if (cb.on_event)
        cb.on_event({ApplyEvent::Action::Updated, &res, name, id, std::move(d.fields)});
    }
  }
  return sum;
}

}  // namespace xgw::ctl
