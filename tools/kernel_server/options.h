// xtcp-kernel-server's settings (main.cc parses them with tools/cli).
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <string>

#include "tools/cli/cli.h"

namespace xtcp::kserver {

enum class Protocol { kEcho, kIm };
enum class Presence { kAll, kWatched };

inline constexpr const char* kProgram = "xtcp-kernel-server";
inline constexpr int kMaxProcesses = 64;
// A request line longer than this (without '\n') cannot be framed: the connection is reset,
// as xtcp-im's group does (XTCP_OPT_MAX_MESSAGE 8192). Lines of 1025 to 8192 bytes are
// answered ERR line-too-long by ImCore.
inline constexpr std::size_t kMaxFramedLine = 8192;

struct Options {
  Protocol protocol = Protocol::kEcho;
  std::string listen;           // "ADDR:PORT" as given
  in_addr addr{};               // parsed
  std::uint16_t port = 0;
  int processes = 1;
  Presence presence = Presence::kAll;
  std::uint64_t max_output = 1u << 20;  // bytes waiting unsent per connection
  std::uint64_t max_users = 0;          // directory size (IM, --processes > 1); 0: processes x descriptor limit
  cli::Micros duration{0};              // 0: until SIGINT/SIGTERM
  cli::StatsOptions stats;
};

}  // namespace xtcp::kserver
