// The durable state of xgwd: SQLite in WAL mode with foreign keys and
// synchronous=FULL, so an acknowledged write survives kill -9 and power
// loss. The schema is versioned (PRAGMA user_version) with forward
// migrations. Writes happen only inside a WriteTxn; a transaction that is
// not committed rolls back and leaves the database unchanged.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/expected.h"
#include "control/model.h"

struct sqlite3;

namespace xgw::store {

struct StoreError {
  std::string message;
  int code = 0;  // SQLite result code
};

template <typename T>
using Result = Expected<T, StoreError>;

class Store {
 public:
  // Opens (creating if needed, mode 0600) and migrates the database. A
  // damaged one is refused with a one-line reason, never treated as new: a
  // 0-byte file, a directory, a failed `PRAGMA quick_check`, a missing
  // table. Each good start leaves a copy in <path>.last-good.
  static Result<std::unique_ptr<Store>> open(const std::string& path);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  static int latest_schema_version();
  Result<int> schema_version();

  // BEGIN IMMEDIATE .. COMMIT; rolls back on destruction unless committed.
  class WriteTxn {
   public:
    WriteTxn(WriteTxn&& o) noexcept : db_(o.db_) { o.db_ = nullptr; }
    WriteTxn(const WriteTxn&) = delete;
    ~WriteTxn();
    Result<void> commit();

   private:
    friend class Store;
    explicit WriteTxn(sqlite3* db) : db_(db) {}
    sqlite3* db_;
  };
  Result<WriteTxn> begin_write();

  Result<std::vector<control::VpnGateway>> gateways();
  Result<std::optional<control::VpnGateway>> gateway(const std::string& id);
  Result<void> insert_gateway(const control::VpnGateway& g);
  Result<void> update_gateway(const control::VpnGateway& g);
  Result<void> delete_gateway(const std::string& id);

  Result<std::vector<control::CustomerGateway>> customer_gateways();
  Result<std::optional<control::CustomerGateway>> customer_gateway(const std::string& id);
  Result<void> insert_customer_gateway(const control::CustomerGateway& c);
  Result<void> update_customer_gateway(const control::CustomerGateway& c);
  Result<void> delete_customer_gateway(const std::string& id);

  // Connections carry their PSK (needed by IKE); API views drop it.
  Result<std::vector<control::VpnConnection>> connections();
  Result<std::vector<control::VpnConnection>> connections_of_gateway(const std::string& vgw_id);
  Result<std::vector<control::VpnConnection>> connections_of_customer_gateway(
      const std::string& cgw_id);
  Result<std::optional<control::VpnConnection>> connection(const std::string& id);
  Result<void> insert_connection(const control::VpnConnection& c);
  Result<void> update_connection(const control::VpnConnection& c);
  Result<void> delete_connection(const std::string& id);

  // Data-plane map indexes by object: kind "gateway", "connection" or
  // "tunnel". Allocates the lowest free index below `limit` on first use
  // (`fresh` = true: the caller should clear what the index used to count).
  struct Index {
    uint32_t idx;
    bool fresh;
  };
  Result<Index> dataplane_index(const std::string& kind, const std::string& object_id,
                                uint32_t limit);
  Result<std::vector<std::pair<std::string, uint32_t>>> dataplane_indexes(const std::string& kind);
  Result<void> release_dataplane_index(const std::string& kind, const std::string& object_id);

 private:
  explicit Store(sqlite3* db) : db_(db) {}
  Result<void> migrate();
  Result<void> check(const std::string& path);
  Result<void> check_tables(const std::string& path);
  void keep_last_good(const std::string& path);
  Result<std::vector<control::VpnConnection>> query_connections(const char* where,
                                                                const std::string& arg);
  sqlite3* db_;
};

}  // namespace xgw::store
