// Runs a helper program (e.g. `ip route replace ...`) and waits for it:
// argv[0] is looked up in PATH, no shell is involved.
#pragma once

#include <string>
#include <vector>

namespace xgw {

// The program's exit status, or -1 when it could not be started or did not
// exit normally.
int run_program(const std::vector<std::string>& argv);

}  // namespace xgw
