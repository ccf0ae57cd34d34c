// TUN device plumbing for the userspace ESP path: a multi-queue TUN device
// (one queue per worker; the kernel spreads flows over queues) and bringing
// the link up with an MTU.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "common/expected.h"

namespace xgw::dp {

// Opens `queues` queues of the TUN device `name` (created if missing) with
// IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE, non-blocking. On error every fd
// already opened is closed.
// With `offload`, each read and write starts with a virtio-net header and the
// device accepts and produces TCP GSO packets (TUN_F_CSUM | TSO4 | TSO6).
// With `tap`, the device is a TAP (Ethernet) device instead of TUN.
Expected<std::vector<int>, SysError> open_tun_queues(const std::string& name, unsigned queues,
                                                     bool offload = false, bool tap = false);

// Sets the MTU and brings the link up.
// `noarp` (for TAP devices): the kernel sends to routes through it without
// neighbour resolution, to the device's own MAC address.
Expected<void, SysError> set_link_up(const std::string& name, unsigned mtu, bool noarp = false);

// The link's MAC address.
Expected<std::array<uint8_t, 6>, SysError> link_mac(const std::string& name);

}  // namespace xgw::dp
