// Variant 2 de-aggregator: control-buffer parsing of variable-length headers, per-NetPDU
// buffer allocation and scatter reads from the named data transport, in-order delivery.
#include "netpdu/split_deaggregator.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace xtcp::netpdu {

SplitDeaggregator::SplitDeaggregator(ByteSource& control, std::vector<ByteSource*> data, const ReceiverConfig& config,
                                     TlpduSink sink, std::shared_ptr<MemoryBudget> budget)
    : control_(control), data_(std::move(data)), config_(config), sink_(std::move(sink)), budget_(std::move(budget)) {
  config_.limits.split = true;
  config_.limits.data_transports = static_cast<std::uint16_t>(data_.size());
  if (!budget_) {
    budget_ = std::make_shared<MemoryBudget>(config_.max_buffered_bytes);
  }
  // Room for the longest header the limits allow, so a valid header always fits.
  const std::size_t longest = NetPduHeader::split_header_len(config_.limits.max_tlpdus);
  ctl_.resize(std::max<std::size_t>(64 * 1024, longest));
}

std::size_t SplitDeaggregator::max_pending_tlpdus() const {
  return std::max<std::size_t>(config_.limits.max_tlpdus, 16384);
}

bool SplitDeaggregator::wants_read_control() const {
  return state_ == RxState::kOpen && !ctl_eof_ && !deferred_ && !delivering_ && pending_tlpdus_ < max_pending_tlpdus() &&
         (ctl_end_ < ctl_.size() || ctl_begin_ > 0);
}

bool SplitDeaggregator::wants_read_data(std::size_t lane) const {
  if (state_ != RxState::kOpen || delivering_ || pending_.empty() || pending_.front().header.data_transport != lane) {
    return false;
  }
  return head_allocated_ || budget_->can_take(pending_.front().payload_bytes);
}

std::string SplitDeaggregator::where(bool head) const {
  // Headers are numbered in control order: the head is the first not yet delivered, a
  // header being parsed comes after every pending one.
  const std::uint64_t n = stats_.pdus + 1 + (head ? 0 : pending_.size());
  return "NetPDU #" + std::to_string(n) + (head ? std::string() : " (control stream offset " + std::to_string(ctl_offset_) + ")");
}

void SplitDeaggregator::parse_fail(RxError e, const std::string& msg) {
  // NetPDUs before the bad header are delivered first, as on an inline transport.
  if (pending_.empty()) {
    fail(e, msg);
  } else {
    deferred_ = true;
    deferred_error_ = e;
    deferred_message_ = msg;
  }
}

void SplitDeaggregator::fail(RxError e, const std::string& msg) {
  state_ = RxState::kFailed;
  error_ = e;
  error_message_ = msg;
  pending_.clear();
  head_payloads_.clear();
}

RxState SplitDeaggregator::on_readable() {
  if (in_call_ || state_ != RxState::kOpen) {
    return state_;
  }
  in_call_ = true;
  struct Guard {
    bool* flag;
    ~Guard() { *flag = false; }
  } guard{&in_call_};
  yielded_ = false;

  if (delivering_ && !deliver()) {
    return state_;
  }
  bool ctl_drained = false;
  std::uint32_t frames = 0;
  while (state_ == RxState::kOpen) {
    if (!parse_control()) {
      return state_;
    }
    if (!pending_.empty()) {
      const Fill f = fill_head();
      if (f == Fill::kStop) {
        return state_;  // failed, or waiting for budget
      }
      if (f == Fill::kComplete) {
        delivering_ = true;
        next_slot_ = 0;
        if (!deliver()) {
          return state_;
        }
        if (++frames >= config_.max_pdus_per_call) {
          yielded_ = true;
          return state_;
        }
        continue;
      }
      // kWait: the head's data transport is drained; more headers may still be read.
    } else if (ctl_eof_) {
      if (ctl_end_ != ctl_begin_) {
        fail(RxError::kTruncated, "end of control stream inside the header of " + where(false) + ": " +
                                      std::to_string(ctl_end_ - ctl_begin_) + " bytes");
      } else {
        state_ = RxState::kClosed;
      }
      return state_;
    }
    if (ctl_drained || !wants_read_control()) {
      return state_;
    }
    if (ctl_end_ == ctl_.size()) {
      std::memmove(ctl_.data(), ctl_.data() + ctl_begin_, ctl_end_ - ctl_begin_);
      ctl_end_ -= ctl_begin_;
      ctl_begin_ = 0;
    }
    const iovec iov{ctl_.data() + ctl_end_, ctl_.size() - ctl_end_};
    ++stats_.read_calls;
    const ssize_t n = control_.readv(&iov, 1);
    if (n == -EINTR) {
      continue;
    }
    if (n == -EAGAIN || n == -EWOULDBLOCK) {
      ctl_drained = true;
      if (pending_.empty()) {
        return state_;
      }
      continue;
    }
    if (n < 0) {
      fail(RxError::kIo, "read (control transport): " + std::string(std::strerror(static_cast<int>(-n))));
      return state_;
    }
    if (n == 0) {
      ctl_eof_ = true;
      continue;
    }
    ctl_end_ += static_cast<std::size_t>(n);
    if (static_cast<std::size_t>(n) < iov.iov_len) {
      ctl_drained = true;
    }
  }
  return state_;
}

