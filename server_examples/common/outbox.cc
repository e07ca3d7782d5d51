// Outbox: whole-or-nothing sends (XTCP_OPT_SEND_ALL) with a bounded per-connection queue
// for what cannot be made again, flushed when xtcp_writable names the connection; see
// outbox.h. The queue is normally empty: it only fills while the shared transmit cache (or
// the connection's share of it) is full.
#include "server_examples/common/outbox.h"

#include <xtcp/xtcp.h>

#include <algorithm>
#include <cerrno>

namespace xtcp_examples {

Outbox::Outbox(int gd, std::size_t max_queued_per_connection, std::size_t max_piece)
    : gd_(gd), max_queued_(max_queued_per_connection), max_piece_(std::max<std::size_t>(max_piece, 1)) {}

int Outbox::send_now(int cd, std::size_t ackd, std::string_view data) {
  const int rc = xtcp_send(gd_, cd, ackd, data.empty() ? nullptr : data.data(), data.size());
  if (rc > 0) {
    bytes_sent_ += static_cast<std::uint64_t>(rc);
  }
  return rc;
}

void Outbox::push(int cd, std::size_t ackd, std::string_view data) {
  Queue& q = queues_[cd];
  q.entries.push_back(Entry{ackd, std::string(data)});
  q.bytes += data.size();
  q.ackd += ackd;
  queued_bytes_ += data.size();
}

int Outbox::send(int cd, std::size_t ackd, std::string_view data) {
  if (ackd == 0 && data.empty()) {
    return 0;
  }
  const auto it = queues_.find(cd);
  if (it != queues_.end()) {
    // Something waits: this goes behind it, and its ACK with it.
    if (it->second.bytes + data.size() > max_queued_) {
      return -ENOBUFS;
    }
    push(cd, ackd, data);
    ++deferred_;
    return 0;
  }
  if (data.size() > max_queued_) {
    return -ENOBUFS;
  }
  std::size_t off = 0;
  do {
    const std::string_view piece = data.substr(off, max_piece_);
    const int rc = send_now(cd, ackd, piece);
    if (rc == -EAGAIN || (rc == 0 && !piece.empty())) {
      // Refused whole (SEND_ALL: ackd not applied either); the stack wakes cd when it fits.
      push(cd, ackd, data.substr(off));
      ++deferred_;
      return 0;
    }
    if (rc < 0) {
      return rc == -EMSGSIZE ? -ENOBUFS : rc;
    }
    off += static_cast<std::size_t>(rc);
    ackd = 0;  // applied with the first piece
  } while (off < data.size());
  return 0;
}

void Outbox::flush(int cd) {
  const auto it = queues_.find(cd);
  if (it == queues_.end()) {
    return;
  }
  Queue& q = it->second;
  while (!q.entries.empty()) {
    Entry& e = q.entries.front();
    const std::string_view piece = std::string_view(e.data).substr(0, max_piece_);
    const int rc = send_now(cd, e.ackd, piece);
    if (rc == -EAGAIN || (rc == 0 && !piece.empty())) {
      return;  // refused again: remembered by the stack, woken again later
    }
    if (rc < 0) {
      queued_bytes_ -= q.bytes;  // broken connection: xtcp_recv reports its end
      queues_.erase(it);
      return;
    }
    q.ackd -= e.ackd;
    e.ackd = 0;
    const auto taken = static_cast<std::size_t>(rc);
    e.data.erase(0, taken);
    q.bytes -= taken;
    queued_bytes_ -= taken;
    if (e.data.empty()) {
      q.entries.pop_front();
    }
  }
  queues_.erase(it);
}

void Outbox::flush_writable() {
  // Bounded: xtcp_writable names a connection once per refusal, and a flush refused again
  // is named again only once the room is there. What is left after the bound keeps the
  // group ready, so the next round goes on.
  constexpr int kMaxPerCall = 65536;
  for (int i = 0; i < kMaxPerCall; ++i) {
    const int cd = xtcp_writable(gd_);
    if (cd < 0) {
      return;
    }
    ++wakeups_;
    flush(cd);
  }
}

std::size_t Outbox::pending_ackd(int cd) const {
  const auto it = queues_.find(cd);
  return it == queues_.end() ? 0 : it->second.ackd;
}

void Outbox::forget(int cd) {
  closing_.erase(cd);
  const auto it = queues_.find(cd);
  if (it != queues_.end()) {
    queued_bytes_ -= it->second.bytes;
    queues_.erase(it);
  }
}

bool Outbox::close_when_flushed(int cd) {
  if (!pending(cd)) {
    return true;
  }
  closing_.insert(cd);
  return false;
}

std::vector<int> Outbox::take_flushed() {
  std::vector<int> ready;
  for (const int cd : closing_) {
    if (!pending(cd)) {
      ready.push_back(cd);
    }
  }
  for (const int cd : ready) {
    closing_.erase(cd);
  }
  return ready;
}

}  // namespace xtcp_examples
