#include "store/store.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <cstdio>

#include "common/log.h"
#include "control/codec.h"

namespace xgw::store {
namespace {

using control::Json;

StoreError db_error(sqlite3* db, const std::string& what) {
  return {what + ": " + sqlite3_errmsg(db), sqlite3_extended_errcode(db)};
}

// Forward migrations; entry i moves the schema from version i to i + 1.
// Objects keep their settable fields as a JSON document (`spec`, the API
// shape without metadata) next to the relational columns that carry keys,
// references and uniqueness, so SQLite itself enforces them too.
const char* const kMigrations[] = {
    R"sql(
CREATE TABLE vpn_gateways (
  id         TEXT PRIMARY KEY,
  name       TEXT NOT NULL,
  status     TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  spec       TEXT NOT NULL
) STRICT;
CREATE TABLE customer_gateways (
  id         TEXT PRIMARY KEY,
  name       TEXT NOT NULL,
  ip         TEXT NOT NULL UNIQUE,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  spec       TEXT NOT NULL
) STRICT;
CREATE TABLE vpn_connections (
  id         TEXT PRIMARY KEY,
  name       TEXT NOT NULL,
  vgw_id     TEXT NOT NULL REFERENCES vpn_gateways(id) ON DELETE RESTRICT,
  cgw_id     TEXT NOT NULL REFERENCES customer_gateways(id) ON DELETE RESTRICT,
  status     TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  psk        TEXT NOT NULL,
  spec       TEXT NOT NULL,
  UNIQUE (vgw_id, cgw_id)
) STRICT;
CREATE INDEX vpn_connections_cgw ON vpn_connections(cgw_id);
)sql",
    // 2: the XDP data plane's map indexes for gateways, connections and
    // tunnels, stable across restarts so pinned counters stay with their
    // object.
    R"sql(
CREATE TABLE dataplane_index (
  kind      TEXT NOT NULL,
  object_id TEXT NOT NULL,
  idx       INTEGER NOT NULL,
  PRIMARY KEY (kind, object_id),
  UNIQUE (kind, idx)
) STRICT;
)sql",
};

// A prepared statement; finalized on scope exit.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  bool ok() const { return rc_ == SQLITE_OK; }
  Stmt& bind(int i, const std::string& v) {
    if (rc_ == SQLITE_OK)
      rc_ = sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, int64_t v) {
    if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int step() {
    if (rc_ != SQLITE_OK) return rc_;
    return sqlite3_step(s_);
  }
  std::string text(int col) const {
    const auto* p = sqlite3_column_text(s_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(s_, col)) : "";
  }
  int integer(int col) const { return sqlite3_column_int(s_, col); }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
  int rc_;
};

Result<void> exec(sqlite3* db, const char* sql, const char* what) {
  char* msg = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
    StoreError e{std::string(what) + ": " + (msg ? msg : "?"), sqlite3_extended_errcode(db)};
    sqlite3_free(msg);
    return unexpected(e);
  }
  return {};
}

// Runs a statement that returns no rows, expecting exactly `want_changes`
// changed rows when >= 0.
Result<void> run(sqlite3* db, Stmt& st, const char* what, int want_changes = -1) {
  if (!st.ok()) return unexpected(db_error(db, what));
  if (st.step() != SQLITE_DONE) return unexpected(db_error(db, what));
  if (want_changes >= 0 && sqlite3_changes(db) != want_changes) {
    return unexpected(StoreError{std::string(what) + ": no such object", SQLITE_NOTFOUND});
  }
  return {};
}

template <typename T, typename Parse>
Result<std::vector<T>> collect(sqlite3* db, Stmt& st, const char* what, Parse parse) {
  if (!st.ok()) return unexpected(db_error(db, what));
  std::vector<T> out;
  int rc;
  while ((rc = st.step()) == SQLITE_ROW) {
    auto v = parse(st);
    if (!v)
      return unexpected(
          StoreError{std::string(what) + ": corrupt row: " + v.error(), SQLITE_CORRUPT});
    out.push_back(std::move(*v));
  }
  if (rc != SQLITE_DONE) return unexpected(db_error(db, what));
  return out;
}

