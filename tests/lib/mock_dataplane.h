// An in-memory Dataplane for protocol tests: records what the IKE daemon
// installs, enforces the same validation, and lets a test inject events
// (acquire, expiry, NAT mapping) and counters. No packets move.
#pragma once

#include <map>
#include <mutex>
#include <set>
#include <utility>

#include "dataplane/dataplane.h"

namespace xgw::dp {

class MockDataplane final : public Dataplane {
 public:
  Capabilities capabilities() const override;
  Expected<uint32_t, std::string> allocate_spi() override;
  Expected<void, std::string> add_sa(const SaSpec& sa) override;
  Expected<void, std::string> update_sa(const SaSpec& sa) override;
  Expected<void, std::string> delete_sa(Direction dir, uint32_t spi) override;
  Expected<void, std::string> add_policy(const PolicySpec& p) override;
  Expected<void, std::string> delete_policy(uint32_t id) override;
  std::optional<SaCounters> sa_counters(Direction dir, uint32_t spi) const override;
  std::optional<TunnelCounters> tunnel_counters(uint32_t tunnel_id) const override;
  GlobalCounters counters() const override;
  std::vector<Event> poll_events() override;
  int event_fd() const override { return -1; }
  void set_ike_receiver(IkeReceiver r) override;
  Expected<void, std::string> send_ike(const Endpoint& from, const Endpoint& to,
                                       std::span<const uint8_t> msg) override;

  // Test hooks.
  void inject_event(const Event& e);
  // A data plane without raw ESP (UDP encapsulation only), as libipsec.
  void set_raw_esp(bool on) { raw_esp_ = on; }
  void set_counters(Direction dir, uint32_t spi, const SaCounters& c);
  void deliver_ike(std::span<const uint8_t> msg, const Endpoint& from, const Endpoint& to);
  std::map<std::pair<Direction, uint32_t>, SaSpec> sas() const;
  std::map<uint32_t, PolicySpec> policies() const;
  struct SentIke {
    Endpoint from, to;
    std::vector<uint8_t> msg;
  };
  std::vector<SentIke> sent_ike() const;

 private:
  bool raw_esp_ = true;
  mutable std::mutex mu_;
  std::map<std::pair<Direction, uint32_t>, SaSpec> sas_;
  std::map<std::pair<Direction, uint32_t>, SaCounters> counters_;
  std::map<uint32_t, PolicySpec> policies_;
  std::map<uint32_t, TunnelCounters> retired_;  // deleted SAs' counts, per tunnel
  std::set<uint32_t> spis_handed_out_;
  uint32_t next_spi_ = 0xc0000100;
  std::vector<Event> events_;
  std::vector<SentIke> sent_;
  IkeReceiver ike_;
};

}  // namespace xgw::dp
