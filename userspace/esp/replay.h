// Inbound anti-replay window (RFC 4303 §3.4.3) kept as the block bitmap of
// RFC 6479: a ring of 64-bit words, so sliding the window forward clears
// whole words instead of shifting bits. With ESN (RFC 4304) the high 32
// bits are inferred from the low 32 carried in the packet (RFC 4303
// Appendix A2.2). Single writer: the worker that owns the inbound SA.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace xgw::esp {

class ReplayWindow {
 public:
  // `size` packets (rounded so the bitmap holds at least that many behind
  // the newest); 0 turns replay checking off (RFC 4303 §3.4.3 allows it for
  // manually keyed SAs). `esn` selects 64-bit sequence numbers.
  explicit ReplayWindow(uint32_t size = 1024, bool esn = false);

  enum class Check : uint8_t { Ok, Replayed, TooOld, Zero };

  // The full 64-bit sequence number a packet carrying `seq_low` stands for
  // (identity without ESN). Needed before the ICV check since with ESN the
  // high bits are part of the authenticated data.
  uint64_t infer(uint32_t seq_low) const;

  // Whether `seq` may be accepted; does not change the window. Called before
  // the ICV is verified, and `update` only after it verified (§3.4.3).
  Check check(uint64_t seq) const;
  // Records `seq` as received; returns false when it was a replay after all.
  bool update(uint64_t seq);

  uint64_t top() const { return top_; }
  uint32_t size() const { return size_; }

 private:
  bool test(uint64_t seq) const;

  std::vector<uint64_t> bits_;  // power-of-two words
  uint64_t top_ = 0;            // highest sequence number accepted
  uint32_t size_;               // effective window (packets)
  uint32_t mask_;               // words - 1
  bool esn_;
};

}  // namespace xgw::esp
