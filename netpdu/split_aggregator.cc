// Variant 2 aggregator: per-lane open NetPDUs and payload queues, headers queued for the
// control transport at close, and each turn's data gather calls followed by one header write.
#include "netpdu/split_aggregator.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace xtcp::netpdu {

std::size_t lane_of(std::uint64_t session, std::size_t lanes) {
  // splitmix64's finaliser: cascaded ids differ mostly in their low bits (the upstream
  // index), so the id is mixed before taking the remainder.
  std::uint64_t z = session + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<std::size_t>(z % lanes);
}

SplitAggregator::SplitAggregator(ByteSink& control, std::vector<ByteSink*> data, const AggregatorConfig& config,
                                 const Clock& clock)
    : control_(control), config_(config), clock_(clock), lanes_(data.size()) {
  for (std::size_t i = 0; i < data.size(); ++i) {
    lanes_[i].sink = data[i];
  }
}

bool SplitAggregator::idle() const {
  if (ctl_offset_ < ctl_out_.size()) {
    return false;
  }
  for (const Lane& l : lanes_) {
    if (!l.queue.empty() || !l.open_header.empty()) {
      return false;
    }
  }
  return true;
}

int SplitAggregator::submit(const TlpduMeta& meta, Payload payload) {
  if (failed_) {
    return error_ != 0 ? -error_ : -EPIPE;
  }
  const std::size_t len = payload.size();
  if (len > max_payload(config_.max_pdu_bytes) || !is_valid_tlpdu_type(static_cast<std::uint8_t>(meta.type))) {
    return -EMSGSIZE;
  }
  const std::size_t li = lane_of(meta.session, lanes_.size());
  Lane& lane = lanes_[li];
  if (!lane.open_header.empty() &&
      (lane.open_bytes + kTlpduHeaderLen + len > config_.max_pdu_bytes || lane.open_count == config_.max_tlpdus)) {
    ++stats_.flush_size;
    close_open(li);
  }
  const std::size_t need = kTlpduHeaderLen + len + (lane.open_header.empty() ? kNetPduHeaderLen : 0);
  if (queued_bytes_ + need > config_.max_queued_bytes) {
    ++stats_.would_block;
    refused_ = true;
    return -EAGAIN;
  }
  if (lane.open_header.empty()) {
    lane.open_header.resize(kNetPduHeaderLen);  // fixed part written on close
    lane.open_bytes = kNetPduHeaderLen;
    lane.open_count = 0;
    lane.open_since = clock_.now();
    stats_.header_bytes += kNetPduHeaderLen;
  }
  TlpduHeader h;
  h.meta = meta;
  h.size = static_cast<std::uint32_t>(len);
  const std::size_t at = lane.open_header.size();
  lane.open_header.resize(at + kTlpduHeaderLen);
  h.emit(lane.open_header.data() + at);
  if (len != 0) {
    lane.queue.push_back(std::move(payload));
    ++lane.open_entries;
  }
  lane.open_bytes += static_cast<std::uint32_t>(kTlpduHeaderLen + len);
  ++lane.open_count;
  queued_bytes_ += need;
  ++stats_.tlpdus;
  stats_.header_bytes += kTlpduHeaderLen;
  stats_.payload_bytes += len;
  if (lane.open_bytes >= config_.flush_bytes) {
    ++stats_.flush_size;
    close_open(li);
  }
  return 0;
}

void SplitAggregator::close_open(std::size_t li) {
  Lane& lane = lanes_[li];
  if (lane.open_header.empty()) {
    return;
  }
  NetPduHeader h;
  h.flags = pdu_flags::kSplit;
  h.data_transport = static_cast<std::uint16_t>(li);
  h.header_len = NetPduHeader::split_header_len(lane.open_count);
  h.count = lane.open_count;
  // open_bytes counted 20 per NetPDU and per TLPDU plus the payloads: exactly the header
  // length plus the payload bytes the data transport carries.
  h.total_len = lane.open_bytes;
  h.emit(lane.open_header.data());
  if (ctl_offset_ != 0 && ctl_offset_ >= ctl_out_.size() / 2) {
    // Drop what was written so the buffer does not creep forward while writes are partial.
    ctl_out_.erase(ctl_out_.begin(), ctl_out_.begin() + static_cast<std::ptrdiff_t>(ctl_offset_));
    ctl_offset_ = 0;
  }
  ctl_out_.insert(ctl_out_.end(), lane.open_header.begin(), lane.open_header.end());
  lane.open_header.clear();
  lane.open_entries = 0;
  ++stats_.pdus;
}

