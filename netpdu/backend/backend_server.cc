// BackendServer: one poll(2) round over the listener, the waiting handshakes and the
// backend's transports (see backend_server.h).
#include "netpdu/backend/backend_server.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace xtcp::netpdu {

namespace {
constexpr TimeNs kHandshakeTimeoutNs = 5'000'000'000;  // a front end's hello must come by then
constexpr int kAcceptsPerRound = 64;
}  // namespace

BackendServer::BackendServer(int listen_fd, const HandshakeLimits& limits, const ImBackendConfig& config,
                             const Clock& clock)
    : listen_fd_(listen_fd), clock_(clock), acceptor_(limits, clock, kHandshakeTimeoutNs), backend_(config, clock) {}

int BackendServer::run_once(int max_wait_ms) {
  pfds_.clear();
  pfds_.push_back({listen_fd_, POLLIN, 0});
  const std::size_t first_waiting = pfds_.size();
  for (int fd : acceptor_.waiting_fds()) {
    pfds_.push_back({fd, POLLIN, 0});
  }
  const std::size_t first_backend = pfds_.size();
  backend_.pollfds(&pfds_);
  const TimeNs deadline = std::min(backend_.next_deadline(), acceptor_.next_deadline());
  int timeout = max_wait_ms;
  if (deadline != kNever) {
    const TimeNs left = deadline - clock_.now();
    const int until = left <= 0 ? 0 : static_cast<int>(std::min<TimeNs>(left / 1'000'000 + 1, INT32_MAX));
    timeout = timeout < 0 ? until : std::min(timeout, until);
  }
  const int n = ::poll(pfds_.data(), pfds_.size(), timeout);
  if (n < 0 && errno != EINTR) {
    return -errno;
  }
  if (n > 0) {
    if ((pfds_[0].revents & POLLIN) != 0) {
      for (int k = 0; k < kAcceptsPerRound; ++k) {
        const int cfd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd < 0) {
          break;
        }
        acceptor_.add(cfd);
      }
    }
    for (std::size_t i = first_waiting; i < first_backend; ++i) {
      if (pfds_[i].revents != 0) {
        acceptor_.on_readable(pfds_[i].fd);
      }
    }
    for (std::size_t i = first_backend; i < pfds_.size(); ++i) {
      if (pfds_[i].revents != 0) {
        backend_.handle(pfds_[i].fd, pfds_[i].revents);
      }
    }
  }
  acceptor_.expire();
  for (auto& t : acceptor_.take_ready()) {
    backend_.add_transport(t);
  }
  for (auto& line : acceptor_.take_errors()) {
    log_.push_back(std::move(line));
  }
  backend_.poll_timers();
  for (auto& line : backend_.take_log()) {
    log_.push_back(std::move(line));
  }
  return 0;
}

std::vector<std::string> BackendServer::take_log() { return std::exchange(log_, {}); }

std::vector<std::pair<std::string, std::uint64_t>> BackendServer::counters() const {
  const ImBackendStats& st = backend_.stats();
  return {
      {"backend.requests", st.requests},
      {"backend.logins", st.logins},
      {"backend.logouts", st.logouts},
      {"backend.errors", st.errors},
      {"backend.messages", st.messages},
      {"backend.presence_sent", st.presence_sent},
      {"backend.presence_waits", st.presence_waits},
      {"backend.stalls", st.stalls},
      {"backend.sessions_ended", st.sessions_ended},
      {"backend.transports_failed", st.transports_failed},
      {"backend.transports", backend_.transports()},
      {"backend.online", backend_.logged_in()},
  };
}

}  // namespace xtcp::netpdu
