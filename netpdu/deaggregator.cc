// Variant 1 de-aggregator: the header/body/deliver state machine over a non-blocking
// source. Every frame is validated whole before any of its TLPDUs is delivered.
#include "netpdu/deaggregator.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace xtcp::netpdu {

const char* to_string(RxError e) {
  switch (e) {
    case RxError::kNone:
      return "none";
    case RxError::kWire:
      return "bad frame";
    case RxError::kTruncated:
      return "truncated frame";
    case RxError::kIo:
      return "read error";
    case RxError::kUnknownSession:
      return "unknown session";
    case RxError::kBadSequence:
      return "bad sequence number";
    case RxError::kRejected:
      return "rejected by the session";
  }
  return "?";
}

Deaggregator::Deaggregator(ByteSource& source, const ReceiverConfig& config, TlpduSink sink,
                           std::shared_ptr<MemoryBudget> budget)
    : source_(source), config_(config), sink_(std::move(sink)), budget_(std::move(budget)) {
  config_.limits.split = false;
  config_.limits.data_transports = 0;
  if (!budget_) {
    budget_ = std::make_shared<MemoryBudget>(config_.max_buffered_bytes);
  }
}

bool Deaggregator::wants_read() const {
  if (state_ != RxState::kOpen || phase_ == Phase::kDeliver) {
    return false;
  }
  if (waiting_budget_ != 0) {
    return budget_->can_take(waiting_budget_);  // a parsed header waits for its buffer
  }
  return true;
}

std::string Deaggregator::where() const {
  return "NetPDU #" + std::to_string(stats_.pdus + 1) + " (stream offset " + std::to_string(stream_offset_) + ")";
}

void Deaggregator::fail(RxError e, const std::string& msg) {
  state_ = RxState::kFailed;
  error_ = e;
  error_message_ = msg;
  body_.reset();
  slots_.clear();
}

RxState Deaggregator::on_readable() {
  if (in_call_ || state_ != RxState::kOpen) {
    return state_;  // re-entered from a sink: the outer call carries on
  }
  in_call_ = true;
  struct Guard {
    bool* flag;
    ~Guard() { *flag = false; }
  } guard{&in_call_};
  yielded_ = false;

  if (phase_ == Phase::kDeliver && !deliver()) {
    return state_;
  }
  std::uint32_t frames = 0;
  while (state_ == RxState::kOpen) {
    if (phase_ == Phase::kHeader) {
      if (header_have_ == kNetPduHeaderLen) {
        if (!start_body()) {
          return state_;  // bad header, or waiting for budget
        }
        continue;
      }
      const iovec iov{header_ + header_have_, kNetPduHeaderLen - header_have_};
      ++stats_.read_calls;
      const ssize_t n = source_.readv(&iov, 1);
      if (n == -EINTR) {
        continue;
      }
      if (n == -EAGAIN || n == -EWOULDBLOCK) {
        return state_;
      }
      if (n < 0) {
        fail(RxError::kIo, "read: " + std::string(std::strerror(static_cast<int>(-n))));
        return state_;
      }
      if (n == 0) {
        if (header_have_ == 0) {
          state_ = RxState::kClosed;
        } else {
          fail(RxError::kTruncated, "end of stream inside the header of " + where() + ": " +
                                        std::to_string(header_have_) + " of " + std::to_string(kNetPduHeaderLen) +
                                        " bytes");
        }
        return state_;
      }
      header_have_ += static_cast<std::size_t>(n);
      stream_offset_ += static_cast<std::uint64_t>(n);
      if (header_have_ < kNetPduHeaderLen) {
        return state_;  // short read: drained
      }
      continue;
    }
    // Phase::kBody: the rest of this frame and, in the same call, the next frame's header.
    iovec iov[2];
    iov[0] = {body_.get() + body_have_, body_len_ - body_have_};
    iov[1] = {header_, kNetPduHeaderLen};
    const std::size_t asked = iov[0].iov_len + iov[1].iov_len;
    ++stats_.read_calls;
    const ssize_t n = source_.readv(iov, 2);
    if (n == -EINTR) {
      continue;
    }
    if (n == -EAGAIN || n == -EWOULDBLOCK) {
      return state_;
    }
    if (n < 0) {
      fail(RxError::kIo, "readv: " + std::string(std::strerror(static_cast<int>(-n))));
      return state_;
    }
    if (n == 0) {
      fail(RxError::kTruncated, "end of stream inside " + where() + ": " +
                                    std::to_string(kNetPduHeaderLen + body_have_) + " of " +
                                    std::to_string(current_.total_len) + " bytes");
      return state_;
    }
    const std::size_t got = static_cast<std::size_t>(n);
    stream_offset_ += got;
    const std::size_t to_body = std::min(got, body_len_ - body_have_);
    body_have_ += to_body;
    header_have_ = got - to_body;
    if (body_have_ == body_len_) {
      if (!finish_body()) {
        return state_;
      }
      if (++frames >= config_.max_pdus_per_call) {
        yielded_ = true;
        return state_;
      }
    }
    if (got < asked) {
      return state_;  // drained
    }
  }
  return state_;
}

