// Sending on an xtcp group with XTCP_OPT_SEND_ALL when some lines cannot be made again:
// pushes to other users (FROM, ONLINE, OFFLINE) and answers whose requests already had
// their effect. Every send is whole or nothing (SEND_ALL): what the transmit cache refuses
// waits here per connection, in order, with its ackd -- the request bytes stay
// unacknowledged in the pool until their answer is queued, so the ACK still rides on it
// and TCP flow control slows the client. The stack remembers the refusal; xtcp_writable
// names the connection once the room is there, and flush_writable() sends what waits.
// Nothing polls or runs on a timer.
//
//   send(cd, ackd, line) --fits--> xtcp_send      --refused--> queue[cd] (ackd kept)
//   xtcp_writable(gd) == cd --> flush(cd): queue[cd] in order until one is refused again
//
// Bytes of cd that were answered but whose answer waits here are still at the head of what
// xtcp_recv delivers; pending_ackd(cd) says how many to skip.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace xtcp_examples {

class Outbox {
 public:
  // gd must have XTCP_OPT_SEND_ALL set and writable reports on (open_line_group does
  // both). Answers longer than max_piece are sent in pieces of at most that size, so one
  // never exceeds what the cache can take at once.
  Outbox(int gd, std::size_t max_queued_per_connection, std::size_t max_piece);

  // Acknowledges ackd request bytes of cd together with data, now or after what already
  // waits for cd. 0 (sent or queued); -ENOBUFS when cd's queue would pass the limit
  // (nothing queued: close cd as a slow consumer); or a broken connection's errno (-EPIPE,
  // -ECONNRESET, -ETIMEDOUT, -EBADF: dropped; xtcp_recv reports the end).
  int send(int cd, std::size_t ackd, std::string_view data);
  // Sends what waits for every connection xtcp_writable reports. Bounded by the reports.
  void flush_writable();

  bool pending(int cd) const { return queues_.count(cd) != 0; }
  // Request bytes of cd answered by something that waits here (not yet acknowledged).
  std::size_t pending_ackd(int cd) const;
  // Drops what waits for cd (the connection is gone), and any close_when_flushed mark.
  void forget(int cd);
  // The server wants to close cd after its answers (its FIN follows the last one): true
  // when nothing waits, so close now; else cd is marked and returned by take_flushed().
  bool close_when_flushed(int cd);
  // Marked connections whose answers have all left: close them now.
  std::vector<int> take_flushed();

  std::uint64_t bytes_sent() const { return bytes_sent_; }    // taken by xtcp_send
  std::uint64_t deferred_sends() const { return deferred_; }  // sends that had to wait here
  std::uint64_t queued_bytes() const { return queued_bytes_; }
  std::uint64_t writable_wakeups() const { return wakeups_; }

 private:
  struct Entry {
    std::size_t ackd = 0;
    std::string data;
  };
  struct Queue {
    std::deque<Entry> entries;
    std::size_t bytes = 0;
    std::size_t ackd = 0;
  };
  // One piece: 0 sent, -EAGAIN refused (nothing applied), or a broken connection's errno.
  int send_now(int cd, std::size_t ackd, std::string_view data);
  // Sends cd's queue in order until a piece is refused.
  void flush(int cd);
  void push(int cd, std::size_t ackd, std::string_view data);

  int gd_;
  std::size_t max_queued_;
  std::size_t max_piece_;
  std::unordered_map<int, Queue> queues_;
  std::unordered_set<int> closing_;  // close_when_flushed marks
  std::uint64_t queued_bytes_ = 0;
  std::uint64_t bytes_sent_ = 0;
  std::uint64_t deferred_ = 0;
  std::uint64_t wakeups_ = 0;
};

}  // namespace xtcp_examples
