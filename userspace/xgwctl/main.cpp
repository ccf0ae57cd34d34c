// xgwctl: the command-line client of xgwd's REST API. Imperative commands
// per object (create, list, show, update, delete) and a declarative
// `apply -f FILE.yaml`. Exit status: 0 success, 1 the API (or the daemon's
// reachability) failed, 2 the command line or the input file is wrong.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>

#include "xgwctl/api_client.h"
#include "xgwctl/apply.h"
#include "xgwctl/diff.h"
#include "xgwctl/output.h"
#include "xgwctl/resources.h"
#include "xgwctl/yaml_json.h"

namespace {

using namespace xgw::ctl;

// Thrown by command bodies; main turns it into a message and exit status.
struct Failure {
  int exit_code;
  std::string message;
};

[[noreturn]] void usage_error(std::string msg) {
  throw Failure{2, std::move(msg)};
}

template <typename T>
T ok(xgw::Expected<T, ApiError> r) {
  if (!r) throw Failure{1, r.error().describe()};
  return std::move(*r);
}

struct Globals {
  std::string api;
  std::string token_file;
  std::string state_dir;
  bool json = false;
  double timeout = 10;
};

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string trim(std::string s) {
  const char* ws = " \t\r\n";
  s.erase(s.find_last_not_of(ws) + 1);
  s.erase(0, std::min(s.size(), s.find_first_not_of(ws)));
  return s;
}

// The first line of a file, or nothing (with errno set) when unreadable.
std::optional<std::string> first_line(const std::string& path) {
  std::ifstream f(path);
  if (!f) return std::nullopt;
  std::string line;
  std::getline(f, line);
  return trim(line);
}

// Flag, then environment, then what a local daemon left in its state dir.
std::unique_ptr<Api> connect(const Globals& g) {
  std::string state_dir = g.state_dir;
  if (state_dir.empty()) state_dir = env("XGW_STATE_DIR");
  if (state_dir.empty()) state_dir = "/var/lib/xgw";

  std::string addr = g.api;
  if (addr.empty()) addr = env("XGW_API");
  if (addr.empty()) addr = first_line(state_dir + "/api.addr").value_or("");
  if (addr.empty()) addr = "127.0.0.1:9740";
  auto ep = parse_endpoint(addr);
  if (!ep) usage_error(ep.error());

  std::string token_file = g.token_file;
  if (token_file.empty()) token_file = env("XGW_TOKEN_FILE");
  if (token_file.empty()) token_file = state_dir + "/api-token";
  errno = 0;
  auto token = first_line(token_file);
  if (!token || token->empty()) {
    const std::string why = token ? "the file is empty" : std::strerror(errno);
    throw Failure{1, "cannot read the API token from " + token_file + ": " + why +
                         " (xgwd writes it on first start; pass --token-file or --state-dir, or "
                         "run as the daemon's user)"};
  }
  const auto ms = std::chrono::milliseconds(static_cast<long>(g.timeout * 1000));
  return std::make_unique<HttpApi>(*ep, *token, ms);
}

void print_json(const Json& j) {
  std::cout << j.dump(2) << "\n";
}

// --- building request bodies from flags ------------------------------------

struct ObjectFlags {
  std::string ref;  // update: ID|NAME
  std::string body_file, body_json;
  std::vector<std::string> sets;
  std::string name;
  // gateway
  std::string type, local_cidr, local_cidr_v6;
  uint32_t bandwidth = 0;
  std::vector<std::string> public_ips;
  // peer
  std::string ip;
  uint32_t bgp_asn = 0;
  // connection
  std::string gateway, peer, psk, style, ike_version;
  std::vector<std::string> rules, peer_subnets;
  bool start_immediately = false;
};

// "SRC=DST1,DST2" -> {"source": SRC, "destination": [DST1, DST2]}.
Json parse_rule(const std::string& spec) {
  const size_t eq = spec.find('=');
  if (eq == std::string::npos) usage_error("--rule '" + spec + "' must look like SRC=DST1,DST2");
  Json rule{{"source", trim(spec.substr(0, eq))}, {"destination", Json::array()}};
  std::string rest = spec.substr(eq + 1);
  size_t start = 0;
  while (start <= rest.size()) {
    const size_t comma = rest.find(',', start);
    const std::string d =
        trim(rest.substr(start, comma == std::string::npos ? comma : comma - start));
    if (!d.empty()) rule["destination"].push_back(d);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (rule["source"].get<std::string>().empty() || rule["destination"].empty())
    usage_error("--rule '" + spec + "' needs a source and at least one destination");
  return rule;
}

// "2", "v2", "ikev2" -> "v2".
std::string ike_version(std::string v) {
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
  if (v.rfind("ike", 0) == 0) v.erase(0, 3);
  if (!v.empty() && std::isdigit(static_cast<unsigned char>(v[0]))) v = "v" + v;
  return v;
}

Json unwrap_body(Json j, const Resource& r) {
  if (j.is_object() && j.size() == 1 && j.contains(r.key)) j = j[r.key];
  if (!j.is_object())
    usage_error(std::string("the body must be a JSON/YAML object of ") + r.key + " fields");
  return j;
}

// The object's fields from -f/--body, then the typed flags, then --set (so
// the more specific source wins).
Json build_body(const Resource& r, const ObjectFlags& f, const CLI::App& cmd, Api* api) {
  Json body = Json::object();
  if (!f.body_file.empty()) {
    auto j = load_document_file(f.body_file);
    if (!j) usage_error(j.error());
    body = unwrap_body(*j, r);
  }
  if (!f.body_json.empty()) {
    Json j = Json::parse(f.body_json, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) usage_error("--body is not valid JSON");
    body.merge_patch(unwrap_body(j, r));
  }
  auto given = [&cmd](const char* opt) { return cmd.count(opt) > 0; };
  if (given("--name")) body["name"] = f.name;
  if (&r == &kGateway) {
    if (given("--type")) body["type"] = f.type;
    if (given("--bandwidth")) body["bandwidth"] = f.bandwidth;
    if (given("--local-cidr")) body["local_cidr"] = f.local_cidr;
    if (given("--local-cidr-v6")) body["local_cidr_v6"] = f.local_cidr_v6;
    if (given("--public-ip")) body["public_ips"] = f.public_ips;
  } else if (&r == &kPeer) {
    if (given("--ip")) body["ip"] = f.ip;
    if (given("--bgp-asn")) body["bgp_asn"] = f.bgp_asn;
  } else {
    if (given("--gateway")) body["vgw_id"] = ok(resolve(*api, kGateway, f.gateway))["id"];
    if (given("--peer")) body["cgw_id"] = ok(resolve(*api, kPeer, f.peer))["id"];
    if (given("--psk")) body["psk"] = f.psk;
    if (given("--style")) {
      std::string s = f.style;
      std::transform(s.begin(), s.end(), s.begin(),
                     [](unsigned char c) { return std::toupper(c); });
      body["style"] = s;
    }
    if (given("--rule")) {
      body["policy_rules"] = Json::array();
      for (const auto& spec : f.rules) body["policy_rules"].push_back(parse_rule(spec));
    }
    if (given("--peer-subnet")) body["peer_subnets"] = f.peer_subnets;
    if (given("--ike-version")) {
      if (!body.contains("ikepolicy") || !body["ikepolicy"].is_object())
        body["ikepolicy"] = Json::object();
      body["ikepolicy"]["ike_version"] = ike_version(f.ike_version);
    }
    if (given("--start-immediately"))  // counts --no-start-immediately too
      body["start_immediately"] = f.start_immediately;
  }
  for (const auto& kv : f.sets) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos) usage_error("--set '" + kv + "' must look like key.path=VALUE");
    auto v = parse_yaml(kv.substr(eq + 1), "--set " + kv.substr(0, eq));
    if (!v) usage_error(v.error());
    if (auto s = set_path(body, trim(kv.substr(0, eq)), *v); !s)
      usage_error("--set " + kv + ": " + s.error());
  }
  return body;
}

