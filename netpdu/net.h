// Socket set-up for NetPDU transports: parse "ADDR:PORT", listen and connect on TCP/IPv4 or
// Unix stream sockets, and open a variant 1 transport or a variant 2 bundle toward an
// acceptor (connect + handshake). Errors come back as text; nothing here exits.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "netpdu/handshake.h"

namespace xtcp::netpdu {

// A TCP/IPv4 address or a Unix socket path.
struct Address {
  bool is_unix = false;
  sockaddr_in in{};
  std::string path;
  std::string text() const;
};

// "A.B.C.D:PORT" (port 0..65535). On error returns nullopt and sets *error.
std::optional<Address> parse_host_port(const std::string& s, std::string* error);
Address unix_address(const std::string& path);

// Listening socket (SO_REUSEADDR for TCP; an existing Unix socket file is replaced).
// Returns the fd or -errno with *error set.
int listen_on(const Address& a, std::string* error);
// Actual bound port of a TCP listener (for port 0).
std::uint16_t bound_port(int fd);
// Blocking connect with TCP_NODELAY; returns the fd (blocking) or -errno with *error set.
int connect_to(const Address& a, std::string* error);

// Opens a variant 1 transport (data_transports == 0) or a bundle of one control and
// data_transports data transports, each handshaken within timeout_ms.
std::optional<Transport> open_transport(const Address& a, const HandshakeLimits& limits, int data_transports,
                                        int timeout_ms, std::string* error);

}  // namespace xtcp::netpdu
