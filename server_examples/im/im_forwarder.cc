// ImForwarder: poll(TUN + backend transports) -> xtcp_poll -> backend answers to clients ->
// accept -> xtcp_recv -> BackendClient::send; see im_forwarder.h.
//
// The ackd bookkeeping rests on one xtcp_recv rule (docs/api.md): every xtcp_recv starts at
// the connection's oldest unacknowledged byte. Answered bytes whose answer waits in the
// outbox and forwarded-but-unanswered bytes therefore come again at the head of every later
// xtcp_recv; Outbox::pending_ackd and Conn::forwarded say how many to skip. They always fit
// in one xtcp_recv: they were delivered by one, and acknowledgements only shrink them, so
// the `ackd` of every answer is within what the last xtcp_recv delivered.
#include "server_examples/im/im_forwarder.h"

#include <poll.h>
#include <sys/socket.h>
#include <xtcp/xtcp.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>

#include "server_examples/im/im_server.h"

namespace xtcp_examples {
namespace {

namespace np = xtcp::netpdu;

constexpr int kMaxAcceptsPerRound = 4096;
constexpr int kMaxRecvsPerRound = 8192;
constexpr std::size_t kRecvBuffer = 64 * 1024;
constexpr std::int64_t kForwardAckDeadlineMs = 200;

}  // namespace

int ImForwarder::open(std::uint16_t port, const ImForwarderConfig& config, std::string* what) {
  np::BackendClientCallbacks cb;
  cb.on_data = [this](std::uint64_t s, const np::Payload& b, std::size_t answered) {
    on_backend_data(s, b, answered);
  };
  cb.on_close = [this](std::uint64_t s) { on_backend_close(s); };
  std::string err;
  backend_ = np::BackendClient::connect(config.backend, config.data_transports, config.limits, config.endpoint,
                                        clock_, std::move(cb), &err);
  if (!backend_) {
    *what = "backend " + config.backend.text() + ": " + err;
    return -ECONNREFUSED;
  }
  // Answers take a trip to the backend; when it is slow or paused, requests already in the
  // pool are ACKed after kForwardAckDeadlineMs so clients do not retransmit them meanwhile.
  const int gd = open_line_group(port, kImMaxMessage, kForwardAckDeadlineMs, true, what);
  if (gd < 0) {
    backend_.reset();
    return gd;
  }
  gd_ = gd;
  outbox_.emplace(gd, kImMaxBacklog, im_piece_size());
  buf_.resize(kRecvBuffer);
  return 0;
}

void ImForwarder::close() {
  if (gd_ >= 0) {
    xtcp_close_group(gd_);
    gd_ = -1;
  }
  forget_clients();
  backend_.reset();
}

void ImForwarder::forget_clients() {
  conns_.clear();
  cd_of_session_.clear();
  unopened_.clear();
  unsent_closes_.clear();
  stalled_.reset();
}

int ImForwarder::poll_wait_ms(int timeout_ms) const {
  if (more_work_) {
    return 0;
  }
  int wait = std::min(timeout_ms, std::max(0, xtcp_next_timeout()));
  const np::TimeNs deadline = backend_->endpoint().next_deadline();
  if (deadline != np::kNever) {
    const np::TimeNs left = deadline - clock_.now();
    wait = std::min<np::TimeNs>(wait, left <= 0 ? 0 : left / 1'000'000 + 1);
  }
  // No timer for answers waiting for transmit-cache space: the ACKs that make room arrive
  // on the TUN descriptor, and the turn after them sends what xtcp_writable names. Work
  // the backend link refused needs none either: a refusal means the link has queued
  // bytes, so its descriptor is polled for POLLOUT and wakes us as it drains.
  return wait;
}

int ImForwarder::run_once(int timeout_ms) {
  if (gd_ < 0 || !backend_) {
    return -EBADF;
  }
  pfds_.clear();
  pfds_.push_back({xtcp_link_fd(), POLLIN, 0});
  backend_->endpoint().pollfds(&pfds_);
  if (::poll(pfds_.data(), pfds_.size(), poll_wait_ms(timeout_ms)) < 0) {
    if (errno == EINTR) {
      return -EINTR;
    }
    return -errno;
  }
  more_work_ = false;
  xtcp_poll();
  outbox_->flush_writable();  // answers that waited for room go before newer ones
  // The backend's answers first: they free client buffer space and backend queue room.
  for (std::size_t i = 1; i < pfds_.size(); ++i) {
    if (pfds_[i].revents != 0) {
      backend_->endpoint().handle(pfds_[i].fd, pfds_[i].revents);
    }
  }
  backend_->poll_timers();
  if (backend_->endpoint().state() != np::Endpoint::State::kOpen) {
    lose_backend(backend_->endpoint().error_message());
    return -EPIPE;
  }
  while (!unsent_closes_.empty()) {
    const int rc = backend_->close_session(unsent_closes_.front());
    if (rc == -EAGAIN) {
      break;
    }
    unsent_closes_.pop_front();  // sent, or -ENOENT: the backend ended it meanwhile
  }
  retry_stalled();
  accept_all();
  serve_requests();
  outbox_->flush_writable();  // connections woken during this turn
  finish_closing();
  // Everything read this turn leaves in as few NetPDUs as fit: one gather write.
  backend_->endpoint().flush();
  if (backend_->endpoint().state() != np::Endpoint::State::kOpen) {
    lose_backend(backend_->endpoint().error_message());
    return -EPIPE;
  }
  return 0;
}

void ImForwarder::retry_stalled() {
  while (!unopened_.empty()) {
    const int cd = unopened_.front();
    auto it = conns_.find(cd);
    if (it != conns_.end() && !open_session(cd, it->second)) {
      return;
    }
    unopened_.pop_front();
  }
  if (!stalled_) {
    return;
  }
  auto it = conns_.find(stalled_->cd);
  if (it == conns_.end() || it->second.session == 0) {
    stalled_.reset();  // the client or its session went away meanwhile
    return;
  }
  if (forward(it->second, stalled_->bytes) != -EAGAIN) {
    stalled_.reset();
  }
}

int ImForwarder::forward(Conn& c, const np::Payload& bytes) {
  const std::size_t lines_before = backend_->unanswered_lines(c.session);
  const int rc = backend_->send(c.session, bytes);
  if (rc == 0) {
    c.forwarded += bytes.size();
    stats_.forwarded_bytes += bytes.size();
    stats_.forwarded_lines += backend_->unanswered_lines(c.session) - lines_before;
  }
  return rc;
}

bool ImForwarder::all_answered(const Conn& c) const {
  return c.session == 0 || backend_->unanswered_lines(c.session) == 0;
}

bool ImForwarder::open_session(int cd, Conn& c) {
  std::uint64_t id = 0;
  const int rc = backend_->open_session(&id);
  if (rc == -EAGAIN) {
    return false;
  }
  if (rc == 0) {
    c.session = id;
    cd_of_session_.emplace(id, cd);
  }
  // Any other error means the link failed: run_once notices the endpoint's state.
  return true;
}

void ImForwarder::accept_all() {
  for (int i = 0; i < kMaxAcceptsPerRound; ++i) {
    if (reading_stopped()) {
      return;
    }
    const int cd = xtcp_accept(gd_);
    if (cd < 0) {
      return;
    }
    ++stats_.accepted;
    Conn& c = conns_.emplace(cd, Conn{}).first->second;
    if (!open_session(cd, c)) {
      ++stats_.stalls;
      unopened_.push_back(cd);
    }
  }
  more_work_ = true;
}

void ImForwarder::serve_requests() {
  for (int i = 0; i < kMaxRecvsPerRound; ++i) {
    if (reading_stopped()) {
      return;
    }
    int cd = -1;
    const int n = xtcp_recv(gd_, &cd, buf_.data(), buf_.size());
    if (n == -EAGAIN) {
      return;
    }
    if (n > 0) {
      ++stats_.recv_calls;
      on_request_bytes(cd, static_cast<std::size_t>(n));
      continue;
    }
    if (cd > 0 && conns_.count(cd) != 0) {
      on_client_end(cd, n);  // 0 (FIN), a reset, -EPROTO (over-long message), ...
      continue;
    }
    return;
  }
  more_work_ = true;
}

void ImForwarder::on_request_bytes(int cd, std::size_t n) {
  auto it = conns_.find(cd);
  if (it == conns_.end()) {
    return;  // not accepted through us: nothing to forward it to
  }
  Conn& c = it->second;
  const std::size_t skip = outbox_->pending_ackd(cd) + c.forwarded;
  if (n <= skip) {
    return;  // offered again after an answer acknowledged part of it: nothing new
  }
  if (c.session == 0) {
    // The backend ended the session (QUIT): what follows is dropped, and acknowledged.
    outbox_->send(cd, n - skip, {});
    return;
  }
  const char* fresh = buf_.data() + skip;
  const std::size_t size = n - skip;
  stats_.bytes_in += size;
  np::Payload bytes = np::copy_payload(np::ByteSpan(reinterpret_cast<const std::byte*>(fresh), size));
  if (forward(c, bytes) == -EAGAIN) {
    ++stats_.stalls;
    stalled_ = Stalled{cd, std::move(bytes)};
  }
}

void ImForwarder::on_client_end(int cd, int rc) {
  Conn& c = conns_.at(cd);
  if (rc == 0) {
    c.client_done = true;
    if (all_answered(c)) {
      ++stats_.client_closes;
      end_session(c);
      close_when_flushed(cd);  // our FIN follows the last answer
    }
    return;  // else on_backend_data finishes it after the last answer
  }
  ++stats_.resets;
  close_now(cd);
}

void ImForwarder::on_backend_data(std::uint64_t session, const np::Payload& bytes, std::size_t answered) {
  const auto sit = cd_of_session_.find(session);
  if (sit == cd_of_session_.end()) {
    ++stats_.orphans;
    return;
  }
  const int cd = sit->second;
  Conn& c = conns_.at(cd);
  if (answered > 0) {
    ++stats_.answers;
    answered = std::min(answered, c.forwarded);  // BackendClient counts exactly what we sent
    c.forwarded -= answered;
  } else {
    ++stats_.pushes;
  }
  const std::string_view text(reinterpret_cast<const char*>(bytes.bytes.data()), bytes.size());
  if (outbox_->send(cd, answered, text) == -ENOBUFS) {
    ++stats_.slow_consumers;
    close_now(cd);
    return;
  }
  if (c.client_done && all_answered(c)) {
    ++stats_.client_closes;
    end_session(c);
    close_when_flushed(cd);
  }
}

void ImForwarder::on_backend_close(std::uint64_t session) {
  const auto sit = cd_of_session_.find(session);
  if (sit == cd_of_session_.end()) {
    return;
  }
  const int cd = sit->second;
  cd_of_session_.erase(sit);
  Conn& c = conns_.at(cd);
  c.session = 0;  // BackendClient already answered the CLOSE
  ++stats_.backend_closes;
  if (stalled_ && stalled_->cd == cd) {
    stalled_.reset();
  }
  // Lines after QUIT were forwarded but will never be answered: acknowledge them, as local
  // mode does, so the close is orderly rather than a reset for unread data.
  if (c.forwarded > 0) {
    outbox_->send(cd, c.forwarded, {});
    c.forwarded = 0;
  }
  close_when_flushed(cd);
}

void ImForwarder::end_session(Conn& c) {
  if (c.session == 0) {
    return;
  }
  cd_of_session_.erase(c.session);
  if (backend_->close_session(c.session) == -EAGAIN) {
    unsent_closes_.push_back(c.session);
  }
  c.session = 0;
}

void ImForwarder::close_when_flushed(int cd) {
  if (outbox_->close_when_flushed(cd)) {
    close_now(cd);
  }
}

void ImForwarder::close_now(int cd) {
  auto it = conns_.find(cd);
  if (it == conns_.end()) {
    return;
  }
  end_session(it->second);
  outbox_->forget(cd);
  if (stalled_ && stalled_->cd == cd) {
    stalled_.reset();
  }
  conns_.erase(it);
  xtcp_close(gd_, cd);
}

void ImForwarder::finish_closing() {
  for (const int cd : outbox_->take_flushed()) {
    close_now(cd);
  }
}

void ImForwarder::lose_backend(const std::string& why) {
  backend_error_ = why.empty() ? "the backend closed the link" : why;
  // Sessions live in the backend: without it every client's state is gone. Close them all
  // (a reset where requests were never answered) rather than leave them hanging.
  std::vector<int> cds;
  cds.reserve(conns_.size());
  for (const auto& [cd, c] : conns_) {
    cds.push_back(cd);
  }
  for (const int cd : cds) {
    outbox_->forget(cd);
    xtcp_close(gd_, cd);
  }
  forget_clients();
}

void ImForwarder::counters(std::vector<Counter>* out) const {
  const Counter rows[] = {
      {"im.accepted", stats_.accepted},
      {"im.open", conns_.size()},
      {"im.client_closes", stats_.client_closes},
      {"im.resets", stats_.resets},
      {"im.backend_closes", stats_.backend_closes},
      {"im.slow_consumers", stats_.slow_consumers},
      {"im.recv_calls", stats_.recv_calls},
      {"im.bytes_in", stats_.bytes_in},
      {"im.forwarded_bytes", stats_.forwarded_bytes},
      {"im.forwarded_lines", stats_.forwarded_lines},
      {"im.answers", stats_.answers},
      {"im.pushes", stats_.pushes},
      {"im.orphans", stats_.orphans},
      {"im.stalls", stats_.stalls},
      {"im.bytes_out", !outbox_ ? 0 : outbox_->bytes_sent()},
      {"im.deferred_sends", !outbox_ ? 0 : outbox_->deferred_sends()},
      {"im.queued_bytes", !outbox_ ? 0 : outbox_->queued_bytes()},
      {"im.writable_wakeups", !outbox_ ? 0 : outbox_->writable_wakeups()},
      {"im.sessions", sessions()},
  };
  out->insert(out->end(), std::begin(rows), std::end(rows));
  if (!backend_) {
    return;
  }
  const np::AggregatorStats& tx = backend_->endpoint().tx_stats();
  const np::RxStats& rx = backend_->endpoint().rx_stats();
  const Counter link[] = {
      {"netpdu.tx_tlpdus", tx.tlpdus},         {"netpdu.tx_pdus", tx.pdus},
      {"netpdu.tx_writev_calls", tx.gather_calls}, {"netpdu.tx_header_bytes", tx.header_bytes},
      {"netpdu.tx_payload_bytes", tx.payload_bytes}, {"netpdu.tx_would_block", tx.would_block},
      {"netpdu.rx_pdus", rx.pdus},             {"netpdu.rx_tlpdus", rx.tlpdus},
      {"netpdu.rx_read_calls", rx.read_calls}, {"netpdu.rx_payload_bytes", rx.payload_bytes},
  };
  out->insert(out->end(), std::begin(link), std::end(link));
}

void ImForwarder::print_counters(std::FILE* out) const {
  std::vector<Counter> rows;
  counters(&rows);
  xtcp::cli::print_counters_text(out, rows);
}

}  // namespace xtcp_examples
