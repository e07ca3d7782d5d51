// Out-of-order queue and SACK scoreboard; see reassembly.h.
#include "stack/tcp/reassembly.h"

#include <algorithm>

namespace xtcp {

std::size_t OooQueue::insert(SeqNum rcv_nxt, SeqNum seq, wire::ByteSpan data, bool fin,
                             std::size_t max_bytes, std::size_t max_segments) {
  const SeqNum end = seq + static_cast<std::uint32_t>(data.size());
  if (fin) {
    has_fin_ = true;
    fin_seq_ = end;
  }
  // Cut whatever is below rcv_nxt (already delivered).
  if (seq < rcv_nxt) {
    const auto skip = static_cast<std::size_t>(rcv_nxt - seq);
    if (skip >= data.size()) {
      return 0;
    }
    data = data.subspan(skip);
    seq = rcv_nxt;
  }
  std::size_t stored = 0;
  // Walk existing pieces, filling only the gaps [cursor, next piece start).
  SeqNum cursor = seq;
  std::size_t i = 0;
  while (cursor < end) {
    while (i < segments_.size() && segments_[i].end() <= cursor) {
      ++i;
    }
    SeqNum gap_end = end;
    if (i < segments_.size()) {
      if (segments_[i].seq <= cursor) {
        cursor = segments_[i].end();  // covered already: keep the first copy
        continue;
      }
      gap_end = seq_min(end, segments_[i].seq);
    }
    const auto len = static_cast<std::size_t>(gap_end - cursor);
    if (bytes_ + len > max_bytes || segments_.size() >= max_segments) {
      break;
    }
    const auto from = static_cast<std::size_t>(cursor - seq);
    Piece p{cursor, std::vector<std::byte>(data.begin() + static_cast<std::ptrdiff_t>(from),
                                           data.begin() + static_cast<std::ptrdiff_t>(from + len))};
    segments_.insert(segments_.begin() + static_cast<std::ptrdiff_t>(i), std::move(p));
    bytes_ += len;
    stored += len;
    latest_ = cursor;
    cursor = gap_end;
    ++i;
  }
  return stored;
}

bool OooQueue::pop_contiguous(SeqNum* rcv_nxt, FunctionRef<std::size_t(wire::ByteSpan)> deliver) {
  std::size_t done = 0;
  while (done < segments_.size() && segments_[done].seq <= *rcv_nxt) {
    Piece& p = segments_[done];
    if (p.end() > *rcv_nxt) {
      const auto skip = static_cast<std::size_t>(*rcv_nxt - p.seq);
      wire::ByteSpan rest(p.data.data() + skip, p.data.size() - skip);
      const std::size_t took = deliver(rest);
      *rcv_nxt += static_cast<std::uint32_t>(took);
      if (took < rest.size()) {
        break;  // receiver full: keep the remainder queued
      }
    }
    bytes_ -= p.data.size();
    ++done;
  }
  segments_.erase(segments_.begin(), segments_.begin() + static_cast<std::ptrdiff_t>(done));
  if (has_fin_ && *rcv_nxt == fin_seq_ && segments_.empty()) {
    has_fin_ = false;
    return true;
  }
  return false;
}

std::size_t OooQueue::sack_blocks(std::array<wire::SackBlock, wire::kMaxSackBlocks>* out) const {
  // Merge adjacent pieces into ranges; put the one holding latest_ first (RFC 2018 section
  // 4: the most recently received), then the others from the top down (the most useful ones
  // for a sender filling holes from below vary; RFC 2018 only fixes the first). One pass, in
  // constant space: only the lowest range, the latest one and the highest few are kept, so
  // any number of ranges (up to the segment budget) is served.
  constexpr std::size_t kTop = wire::kMaxSackBlocks;
  std::array<wire::SackBlock, kTop> top{};  // the last kTop ranges, a ring
  std::size_t ranges = 0;
  wire::SackBlock lowest{};
  wire::SackBlock latest{};
  bool have_latest = false;
  wire::SackBlock cur{};
  bool cur_latest = false;
  auto finish = [&](const wire::SackBlock& r, bool is_latest) {
    if (ranges == 0) {
      lowest = r;
    }
    top[ranges % kTop] = r;
    ++ranges;
    if (is_latest) {
      latest = r;
      have_latest = true;
    }
  };
  bool open = false;
  for (const Piece& p : segments_) {
    if (open && cur.right == p.seq) {
      cur.right = p.end();
    } else {
      if (open) {
        finish(cur, cur_latest);
      }
      cur = wire::SackBlock{p.seq, p.end()};
      cur_latest = false;
      open = true;
    }
    if (p.seq <= latest_ && latest_ < p.end()) {
      cur_latest = true;
    }
  }
  if (open) {
    finish(cur, cur_latest);
  }
  if (ranges == 0) {
    return 0;
  }
  const wire::SackBlock first = have_latest ? latest : lowest;
  std::size_t count = 0;
  (*out)[count++] = first;
  const std::size_t kept = std::min(ranges, kTop);
  for (std::size_t k = 0; k < kept && count < out->size(); ++k) {
    const wire::SackBlock& r = top[(ranges - 1 - k) % kTop];
    if (!(r.left == first.left && r.right == first.right)) {
      (*out)[count++] = r;
    }
  }
  return count;
}

void OooQueue::clear() {
  segments_.clear();
  segments_.shrink_to_fit();
  bytes_ = 0;
  has_fin_ = false;
}

std::size_t OooQueue::memory_bytes() const {
  std::size_t m = segments_.capacity() * sizeof(Piece);
  for (const Piece& p : segments_) {
    m += p.data.capacity();
  }
  return m;
}

void SackScoreboard::add(SeqNum left, SeqNum right) {
  if (!(left < right)) {
    return;
  }
  // Insert keeping ranges sorted and merged.
  std::size_t i = 0;
  while (i < count_ && ranges_[i].right < left) {
    ++i;
  }
  std::size_t j = i;
  while (j < count_ && ranges_[j].left <= right) {
    left = seq_min(left, ranges_[j].left);
    right = seq_max(right, ranges_[j].right);
    ++j;
  }
  const std::size_t merged = j - i;
  if (merged == 0) {
    if (count_ == kMaxRanges) {
      if (i == count_) {
        return;  // full, and this range is the highest: least useful, forget it
      }
      --count_;  // drop the highest range to make room
    }
    for (std::size_t k = count_; k > i; --k) {
      ranges_[k] = ranges_[k - 1];
    }
    ++count_;
  } else {
    for (std::size_t k = j; k < count_; ++k) {
      ranges_[k - merged + 1] = ranges_[k];
    }
    count_ -= merged - 1;
  }
  ranges_[i] = wire::SackBlock{left, right};
}

void SackScoreboard::trim(SeqNum snd_una) {
  std::size_t drop = 0;
  while (drop < count_ && ranges_[drop].right <= snd_una) {
    ++drop;
  }
  for (std::size_t k = drop; k < count_; ++k) {
    ranges_[k - drop] = ranges_[k];
  }
  count_ -= drop;
  if (count_ > 0 && ranges_[0].left < snd_una) {
    ranges_[0].left = snd_una;
  }
}

SeqNum SackScoreboard::next_hole(SeqNum from, SeqNum limit, SeqNum* hole_end) const {
  for (std::size_t k = 0; k < count_; ++k) {
    if (ranges_[k].right <= from) {
      continue;
    }
    if (ranges_[k].left <= from) {
      from = ranges_[k].right;  // inside a SACKed range: the hole starts after it
      continue;
    }
    *hole_end = seq_min(ranges_[k].left, limit);
    return from;
  }
  *hole_end = limit;
  return from;
}

std::uint32_t SackScoreboard::sacked_bytes() const {
  std::uint32_t n = 0;
  for (std::size_t k = 0; k < count_; ++k) {
    n += static_cast<std::uint32_t>(ranges_[k].right - ranges_[k].left);
  }
  return n;
}

SeqNum SackScoreboard::highest() const { return count_ > 0 ? ranges_[count_ - 1].right : SeqNum(); }

}  // namespace xtcp
