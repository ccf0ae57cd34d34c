// ReplayWindow: the anti-replay rules of RFC 4303 §3.4.3 (sequence numbers
// start at 1; reject duplicates and anything older than the window; the
// window slides when a newer packet verifies), the RFC 6479 bitmap that
// implements them, and the ESN high-half inference of RFC 4303 App. A2.2.
#include "esp/replay.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

namespace xgw::esp {
namespace {

using Check = ReplayWindow::Check;

// check() then update(), as the data path does after the ICV verified.
Check accept(ReplayWindow& w, uint64_t seq) {
  const Check c = w.check(seq);
  if (c == Check::Ok) {
    EXPECT_TRUE(w.update(seq)) << seq;
  }
  return c;
}

TEST(Replay, InOrder) {
  ReplayWindow w(64);
  for (uint64_t s = 1; s <= 1000; ++s) ASSERT_EQ(accept(w, s), Check::Ok) << s;
  EXPECT_EQ(w.top(), 1000u);
}

TEST(Replay, ZeroIsNeverValid) {
  // RFC 4303 §3.3.3: the first packet sent on an SA has sequence number 1.
  ReplayWindow w(64);
  EXPECT_EQ(w.check(0), Check::Zero);
  accept(w, 5);
  EXPECT_EQ(w.check(0), Check::Zero);
  ReplayWindow off(0);
  EXPECT_EQ(off.check(0), Check::Zero);
  ReplayWindow esn(64, true);
  EXPECT_EQ(esn.check(0), Check::Zero);
}

TEST(Replay, DuplicatesAreReplays) {
  ReplayWindow w(64);
  for (uint64_t s : {1, 2, 3, 10}) ASSERT_EQ(accept(w, s), Check::Ok);
  for (uint64_t s : {1, 2, 3, 10}) {
    EXPECT_EQ(w.check(s), Check::Replayed) << s;
    EXPECT_FALSE(w.update(s)) << "update() must refuse a replay too: " << s;
  }
  EXPECT_EQ(w.top(), 10u);
}

TEST(Replay, ReorderedInsideTheWindowIsAcceptedOnce) {
  ReplayWindow w(64);
  ASSERT_EQ(accept(w, 100), Check::Ok);
  for (uint64_t s = 99; s >= 37; --s) {
    ASSERT_EQ(accept(w, s), Check::Ok) << s;
    EXPECT_EQ(w.check(s), Check::Replayed) << s;
  }
  EXPECT_EQ(w.check(36), Check::TooOld);
  EXPECT_EQ(w.top(), 100u);
  // Gaps stay acceptable until the window passes them.
  ASSERT_EQ(accept(w, 110), Check::Ok);
  ASSERT_EQ(accept(w, 105), Check::Ok);
  EXPECT_EQ(w.check(105), Check::Replayed);
  EXPECT_EQ(accept(w, 107), Check::Ok);
}

TEST(Replay, CheckDoesNotChangeTheWindow) {
  // check() runs before the ICV: a forged packet must not move anything.
  ReplayWindow w(64);
  accept(w, 10);
  EXPECT_EQ(w.check(1'000'000), Check::Ok);
  EXPECT_EQ(w.top(), 10u);
  EXPECT_EQ(w.check(5), Check::Ok);
  EXPECT_EQ(w.check(5), Check::Ok);
}

TEST(Replay, BigJumpClearsStaleBits) {
  ReplayWindow w(64);
  for (uint64_t s = 1; s <= 10; ++s) accept(w, s);
  ASSERT_EQ(accept(w, 1000), Check::Ok);
  EXPECT_EQ(w.check(5), Check::TooOld) << "seen before the jump, now behind the window";
  EXPECT_EQ(w.check(20), Check::TooOld) << "never seen, but behind the window";
  EXPECT_EQ(w.check(936), Check::TooOld);
  EXPECT_EQ(w.check(937), Check::Ok) << "never seen, inside the new window";
  EXPECT_EQ(w.check(999), Check::Ok);
  EXPECT_EQ(w.check(1000), Check::Replayed);
}

TEST(Replay, JumpOntoReusedBitmapWordsIsClean) {
  // The bitmap is a ring: after a jump, sequence numbers inside the new
  // window share bit positions with old ones and must read as unseen.
  for (uint32_t size : {64u, 100u, 1024u}) {
    ReplayWindow w(size);
    for (uint64_t s = 1; s <= size; ++s) accept(w, s);
    // Jumps of at least the window size (so the new window holds only
    // unseen numbers), including multiples of the ring's 256 and 2048 bits.
    for (uint64_t jump : {uint64_t{size}, uint64_t{size} + 1, uint64_t{256}, uint64_t{2048},
                          uint64_t{4096}, uint64_t{1} << 20}) {
      if (jump < size) continue;
      const uint64_t top = w.top() + jump;
      ASSERT_EQ(accept(w, top), Check::Ok);
      for (uint64_t s = top - size + 1; s < top; ++s)
        ASSERT_EQ(w.check(s), Check::Ok) << "size " << size << " jump " << jump << " seq " << s;
      // Fill the new window so the next jump has stale bits everywhere.
      for (uint64_t s = top - size + 1; s < top; ++s) accept(w, s);
    }
  }
}

TEST(Replay, ExactBoundaries) {
  for (uint32_t size : {64u, 1024u, 4096u}) {
    ReplayWindow w(size);
    EXPECT_EQ(w.size(), size);
    const uint64_t top = 100'000;
    ASSERT_EQ(accept(w, top), Check::Ok);
    EXPECT_EQ(w.check(top - size), Check::TooOld) << size;
    EXPECT_FALSE(w.update(top - size)) << size;
    EXPECT_EQ(w.check(top - size + 1), Check::Ok) << size;
    EXPECT_TRUE(w.update(top - size + 1)) << size;
    EXPECT_EQ(w.check(top - size + 1), Check::Replayed) << size;
    // Sliding by one pushes that edge out.
    ASSERT_EQ(accept(w, top + 1), Check::Ok);
    EXPECT_EQ(w.check(top - size + 1), Check::TooOld) << size;
    EXPECT_EQ(w.check(top - size + 2), Check::Ok) << size;
  }
}

TEST(Replay, EarlyPacketsBeforeTheWindowFills) {
  ReplayWindow w(1024);
  ASSERT_EQ(accept(w, 50), Check::Ok);
  for (uint64_t s = 1; s < 50; ++s) EXPECT_EQ(accept(w, s), Check::Ok) << s;
  for (uint64_t s = 1; s <= 50; ++s) EXPECT_EQ(w.check(s), Check::Replayed) << s;
}

TEST(Replay, SizeZeroDisablesTheCheck) {
  // RFC 4303 §3.4.3: a receiver may disable anti-replay (manual keying).
  ReplayWindow w(0);
  EXPECT_EQ(w.size(), 0u);
  for (uint64_t s : {5, 5, 1, 1000, 3, 3}) {
    EXPECT_EQ(w.check(s), Check::Ok) << s;
    EXPECT_TRUE(w.update(s)) << s;
  }
  EXPECT_EQ(w.top(), 1000u);
}

// RFC 4303 Appendix A2.2 with W = 64. Tl/Th are the low/high halves of the
// highest authenticated sequence number.
TEST(ReplayEsn, CaseAWindowWithinOneSubspace) {
  ReplayWindow w(64, true);
  const uint64_t top = (uint64_t{5} << 32) | 1000;  // Tl = 1000 >= W - 1
  ASSERT_TRUE(w.update(top));
  EXPECT_EQ(w.infer(1000 - 63), (uint64_t{5} << 32) | 937);  // Seql >= Tl - W + 1: Th
  EXPECT_EQ(w.infer(1000), top);
  EXPECT_EQ(w.infer(5000), (uint64_t{5} << 32) | 5000);
  EXPECT_EQ(w.infer(0xffffffff), (uint64_t{5} << 32) | 0xffffffff);
  EXPECT_EQ(w.infer(936), (uint64_t{6} << 32) | 936);  // below the window: Th + 1
  EXPECT_EQ(w.infer(0), (uint64_t{6} << 32) | 0);
  // Near the top of a subspace the next one begins right after it.
  ReplayWindow x(64, true);
  ASSERT_TRUE(x.update((uint64_t{5} << 32) | 0xfffffff0));
  EXPECT_EQ(x.infer(0xfffffff0 - 63), (uint64_t{5} << 32) | (0xfffffff0 - 63));
  EXPECT_EQ(x.infer(0xffffffff), (uint64_t{5} << 32) | 0xffffffff);
  EXPECT_EQ(x.infer(0), uint64_t{6} << 32);
  EXPECT_EQ(x.infer(0x10), (uint64_t{6} << 32) | 0x10);
  // Tl = W - 1 exactly is still case A: the window is [Th:0, Th:63].
  ReplayWindow y(64, true);
  ASSERT_TRUE(y.update((uint64_t{2} << 32) | 63));
  EXPECT_EQ(y.infer(0), uint64_t{2} << 32);
  EXPECT_EQ(y.infer(1), (uint64_t{2} << 32) | 1);
  EXPECT_EQ(y.infer(0xffffffff), (uint64_t{2} << 32) | 0xffffffff);
  // One less and it is case B: Tl - W + 1 = -1, so 0xffffffff is Th - 1.
  ReplayWindow z(64, true);
  ASSERT_TRUE(z.update((uint64_t{2} << 32) | 62));
  EXPECT_EQ(z.infer(0xffffffff), (uint64_t{1} << 32) | 0xffffffff);
  EXPECT_EQ(z.infer(0xfffffffe), (uint64_t{2} << 32) | 0xfffffffe);
  EXPECT_EQ(z.infer(0), uint64_t{2} << 32);
}

TEST(ReplayEsn, CaseBWindowStraddlesTheBoundary) {
  ReplayWindow w(64, true);
  const uint64_t top = (uint64_t{6} << 32) | 10;  // Tl = 10 < W - 1
  ASSERT_TRUE(w.update(top));
  // Tl - W + 1 = 10 - 63 = 0xffffffcb (mod 2^32).
  EXPECT_EQ(w.infer(0xffffffcb), (uint64_t{5} << 32) | 0xffffffcb);  // >=: Th - 1
  EXPECT_EQ(w.infer(0xffffffff), (uint64_t{5} << 32) | 0xffffffff);
  EXPECT_EQ(w.infer(0xffffffca), (uint64_t{6} << 32) | 0xffffffca);  // <: Th
  EXPECT_EQ(w.infer(0), uint64_t{6} << 32);
  EXPECT_EQ(w.infer(10), top);
  EXPECT_EQ(w.infer(11), top + 1);
  EXPECT_EQ(w.infer(100000), (uint64_t{6} << 32) | 100000);
  // And the window check agrees on what those mean.
  EXPECT_EQ(w.check(w.infer(0xffffffcb)), Check::Ok);  // top - 63: inside
  EXPECT_EQ(w.check(w.infer(0xffffffff)), Check::Ok);
  EXPECT_TRUE(w.update(w.infer(0xfffffff0)));
  EXPECT_EQ(w.check(w.infer(0xfffffff0)), Check::Replayed);
}

TEST(ReplayEsn, FirstSubspaceHasNoPrevious) {
  // Case B with Th = 0: there is no subspace below, so the candidate stays 0
  // (and the packet is simply far ahead or behind in subspace 0).
  ReplayWindow w(64, true);
  ASSERT_TRUE(w.update(10));
  EXPECT_EQ(w.infer(0xfffffff0), uint64_t{0xfffffff0});
  EXPECT_EQ(w.infer(5), 5u);
}

TEST(ReplayEsn, WithoutEsnInferIsTheIdentity) {
  ReplayWindow w(64, false);
  ASSERT_TRUE(w.update(0xfffffff0));
  EXPECT_EQ(w.infer(3), 3u);
  EXPECT_EQ(w.check(w.infer(3)), Check::TooOld);
}

TEST(ReplayEsn, CountingThroughTheBoundary) {
  for (uint32_t size : {64u, 1024u}) {
    ReplayWindow w(size, true);
    for (uint64_t s = (uint64_t{1} << 32) - 3000; s < (uint64_t{1} << 32) + 3000; ++s) {
      const uint64_t inferred = w.infer(static_cast<uint32_t>(s));
      ASSERT_EQ(inferred, s);
      ASSERT_EQ(accept(w, inferred), Check::Ok);
    }
    // Top is now 2^32 + 2999 (case A): a low half below the window is taken
    // as the next subspace, anything else as the current one.
    EXPECT_EQ(w.infer(0xffffffff), (uint64_t{1} << 32) | 0xffffffff);
    EXPECT_EQ(w.infer(2999 - size + 1), (uint64_t{1} << 32) | (2999 - size + 1));
    EXPECT_EQ(w.infer(2999 - size), (uint64_t{2} << 32) | (2999 - size));
  }
}

// ---------------------------------------------------------------------------
// Randomised comparison against a plain model of RFC 4303 §3.4.3: a set of
// accepted numbers and the highest one.

class Model {
 public:
  explicit Model(uint64_t size) : size_(size) {}
  Check check(uint64_t seq) const {
    if (seq == 0) return Check::Zero;
    if (seq > top_) return Check::Ok;
    if (top_ - seq >= size_) return Check::TooOld;
    return seen_.count(seq) ? Check::Replayed : Check::Ok;
  }
  void update(uint64_t seq) {
    seen_.insert(seq);
    if (seq > top_) top_ = seq;
    while (!seen_.empty() && top_ - *seen_.begin() >= size_) seen_.erase(seen_.begin());
  }
  uint64_t top() const { return top_; }

