// ImServer: xtcp_select -> xtcp_accept -> xtcp_recv (whole lines of one connection) ->
// ImCore -> Outbox (xtcp_send with ackd, whole or queued) <- xtcp_writable. See im_server.h
// and docs/im-protocol.md.
#include "server_examples/im/im_server.h"

#include <xtcp/xtcp.h>

#include <algorithm>
#include <cerrno>
#include <string_view>

namespace xtcp_examples {
namespace {

constexpr int kMaxAcceptsPerRound = 4096;
constexpr int kMaxRecvsPerRound = 8192;
constexpr std::size_t kRecvBuffer = 64 * 1024;

}  // namespace

std::size_t im_piece_size() {
  struct xtcp_pool_stats st {};
  if (xtcp_pool_stats(xtcp_default_pool(), &st) < 0 || st.tx_cache_size == 0) {
    return kImMaxPiece;
  }
  return std::clamp<std::size_t>(static_cast<std::size_t>(st.tx_cache_size / 4), 256, kImMaxPiece);
}

int ImServer::open(std::uint16_t port, std::string* what) {
  const int gd = open_line_group(port, kImMaxMessage, 0, true, what);
  if (gd < 0) {
    return gd;
  }
  gd_ = gd;
  outbox_.emplace(gd, kImMaxBacklog, im_piece_size());
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
  // Connections whose waiting answers now fit make the group ready (xtcp_writable).
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
  outbox_->flush_writable();  // before new requests: what waits goes first
  if (rc > 0 && XTCP_ISSET(gd_, &readable)) {
    serve_requests();
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
  // Requests answered by something still in the outbox are not acknowledged yet: they come
  // first in every xtcp_recv until their answer leaves. Skip them.
  const std::size_t skip = outbox_->pending_ackd(cd);
  if (n <= skip) {
    return;
  }
  const std::string_view data(buf_.data() + skip, n - skip);
  if (c.quit) {
    outbox_->send(cd, data.size(), {});  // after QUIT: dropped, and acknowledged
    return;
  }
  reply_.clear();
  pushes_.clear();
  std::size_t consumed = 0;
  ImCore::After after = ImCore::After::kKeepOpen;
  // Bounded: every pass consumes at least one byte.
  while (consumed < data.size() && after == ImCore::After::kKeepOpen) {
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
    consumed = data.size();  // whatever follows QUIT is dropped, and acknowledged
  } else if (consumed < data.size() && data.size() - consumed > kImMaxLine + 1) {
    // No '\n' within the limit (only without framing): answer once, drop to the next '\n'.
    if (!c.discarding) {
      core_.on_line(cd, data.substr(consumed), &reply_, &pushes_);
    }
    c.discarding = true;
    consumed = data.size();
  }
  // An unterminated tail stays unacknowledged: xtcp_recv delivers it again, first.
  if (consumed > 0 || !reply_.empty()) {
    const int rc = outbox_->send(cd, consumed, reply_);
    if (rc == -ENOBUFS) {
      ++stats_.slow_consumers;
      core_.on_disconnect(cd, &pushes_);
      close_now(cd);
    } else if (after == ImCore::After::kClose) {
      ++stats_.quits;
      c.quit = true;
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
      if (outbox_->send(p.cd, 0, p.line) == -ENOBUFS) {
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
  if (outbox_->close_when_flushed(cd)) {
    close_now(cd);
  }
}

void ImServer::close_now(int cd) {
  outbox_->forget(cd);
  if (conns_.erase(cd) != 0) {
    xtcp_close(gd_, cd);
  }
}

void ImServer::finish_closing() {
  for (const int cd : outbox_->take_flushed()) {
    close_now(cd);
  }
}

void ImServer::counters(std::vector<Counter>* out) const {
  const ImCounters& c = core_.counters();
  const Counter rows[] = {
      {"im.accepted", stats_.accepted},
      {"im.open", conns_.size()},
      {"im.online", core_.online()},
      {"im.client_closes", stats_.client_closes},
      {"im.quits", stats_.quits},
      {"im.resets", stats_.resets},
      {"im.slow_consumers", stats_.slow_consumers},
      {"im.requests", c.requests},
      {"im.logins", c.logins},
      {"im.logouts", c.logouts},
      {"im.messages", c.messages},
      {"im.messages_offline", c.messages_offline},
      {"im.lists", c.lists},
      {"im.errors", c.errors},
      {"im.pushes", c.pushes},
      {"im.recv_calls", stats_.recv_calls},
      {"im.recv_errors", stats_.recv_errors},
      {"im.bytes_in", stats_.bytes_in},
      {"im.bytes_out", !outbox_ ? 0 : outbox_->bytes_sent()},
      {"im.deferred_sends", !outbox_ ? 0 : outbox_->deferred_sends()},
      {"im.queued_bytes", !outbox_ ? 0 : outbox_->queued_bytes()},
      {"im.writable_wakeups", !outbox_ ? 0 : outbox_->writable_wakeups()},
  };
  out->insert(out->end(), std::begin(rows), std::end(rows));
}

void ImServer::print_counters(std::FILE* out) const {
  std::vector<Counter> rows;
  counters(&rows);
  xtcp::cli::print_counters_text(out, rows);
}

}  // namespace xtcp_examples