bool SplitDeaggregator::parse_control() {
  if (deferred_) {
    if (pending_.empty()) {
      fail(deferred_error_, deferred_message_);
      return false;
    }
    return true;
  }
  while (ctl_end_ - ctl_begin_ >= kNetPduHeaderLen) {
    const std::byte* p = ctl_.data() + ctl_begin_;
    WireError e = WireError::kNone;
    const auto h = NetPduHeader::parse(ByteSpan(p, kNetPduHeaderLen), config_.limits, &e);
    if (!h) {
      wire_error_ = e;
      char detail[112];
      std::snprintf(detail, sizeof detail,
                    " (magic %08x, version %u, flags %#x, transport %u, header length %u, total %u, count %u)",
                    load_be32(p), load_u8(p + 4), load_u8(p + 5), load_be16(p + 6), load_be32(p + 8),
                    load_be32(p + 12), load_be32(p + 16));
      parse_fail(RxError::kWire, std::string(to_string(e)) + " in " + where(false) + detail);
      return state_ == RxState::kOpen;
    }
    if (ctl_end_ - ctl_begin_ < h->header_len) {
      return true;  // the rest of this header has not arrived
    }
    if (!pending_.empty() && pending_tlpdus_ + h->count > max_pending_tlpdus()) {
      return true;  // bounded: parse it once the head has been delivered
    }
    Pending pd;
    pd.header = *h;
    pd.tlpdus.reserve(h->count);
    for (std::uint32_t i = 0; i < h->count; ++i) {
      const auto t = TlpduHeader::parse(ByteSpan(p + kNetPduHeaderLen + i * kTlpduHeaderLen, kTlpduHeaderLen), &e);
      if (!t) {
        wire_error_ = e;
        parse_fail(RxError::kWire, std::string(to_string(e)) + " at TLPDU #" + std::to_string(i) + " of " + where(false));
        return state_ == RxState::kOpen;
      }
      pd.payload_bytes += t->size;
      pd.tlpdus.push_back(*t);
    }
    if (pd.payload_bytes != std::uint64_t{h->total_len} - h->header_len) {
      wire_error_ = WireError::kLengthMismatch;
      parse_fail(RxError::kWire, std::string(to_string(WireError::kLengthMismatch)) + " in " + where(false) +
                                     " (sizes sum to " + std::to_string(pd.payload_bytes) + ", total length " +
                                     std::to_string(h->total_len) + " minus header length " +
                                     std::to_string(h->header_len) + ")");
      return state_ == RxState::kOpen;
    }
    pending_tlpdus_ += h->count;
    pending_.push_back(std::move(pd));
    ctl_begin_ += h->header_len;
    ctl_offset_ += h->header_len;
  }
  if (ctl_begin_ == ctl_end_) {
    ctl_begin_ = ctl_end_ = 0;
  }
  return true;
}

