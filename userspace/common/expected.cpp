#include <cstring>

#include "common/expected.h"

namespace xgw {
std::string SysError::message() const { return what + ": " + std::strerror(err); }
}  // namespace xgw