std::string body_help(const Resource& r) {
  return std::string(
             "Any field of the API object can be given with -f FILE (JSON or YAML: the object's "
             "fields, optionally wrapped as {\"") +
         r.key +
         "\": {...}}), --body JSON, or --set key.path=VALUE (repeatable; VALUE is YAML: 10 is a "
         "number, true a boolean, \"10\" a string, [a, b] a list, {k: v} an object, null "
         "removes the field on update). Flags override -f/--body; --set overrides flags. List "
         "flags given on update replace the whole list. Example: --set "
         "ikepolicy.dpd.interval=10 --set enable_nat_traversal=false";
}

// Repeatable options take one value per occurrence (allow_extra_args
// false), so `--rule A=B NAME` leaves NAME to the positional argument.
void add_object_flags(CLI::App* cmd, const Resource& r, ObjectFlags& f) {
  cmd->add_option("-f,--file", f.body_file, "read fields from a JSON or YAML file");
  cmd->add_option("--body", f.body_json, "fields as a JSON object");
  cmd->add_option("--set", f.sets, "set key.path=VALUE (repeatable; VALUE is YAML)")
      ->allow_extra_args(false);
  cmd->add_option("--name", f.name, "name (letters, digits, CJK, _ and -)");
  if (&r == &kGateway) {
    cmd->add_option("--type", f.type, "ipsec (default) or ssl");
    cmd->add_option("--bandwidth", f.bandwidth, "Mbit/s: 5, 10, 20, 50, 100, 200, 500 or 1000");
    cmd->add_option("--local-cidr", f.local_cidr, "the protected network, e.g. 10.0.0.0/16");
    cmd->add_option("--local-cidr-v6", f.local_cidr_v6, "the protected IPv6 network");
    cmd->add_option("--public-ip", f.public_ips,
                    "public IP (repeatable; two enable dual-tunnel mode; replaces the list)")
        ->allow_extra_args(false);
  } else if (&r == &kPeer) {
    cmd->add_option("--ip", f.ip, "the peer's public IP");
    cmd->add_option("--bgp-asn", f.bgp_asn, "the peer's BGP ASN");
  } else {
    cmd->add_option("--gateway", f.gateway, "the VPN gateway, ID or NAME");
    cmd->add_option("--peer", f.peer, "the peer (customer gateway), ID or NAME");
    cmd->add_option("--psk", f.psk, "pre-shared key (write-only; generated when omitted)");
    cmd->add_option("--style", f.style, "POLICY, STATIC or BGP");
    cmd->add_option("--rule", f.rules, "SPD rule SRC=DST1,DST2 (repeatable; replaces all rules)")
        ->allow_extra_args(false);
    cmd->add_option("--peer-subnet", f.peer_subnets,
                    "STATIC: a remote CIDR routed into the tunnel (repeatable)")
        ->allow_extra_args(false);
    cmd->add_option("--ike-version", f.ike_version, "v1 or v2");
    cmd->add_flag("--start-immediately,!--no-start-immediately", f.start_immediately,
                  "negotiate as soon as the connection exists (or not)");
  }
  cmd->footer(body_help(r));
}