SplitDeaggregator::Fill SplitDeaggregator::fill_head() {
  Pending& head = pending_.front();
  if (!head_allocated_) {
    if (!budget_->can_take(head.payload_bytes)) {
      return Fill::kStop;  // wants_read_data() stays false until payloads are released
    }
    std::size_t small = 0;
    for (const auto& t : head.tlpdus) {
      if (t.size < kOwnBufferThreshold) {
        small += t.size;
      }
    }
    std::shared_ptr<std::byte> block = small != 0 ? MemoryBudget::allocate(budget_, small) : nullptr;
    std::size_t at = 0;
    head_payloads_.clear();
    head_payloads_.reserve(head.tlpdus.size());
    for (const auto& t : head.tlpdus) {
      Payload p;
      if (t.size >= kOwnBufferThreshold) {
        auto own = MemoryBudget::allocate(budget_, t.size);
        p.bytes = ByteSpan(own.get(), t.size);
        p.owner = std::move(own);
      } else if (t.size != 0) {
        p.bytes = ByteSpan(block.get() + at, t.size);
        p.owner = block;
        at += t.size;
      }
      head_payloads_.push_back(std::move(p));
    }
    head_slot_ = 0;
    head_slot_have_ = 0;
    head_allocated_ = true;
  }
  ByteSource& src = *data_[head.header.data_transport];
  iovec iov[kIovMax];
  while (true) {
    while (head_slot_ < head_payloads_.size() && head_payloads_[head_slot_].size() == head_slot_have_) {
      ++head_slot_;
      head_slot_have_ = 0;
    }
    if (head_slot_ == head_payloads_.size()) {
      return Fill::kComplete;
    }
    int n = 0;
    std::size_t asked = 0;
    for (std::size_t i = head_slot_; i < head_payloads_.size() && n < kIovMax; ++i) {
      const Payload& p = head_payloads_[i];
      const std::size_t skip = i == head_slot_ ? head_slot_have_ : 0;
      if (p.size() > skip) {
        iov[n++] = {const_cast<std::byte*>(p.bytes.data()) + skip, p.size() - skip};
        asked += p.size() - skip;
      }
    }
    ++stats_.read_calls;
    const ssize_t r = src.readv(iov, n);
    if (r == -EINTR) {
      continue;
    }
    if (r == -EAGAIN || r == -EWOULDBLOCK) {
      return Fill::kWait;
    }
    if (r < 0) {
      fail(RxError::kIo, "readv (data transport " + std::to_string(head.header.data_transport) +
                             "): " + std::strerror(static_cast<int>(-r)));
      return Fill::kStop;
    }
    if (r == 0) {
      std::uint64_t have = 0;
      for (std::size_t i = 0; i < head_slot_; ++i) {
        have += head_payloads_[i].size();
      }
      have += head_slot_have_;
      fail(RxError::kTruncated, "end of data transport " + std::to_string(head.header.data_transport) +
                                    " inside the payloads of " + where(true) + ": " + std::to_string(have) + " of " +
                                    std::to_string(head.payload_bytes) + " bytes");
      return Fill::kStop;
    }
    std::size_t left = static_cast<std::size_t>(r);
    while (left > 0) {
      const std::size_t rest = head_payloads_[head_slot_].size() - head_slot_have_;
      if (left < rest) {
        head_slot_have_ += left;
        break;
      }
      left -= rest;
      ++head_slot_;
      head_slot_have_ = 0;
      while (head_slot_ < head_payloads_.size() && head_payloads_[head_slot_].size() == 0) {
        ++head_slot_;
      }
    }
    if (static_cast<std::size_t>(r) < asked) {
      return head_slot_ == head_payloads_.size() ? Fill::kComplete : Fill::kWait;
    }
  }
}

bool SplitDeaggregator::deliver() {
  Pending& head = pending_.front();
  while (next_slot_ < head.tlpdus.size()) {
    Tlpdu t;
    t.meta = head.tlpdus[next_slot_].meta;
    t.payload = head_payloads_[next_slot_];
    const Verdict v = sink_(t);
    if (v == Verdict::kAccept) {
      stats_.payload_bytes += t.payload.size();
      ++stats_.tlpdus;
      ++next_slot_;
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
    fail(re, std::string(to_string(re)) + ": " + detail + where(true));
    return false;
  }
  pending_tlpdus_ -= head.tlpdus.size();
  pending_.pop_front();
  head_payloads_.clear();
  head_allocated_ = false;
  delivering_ = false;
  ++stats_.pdus;
  return true;
}

}  // namespace xtcp::netpdu
