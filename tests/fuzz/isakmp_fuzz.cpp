// libFuzzer target for the IKEv1 (ISAKMP) codec (ike/isakmp.h): the header
// and payload chains, plain and as a decrypted body with padding. Beyond
// "no crash, no sanitizer report": whatever parses re-encodes to bytes that
// parse to the same payloads (the codec is stable on its own output).
// Built and run by tests/fuzz/CMakeLists.txt (XGW_FUZZ).
#include <cstdint>
#include <cstdlib>
#include <span>

#include "ike/isakmp.h"

namespace {

using namespace xgw::ike::isakmp;

void check(bool ok) {
  if (!ok) std::abort();
}

void roundtrip(PayloadType first, std::span<const uint8_t> bytes, bool padding) {
  auto ps = parse_chain(first, bytes, padding);
  if (!ps || ps->empty()) return;
  const Bytes again = encode_chain(*ps);
  auto back = parse_chain(first, again);
  check(back.has_value() && *back == *ps);
  check(encode_chain(*back) == again);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> in(data, size);
  if (auto h = parse_header(in)) {
    Bytes hb;
    encode_header(*h, hb);
    check(std::equal(hb.begin(), hb.end(), in.begin()));
    roundtrip(h->next, in.subspan(kHeaderSize), (h->flags & kFlagEncryption) != 0);
  } else if (size > 0) {
    // Not a datagram: feed the chain parser directly, first byte as the type.
    roundtrip(static_cast<PayloadType>(data[0]), in.subspan(1), false);
    roundtrip(static_cast<PayloadType>(data[0]), in.subspan(1), true);
  }
  return 0;
}