 private:
  uint64_t size_, top_ = 0;
  std::set<uint64_t> seen_;
};

TEST(ReplayModel, RandomisedAgainstReference) {
  for (uint32_t size : {64u, 100u, 1024u, 4096u}) {
    std::mt19937_64 rng(size);
    ReplayWindow w(size);
    Model m(size);
    uint64_t replays = 0, old = 0, accepted = 0;
    for (int op = 0; op < 100'000; ++op) {
      const uint64_t top = m.top();
      uint64_t seq;
      const uint32_t r = rng() % 100;
      if (r < 2) {
        seq = top + 1 + rng() % (8ull * size);  // jump
      } else if (r < 3) {
        seq = rng() % 3;  // 0, 1, 2
      } else if (r < 50) {
        seq = top + 1 + rng() % 4;  // in order-ish
      } else {
        // Behind the top, inside and a bit beyond the window.
        const uint64_t back = rng() % (size + size / 2 + 2);
        seq = top > back ? top - back : 1;
      }
      const Check want = m.check(seq);
      ASSERT_EQ(w.check(seq), want) << "op " << op << " seq " << seq << " top " << top;
      if (want == Check::Ok) {
        ASSERT_TRUE(w.update(seq)) << "op " << op << " seq " << seq;
        m.update(seq);
        ++accepted;
      } else if (want != Check::Zero) {
        // A caller that skips check() still cannot get a replay accepted.
        ASSERT_FALSE(w.update(seq)) << "op " << op << " seq " << seq;
        want == Check::Replayed ? ++replays : ++old;
      }
      ASSERT_EQ(w.top(), m.top());
    }
    // The walk exercised every verdict.
    EXPECT_GT(replays, 200u) << size;
    EXPECT_GT(old, 1000u) << size;
    EXPECT_GT(accepted, 10000u) << size;
  }
}

}  // namespace
}  // namespace xgw::esp
