// Reading and writing the big-endian wire fields of IKE messages (IKEv2's
// RFC 7296 §3 and ISAKMP's RFC 2408 §3 share the layout conventions): a
// bounded reader whose callers check has() before every read, and appenders.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/bytes.h"

namespace xgw::ike::wire {

class Reader {
 public:
  explicit Reader(std::span<const uint8_t> b) : b_(b) {}
  bool has(size_t n) const { return b_.size() - pos_ >= n; }
  size_t left() const { return b_.size() - pos_; }
  uint8_t u8() { return b_[pos_++]; }
  uint16_t u16() {
    const uint16_t v = load_be16(&b_[pos_]);
    pos_ += 2;
    return v;
  }
  uint32_t u32() {
    const uint32_t v = load_be32(&b_[pos_]);
    pos_ += 4;
    return v;
  }
  std::vector<uint8_t> take(size_t n) {
    std::vector<uint8_t> v(b_.begin() + pos_, b_.begin() + pos_ + n);
    pos_ += n;
    return v;
  }
  std::span<const uint8_t> span(size_t n) {
    auto s = b_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  void skip(size_t n) { pos_ += n; }

 private:
  std::span<const uint8_t> b_;
  size_t pos_ = 0;
};

inline void put8(std::vector<uint8_t>& o, uint8_t v) {
  o.push_back(v);
}
inline void put16(std::vector<uint8_t>& o, uint16_t v) {
  o.push_back(static_cast<uint8_t>(v >> 8));
  o.push_back(static_cast<uint8_t>(v & 0xff));
}
inline void put32(std::vector<uint8_t>& o, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) o.push_back(static_cast<uint8_t>((v >> s) & 0xff));
}
inline void put64(std::vector<uint8_t>& o, uint64_t v) {
  for (int s = 56; s >= 0; s -= 8) o.push_back(static_cast<uint8_t>((v >> s) & 0xff));
}
inline void append(std::vector<uint8_t>& o, std::span<const uint8_t> b) {
  o.insert(o.end(), b.begin(), b.end());
}

// The 28-byte header IKEv2 (RFC 7296 §3.1) and ISAKMP (RFC 2408 §3.1)
// share: SPIs (cookies), next payload, version, exchange, flags, message
// ID, length.
inline void put_header(std::vector<uint8_t>& o, uint64_t spi_i, uint64_t spi_r, uint8_t next,
                       uint8_t version, uint8_t exchange, uint8_t flags, uint32_t message_id,
                       uint32_t length) {
  put64(o, spi_i);
  put64(o, spi_r);
  put8(o, next);
  put8(o, version);
  put8(o, exchange);
  put8(o, flags);
  put32(o, message_id);
  put32(o, length);
}

}  // namespace xgw::ike::wire