// --- commands ------------------------------------------------------------

NameIndex name_index(Api& api) {
  NameIndex names;
  for (const Resource* r : {&kGateway, &kPeer})
    for (const auto& o : ok(list_objects(api, *r))) names[o.value("id", "")] = o.value("name", "");
  return names;
}

int cmd_list(const Globals& g, const Resource& r) {
  auto api = connect(g);
  Json items = ok(list_objects(*api, r));
  if (g.json) {
    print_json(Json{{r.list_key, items}});
    return 0;
  }
  std::cout << format_list(r, items, &r == &kConnection ? name_index(*api) : NameIndex{});
  return 0;
}

int cmd_show(const Globals& g, const Resource& r, const std::string& ref) {
  auto api = connect(g);
  Json obj = ok(resolve(*api, r, ref));
  if (g.json) {
    print_json(Json{{r.key, obj}});
    return 0;
  }
  std::cout << format_show(obj, &r == &kConnection ? name_index(*api) : NameIndex{});
  return 0;
}

int cmd_create(const Globals& g, const Resource& r, const ObjectFlags& f, const CLI::App& cmd) {
  auto api = connect(g);
  Json body = build_body(r, f, cmd, api.get());
  if (!body.contains("name")) usage_error("--name is required");
  if (&r == &kConnection) {
    if (!body.contains("vgw_id")) usage_error("--gateway is required");
    if (!body.contains("cgw_id")) usage_error("--peer is required");
  }
  const Json req{{r.key, body}};
  Json res = ok(api->call("POST", r.path, &req));
  if (g.json)
    print_json(res);
  else
    std::cout << "created " << r.noun << " " << label(res[r.key]) << "\n";
  return 0;
}

