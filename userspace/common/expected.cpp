#include "common/expected.h"

#include <cstring>

namespace xgw {
std::string SysError::message() const {
  return what + ": " + std::strerror(err);
}
}  // namespace xgw
