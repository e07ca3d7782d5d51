// The PROXY protocol header (the convention HAProxy defined and nginx, HAProxy and others
// accept): sent first on the connection toward the server, it tells the server which
// client address and port the proxied connection came from, and which address and port of
// the proxy it reached. Version 1 is one text line, version 2 a binary block; both here
// for TCP over IPv4 only.
#pragma once

#include <cstdint>
#include <string>

namespace xtcp_proxy {

enum class ProxyHeader { kNone, kV1, kV2 };

// Addresses and ports in host order.
struct ProxiedFlow {
  std::uint32_t client_addr = 0;
  std::uint16_t client_port = 0;
  std::uint32_t proxy_addr = 0;
  std::uint16_t proxy_port = 0;
};

// "PROXY TCP4 <client> <proxy> <client port> <proxy port>\r\n".
std::string proxy_header_v1(const ProxiedFlow& flow);
// The 12-byte signature, version 2 + PROXY command, AF_INET + STREAM, length 12, then the
// two addresses and the two ports (28 bytes in all).
std::string proxy_header_v2(const ProxiedFlow& flow);
// The header of the given version ("" for kNone).
std::string proxy_header(ProxyHeader version, const ProxiedFlow& flow);

}  // namespace xtcp_proxy
