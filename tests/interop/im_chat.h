// The instant-messaging conversations the interop tests hold with xtcp-im (local mode and
// forwarding mode, as a program or in-process): run inside the server's namespace, with
// kernel TCP clients (ImClients); gtest assertions record what went wrong.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace xtcp::test {

inline constexpr std::uint16_t kImPort = 5222;

// Appended rather than "u" + std::to_string(i): GCC 12 at -O3 reports a false
// -Wrestrict in operator+(const char*, std::string&&) (GCC bug 105329).
inline std::string im_user(int i) {
  std::string name = "u";
  name += std::to_string(i);
  return name;
}

struct ChatPlan {
  int clients = 1000;
  int messages = 8;        // per client
  int serial_logouts = 10;  // the first ones log out one at a time, the rest at once
  std::chrono::milliseconds phase_timeout{120000};
};

// The whole conversation of plan.clients clients: everyone logs in (each pair hears exactly
// one ONLINE of the other), LIST, plan.messages pipelined messages each (every one delivered
// exactly once, in order per sender), logouts one by one then all at once (OFFLINE pushes),
// and the server closes every connection after the client's FIN.
void chat(const ChatPlan& plan);

// Every error answer of docs/im-protocol.md, the line limits, several requests in one
// segment, QUIT (BYE, OFFLINE, the server closes) and a reset for an unframeable line.
void errors_limits_and_quit();

}  // namespace xtcp::test