bool Deaggregator::start_body() {
  WireError e = WireError::kNone;
  const auto h = NetPduHeader::parse(ByteSpan(header_, kNetPduHeaderLen), config_.limits, &e);
  if (!h) {
    wire_error_ = e;
    char detail[96];
    std::snprintf(detail, sizeof detail, " (magic %08x, version %u, header length %u, total %u, count %u)",
                  load_be32(header_), load_u8(header_ + 4), load_be32(header_ + 8), load_be32(header_ + 12),
                  load_be32(header_ + 16));
    fail(RxError::kWire, std::string(to_string(e)) + " in " + where() + detail);
    return false;
  }
  current_ = *h;
  const std::size_t len = h->total_len - kNetPduHeaderLen;
  if (!budget_->can_take(len)) {
    waiting_budget_ = len;  // wants_read() is false until payloads are released
    return false;
  }
  waiting_budget_ = 0;
  body_ = MemoryBudget::allocate(budget_, len);
  body_len_ = len;
  body_have_ = 0;
  header_have_ = 0;
  phase_ = Phase::kBody;
  return true;
}

bool Deaggregator::finish_body() {
  std::uint32_t at = 0;
  const WireError e = parse_inline_tlpdus(ByteSpan(body_.get(), body_len_), current_.count, &slots_, &at);
  if (e != WireError::kNone) {
    wire_error_ = e;
    fail(RxError::kWire, std::string(to_string(e)) + " at TLPDU #" + std::to_string(at) + " of " + where() +
                             " (count " + std::to_string(current_.count) + ", total length " +
                             std::to_string(current_.total_len) + ")");
    return false;
  }
  next_slot_ = 0;
  phase_ = Phase::kDeliver;
  return deliver();
}

bool Deaggregator::deliver() {
  while (next_slot_ < slots_.size()) {
    const TlpduSlot& s = slots_[next_slot_];
    Tlpdu t;
    t.meta = s.header.meta;
    if (s.header.size != 0) {
      t.payload.bytes = ByteSpan(body_.get() + s.offset, s.header.size);
      t.payload.owner = body_;
    }
    const Verdict v = sink_(t);
    if (v == Verdict::kAccept) {
      ++next_slot_;
      ++stats_.tlpdus;
      stats_.payload_bytes += s.header.size;
      continue;
    }
    if (v == Verdict::kRetryLater) {
      return false;
    }
    char detail[128];
    std::snprintf(detail, sizeof detail, "session %#llx (%s, seq %u) at TLPDU #%zu of ",
                  static_cast<unsigned long long>(t.meta.session), to_string(t.meta.type), t.meta.seq, next_slot_);
    const RxError re = v == Verdict::kUnknownSession ? RxError::kUnknownSession
                       : v == Verdict::kBadSequence  ? RxError::kBadSequence
                                                     : RxError::kRejected;
    fail(re, std::string(to_string(re)) + ": " + detail + where());
    return false;
  }
  slots_.clear();
  body_.reset();
  ++stats_.pdus;
  phase_ = Phase::kHeader;  // the next header may already be complete (read with the body)
  return true;
}

}  // namespace xtcp::netpdu
