// Transport set-up: the initiator sends a 32-byte hello (versions, role, the maximum
// aggregation size and TLPDU count it proposes); the acceptor answers with the agreed
// values or a reject reason and closes. A variant 2 bundle is one control transport plus
// N data transports, each with its own hello carrying the same random bundle token.
//
//   initiator: initiate(fd, hello) --hello--> acceptor: Acceptor::on_readable(fd)
//   acceptor: answer_hello() --accept/reject--> initiator: check_answer()
//   Acceptor: single transports ready at once; bundle members wait for all their siblings
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "netpdu/clock.h"
#include "netpdu/wire.h"

namespace xtcp::netpdu {

// What one side is willing to do.
struct HandshakeLimits {
  std::uint8_t version_min = kMinSupportedVersion;
  std::uint8_t version_max = kMaxSupportedVersion;
  std::uint32_t max_pdu_bytes = 256 * 1024;
  std::uint32_t max_tlpdus = 8192;
  std::uint16_t max_data_transports = 64;  // acceptor: largest bundle it takes
};

// What both sides agreed for one transport.
struct Negotiated {
  std::uint8_t version = kVersion1;
  std::uint32_t max_pdu_bytes = 0;
  std::uint32_t max_tlpdus = 0;
  Role role = Role::kSingle;
  std::uint64_t token = 0;
  std::uint16_t data_index = 0;
  std::uint16_t data_count = 0;
};

// A handshaken transport as handed out by the acceptor or opened by the initiator: one
// descriptor (variant 1), or a control descriptor and its data descriptors (variant 2).
struct Transport {
  Negotiated negotiated;      // for a bundle: the control transport's (role kControl)
  int fd = -1;
  std::vector<int> data_fds;  // bundle only, by data index
};

// The initiator's hello for a role (token/index/count only matter for bundles).
Hello make_hello(const HandshakeLimits& mine, Role role, std::uint64_t token = 0, std::uint16_t data_index = 0,
                 std::uint16_t data_count = 0);

// Acceptor: the answer to a parsed hello. The highest common version; the smaller of each
// size; a reject (with *why set) when there is no common version, the sizes agreed would
// be out of range, the message is not a hello, or the bundle shape is impossible.
Hello answer_hello(const Hello& in, const HandshakeLimits& mine, std::string* why);

// Initiator: checks the acceptor's answer against what was sent.
std::optional<Negotiated> check_answer(const Hello& sent, const Hello& answer, std::string* error);

struct HandshakeResult {
  std::optional<Negotiated> negotiated;
  std::string error;  // set when !negotiated
};

// Initiator side, blocking up to timeout_ms (poll; the fd may be non-blocking): sends the
// hello and reads the 32-byte answer.
HandshakeResult initiate(int fd, const Hello& hello, int timeout_ms);

// Acceptor side for many connections, non-blocking: collects each hello, answers it, and
// groups bundle members by token. Owns the descriptors it was given until handed out.
class Acceptor {
 public:
  using Ready = Transport;

  Acceptor(const HandshakeLimits& limits, const Clock& clock, TimeNs timeout);
  ~Acceptor();
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;

  // A freshly accepted connection (made non-blocking here).
  void add(int fd);
  // fd became readable (or hung up).
  void on_readable(int fd);
  // Closes handshakes and incomplete bundles older than the timeout.
  void expire();

  // Descriptors still waiting for their hello (poll them for input).
  std::vector<int> waiting_fds() const;
  std::vector<Ready> take_ready();
  // One line per refused or failed connection, for the log.
  std::vector<std::string> take_errors();
  TimeNs next_deadline() const;

 private:
  struct Waiting {
    std::byte buf[kHelloLen];
    std::size_t have = 0;
    TimeNs since = 0;
  };
  struct Bundle {
    std::optional<Negotiated> control;
    int control_fd = -1;
    std::uint16_t data_count = 0;
    std::vector<int> data_fds;  // -1 where not yet arrived
    std::size_t arrived = 0;
    TimeNs since = 0;
  };

  void finish(int fd, const Hello& in);
  void refuse(int fd, const std::string& why);
  void close_bundle(std::uint64_t token, const std::string& why);

  HandshakeLimits limits_;
  const Clock& clock_;
  TimeNs timeout_;
  std::map<int, Waiting> waiting_;
  std::map<std::uint64_t, Bundle> bundles_;
  std::vector<Ready> ready_;
  std::vector<std::string> errors_;
};

}  // namespace xtcp::netpdu
