// Sending answers on an xtcp group without losing bytes: data goes straight to xtcp_send
// (with its ackd, so the ACK rides on the answer); what the shared transmit cache cannot
// take right now waits here per connection, in order, and leaves with later sends/flush().
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace xtcp_examples {

class AnswerQueue {
 public:
  AnswerQueue(int gd, std::size_t max_backlog_per_connection)
      : gd_(gd), max_backlog_(max_backlog_per_connection) {}

  // Acknowledges ackd bytes of what the last xtcp_recv delivered on cd and sends data after
  // anything still waiting for cd. Returns 0; -ENOBUFS when cd's backlog would pass the
  // limit (nothing appended: the caller should close cd); or the negative errno of a
  // broken connection (-EPIPE, -ECONNRESET, -ETIMEDOUT, -EBADF: data dropped).
  int send(int cd, std::size_t ackd, std::string_view data);
  // Retries every connection that has bytes waiting (ackd 0). Bounded by their number.
  void flush();
  bool pending(int cd) const { return backlog_.count(cd) != 0; }
  bool any_pending() const { return !backlog_.empty(); }
  // Drops what waits for cd (the connection is gone), and any close_when_flushed mark.
  void forget(int cd);
  // The server wants to close cd after its answers (its FIN follows the last one): true
  // when nothing waits, so close now; else cd is marked and returned by take_flushed().
  bool close_when_flushed(int cd);
  // Marked connections whose answers have all left: close them now.
  std::vector<int> take_flushed();

  std::uint64_t bytes_sent() const { return bytes_sent_; }  // accepted by xtcp_send
  std::uint64_t deferred_sends() const { return deferred_; }  // sends that left a backlog
  std::size_t backlog_bytes() const { return backlog_bytes_; }

 private:
  // One xtcp_send of buf; returns bytes taken or a negative errno.
  int send_now(int cd, std::size_t ackd, std::string_view buf);

  int gd_;
  std::size_t max_backlog_;
  std::unordered_map<int, std::string> backlog_;
  std::unordered_set<int> closing_;  // close_when_flushed marks
  std::size_t backlog_bytes_ = 0;
  std::uint64_t bytes_sent_ = 0;
  std::uint64_t deferred_ = 0;
};

}  // namespace xtcp_examples
