// AnswerQueue: xtcp_send with a per-connection overflow for a full transmit cache; see
// answer_queue.h. The overflow is normally empty: it only fills while the shared transmit
// cache is full, and it is bounded per connection.
#include "server_examples/common/answer_queue.h"

#include <xtcp/xtcp.h>

#include <cerrno>
#include <vector>

namespace xtcp_examples {

int AnswerQueue::send_now(int cd, std::size_t ackd, std::string_view buf) {
  int rc = xtcp_send(gd_, cd, ackd, buf.empty() ? nullptr : buf.data(), buf.size());
  if (rc == -EAGAIN) {
    rc = 0;  // the transmit cache took nothing; ackd was acknowledged all the same
  }
  if (rc > 0) {
    bytes_sent_ += static_cast<std::uint64_t>(rc);
  }
  return rc;
}

int AnswerQueue::send(int cd, std::size_t ackd, std::string_view data) {
  auto it = backlog_.find(cd);
  if (it == backlog_.end()) {
    const int rc = send_now(cd, ackd, data);
    if (rc < 0) {
      return rc;
    }
    const auto taken = static_cast<std::size_t>(rc);
    if (taken < data.size()) {
      if (data.size() - taken > max_backlog_) {
        return -ENOBUFS;
      }
      ++deferred_;
      backlog_.emplace(cd, std::string(data.substr(taken)));
      backlog_bytes_ += data.size() - taken;
    }
    return 0;
  }
  // Bytes are waiting: the new answer goes behind them, and the ACK rides on the oldest.
  std::string& waiting = it->second;
  if (waiting.size() + data.size() > max_backlog_) {
    if (ackd > 0) {
      send_now(cd, ackd, {});  // the request was processed: acknowledge it anyway
    }
    return -ENOBUFS;
  }
  waiting.append(data);
  backlog_bytes_ += data.size();
  const int rc = send_now(cd, ackd, waiting);
  if (rc < 0) {
    backlog_bytes_ -= waiting.size();
    backlog_.erase(it);
    return rc;
  }
  waiting.erase(0, static_cast<std::size_t>(rc));
  backlog_bytes_ -= static_cast<std::size_t>(rc);
  if (waiting.empty()) {
    backlog_.erase(it);
  }
  return 0;
}

void AnswerQueue::flush() {
  std::vector<int> done;
  for (auto& [cd, waiting] : backlog_) {
    const int rc = send_now(cd, 0, waiting);
    if (rc < 0) {
      backlog_bytes_ -= waiting.size();
      done.push_back(cd);  // broken connection: its end is reported by xtcp_recv
      continue;
    }
    waiting.erase(0, static_cast<std::size_t>(rc));
    backlog_bytes_ -= static_cast<std::size_t>(rc);
    if (waiting.empty()) {
      done.push_back(cd);
    }
  }
  for (const int cd : done) {
    backlog_.erase(cd);
  }
}

bool AnswerQueue::close_when_flushed(int cd) {
  if (!pending(cd)) {
    return true;
  }
  closing_.insert(cd);
  return false;
}

std::vector<int> AnswerQueue::take_flushed() {
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

void AnswerQueue::forget(int cd) {
  closing_.erase(cd);
  const auto it = backlog_.find(cd);
  if (it != backlog_.end()) {
    backlog_bytes_ -= it->second.size();
    backlog_.erase(it);
  }
}

}  // namespace xtcp_examples