template <typename T>
Result<std::optional<T>> first(Result<std::vector<T>> rows) {
  if (!rows) return unexpected(rows.error());
  if (rows->empty()) return std::optional<T>{};
  return std::optional<T>(std::move(rows->front()));
}

Expected<Json, std::string> parse_spec(const std::string& text) {
  Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded()) return unexpected(std::string("spec is not JSON"));
  return j;
}

Expected<control::VpnGateway, std::string> gateway_row(Stmt& st) {
  auto spec = parse_spec(st.text(5));
  if (!spec) return unexpected(spec.error());
  auto g = control::gateway_from_json(*spec);
  if (!g) return unexpected(g.error().message);
  g->id = st.text(0);
  g->status = st.text(2);
  g->created_at = st.text(3);
  g->updated_at = st.text(4);
  return std::move(*g);
}

Expected<control::CustomerGateway, std::string> cgw_row(Stmt& st) {
  auto spec = parse_spec(st.text(4));
  if (!spec) return unexpected(spec.error());
  auto c = control::customer_gateway_from_json(*spec);
  if (!c) return unexpected(c.error().message);
  c->id = st.text(0);
  c->created_at = st.text(2);
  c->updated_at = st.text(3);
  return std::move(*c);
}

Expected<control::VpnConnection, std::string> conn_row(Stmt& st) {
  auto spec = parse_spec(st.text(5));
  if (!spec) return unexpected(spec.error());
  auto c = control::connection_from_json(*spec, control::PolicyDefaults::Single);
  if (!c) return unexpected(c.error().message);
  c->id = st.text(0);
  c->status = st.text(1);
  c->created_at = st.text(2);
  c->updated_at = st.text(3);
  c->psk = st.text(4);
  return std::move(*c);
}

constexpr const char* kConnCols =
    "SELECT id, status, created_at, updated_at, psk, spec FROM vpn_connections";

}  // namespace

int Store::latest_schema_version() {
  return static_cast<int>(std::size(kMigrations));
}

// The tables the schema has once migrated; a database claiming the latest
// version without one of them is damaged.
constexpr const char* kTables[] = {"vpn_gateways", "customer_gateways", "vpn_connections",
                                   "dataplane_index"};

Result<std::unique_ptr<Store>> Store::open(const std::string& path) {
  // Damaged state is refused, never taken for a new database (issue 16):
  // SQLite opens a 0-byte file as an empty database, so every object
  // would silently be gone.
  struct stat fst {};
  if (::stat(path.c_str(), &fst) == 0) {
    if (S_ISDIR(fst.st_mode))
      return unexpected(StoreError{"open " + path + ": is a directory", SQLITE_CANTOPEN});
    if (fst.st_size == 0)
      return unexpected(StoreError{"database " + path +
                                       " is empty (0 bytes), not a new database: restore it from " +
                                       path + ".last-good, or remove it to start with no objects",
                                   SQLITE_CORRUPT});
  }
  sqlite3* db = nullptr;
  const mode_t old = umask(077);  // the store holds PSKs
  const int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  umask(old);
  if (rc != SQLITE_OK) {
    StoreError e{"open " + path + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)), rc};
    sqlite3_close(db);
    return unexpected(e);
  }
  std::unique_ptr<Store> s(new Store(db));
  sqlite3_busy_timeout(db, 5000);
  // WAL + synchronous=FULL: a COMMIT returns only after the WAL is fsynced.
  if (auto r = exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
                    "configure database");
      !r) {
    return unexpected(r.error());
  }
  if (auto r = s->check(path); !r) return unexpected(r.error());
  if (auto r = s->migrate(); !r) return unexpected(r.error());
  if (auto r = s->check_tables(path); !r) return unexpected(r.error());
  s->keep_last_good(path);
  return s;
}

// PRAGMA quick_check (sqlite.org/pragma.html#pragma_quick_check): page
// and record structure, without the index cross-checks of integrity_check.
Result<void> Store::check(const std::string& path) {
  Stmt st(db_, "PRAGMA quick_check");
  if (!st.ok()) return unexpected(db_error(db_, "check " + path));
  const int rc = st.step();
  if (rc != SQLITE_ROW) return unexpected(db_error(db_, "check " + path));
  const std::string first = st.text(0);
  if (first != "ok")
    return unexpected(StoreError{"database " + path + " is damaged (quick_check: " + first +
                                     "); restore it from " + path + ".last-good",
                                 SQLITE_CORRUPT});
  return {};
}

