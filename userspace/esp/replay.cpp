#include "esp/replay.h"

#include <algorithm>

namespace xgw::esp {

namespace {
uint32_t words_for(uint32_t size) {
  // One spare word so the word holding `top` never overlaps the oldest
  // (RFC 6479 §3): size 1024 → 17 words → 32.
  uint32_t w = 1;
  while (w < size / 64 + 2) w <<= 1;
  return w;
}
}  // namespace

ReplayWindow::ReplayWindow(uint32_t size, bool esn)
    : bits_(size == 0 ? 1 : words_for(size), 0), size_(size), esn_(esn) {
  mask_ = static_cast<uint32_t>(bits_.size() - 1);
}

uint64_t ReplayWindow::infer(uint32_t seq_low) const {
  if (!esn_) return seq_low;
  const uint32_t th = static_cast<uint32_t>(top_ >> 32);
  const uint32_t tl = static_cast<uint32_t>(top_);
  const uint32_t w = std::max<uint32_t>(size_, 1);
  uint32_t sh = th;
  if (tl >= w - 1) {
    // Case A: the window lies within one 2^32 subspace.
    if (seq_low < tl - w + 1) sh = th + 1;
  } else {
    // Case B: the window straddles a subspace boundary.
    if (seq_low >= tl - w + 1 && th > 0) sh = th - 1;  // wraps modulo 2^32
  }
  return (static_cast<uint64_t>(sh) << 32) | seq_low;
}

bool ReplayWindow::test(uint64_t seq) const {
  const uint64_t word = (seq >> 6) & mask_;
  return (bits_[word] >> (seq & 63)) & 1;
}

ReplayWindow::Check ReplayWindow::check(uint64_t seq) const {
  if (seq == 0) return Check::Zero;  // sequence numbers start at 1 (§3.3.3)
  if (size_ == 0) return Check::Ok;
  if (seq > top_) return Check::Ok;
  if (top_ - seq >= size_) return Check::TooOld;
  return test(seq) ? Check::Replayed : Check::Ok;
}

bool ReplayWindow::update(uint64_t seq) {
  if (size_ == 0) {
    top_ = std::max(top_, seq);
    return true;
  }
  if (seq > top_) {
    // Clear the words the window slides over (at most the whole ring).
    const uint64_t old_word = top_ >> 6;
    const uint64_t new_word = seq >> 6;
    const uint64_t n = std::min<uint64_t>(new_word - old_word, bits_.size());
    for (uint64_t i = 1; i <= n; ++i) bits_[(old_word + i) & mask_] = 0;
    top_ = seq;
  } else if (top_ - seq >= size_) {
    return false;
  }
  uint64_t& w = bits_[(seq >> 6) & mask_];
  const uint64_t bit = uint64_t{1} << (seq & 63);
  if (w & bit) return false;
  w |= bit;
  return true;
}

}  // namespace xgw::esp
