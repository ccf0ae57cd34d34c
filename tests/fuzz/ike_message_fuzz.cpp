// libFuzzer target for the IKEv2 message codec (ike/message.h): everything
// xgw reads from UDP 500/4500 before authentication goes through
// parse_header() and parse_message(), and decrypted SK contents through
// parse_chain(). Beyond "no crash, no sanitizer report", it checks that
// whatever parses re-encodes to something that parses again to the same
// encoding (the codec is stable on its own output), that the header
// re-encodes to the datagram's first 28 bytes, and that parse_chain() and
// parse_message() agree on an SK-less message.
//
// Seeds: tests/fuzz/corpus/ike_message/ (strongSwan captures and hand-made
// messages). Built and run by tests/fuzz/CMakeLists.txt (XGW_FUZZ).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <variant>

#include "ike/message.h"

namespace {

using namespace xgw::ike;

void check(bool ok) {
  if (!ok) std::abort();
}

// Touches what callers read from a parsed chain, and re-encodes it.
Bytes exercise(const std::vector<Payload>& ps) {
  for (const auto& p : ps) {
    if (const auto* ts = std::get_if<TsPayload>(&p.body)) {
      for (const auto& s : ts->selectors) {
        if (auto c = ts_to_cidr(s)) check(ts_from_cidr(*c) == s);
        (void)to_string(s);
      }
    } else if (const auto* id = std::get_if<IdPayload>(&p.body)) {
      check(id->body().size() == id->data.size() + 4);
    } else if (const auto* n = std::get_if<NotifyPayload>(&p.body)) {
      (void)to_string(static_cast<Notify>(n->type));
    }
  }
  return encode_chain(ps);
}

// encode(parse(x)) must parse, and encode to the same bytes again. The
// re-encoded chain starts with the first payload kept (unknown non-critical
// ones are skipped), not with the type the input named.
void check_stable(const std::vector<Payload>& ps) {
  if (ps.empty()) return;
  const Bytes encoded = exercise(ps);
  auto again = parse_chain(ps[0].type, encoded);
  check(again.has_value());
  check(encode_chain(*again) == encoded);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> in(data, size);

  auto h = parse_header(in);
  if (!h) {
    // Not a datagram: read it as decrypted SK contents instead, the first
    // byte naming the first payload, so the payload parsers are reached
    // without a valid header too.
    if (size == 0) return 0;
    const auto first = static_cast<PayloadType>(data[0]);
    if (auto ps = parse_chain(first, in.subspan(1))) check_stable(*ps);
    return 0;
  }
  Bytes hdr;
  encode_header(*h, hdr);
  check(hdr.size() == kHeaderSize && std::equal(hdr.begin(), hdr.end(), data));

  auto m = parse_message(in);
  if (!m) return 0;
  check_stable(m->payloads);
  if (!m->sk_offset) {
    // SK-less: the payloads are exactly the chain after the header.
    auto ps = parse_chain(h->next, in.subspan(kHeaderSize));
    check(ps.has_value());
    check(encode_chain(*ps) == encode_chain(m->payloads));
  } else {
    check(*m->sk_offset >= kHeaderSize && *m->sk_offset + 4 <= size);
    // Pretend the SK body was decrypted, as the daemon's parse_chain() of
    // the plaintext would see it.
    const auto inner_bytes = in.subspan(*m->sk_offset + 4);
    if (auto inner = parse_chain(m->sk_first, inner_bytes)) check_stable(*inner);
  }
  return 0;
}
