// TUN device plumbing for the userspace ESP path: a multi-queue TUN device
// (one queue per worker; the kernel spreads flows over queues) and bringing
// the link up with an MTU.
#pragma once

#include <string>
#include <vector>

#include "common/expected.h"

namespace xgw::dp {

// Opens `queues` queues of the TUN device `name` (created if missing) with
// IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE, non-blocking. On error every fd
// already opened is closed.
// With `offload`, each read and write starts with a virtio-net header and the
// device accepts and produces TCP GSO packets (TUN_F_CSUM | TSO4 | TSO6).
Expected<std::vector<int>, SysError> open_tun_queues(const std::string& name, unsigned queues,
                                                     bool offload = false);

// Sets the MTU and brings the link up.
Expected<void, SysError> set_link_up(const std::string& name, unsigned mtu);

}  // namespace xgw::dp
