// A kernel TCP client of a program under test, driven without blocking: a small receive
// buffer (so that answers pile up on the server's side while the peer does not read), and
// a pump that writes what is queued and reads what arrives on a set of peers at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace xtcp::test {

struct KernelPeer {
  int fd = -1;
  bool reading = true;  // false: leave what arrives in the kernel (its window closes)
  std::string out;      // not yet written
  std::string in;       // received
  bool eof = false;
  KernelPeer() = default;
  KernelPeer(const KernelPeer&) = delete;
  KernelPeer& operator=(const KernelPeer&) = delete;
  ~KernelPeer();
};

// Connects p to the program's address (kProgramStackIp) on port, from the calling thread's
// namespace: SO_RCVBUF 4096, TCP_NODELAY, a connect bounded by 10 s, then non-blocking.
bool open_kernel_peer(KernelPeer* p, std::uint16_t port, std::string* error);

// Writes and reads (where the peer is reading) until done() or the timeout; done()'s last
// value.
bool pump_peers(const std::vector<KernelPeer*>& peers, const std::function<bool()>& done,
                std::chrono::steady_clock::duration timeout);

}  // namespace xtcp::test