void SplitAggregator::poll() {
  if (failed_) {
    return;
  }
  const TimeNs now = clock_.now();
  const TimeNs bound = TimeNs{config_.latency_us} * kNsPerUs;
  for (std::size_t i = 0; i < lanes_.size(); ++i) {
    if (!lanes_[i].open_header.empty() && now - lanes_[i].open_since >= bound) {
      ++stats_.flush_timer;
      close_open(i);
    }
  }
  write_all();
}

void SplitAggregator::flush() {
  if (failed_) {
    return;
  }
  for (std::size_t i = 0; i < lanes_.size(); ++i) {
    if (!lanes_[i].open_header.empty()) {
      ++stats_.flush_explicit;
      close_open(i);
    }
  }
  write_all();
}

void SplitAggregator::on_writable_control() {
  ctl_want_write_ = false;
  write_all();
}

void SplitAggregator::on_writable_data(std::size_t lane) {
  lanes_[lane].want_write = false;
  write_all();
}

void SplitAggregator::write_all() {
  for (std::size_t i = 0; i < lanes_.size() && !failed_; ++i) {
    if (!lanes_[i].want_write) {
      write_lane(i);
    }
  }
  if (!failed_ && !ctl_want_write_) {
    write_control();
  }
  maybe_signal_space();
}

TimeNs SplitAggregator::next_deadline() const {
  TimeNs t = kNever;
  if (failed_) {
    return t;
  }
  for (const Lane& l : lanes_) {
    if (!l.open_header.empty()) {
      t = std::min(t, l.open_since + TimeNs{config_.latency_us} * kNsPerUs);
    }
  }
  return t;
}

void SplitAggregator::write_lane(std::size_t li) {
  Lane& lane = lanes_[li];
  iovec iov[kIovMax];
  while (!failed_) {
    const std::size_t ready = lane.queue.size() - lane.open_entries;
    if (ready == 0) {
      return;
    }
    int n = 0;
    std::size_t offered = 0;
    for (std::size_t i = 0; i < ready && n < kIovMax; ++i) {
      const Payload& p = lane.queue[i];
      const std::size_t skip = i == 0 ? lane.front_offset : 0;
      iov[n++] = {const_cast<std::byte*>(p.bytes.data()) + skip, p.size() - skip};
      offered += p.size() - skip;
    }
    ++stats_.gather_calls;
    const ssize_t w = lane.sink->writev(iov, n);
    if (w == -EINTR) {
      continue;
    }
    if (w == -EAGAIN || w == -EWOULDBLOCK) {
      lane.want_write = true;
      return;
    }
    if (w < 0) {
      fail(static_cast<int>(-w), "writev (data transport)");
      return;
    }
    std::size_t left = static_cast<std::size_t>(w);
    queued_bytes_ -= left;
    while (left > 0) {
      const std::size_t rest = lane.queue.front().size() - lane.front_offset;
      if (left < rest) {
        lane.front_offset += left;
        break;
      }
      left -= rest;
      lane.front_offset = 0;
      lane.queue.pop_front();  // releases the payload
    }
    if (static_cast<std::size_t>(w) < offered) {
      lane.want_write = true;
      return;
    }
  }
}

void SplitAggregator::write_control() {
  while (!failed_ && ctl_offset_ < ctl_out_.size()) {
    const iovec iov{ctl_out_.data() + ctl_offset_, ctl_out_.size() - ctl_offset_};
    ++stats_.gather_calls;
    const ssize_t w = control_.writev(&iov, 1);
    if (w == -EINTR) {
      continue;
    }
    if (w == -EAGAIN || w == -EWOULDBLOCK) {
      ctl_want_write_ = true;
      return;
    }
    if (w < 0) {
      fail(static_cast<int>(-w), "write (control transport)");
      return;
    }
    ctl_offset_ += static_cast<std::size_t>(w);
    queued_bytes_ -= static_cast<std::size_t>(w);
    if (ctl_offset_ == ctl_out_.size()) {
      ctl_out_.clear();
      ctl_offset_ = 0;
      return;
    }
    ctl_want_write_ = true;  // partial: the buffer is full
    return;
  }
}

void SplitAggregator::fail(int err, const char* what) {
  failed_ = true;
  error_ = err;
  error_message_ = std::string(what) + ": " + std::strerror(err);
  for (Lane& l : lanes_) {
    l.queue.clear();
    l.open_header.clear();
    l.open_entries = 0;
  }
  ctl_out_.clear();
  ctl_offset_ = 0;
  queued_bytes_ = 0;
}

void SplitAggregator::maybe_signal_space() {
  if (refused_ && !failed_ && queued_bytes_ <= config_.low_watermark) {
    refused_ = false;
    if (on_space_) {
      on_space_();
    }
  }
}

}  // namespace xtcp::netpdu