int cmd_update(const Globals& g, const Resource& r, const ObjectFlags& f, const CLI::App& cmd) {
  auto api = connect(g);
  Json patch = build_body(r, f, cmd, api.get());
  if (patch.empty()) usage_error("nothing to update: give at least one field (see --help)");
  Json cur = ok(resolve(*api, r, f.ref));
  const Json req{{r.key, patch}};
  Json res = ok(api->call("PATCH", std::string(r.path) + "/" + cur.value("id", ""), &req));
  if (g.json)
    print_json(res);
  else
    std::cout << "updated " << r.noun << " " << label(res[r.key]) << "\n";
  return 0;
}

int cmd_delete(const Globals& g, const Resource& r, const std::string& ref) {
  auto api = connect(g);
  Json cur = ok(resolve(*api, r, ref));
  ok(api->call("DELETE", std::string(r.path) + "/" + cur.value("id", ""), nullptr));
  if (g.json)
    print_json(Json{{"deleted", {{r.key, cur}}}});
  else
    std::cout << "deleted " << r.noun << " " << label(cur) << "\n";
  return 0;
}

int cmd_apply(const Globals& g, const std::string& file, bool dry_run) {
  auto doc = load_document_file(file);
  if (!doc) usage_error(doc.error());
  if (auto bad = validate_apply_doc(*doc)) usage_error(file + ": " + *bad);
  auto api = connect(g);
  Json results = Json::array();
  ApplyCallbacks cb;
  cb.dry_run = dry_run;
  cb.on_event = [&](const ApplyEvent& e) {
    if (g.json) {
      static const char* actions[] = {"created", "updated", "unchanged"};
      results.push_back({{"action", actions[static_cast<int>(e.action)]},
                         {"kind", e.resource->noun},
                         {"name", e.name},
                         {"id", e.id},
                         {"fields", e.fields}});
    } else {
      std::cout << (dry_run ? "(dry run) " : "") << describe(e) << "\n" << std::flush;
    }
  };
  cb.on_note = [](const std::string& n) { std::cerr << "note: " << n << "\n"; };
  auto sum = apply(*api, *doc, cb);
  if (!sum) {
    if (g.json) print_json(Json{{"results", results}});
    throw Failure{1, sum.error().describe()};
  }
  if (g.json) {
    print_json(Json{
        {"results", results},
        {"dry_run", dry_run},
        {"summary",
         {{"created", sum->created}, {"updated", sum->updated}, {"unchanged", sum->unchanged}}}});
  } else {
    std::cout << "apply" << (dry_run ? " (dry run, nothing changed)" : "") << ": " << sum->created
              << " created, " << sum->updated << " updated, " << sum->unchanged << " unchanged\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "xgwctl - manage xgw VPN gateways, peers and connections through xgwd's REST API.\n"
      "The daemon is found through --api, $XGW_API, then <state-dir>/api.addr, then "
      "127.0.0.1:9740; the token through --token-file, $XGW_TOKEN_FILE, then "
      "<state-dir>/api-token. IDs or names identify objects."};
  app.set_version_flag("--version", std::string("xgwctl ") + XGW_VERSION);
  app.require_subcommand(1);
  app.fallthrough();  // global flags may also follow the subcommands

  Globals g;
  app.add_option("--api", g.api, "xgwd's API address HOST:PORT");
  app.add_option("--token-file", g.token_file, "file holding the API bearer token");
  app.add_option("--state-dir", g.state_dir,
                 "xgwd's state directory ($XGW_STATE_DIR, default /var/lib/xgw)");
  app.add_flag("--json", g.json, "print the server's JSON instead of tables");
  app.add_option("--timeout", g.timeout, "seconds to wait for each step of a request")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();

  std::function<int()> action;

  struct Noun {
    const Resource* r;
    const char* help;
    ObjectFlags create, update;
    std::string ref;
  };
  static Noun nouns[] = {
      {&kGateway, "VPN gateways (the local end)", {}, {}, {}},
      {&kPeer, "peers: customer gateways (the remote devices)", {}, {}, {}},
      {&kConnection, "VPN connections between a gateway and a peer", {}, {}, {}}};
  for (Noun& n : nouns) {
    // Explicit captures: the callbacks outlive this loop body.
    Noun* np = &n;
    const Resource* r = n.r;
    CLI::App* noun = app.add_subcommand(r->noun, n.help);
    noun->require_subcommand(1);

    CLI::App* create = noun->add_subcommand("create", std::string("create a ") + r->noun);
    add_object_flags(create, *r, n.create);
    create->callback([&g, &action, np, create] {
      action = [&g, np, create] { return cmd_create(g, *np->r, np->create, *create); };
    });

    noun->add_subcommand("list", std::string("list ") + r->noun + "s")->callback([&g, &action, r] {
      action = [&g, r] { return cmd_list(g, *r); };
    });

    CLI::App* show = noun->add_subcommand("show", std::string("show one ") + r->noun);
    show->add_option("ref", n.ref, "ID or NAME")->required();
    show->callback(
        [&g, &action, np] { action = [&g, np] { return cmd_show(g, *np->r, np->ref); }; });

    CLI::App* update = noun->add_subcommand(
        "update", std::string("change fields of a ") + r->noun + " (JSON merge patch)");
    update->add_option("ref", n.update.ref, "ID or NAME")->required();
    add_object_flags(update, *r, n.update);
    update->callback([&g, &action, np, update] {
      action = [&g, np, update] { return cmd_update(g, *np->r, np->update, *update); };
    });

    CLI::App* del = noun->add_subcommand("delete", std::string("delete a ") + r->noun);
    del->add_option("ref", n.ref, "ID or NAME")->required();
    del->callback(
        [&g, &action, np] { action = [&g, np] { return cmd_delete(g, *np->r, np->ref); }; });
  }

  std::string apply_file;
  bool dry_run = false;
  CLI::App* apply_cmd = app.add_subcommand(
      "apply",
      "create or update the objects a YAML file describes (matched by name; never deletes)");
  apply_cmd->add_option("-f,--file", apply_file, "the YAML (or JSON) file")->required();
  apply_cmd->add_flag("--dry-run", dry_run, "report what would change, change nothing");
  apply_cmd->footer(
      "The file holds vpn_gateways, customer_gateways and vpn_connections: lists of objects "
      "with the API's field names; a connection names its gateway and peer as vpn_gateway: NAME "
      "and customer_gateway: NAME (or vgw_id/cgw_id). Existing objects get a PATCH of only the "
      "fields that differ. A PSK is sent only when a connection is created; rotate it with "
      "`xgwctl connection update NAME --psk NEW`. See examples/site-to-site.yaml.");
  apply_cmd->callback([&] { action = [&] { return cmd_apply(g, apply_file, dry_run); }; });

  app.add_subcommand("list-sas", "list the live IKE SAs and CHILD_SAs (like swanctl --list-sas)")
      ->callback([&] {
        action = [&] {
          auto api = connect(g);
          Json r = ok(api->call("GET", "/v1/ike-sas", nullptr));
          const Json sas = r.value("ike_sas", Json::array());
          if (g.json)
            print_json(Json{{"ike_sas", sas}});
          else
            std::cout << format_sas(sas);
          return 0;
        };
      });

  app.add_subcommand("dataplane",
                     "show the XDP data plane: interfaces, tier, outcomes and tunnel counters")
      ->callback([&] {
        action = [&] {
          auto api = connect(g);
          Json r = ok(api->call("GET", "/v1/dataplane", nullptr));
          const Json d = r.value("dataplane", Json::object());
          if (g.json)
            print_json(Json{{"dataplane", d}});
          else
            std::cout << format_dataplane(d);
          return 0;
        };
      });

  app.add_subcommand("version", "print xgwctl's version")->callback([&] {
    action = [] {
      std::cout << "xgwctl " << XGW_VERSION << "\n";
      return 0;
    };
  });

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    std::cout << e.what() << "\n";
    return 0;
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  try {
    return action ? action() : 2;
  } catch (const Failure& f) {
    std::cerr << "xgwctl: " << (f.exit_code == 2 ? "" : "error: ") << f.message << "\n";
    return f.exit_code;
  }
}