Result<void> Store::check_tables(const std::string& path) {
  for (const char* t : kTables) {
    Stmt st(db_, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?");
    st.bind(1, std::string(t));
    if (st.step() != SQLITE_ROW)
      return unexpected(StoreError{"database " + path + " lacks table " + t +
                                       " at schema version " +
                                       std::to_string(latest_schema_version()) +
                                       ": damaged; restore it from " + path + ".last-good",
                                   SQLITE_CORRUPT});
  }
  return {};
}

// A copy of the database as it was at the last start that passed the
// checks, through SQLite's online backup (a consistent snapshot).
void Store::keep_last_good(const std::string& path) {
  const std::string copy = path + ".last-good";
  const std::string tmp = copy + ".tmp";
  sqlite3* out = nullptr;
  const mode_t old = umask(077);
  int rc = sqlite3_open_v2(tmp.c_str(), &out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  umask(old);
  if (rc == SQLITE_OK) {
    sqlite3_backup* b = sqlite3_backup_init(out, "main", db_, "main");
    rc = b ? sqlite3_backup_step(b, -1) : sqlite3_errcode(out);
    if (b) sqlite3_backup_finish(b);
  }
  sqlite3_close(out);
  if (rc != SQLITE_DONE || std::rename(tmp.c_str(), copy.c_str()) != 0) {
    std::remove(tmp.c_str());
    log::warn("store.last_good_failed", {{"path", copy}, {"code", rc}});
  }
}

Store::~Store() {
  sqlite3_close(db_);
}

Result<int> Store::schema_version() {
  Stmt st(db_, "PRAGMA user_version");
  if (!st.ok() || st.step() != SQLITE_ROW) return unexpected(db_error(db_, "read schema version"));
  return st.integer(0);
}

Result<void> Store::migrate() {
  auto v = schema_version();
  if (!v) return unexpected(v.error());
  if (*v > latest_schema_version()) {
    return unexpected(StoreError{"database schema version " + std::to_string(*v) +
                                     " is newer than this xgwd understands (" +
                                     std::to_string(latest_schema_version()) + ")",
                                 SQLITE_MISMATCH});
  }
  for (int i = *v; i < latest_schema_version(); ++i) {
    auto txn = begin_write();
    if (!txn) return unexpected(txn.error());
    if (auto r = exec(db_, kMigrations[i], "migrate schema"); !r) return r;
    const std::string bump = "PRAGMA user_version=" + std::to_string(i + 1);
    if (auto r = exec(db_, bump.c_str(), "bump schema version"); !r) return r;
    if (auto r = txn->commit(); !r) return r;
  }
  return {};
}

Store::WriteTxn::~WriteTxn() {
  if (db_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

Result<void> Store::WriteTxn::commit() {
  if (auto r = exec(db_, "COMMIT", "commit"); !r) return r;
  db_ = nullptr;
  return {};
}

Result<Store::WriteTxn> Store::begin_write() {
  if (auto r = exec(db_, "BEGIN IMMEDIATE", "begin transaction"); !r) return unexpected(r.error());
  return WriteTxn(db_);
}

// --- gateways ----------------------------------------------------------------

Result<std::vector<control::VpnGateway>> Store::gateways() {
  Stmt st(db_,
          "SELECT id, name, status, created_at, updated_at, spec FROM vpn_gateways ORDER BY "
          "created_at, id");
  return collect<control::VpnGateway>(db_, st, "list gateways", gateway_row);
}

Result<std::optional<control::VpnGateway>> Store::gateway(const std::string& id) {
  Stmt st(db_,
          "SELECT id, name, status, created_at, updated_at, spec FROM vpn_gateways WHERE id = ?");
  st.bind(1, id);
  return first(collect<control::VpnGateway>(db_, st, "get gateway", gateway_row));
}

Result<void> Store::insert_gateway(const control::VpnGateway& g) {
  Stmt st(db_,
          "INSERT INTO vpn_gateways (id, name, status, created_at, updated_at, spec) VALUES "
          "(?,?,?,?,?,?)");
  st.bind(1, g.id)
      .bind(2, g.name)
      .bind(3, g.status)
      .bind(4, g.created_at)
      .bind(5, g.updated_at)
      .bind(6, control::to_json(g, false).dump());
  return run(db_, st, "insert gateway", 1);
}

Result<void> Store::update_gateway(const control::VpnGateway& g) {
  Stmt st(db_,
          "UPDATE vpn_gateways SET name = ?, status = ?, updated_at = ?, spec = ? WHERE id = ?");
  st.bind(1, g.name)
      .bind(2, g.status)
      .bind(3, g.updated_at)
      .bind(4, control::to_json(g, false).dump())
      .bind(5, g.id);
  return run(db_, st, "update gateway", 1);
}

Result<void> Store::delete_gateway(const std::string& id) {
  Stmt st(db_, "DELETE FROM vpn_gateways WHERE id = ?");
  st.bind(1, id);
  return run(db_, st, "delete gateway", 1);
}

// --- customer gateways -------------------------------------------------------

Result<std::vector<control::CustomerGateway>> Store::customer_gateways() {
  Stmt st(db_,
          "SELECT id, name, created_at, updated_at, spec FROM customer_gateways ORDER BY "
          "created_at, id");
  return collect<control::CustomerGateway>(db_, st, "list customer gateways", cgw_row);
}

Result<std::optional<control::CustomerGateway>> Store::customer_gateway(const std::string& id) {
  Stmt st(db_, "SELECT id, name, created_at, updated_at, spec FROM customer_gateways WHERE id = ?");
  st.bind(1, id);
  return first(collect<control::CustomerGateway>(db_, st, "get customer gateway", cgw_row));
}

Result<void> Store::insert_customer_gateway(const control::CustomerGateway& c) {
  Stmt st(db_,
          "INSERT INTO customer_gateways (id, name, ip, created_at, updated_at, spec) VALUES "
          "(?,?,?,?,?,?)");
  st.bind(1, c.id)
      .bind(2, c.name)
      .bind(3, c.ip.str())
      .bind(4, c.created_at)
      .bind(5, c.updated_at)
      .bind(6, control::to_json(c, false).dump());
  return run(db_, st, "insert customer gateway", 1);
}

Result<void> Store::update_customer_gateway(const control::CustomerGateway& c) {
  Stmt st(db_,
          "UPDATE customer_gateways SET name = ?, ip = ?, updated_at = ?, spec = ? WHERE id = ?");
  st.bind(1, c.name)
      .bind(2, c.ip.str())
      .bind(3, c.updated_at)
      .bind(4, control::to_json(c, false).dump())
      .bind(5, c.id);
  return run(db_, st, "update customer gateway", 1);
}

Result<void> Store::delete_customer_gateway(const std::string& id) {
  Stmt st(db_, "DELETE FROM customer_gateways WHERE id = ?");
  st.bind(1, id);
  return run(db_, st, "delete customer gateway", 1);
}

// --- connections -------------------------------------------------------------

Result<std::vector<control::VpnConnection>> Store::query_connections(const char* where,
                                                                     const std::string& arg) {
  const std::string sql = std::string(kConnCols) + where + " ORDER BY created_at, id";
  Stmt st(db_, sql.c_str());
  if (!arg.empty()) st.bind(1, arg);
  return collect<control::VpnConnection>(db_, st, "list connections", conn_row);
}

Result<std::vector<control::VpnConnection>> Store::connections() {
  return query_connections("", "");
}

Result<std::vector<control::VpnConnection>> Store::connections_of_gateway(const std::string& id) {
  return query_connections(" WHERE vgw_id = ?", id);
}

Result<std::vector<control::VpnConnection>> Store::connections_of_customer_gateway(
    const std::string& id) {
  return query_connections(" WHERE cgw_id = ?", id);
}

Result<std::optional<control::VpnConnection>> Store::connection(const std::string& id) {
  if (id.empty()) return std::optional<control::VpnConnection>{};
  return first(query_connections(" WHERE id = ?", id));
}

Result<void> Store::insert_connection(const control::VpnConnection& c) {
  Stmt st(db_,
          "INSERT INTO vpn_connections (id, name, vgw_id, cgw_id, status, created_at, updated_at, "
          "psk, spec) "
          "VALUES (?,?,?,?,?,?,?,?,?)");
  st.bind(1, c.id)
      .bind(2, c.name)
      .bind(3, c.vgw_id)
      .bind(4, c.cgw_id)
      .bind(5, c.status)
      .bind(6, c.created_at)
      .bind(7, c.updated_at)
      .bind(8, c.psk)
      .bind(9, control::to_json(c, false).dump());
  return run(db_, st, "insert connection", 1);
}

Result<void> Store::update_connection(const control::VpnConnection& c) {
  Stmt st(db_,
          "UPDATE vpn_connections SET name = ?, status = ?, updated_at = ?, psk = ?, spec = ? "
          "WHERE id = ?");
  st.bind(1, c.name)
      .bind(2, c.status)
      .bind(3, c.updated_at)
      .bind(4, c.psk)
      .bind(5, control::to_json(c, false).dump())
      .bind(6, c.id);
  return run(db_, st, "update connection", 1);
}

Result<void> Store::delete_connection(const std::string& id) {
  Stmt st(db_, "DELETE FROM vpn_connections WHERE id = ?");
  st.bind(1, id);
  return run(db_, st, "delete connection", 1);
}

// --- data-plane indexes ---------------------------------------------------------

Result<Store::Index> Store::dataplane_index(const std::string& kind, const std::string& object_id,
                                            uint32_t limit) {
  {
    Stmt st(db_, "SELECT idx FROM dataplane_index WHERE kind = ? AND object_id = ?");
    st.bind(1, kind).bind(2, object_id);
    if (!st.ok()) return unexpected(db_error(db_, "read dataplane index"));
    const int rc = st.step();
    if (rc == SQLITE_ROW) return Index{static_cast<uint32_t>(st.integer(0)), false};
    if (rc != SQLITE_DONE) return unexpected(db_error(db_, "read dataplane index"));
  }
  // The lowest free index.
  uint32_t idx = 0;
  {
    Stmt used(db_, "SELECT idx FROM dataplane_index WHERE kind = ? ORDER BY idx");
    used.bind(1, kind);
    if (!used.ok()) return unexpected(db_error(db_, "allocate dataplane index"));
    int rc;
    while ((rc = used.step()) == SQLITE_ROW && static_cast<uint32_t>(used.integer(0)) == idx) ++idx;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
      return unexpected(db_error(db_, "allocate dataplane index"));
  }
  if (idx >= limit) {
    return unexpected(StoreError{
        "no free " + kind + " index in the data plane (limit " + std::to_string(limit) + ")",
        SQLITE_FULL});
  }
  Stmt ins(db_, "INSERT INTO dataplane_index (kind, object_id, idx) VALUES (?, ?, ?)");
  ins.bind(1, kind).bind(2, object_id).bind(3, int64_t{idx});
  if (auto r = run(db_, ins, "store dataplane index", 1); !r) return unexpected(r.error());
  return Index{idx, true};
}

Result<std::vector<std::pair<std::string, uint32_t>>> Store::dataplane_indexes(
    const std::string& kind) {
  Stmt st(db_, "SELECT object_id, idx FROM dataplane_index WHERE kind = ? ORDER BY idx");
  st.bind(1, kind);
  return collect<std::pair<std::string, uint32_t>>(
      db_, st, "list dataplane indexes",
      [](Stmt& s) -> Expected<std::pair<std::string, uint32_t>, std::string> {
        return std::pair{s.text(0), static_cast<uint32_t>(s.integer(1))};
      });
}

Result<void> Store::release_dataplane_index(const std::string& kind, const std::string& object_id) {
  Stmt st(db_, "DELETE FROM dataplane_index WHERE kind = ? AND object_id = ?");
  st.bind(1, kind).bind(2, object_id);
  return run(db_, st, "release dataplane index");
}

}  // namespace xgw::store
