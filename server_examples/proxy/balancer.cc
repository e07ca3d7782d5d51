#include "server_examples/proxy/balancer.h"

#include <arpa/inet.h>

#include <cstdio>
#include <limits>

namespace xtcp_proxy {

namespace {

// snprintf rather than string concatenation: GCC 12 at -O3 reports false -Wrestrict
// overlaps on short literals joined to strings.
std::string say(const char* format, const std::string& a, const std::string& b) {
  char buf[256];
  std::snprintf(buf, sizeof buf, format, a.c_str(), b.c_str());
  return buf;
}

}  // namespace

bool parse_server_address(const std::string& text, ServerAddress* out, std::string* why) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) {
    *why = say("expected ADDR:PORT, got '%s'%s", text, "");
    return false;
  }
  const std::string addr = text.substr(0, colon);
  in_addr a{};
  if (inet_pton(AF_INET, addr.c_str(), &a) != 1) {
    *why = say("'%s' (in '%s') is not an IPv4 address", addr, text);
    return false;
  }
  const std::string port = text.substr(colon + 1);
  const bool digits = !port.empty() && port.size() <= 5 && port.find_first_not_of("0123456789") == std::string::npos;
  const unsigned long p = digits ? std::stoul(port) : 0;
  if (p < 1 || p > 65535) {
    *why = say("'%s' (in '%s') is not a port number from 1 to 65535", port, text);
    return false;
  }
  if (ntohl(a.s_addr) == 0) {
    *why = say("0.0.0.0 (in '%s') names no server%s", text, "");
    return false;
  }
  out->addr = ntohl(a.s_addr);
  out->port = static_cast<std::uint16_t>(p);
  out->text = text;
  return true;
}

Balancer::Balancer(std::vector<ServerAddress> servers, BalancePolicy policy, Clock::duration down_time)
    : policy_(policy), down_time_(down_time) {
  servers_.reserve(servers.size());
  for (auto& s : servers) {
    servers_.push_back(Server{std::move(s), {}, 0});
  }
}

int Balancer::pick(std::uint32_t client_addr, TriedSet tried, Clock::time_point now) {
  const std::size_t n = servers_.size();
  if (n == 0) {
    return kNone;
  }
  std::size_t start = 0;
  switch (policy_) {
    case BalancePolicy::kRoundRobin:
      start = next_ % n;
      break;
    case BalancePolicy::kSourceHash: {
      // A multiplicative hash of the address: neighbouring clients spread over the servers.
      const std::uint64_t h = static_cast<std::uint64_t>(client_addr) * 0x9E3779B97F4A7C15ull;
      start = static_cast<std::size_t>((h >> 32) % n);
      break;
    }
    case BalancePolicy::kLeastConn: {
      int best = kNone;
      std::uint64_t fewest = std::numeric_limits<std::uint64_t>::max();
      for (std::size_t k = 0; k < n; ++k) {
        const std::size_t i = (next_ + k) % n;  // ties go round
        if (usable(i, tried, now) && servers_[i].active < fewest) {
          fewest = servers_[i].active;
          best = static_cast<int>(i);
        }
      }
      if (best != kNone) {
        next_ = static_cast<std::size_t>(best) + 1;
      }
      return best;
    }
  }
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t i = (start + k) % n;
    if (usable(i, tried, now)) {
      if (policy_ == BalancePolicy::kRoundRobin) {
        next_ = i + 1;
      }
      return static_cast<int>(i);
    }
  }
  return kNone;
}

void Balancer::mark_down(int i, Clock::time_point now) {
  servers_[static_cast<std::size_t>(i)].down_until = now + down_time_;
}

std::uint64_t Balancer::down_count(Clock::time_point now) const {
  std::uint64_t down = 0;
  for (const Server& s : servers_) {
    down += now < s.down_until ? 1 : 0;
  }
  return down;
}

}  // namespace xtcp_proxy
