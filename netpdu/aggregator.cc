// Variant 1 aggregator: the queue of headers and payload references, NetPDU closing rules,
// and the gather-write loop that releases payloads as the kernel accepts their bytes.
#include "netpdu/aggregator.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace xtcp::netpdu {

std::string validate(const AggregatorConfig& c) {
  if (c.max_pdu_bytes < kMinMaxPduBytes || c.max_pdu_bytes > kMaxMaxPduBytes) {
    return "max_pdu_bytes must be in [" + std::to_string(kMinMaxPduBytes) + ", " + std::to_string(kMaxMaxPduBytes) + "]";
  }
  if (c.max_tlpdus == 0 || c.max_tlpdus > kMaxMaxTlpdus) {
    return "max_tlpdus must be in [1, " + std::to_string(kMaxMaxTlpdus) + "]";
  }
  if (c.flush_bytes == 0 || c.flush_bytes > c.max_pdu_bytes) {
    return "flush_bytes must be in [1, max_pdu_bytes]";
  }
  // Room for at least two full NetPDUs, so one can be written while the next fills.
  if (c.max_queued_bytes < 2 * std::size_t{c.max_pdu_bytes}) {
    return "max_queued_bytes must be at least 2 * max_pdu_bytes";
  }
  if (c.low_watermark >= c.max_queued_bytes) {
    return "low_watermark must be below max_queued_bytes";
  }
  return {};
}

Aggregator::Aggregator(ByteSink& sink, const AggregatorConfig& config, const Clock& clock)
    : sink_(sink), config_(config), clock_(clock) {}

bool Aggregator::would_block(std::size_t payload_len) const {
  return queued_bytes_ + 2 * kTlpduHeaderLen + payload_len > config_.max_queued_bytes;
}

int Aggregator::submit(const TlpduMeta& meta, Payload payload) {
  if (state_ == State::kFailed) {
    return error_ != 0 ? -error_ : -EPIPE;
  }
  const std::size_t len = payload.size();
  if (len > max_payload(config_.max_pdu_bytes) || !is_valid_tlpdu_type(static_cast<std::uint8_t>(meta.type))) {
    return -EMSGSIZE;
  }
  if (open_entries_ != 0 &&
      (open_bytes_ + kTlpduHeaderLen + len > config_.max_pdu_bytes || open_count_ == config_.max_tlpdus)) {
    ++stats_.flush_size;
    close_open_pdu();
  }
  const std::size_t need = kTlpduHeaderLen + len + (open_entries_ == 0 ? kNetPduHeaderLen : 0);
  if (queued_bytes_ + need > config_.max_queued_bytes) {
    ++stats_.would_block;
    refused_ = true;
    return -EAGAIN;
  }
  if (open_entries_ == 0) {
    queue_.emplace_back();  // header filled in by close_open_pdu()
    open_entries_ = 1;
    open_bytes_ = kNetPduHeaderLen;
    open_count_ = 0;
    open_since_ = clock_.now();
    stats_.header_bytes += kNetPduHeaderLen;
  }
  Entry& e = queue_.emplace_back();
  TlpduHeader h;
  h.meta = meta;
  h.size = static_cast<std::uint32_t>(len);
  h.emit(e.header);
  e.payload = std::move(payload);
  ++open_entries_;
  open_bytes_ += static_cast<std::uint32_t>(kTlpduHeaderLen + len);
  ++open_count_;
  queued_bytes_ += need;
  ++stats_.tlpdus;
  stats_.header_bytes += kTlpduHeaderLen;
  stats_.payload_bytes += len;
  if (open_bytes_ >= config_.flush_bytes) {
    ++stats_.flush_size;
    close_open_pdu();
  }
  return 0;
}

void Aggregator::close_open_pdu() {
  if (open_entries_ == 0) {
    return;
  }
  NetPduHeader h;
  h.total_len = open_bytes_;
  h.count = open_count_;
  h.emit(queue_[queue_.size() - open_entries_].header);
  open_entries_ = 0;
  ++stats_.pdus;
}

void Aggregator::poll() {
  if (state_ != State::kOpen) {
    return;
  }
  if (open_entries_ != 0 && clock_.now() - open_since_ >= TimeNs{config_.latency_us} * kNsPerUs) {
    ++stats_.flush_timer;
    close_open_pdu();
  }
  if (!want_write_) {
    write_ready();
  }
  maybe_signal_space();
}

void Aggregator::flush() {
  if (state_ != State::kOpen) {
    return;
  }
  if (open_entries_ != 0) {
    ++stats_.flush_explicit;
    close_open_pdu();
  }
  if (!want_write_) {
    write_ready();
  }
  maybe_signal_space();
}

void Aggregator::on_writable() {
  if (state_ != State::kOpen) {
    return;
  }
  want_write_ = false;
  write_ready();
  maybe_signal_space();
}

TimeNs Aggregator::next_deadline() const {
  if (state_ != State::kOpen || open_entries_ == 0) {
    return kNever;
  }
  return open_since_ + TimeNs{config_.latency_us} * kNsPerUs;
}

void Aggregator::write_ready() {
  iovec iov[kIovMax];
  while (state_ == State::kOpen) {
    const std::size_t ready = queue_.size() - open_entries_;
    if (ready == 0) {
      return;
    }
    int n = 0;
    std::size_t offered = 0;
    for (std::size_t i = 0; i < ready && n < kIovMax; ++i) {
      Entry& e = queue_[i];
      std::size_t skip = i == 0 ? front_offset_ : 0;
      if (skip < kNetPduHeaderLen) {
        iov[n++] = {e.header + skip, kNetPduHeaderLen - skip};
        offered += kNetPduHeaderLen - skip;
        skip = 0;
      } else {
        skip -= kNetPduHeaderLen;
      }
      if (e.payload.size() > skip && n < kIovMax) {
        iov[n++] = {const_cast<std::byte*>(e.payload.bytes.data()) + skip, e.payload.size() - skip};
        offered += e.payload.size() - skip;
      }
    }
    ++stats_.gather_calls;
    const ssize_t w = sink_.writev(iov, n);
    if (w == -EINTR) {
      continue;
    }
    if (w == -EAGAIN || w == -EWOULDBLOCK) {
      want_write_ = true;
      return;
    }
    if (w < 0) {
      fail(static_cast<int>(-w), "writev");
      return;
    }
    consume(static_cast<std::size_t>(w));
    if (static_cast<std::size_t>(w) < offered) {
      // The kernel buffer is full: asking again now would only earn an EAGAIN.
      want_write_ = true;
      return;
    }
  }
}

void Aggregator::consume(std::size_t n) {
  queued_bytes_ -= n;
  while (n > 0) {
    Entry& e = queue_.front();
    const std::size_t left = kNetPduHeaderLen + e.payload.size() - front_offset_;
    if (n < left) {
      front_offset_ += n;
      return;
    }
    n -= left;
    front_offset_ = 0;
    queue_.pop_front();  // drops this payload's reference: its owner may release it now
  }
}

void Aggregator::fail(int err, const char* what) {
  state_ = State::kFailed;
  error_ = err;
  error_message_ = std::string(what) + ": " + std::strerror(err);
  queue_.clear();  // releases every payload still referenced
  queued_bytes_ = 0;
  open_entries_ = 0;
  front_offset_ = 0;
}

void Aggregator::maybe_signal_space() {
  if (refused_ && state_ == State::kOpen && queued_bytes_ <= config_.low_watermark) {
    refused_ = false;
    if (on_space_) {
      on_space_();
    }
  }
}

}  // namespace xtcp::netpdu
