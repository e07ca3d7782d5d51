// Which server a new client goes to, and which servers are down. Round-robin, least
// connections, or a hash of the client's address (the same client, the same server while
// it is up). A server that refused a connection (RST) or did not answer in time is down
// for a while (down_time) and chosen by nobody meanwhile; a connection that failed goes on
// to a server it has not tried yet.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace xtcp_proxy {

using Clock = std::chrono::steady_clock;

enum class BalancePolicy { kRoundRobin, kLeastConn, kSourceHash };

struct ServerAddress {
  std::uint32_t addr = 0;  // host order
  std::uint16_t port = 0;
  std::string text;        // "ADDR:PORT" as given
};

// "ADDR:PORT" (dotted quad, port 1 to 65535); false with *why on anything else.
bool parse_server_address(const std::string& text, ServerAddress* out, std::string* why);

// The servers a pair has tried: one bit per server (at most kMaxServers).
using TriedSet = std::uint64_t;

class Balancer {
 public:
  static constexpr std::size_t kMaxServers = 64;
  static constexpr int kNone = -1;

  Balancer(std::vector<ServerAddress> servers, BalancePolicy policy, Clock::duration down_time);

  // The server for a client (addr and port in host order) that has tried `tried` already,
  // among those up at `now`; kNone when every untried server is down.
  int pick(std::uint32_t client_addr, TriedSet tried, Clock::time_point now);
  // A connection to server i failed (refused, timed out): down until now + down_time.
  void mark_down(int i, Clock::time_point now);
  // A connection to server i opened (counted in least-conn) or ended.
  void opened(int i) { ++servers_[static_cast<std::size_t>(i)].active; }
  void closed(int i) { --servers_[static_cast<std::size_t>(i)].active; }

  std::size_t size() const { return servers_.size(); }
  const ServerAddress& address(int i) const { return servers_[static_cast<std::size_t>(i)].address; }
  std::uint64_t active(int i) const { return servers_[static_cast<std::size_t>(i)].active; }
  // Servers down at now.
  std::uint64_t down_count(Clock::time_point now) const;

 private:
  struct Server {
    ServerAddress address;
    Clock::time_point down_until{};
    std::uint64_t active = 0;
  };
  bool usable(std::size_t i, TriedSet tried, Clock::time_point now) const {
    return (tried & (TriedSet{1} << i)) == 0 && now >= servers_[i].down_until;
  }

  std::vector<Server> servers_;
  BalancePolicy policy_;
  Clock::duration down_time_;
  std::size_t next_ = 0;  // round-robin cursor
};

}  // namespace xtcp_proxy
