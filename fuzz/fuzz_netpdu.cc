// libFuzzer target for the NetPDU receive side: the input is a byte stream fed to the
// variant 1 de-aggregator (or split into control and data streams for the variant 2
// de-aggregator) in fuzzer-chosen read sizes, with a sink that sometimes retries later,
// rejects sessions or keeps payloads against a small memory budget. Also the hello parser.
// Any crash, hang, out-of-bounds access or budget overrun is a bug.
#include <sys/uio.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "netpdu/deaggregator.h"
#include "netpdu/split_deaggregator.h"
#include "netpdu/wire.h"

namespace {

using namespace xtcp::netpdu;

// Hands out its bytes in reads of the given sizes, with an EAGAIN between reads.
class MemSource final : public ByteSource {
 public:
  MemSource(const std::uint8_t* data, std::size_t len, std::uint8_t step_seed)
      : data_(data), len_(len), step_(step_seed) {}
  ssize_t readv(const iovec* iov, int iovcnt) override {
    if (++calls_ > 100000) {
      std::abort();  // the receiver keeps asking without progress: a livelock
    }
    if (gap_) {
      gap_ = false;
      return -EAGAIN;
    }
    if (pos_ == len_) {
      return 0;
    }
    gap_ = true;
    step_ = static_cast<std::uint8_t>(step_ * 73 + 41);
    std::size_t budget = 1 + step_ % 97;
    std::size_t moved = 0;
    for (int i = 0; i < iovcnt && budget > 0 && pos_ < len_; ++i) {
      const std::size_t n = std::min({budget, iov[i].iov_len, len_ - pos_});
      std::memcpy(iov[i].iov_base, data_ + pos_, n);
      pos_ += n;
      moved += n;
      budget -= n;
    }
    return static_cast<ssize_t>(moved);
  }

 private:
  const std::uint8_t* data_;
  std::size_t len_;
  std::size_t pos_ = 0;
  std::uint8_t step_;
  bool gap_ = false;
  int calls_ = 0;
};

struct Sink {
  std::vector<Payload> kept;
  std::uint8_t mode;
  unsigned n = 0;
  Verdict operator()(const Tlpdu& t) {
    ++n;
    // The payload must be exactly in bounds: touch every byte.
    volatile std::uint8_t x = 0;
    for (std::byte b : t.payload.bytes) {
      x = x ^ static_cast<std::uint8_t>(b);
    }
    (void)x;
    if ((mode & 1) != 0 && n % 3 == 0) {
      return Verdict::kRetryLater;
    }
    if ((mode & 2) != 0 && t.meta.session == 0xFFFF) {
      return Verdict::kUnknownSession;
    }
    if ((mode & 4) != 0 && kept.size() < 64) {
      kept.push_back(t.payload);  // held: counts against the budget
    }
    return Verdict::kAccept;
  }
};

ReceiverConfig config() {
  ReceiverConfig c;
  c.limits.max_pdu_bytes = 4096;
  c.limits.max_tlpdus = 64;
  c.max_buffered_bytes = 8192;
  c.max_pdus_per_call = 4;
  return c;
}

template <typename Rx>
void drive(Rx& rx, Sink& sink, const std::shared_ptr<MemoryBudget>& budget) {
  for (int i = 0; i < 20000 && rx.on_readable() == RxState::kOpen; ++i) {
    if (budget->used() > budget->limit() + 4096) {
      std::abort();  // the bound is max(limit, one frame)
    }
    if (i % 7 == 6) {
      sink.kept.clear();  // the consumer lets go now and then
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) {
    return 0;
  }
  WireError e = WireError::kNone;
  (void)Hello::parse(ByteSpan(reinterpret_cast<const std::byte*>(data), size), &e);

  const std::uint8_t mode = data[0];
  const std::uint8_t step = data[1];
  data += 2;
  size -= 2;
  Sink sink{{}, mode};
  auto budget = std::make_shared<MemoryBudget>(8192);
  if ((mode & 0x80) == 0) {
    MemSource src(data, size, step);
    Deaggregator rx(src, config(), [&sink](const Tlpdu& t) { return sink(t); }, budget);
    drive(rx, sink, budget);
  } else {
    // Variant 2: the first byte times 4 is how much of the rest is control stream; the data
    // bytes go round-robin in small runs to two data transports.
    if (size < 1) {
      return 0;
    }
    const std::size_t ctl_len = std::min<std::size_t>(size - 1, std::size_t{data[0]} * 4);
    const std::uint8_t* ctl = data + 1;
    std::vector<std::uint8_t> d[2];
    for (std::size_t i = 1 + ctl_len, k = 0; i < size; ++i, ++k) {
      d[(k / 16) % 2].push_back(data[i]);
    }
    MemSource c(ctl, ctl_len, step);
    MemSource d0(d[0].data(), d[0].size(), static_cast<std::uint8_t>(step + 1));
    MemSource d1(d[1].data(), d[1].size(), static_cast<std::uint8_t>(step + 2));
    SplitDeaggregator rx(c, {&d0, &d1}, config(), [&sink](const Tlpdu& t) { return sink(t); }, budget);
    drive(rx, sink, budget);
  }
  return 0;
}
