// ImServer: xtcp_select -> xtcp_accept -> xtcp_recv (whole lines of one connection) ->
// ImCore -> AnswerQueue (xtcp_send with ackd). See im_server.h and docs/im-protocol.md.
#include "server_examples/im/im_server.h"

#include <xtcp/xtcp.h>

#include <cerrno>
#include <string_view>

#include "server_examples/common/server_flags.h"

namespace xtcp_examples {
namespace {

constexpr int kMaxAcceptsPerRound = 4096;
constexpr int kMaxRecvsPerRound = 8192;
constexpr std::size_t kRecvBuffer = 64 * 1024;

}  // namespace

int ImServer::open(std::uint16_t port, std::string* what) {
  const int gd = open_line_group(port, kImMaxMessage, 0, what);
  if (gd < 0) {
    return gd;
  }
  gd_ = gd;
  answers_.emplace(gd, kImMaxBacklog);
  buf_.resize(kRecvBuffer);
  return 0;
}

void ImServer::close() {
  if (gd_ < 0) {
    return;
  }
  xtcp_close_group(gd_);
  gd_ = -1;
  conns_.clear();
}

int ImServer::run_once(int timeout_ms) {
  if (gd_ < 0) {
    return -EBADF;
  }
  // Answers waiting for transmit-cache space are retried soon, not after a long wait.
  if (answers_->any_pending() && timeout_ms > 2) {
    timeout_ms = 2;
  }
  xtcp_set readable;
  xtcp_set acceptable;
  XTCP_ZERO(&readable);
  XTCP_ZERO(&acceptable);
  XTCP_SET(gd_, &readable);
  XTCP_SET(gd_, &acceptable);
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  const int rc = xtcp_select(gd_ + 1, &readable, &acceptable, &tv);
  if (rc < 0) {
    return rc;
  }
  if (rc > 0 && XTCP_ISSET(gd_, &acceptable)) {
    accept_all();
  }
  if (rc > 0 && XTCP_ISSET(gd_, &readable)) {
    serve_requests();
  }
  if (answers_->any_pending()) {
    answers_->flush();
  }
  finish_closing();
  return 0;
}

void ImServer::accept_all() {
  for (int i = 0; i < kMaxAcceptsPerRound; ++i) {
    const int cd = xtcp_accept(gd_);
    if (cd < 0) {
      return;
    }
    ++stats_.accepted;
    conns_.emplace(cd, Conn{});
  }
}

void ImServer::serve_requests() {
  for (int i = 0; i < kMaxRecvsPerRound; ++i) {
    int cd = -1;
    const int n = xtcp_recv(gd_, &cd, buf_.data(), buf_.size());
    if (n == -EAGAIN) {
      return;
    }
    if (n > 0) {
      ++stats_.recv_calls;
      stats_.bytes_in += static_cast<std::uint64_t>(n);
      on_data(cd, static_cast<std::size_t>(n));
      continue;
    }
    if (cd > 0 && (n == 0 || n == -ECONNRESET || n == -ETIMEDOUT)) {
      on_end(cd, n);
      continue;
    }
    ++stats_.recv_errors;
    if (cd > 0 && conns_.count(cd) != 0) {
      on_end(cd, n);  // e.g. -EMSGSIZE: nothing sensible can be read from it any more
      continue;
    }
    return;
  }
}

void ImServer::on_data(int cd, std::size_t n) {
  auto it = conns_.find(cd);
  if (it == conns_.end()) {
    it = conns_.emplace(cd, Conn{}).first;  // accepted before we saw it: adopt it
  }
  Conn& c = it->second;
  const std::string_view data(buf_.data(), n);
  reply_.clear();
  pushes_.clear();
  std::size_t consumed = 0;
  ImCore::After after = ImCore::After::kKeepOpen;
  // Bounded: every pass consumes at least one byte.
  while (consumed < n && after == ImCore::After::kKeepOpen) {
    const std::size_t nl = data.find('\n', consumed);
    if (nl == std::string_view::npos) {
      break;
    }
    if (c.discarding) {
      c.discarding = false;  // the end of a line already answered ERR line-too-long
    } else {
      after = core_.on_line(cd, data.substr(consumed, nl - consumed), &reply_, &pushes_);
    }
    consumed = nl + 1;
  }
  if (after == ImCore::After::kClose) {
    consumed = n;  // whatever follows QUIT is dropped, and acknowledged
  } else if (consumed < n && n - consumed > kImMaxLine + 1) {
    // No '\n' within the limit (only without framing): answer once, drop to the next '\n'.
    if (!c.discarding) {
      core_.on_line(cd, data.substr(consumed), &reply_, &pushes_);
    }
    c.discarding = true;
    consumed = n;
  }
  // An unterminated tail stays unacknowledged: xtcp_recv delivers it again, first.
  if (consumed > 0 || !reply_.empty()) {
    const int rc = answers_->send(cd, consumed, reply_);
    if (rc == -ENOBUFS) {
      ++stats_.slow_consumers;
      core_.on_disconnect(cd, &pushes_);
      close_now(cd);
    } else if (after == ImCore::After::kClose) {
      ++stats_.quits;
      close_when_flushed(cd);
    }
  }
  send_pushes();
}

void ImServer::on_end(int cd, int rc) {
  pushes_.clear();
  core_.on_disconnect(cd, &pushes_);
  if (rc == 0) {
    ++stats_.client_closes;
    close_when_flushed(cd);  // our FIN follows the last answer
  } else {
    ++stats_.resets;
    close_now(cd);
  }
  send_pushes();
}

void ImServer::send_pushes() {
  // A push that overflows a slow consumer's backlog closes it, which pushes OFFLINE to the
  // others: a worklist, bounded because every pass removes one user.
  std::size_t next = 0;
  for (std::size_t guard = 0; next < pushes_.size() && guard <= conns_.size() + 1; ++guard) {
    std::vector<int> slow;
    for (; next < pushes_.size(); ++next) {
      const ImPush& p = pushes_[next];
      if (conns_.count(p.cd) == 0) {
        continue;
      }
      if (answers_->send(p.cd, 0, p.line) == -ENOBUFS) {
        slow.push_back(p.cd);
      }
    }
    for (const int cd : slow) {
      if (conns_.count(cd) != 0) {
        ++stats_.slow_consumers;
        core_.on_disconnect(cd, &pushes_);
        close_now(cd);
      }
    }
  }
  pushes_.clear();
}

void ImServer::close_when_flushed(int cd) {
  if (answers_->close_when_flushed(cd)) {
    close_now(cd);
  }
}

void ImServer::close_now(int cd) {
  answers_->forget(cd);
  if (conns_.erase(cd) != 0) {
    xtcp_close(gd_, cd);
  }
}

void ImServer::finish_closing() {
  for (const int cd : answers_->take_flushed()) {
    close_now(cd);
  }
}

void ImServer::print_counters(std::FILE* out) const {
  const ImCounters& c = core_.counters();
  const CounterRow rows[] = {
      {"accepted", stats_.accepted},
      {"open", conns_.size()},
      {"online", core_.online()},
      {"client_closes", stats_.client_closes},
      {"quits", stats_.quits},
      {"resets", stats_.resets},
      {"slow_consumers", stats_.slow_consumers},
      {"requests", c.requests},
      {"logins", c.logins},
      {"logouts", c.logouts},
      {"messages", c.messages},
      {"messages_offline", c.messages_offline},
      {"lists", c.lists},
      {"errors", c.errors},
      {"pushes", c.pushes},
      {"recv_calls", stats_.recv_calls},
      {"recv_errors", stats_.recv_errors},
      {"bytes_in", stats_.bytes_in},
      {"bytes_out", !answers_ ? 0 : answers_->bytes_sent()},
      {"deferred_sends", !answers_ ? 0 : answers_->deferred_sends()},
  };
  print_counter_rows(out, "im.", rows);
}

}  // namespace xtcp_examples
