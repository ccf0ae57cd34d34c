// docs/openapi.yaml must describe exactly the routes xgwd registers.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <set>

#include "api/rest_api.h"

namespace xgw::api {
namespace {

TEST(OpenApi, DocumentMatchesRegisteredRoutes) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("xgw-openapi-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto store = store::Store::open((dir / "xgw.db").string());
  ASSERT_TRUE(store);
  control::ControlPlane cp(**store, control::Quotas{});
  const Router router = make_rest_api(cp);

  std::set<std::string> registered;
  for (const auto& r : router.routes()) registered.insert(r.method + " " + r.pattern);

  const YAML::Node doc = YAML::LoadFile(XGW_OPENAPI_PATH);
  std::set<std::string> documented;
  const std::set<std::string> verbs{"get", "post", "put", "patch", "delete", "head", "options"};
  for (const auto& path : doc["paths"]) {
    for (const auto& op : path.second) {
      auto verb = op.first.as<std::string>();
      if (!verbs.count(verb)) continue;  // "parameters" etc.
      for (auto& ch : verb) ch = static_cast<char>(std::toupper(ch));
      documented.insert(verb + " " + path.first.as<std::string>());
    }
  }
  EXPECT_FALSE(registered.empty());
  for (const auto& r : registered) EXPECT_TRUE(documented.count(r)) << "undocumented route: " << r;
  for (const auto& d : documented)
    EXPECT_TRUE(registered.count(d)) << "documented but not served: " << d;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace xgw::api
