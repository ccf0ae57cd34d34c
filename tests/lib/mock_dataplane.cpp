#include "mock_dataplane.h"

namespace xgw::dp {

Capabilities MockDataplane::capabilities() const {
  Capabilities c;
  c.backend = "mock";
  for (int i = 0; i <= static_cast<int>(esp::Encr::AesGcm16_256); ++i)
    c.encr.push_back(static_cast<esp::Encr>(i));
  for (int i = 0; i <= static_cast<int>(esp::Integ::HmacSm3_256); ++i)
    c.integ.push_back(static_cast<esp::Integ>(i));
  c.udp_encap = c.esn = true;
  c.raw_esp = raw_esp_;
  c.max_replay_window = 65536;
  c.owns_nat_t_port = true;
  return c;
}

Expected<uint32_t, std::string> MockDataplane::allocate_spi() {
  std::lock_guard lk(mu_);
  // Skip SPIs an inbound SA already uses (added with an SPI of the caller's
  // choosing) and, after a wrap, the reserved 0-255.
  uint32_t spi = next_spi_++;
  while (spi < 256 || spis_handed_out_.count(spi) || sas_.count({Direction::In, spi}))
    spi = next_spi_++;
  spis_handed_out_.insert(spi);
  return spi;
}

Expected<void, std::string> MockDataplane::add_sa(const SaSpec& sa) {
  if (auto v = validate(sa); !v) return v;
  std::lock_guard lk(mu_);
  auto key = std::make_pair(sa.dir, sa.spi);
  if (sas_.count(key)) return unexpected("SA with SPI " + std::to_string(sa.spi) + " exists");
  sas_[key] = sa;
  counters_[key] = {};
  return {};
}

// As the real backends: addresses, ports and lifetimes change; transforms,
// keys and the tunnel stay (the caller need not hold the keys any more).
Expected<void, std::string> MockDataplane::update_sa(const SaSpec& sa) {
  std::lock_guard lk(mu_);
  auto it = sas_.find({sa.dir, sa.spi});
  if (it == sas_.end()) return unexpected("no SA with SPI " + std::to_string(sa.spi));
  if (auto r = check_update(it->second, sa); !r) return r;
  apply_update(it->second, sa);
  return {};
}

Expected<void, std::string> MockDataplane::delete_sa(Direction dir, uint32_t spi) {
  std::lock_guard lk(mu_);
  auto it = sas_.find({dir, spi});
  if (it == sas_.end()) return unexpected("no SA with SPI " + std::to_string(spi));
  // Tunnel counters are monotonic across rekeys: keep the deleted SA's share.
  const SaCounters& c = counters_[{dir, spi}];
  TunnelCounters& r = retired_[it->second.tunnel_id];
  (dir == Direction::In ? r.rx_packets : r.tx_packets) += c.packets;
  (dir == Direction::In ? r.rx_bytes : r.tx_bytes) += c.bytes;
  sas_.erase(it);
  counters_.erase({dir, spi});
  return {};
}

Expected<void, std::string> MockDataplane::add_policy(const PolicySpec& p) {
  if (auto v = validate(p); !v) return v;
  std::lock_guard lk(mu_);
  policies_[p.id] = p;
  return {};
}

Expected<void, std::string> MockDataplane::delete_policy(uint32_t id) {
  std::lock_guard lk(mu_);
  if (policies_.erase(id) == 0) return unexpected("no policy " + std::to_string(id));
  return {};
}

std::optional<SaCounters> MockDataplane::sa_counters(Direction dir, uint32_t spi) const {
  std::lock_guard lk(mu_);
  auto it = counters_.find({dir, spi});
  if (it == counters_.end()) return std::nullopt;
  return it->second;
}

std::optional<TunnelCounters> MockDataplane::tunnel_counters(uint32_t tunnel_id) const {
  std::lock_guard lk(mu_);
  TunnelCounters t;
  bool found = false;
  if (auto r = retired_.find(tunnel_id); r != retired_.end()) {
    t = r->second;
    found = true;
  }
  for (const auto& [key, sa] : sas_) {
    if (sa.tunnel_id != tunnel_id) continue;
    found = true;
    const auto& c = counters_.at(key);
    if (key.first == Direction::In) {
      t.rx_packets += c.packets;
      t.rx_bytes += c.bytes;
    } else {
      t.tx_packets += c.packets;
      t.tx_bytes += c.bytes;
    }
  }
  if (!found) return std::nullopt;
  return t;
}

GlobalCounters MockDataplane::counters() const {
  return {};
}

std::vector<Event> MockDataplane::poll_events() {
  std::lock_guard lk(mu_);
  return std::exchange(events_, {});
}

void MockDataplane::set_ike_receiver(IkeReceiver r) {
  std::lock_guard lk(mu_);
  ike_ = std::move(r);
}

Expected<void, std::string> MockDataplane::send_ike(const Endpoint& from, const Endpoint& to,
                                                    std::span<const uint8_t> msg) {
  std::lock_guard lk(mu_);
  sent_.push_back({from, to, {msg.begin(), msg.end()}});
  return {};
}

void MockDataplane::inject_event(const Event& e) {
  std::lock_guard lk(mu_);
  events_.push_back(e);
}

void MockDataplane::set_counters(Direction dir, uint32_t spi, const SaCounters& c) {
  std::lock_guard lk(mu_);
  counters_[{dir, spi}] = c;
}

void MockDataplane::deliver_ike(std::span<const uint8_t> msg, const Endpoint& from,
                                const Endpoint& to) {
  IkeReceiver r;
  {
    std::lock_guard lk(mu_);
    r = ike_;
  }
  if (r) r(msg, from, to);
}

std::map<std::pair<Direction, uint32_t>, SaSpec> MockDataplane::sas() const {
  std::lock_guard lk(mu_);
  return sas_;
}

std::map<uint32_t, PolicySpec> MockDataplane::policies() const {
  std::lock_guard lk(mu_);
  return policies_;
}

std::vector<MockDataplane::SentIke> MockDataplane::sent_ike() const {
  std::lock_guard lk(mu_);
  return sent_;
}

}  // namespace xgw::dp
