// Joins the IKE daemon's SAs to the XDP programs: a dp::Dataplane that
// forwards every call to the ESP backend (userspace or XFRM) and, in the
// same step, mirrors what the daemon installed into the XDP maps:
//  - each inbound SPI is admitted in `xgw_sa` for its gateway and tunnel
//    (until the daemon deletes that SA from the ESP path, so the old SPI of
//    a rekey keeps passing for as long as the backend decrypts with it);
//  - the tunnel is `sa_ready` while an outbound SA exists, and names the
//    newest one (the SA the backend sends on, make-before-break);
//  - policies are remembered, so an XDP acquire (traffic on a relation with
//    no SA) becomes the daemon's own acquire event for the right CHILD_SA,
//    rate-limited per relation.
// SAs are grouped by the IKE connection they belong to (SaSpec::conn); a
// resolver maps a connection to its XDP gateway and tunnel. A connection
// that is not (yet) in the XDP maps is programmed by reconcile(), which
// xgwd calls after each XDP or IKE sync.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/dataplane.h"

namespace xgw::xgwd {

// Where a connection's tunnel lives in the XDP maps.
struct XdpTunnelRef {
  uint32_t gw_idx = 0;
  uint32_t tunnel_idx = 0;
  bool operator==(const XdpTunnelRef&) const = default;
};

// What the bridge programs; XdpSync implements it over the loader.
class XdpSaSink {
 public:
  virtual ~XdpSaSink() = default;
  virtual Expected<void, std::string> admit_spi(uint32_t spi, const XdpTunnelRef& t) = 0;
  virtual Expected<void, std::string> revoke_spi(uint32_t spi) = 0;
  // The tunnel's active outbound SA; 0: none (the tunnel is not ready).
  virtual Expected<void, std::string> set_outbound(const XdpTunnelRef& t, uint32_t out_spi) = 0;
};

class XdpSaBridge final : public dp::Dataplane {
 public:
  using Resolver = std::function<std::optional<XdpTunnelRef>(const std::string& conn)>;
  XdpSaBridge(dp::Dataplane& inner, XdpSaSink& sink, Resolver resolve);

  dp::Capabilities capabilities() const override { return inner_.capabilities(); }
  Expected<uint32_t, std::string> allocate_spi() override { return inner_.allocate_spi(); }
  Expected<void, std::string> add_sa(const dp::SaSpec& sa) override;
  Expected<void, std::string> update_sa(const dp::SaSpec& sa) override {
    return inner_.update_sa(sa);  // SPIs, tunnel and readiness do not change
  }
  Expected<void, std::string> delete_sa(dp::Direction dir, uint32_t spi) override;
  Expected<void, std::string> add_policy(const dp::PolicySpec& p) override;
  Expected<void, std::string> delete_policy(uint32_t id) override;
  std::optional<dp::SaCounters> sa_counters(dp::Direction dir, uint32_t spi) const override {
    return inner_.sa_counters(dir, spi);
  }
  std::optional<dp::TunnelCounters> tunnel_counters(uint32_t tunnel_id) const override {
    return inner_.tunnel_counters(tunnel_id);
  }
  dp::GlobalCounters counters() const override { return inner_.counters(); }
  std::vector<dp::Event> poll_events() override { return inner_.poll_events(); }
  int event_fd() const override { return inner_.event_fd(); }
  void set_ike_receiver(IkeReceiver r) override { inner_.set_ike_receiver(std::move(r)); }
  Expected<void, std::string> send_ike(const dp::Endpoint& from, const dp::Endpoint& to,
                                       std::span<const uint8_t> msg) override {
    return inner_.send_ike(from, to, msg);
  }

  // Programs every connection whose XDP tunnel is now known or changed.
  void reconcile();

  // Traffic on `conn`'s tunnel found no SA in XDP: the daemon's acquire
  // event for the most specific of the connection's policies that matches
  // the packet, or nothing (no policy matches, or that policy asked less
  // than `interval_ms` ago).
  static constexpr uint64_t kAcquireIntervalMs = 2000;
  std::optional<dp::Event> acquire(const std::string& conn, const net::IpAddr& src,
                                   const net::IpAddr& dst, uint64_t now_ms,
                                   uint64_t interval_ms = kAcquireIntervalMs);

  struct Stats {
    uint64_t acquires = 0;            // handed to the daemon
    uint64_t acquires_limited = 0;    // suppressed by the per-relation interval
    uint64_t acquires_unmatched = 0;  // no policy of the connection matches
    uint64_t sink_errors = 0;         // XDP map updates that failed
  };
  const Stats& stats() const { return stats_; }
  // For status and tests: the XDP state mirrored for one connection.
  struct ConnView {
    std::optional<XdpTunnelRef> tunnel;
    std::vector<uint32_t> admitted;  // inbound SPIs in xgw_sa
    uint32_t out_spi = 0;            // programmed active outbound SA
  };
  ConnView view(const std::string& conn) const;

 private:
  struct ConnSas {
    std::vector<uint32_t> in, out;  // installed in the backend, in install order
    std::optional<XdpTunnelRef> programmed;
    std::vector<uint32_t> admitted;
    uint32_t out_programmed = 0;
  };
  void apply(const std::string& conn, ConnSas& s);
  void sink_error(const char* what, uint32_t spi, const std::string& err);

  dp::Dataplane& inner_;
  XdpSaSink& sink_;
  Resolver resolve_;
  std::map<std::string, ConnSas> conns_;
  std::map<std::pair<dp::Direction, uint32_t>, std::string> conn_of_;  // SA -> conn
  std::map<uint32_t, dp::PolicySpec> policies_;
  std::map<uint32_t, uint64_t> last_acquire_ms_;  // by policy id
  Stats stats_;
};

}  // namespace xgw::xgwd
