// Many kernel TCP clients of xtcp-im driven from one thread (inside the test's network
// namespace): lines queued per client are written as the sockets take them, received
// bytes are split into lines and sorted into answers and pushes (FROM/ONLINE/OFFLINE).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace xtcp::test {

struct ImClient {
  int fd = -1;
  std::string in;                    // received bytes after the last '\n'
  std::string out;                   // queued bytes not yet written
  bool shut_wr_wanted = false;       // shutdown(SHUT_WR) once out is written
  bool shut_wr_done = false;
  bool eof = false;                  // the server closed (FIN) or reset
  int error = 0;                     // errno of a failed recv/send (ECONNRESET, ...)
  std::deque<std::string> answers;   // answer lines not yet taken by the test
  std::vector<std::string> online;   // names from ONLINE pushes, in arrival order
  std::vector<std::string> offline;  // names from OFFLINE pushes
  std::vector<std::pair<std::string, std::string>> from;  // (sender, text) of FROM pushes
};

class ImClients {
 public:
  ImClients() = default;
  ~ImClients();
  ImClients(const ImClients&) = delete;
  ImClients& operator=(const ImClients&) = delete;

  // Opens n connections to addr:port (call inside the namespace). false with *error.
  bool connect(const char* addr, std::uint16_t port, int n, std::string* error);
  std::size_t size() const { return clients_.size(); }
  ImClient& at(std::size_t i) { return clients_[i]; }

  // Queues line + '\n' for client i.
  void send(std::size_t i, const std::string& line);
  // Half-closes client i after its queued bytes.
  void shutdown_write(std::size_t i);
  // Polls, writes and reads until done() or the timeout; returns done()'s last value.
  bool pump_until(const std::function<bool()>& done, std::chrono::milliseconds timeout);
  // pump_until every client has received at least n answer lines.
  bool pump_until_answers(std::size_t n, std::chrono::milliseconds timeout);

  std::uint64_t answers_received() const { return answers_total_; }
  std::uint64_t from_received() const { return from_total_; }
  std::uint64_t online_received() const { return online_total_; }
  std::uint64_t offline_received() const { return offline_total_; }
  std::uint64_t eofs() const { return eof_total_; }

 private:
  void on_line(ImClient& c, std::string line);
  void pump_once(int timeout_ms);
  // Half-closes the clients that asked for it and have written everything.
  void shutdown_ready();

  std::vector<ImClient> clients_;
  std::uint64_t answers_total_ = 0;
  std::uint64_t from_total_ = 0;
  std::uint64_t online_total_ = 0;
  std::uint64_t offline_total_ = 0;
  std::uint64_t eof_total_ = 0;
};

}  // namespace xtcp::test
