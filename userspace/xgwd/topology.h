// What the metrics exporter needs to know about the objects (names, tiers,
// tunnels and their data-plane indexes), read from the store on the daemon
// thread and published to the exporter after every change.
#pragma once

#include "metrics/exporter.h"
#include "store/store.h"
#include "xgwd/config.h"

namespace xgw::xgwd {

Expected<metrics::Topology, std::string> build_topology(store::Store& store,
                                                        const DataplaneConfig& dp);

}  // namespace xgw::xgwd
