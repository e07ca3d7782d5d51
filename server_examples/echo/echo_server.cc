#include "server_examples/echo/echo_server.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <iterator>

namespace xtcp_examples {
namespace {

constexpr int kMaxAcceptsPerRound = 4096;
constexpr int kMaxRecvsPerRound = 8192;
constexpr std::size_t kMaxEcho = 64 * 1024;

}  // namespace

int open_echo_group(std::uint16_t port, std::string* what) {
  const int gd = xtcp_open_group(PF_INET, SOCK_STREAM, 0, port);
  if (gd < 0) {
    *what = "cannot listen on port " + std::to_string(port);
    return gd;
  }
  const int rc = xtcp_setopt(gd, XTCP_OPT_SEND_ALL, 1);
  if (rc < 0) {
    *what = "cannot set XTCP_OPT_SEND_ALL";
    xtcp_close_group(gd);
    return rc;
  }
  return gd;
}

std::size_t echo_piece() {
  struct xtcp_pool_stats st {};
  if (xtcp_pool_stats(xtcp_default_pool(), &st) < 0 || st.tx_cache_size == 0) {
    return kMaxEcho;
  }
  return std::clamp<std::size_t>(static_cast<std::size_t>(st.tx_cache_size / 4), 256, kMaxEcho);
}

int EchoServer::run_once(int timeout_ms) {
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
    for (int i = 0; i < kMaxAcceptsPerRound && xtcp_accept(gd_) > 0; ++i) {
      ++accepted_;
    }
  }
  if (rc > 0 && XTCP_ISSET(gd_, &readable)) {
    serve();
  }
  return 0;
}

void EchoServer::counters(std::vector<xtcp::cli::Counter>* out) const {
  const xtcp::cli::Counter rows[] = {
      {"echo.accepted", accepted_},           {"echo.bytes_echoed", echoed_},
      {"echo.client_closes", client_closes_}, {"echo.resets", resets_},
      {"echo.deferred_sends", deferred_},     {"echo.unechoed_at_close", unechoed_},
  };
  out->insert(out->end(), std::begin(rows), std::end(rows));
}

void EchoServer::serve() {
  for (int calls = 0; calls < kMaxRecvsPerRound; ++calls) {
    int cd = -1;
    const int n = xtcp_recv(gd_, &cd, buf_.data(), buf_.size());
    if (n == -EAGAIN) {
      break;
    }
    if (n > 0) {
      echo(cd, static_cast<std::size_t>(n));
      continue;
    }
    if (cd > 0 && n == 0) {
      ++client_closes_;
      // Bytes still unacknowledged here were refused an echo and have not come again:
      // the stack reports the client's FIN once every byte was shown, and offers none
      // after it. Count them rather than lose them silently.
      xtcp_conn_info info{};
      if (xtcp_connection_info(gd_, cd, &info) == 0) {
        unechoed_ += info.rx_held;
      }
      xtcp_close(gd_, cd);  // our FIN follows the last echo
      continue;
    }
    if (cd > 0) {
      ++resets_;  // -ECONNRESET, -ETIMEDOUT, or a message that cannot be read
      xtcp_close(gd_, cd);
      continue;
    }
    break;
  }
}

void EchoServer::echo(int cd, std::size_t n) {
  const int rc = xtcp_send(gd_, cd, n, buf_.data(), n);
  if (rc == static_cast<int>(n)) {
    echoed_ += n;
  } else if (rc == -EAGAIN) {
    ++deferred_;  // not acknowledged: the bytes come again once the echo fits
  }
  // Other failures (-EPIPE, -ECONNRESET, ...): xtcp_recv reports the connection's end.
}

}  // namespace xtcp_examples
