#include "store/store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "control/codec.h"

namespace xgw::store {
namespace {

namespace fs = std::filesystem;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("xgw-store-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "xgw.db").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  static control::VpnGateway gw(const std::string& id) {
    control::VpnGateway g;
    g.id = id;
    g.name = "gw-" + id;
    g.bandwidth = 100;
    g.local_cidr = *net::Cidr::parse("10.0.0.0/16");
    g.public_ips = {*net::IpAddr::parse("198.51.100.10")};
    g.created_at = g.updated_at = "2026-01-01T00:00:00.000Z";
    return g;
  }
  static control::CustomerGateway cgw(const std::string& id, const char* ip) {
    control::CustomerGateway c;
    c.id = id;
    c.name = "p-" + id;
    c.ip = *net::IpAddr::parse(ip);
    c.created_at = c.updated_at = "2026-01-01T00:00:00.000Z";
    return c;
  }
  static control::VpnConnection conn(const std::string& id, const std::string& g,
                                     const std::string& c) {
    control::VpnConnection v;
    v.id = id;
    v.name = "c-" + id;
    v.vgw_id = g;
    v.cgw_id = c;
    v.psk = "pre-shared";
    v.policy_rules = {{*net::Cidr::parse("10.0.1.0/24"), {*net::Cidr::parse("192.168.1.0/24")}}};
    v.tunnels = {control::Tunnel{}};
    v.created_at = v.updated_at = "2026-01-01T00:00:00.000Z";
    return v;
  }

  fs::path dir_;
  std::string path_;
};

TEST_F(StoreTest, CreatesMigratesAndPersists) {
  {
    auto s = Store::open(path_);
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_EQ(*(*s)->schema_version(), Store::latest_schema_version());
    auto txn = (*s)->begin_write();
    ASSERT_TRUE(txn);
    ASSERT_TRUE((*s)->insert_gateway(gw("g1")));
    ASSERT_TRUE((*s)->insert_customer_gateway(cgw("c1", "203.0.113.20")));
    ASSERT_TRUE((*s)->insert_connection(conn("v1", "g1", "c1")));
    ASSERT_TRUE(txn->commit());
  }
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);  // it holds PSKs
  auto s = Store::open(path_);
  ASSERT_TRUE(s);
  auto g = (*s)->gateway("g1");
  ASSERT_TRUE(g && *g);
  EXPECT_EQ((*g)->name, "gw-g1");
  EXPECT_EQ((*g)->local_cidr.str(), "10.0.0.0/16");
  auto c = (*s)->connection("v1");
  ASSERT_TRUE(c && *c);
  EXPECT_EQ((*c)->psk, "pre-shared");
  EXPECT_EQ((*c)->policy_rules[0].destination[0].str(), "192.168.1.0/24");
  EXPECT_EQ((*s)->connections_of_gateway("g1")->size(), 1u);
  EXPECT_EQ((*s)->connections_of_customer_gateway("c1")->size(), 1u);
  EXPECT_EQ((*s)->connections_of_gateway("nope")->size(), 0u);
  EXPECT_FALSE((*s)->gateway("nope")->has_value());
}

TEST_F(StoreTest, UncommittedTransactionRollsBack) {
  auto s = Store::open(path_);
  ASSERT_TRUE(s);
  {
    auto txn = (*s)->begin_write();
    ASSERT_TRUE(txn);
    ASSERT_TRUE((*s)->insert_gateway(gw("g1")));
  }  // no commit
  EXPECT_TRUE((*s)->gateways()->empty());
}

TEST_F(StoreTest, ForeignKeysAndUniquenessHoldInTheDatabase) {
  auto s = Store::open(path_);
  ASSERT_TRUE(s);
  auto txn = (*s)->begin_write();
  ASSERT_TRUE((*s)->insert_gateway(gw("g1")));
  ASSERT_TRUE((*s)->insert_customer_gateway(cgw("c1", "203.0.113.20")));
  auto dangling = (*s)->insert_connection(conn("v0", "missing", "c1"));
  EXPECT_FALSE(dangling);
  ASSERT_TRUE((*s)->insert_connection(conn("v1", "g1", "c1")));
  auto dup = (*s)->insert_connection(conn("v2", "g1", "c1"));  // same gateway + peer
  EXPECT_FALSE(dup);
  EXPECT_EQ(dup.error().code & 0xff, SQLITE_CONSTRAINT);
  EXPECT_FALSE((*s)->insert_customer_gateway(cgw("c2", "203.0.113.20")));  // same IP
  EXPECT_FALSE((*s)->delete_gateway("g1"));                                // still referenced
  EXPECT_FALSE((*s)->delete_gateway("nope"));
  ASSERT_TRUE(txn->commit());
}

TEST_F(StoreTest, RefusesANewerSchema) {
  {
    auto s = Store::open(path_);
    ASSERT_TRUE(s);
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version=999", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto s = Store::open(path_);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("newer"), std::string::npos);
}

// Issue 16: damaged state is refused with a clear reason, never taken for a
// new database (a 0-byte file used to open as an empty one: every object
// gone), and each good start keeps a copy to restore from.
TEST_F(StoreTest, RefusesAZeroByteFileAndKeepsIt) {
  { std::ofstream(path_, std::ios::trunc); }
  auto s = Store::open(path_);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("empty (0 bytes)"), std::string::npos) << s.error().message;
  EXPECT_EQ(fs::file_size(path_), 0u);
}

TEST_F(StoreTest, RefusesADirectory) {
  fs::create_directories(path_);
  auto s = Store::open(path_);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("is a directory"), std::string::npos) << s.error().message;
}

TEST_F(StoreTest, RefusesAMissingTable) {
  ASSERT_TRUE(Store::open(path_));
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "DROP TABLE dataplane_index", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto s = Store::open(path_);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("lacks table dataplane_index"), std::string::npos)
      << s.error().message;
}

TEST_F(StoreTest, RefusesAnOverwrittenPageAndKeepsTheLastGoodCopy) {
  {
    auto s = Store::open(path_);
    ASSERT_TRUE(s);
    auto txn = (*s)->begin_write();
    ASSERT_TRUE((*s)->insert_gateway(gw("g1")));
    ASSERT_TRUE(txn->commit());
  }
  // Reopened once more so that the copy holds g1 (copies are taken at open).
  ASSERT_TRUE(Store::open(path_));
  const std::string good = path_ + ".last-good";
  ASSERT_TRUE(fs::exists(good));
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  const auto size = fs::file_size(path_);
  ASSERT_GE(size, 3u * 4096);
  {
    std::fstream f(path_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(2 * 4096);
    std::string junk(4096, '\0');
    for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>((i * 131 + 7) & 0xff);
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  auto s = Store::open(path_);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find(path_), std::string::npos) << s.error().message;
  // The copy opens and has the object.
  auto g = Store::open(good);
  ASSERT_TRUE(g) << g.error().message;
  auto gws = (*g)->gateways();
  ASSERT_TRUE(gws);
  ASSERT_EQ(gws->size(), 1u);
  EXPECT_EQ((*gws)[0].id, "g1");
}

TEST_F(StoreTest, UsesWalAndForeignKeys) {
  auto s = Store::open(path_);
  ASSERT_TRUE(s);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, nullptr);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "wal");
  sqlite3_finalize(st);
  sqlite3_close(db);
}

}  // namespace
}  // namespace xgw::store
