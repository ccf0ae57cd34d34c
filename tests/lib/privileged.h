// Privileged tests (netns, BPF, TUN) skip when not root, except under
// XGW_REQUIRE_PRIVILEGED=1 (set by scripts/test and CI), where a skip is a
// failure.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace xgw::test {
inline bool privileged_required() {
  const char* v = std::getenv("XGW_REQUIRE_PRIVILEGED");
  return v != nullptr && std::strcmp(v, "1") == 0;
}
}  // namespace xgw::test

#define XGW_REQUIRE_ROOT()                                                                       \
  do {                                                                                           \
    if (geteuid() != 0) {                                                                        \
      if (::xgw::test::privileged_required()) FAIL() << "needs root (XGW_REQUIRE_PRIVILEGED=1)"; \
      GTEST_SKIP() << "needs root";                                                              \
    }                                                                                            \
  } while (0)
