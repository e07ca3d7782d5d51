#include "server_examples/proxy/proxy_protocol.h"

#include <cstdio>

namespace xtcp_proxy {
namespace {

std::string dotted(std::uint32_t a) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", a >> 24, (a >> 16) & 0xFF, (a >> 8) & 0xFF, a & 0xFF);
  return buf;
}

void put_be(std::string* out, std::uint32_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) {
    out->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  }
}

}  // namespace

std::string proxy_header_v1(const ProxiedFlow& flow) {
  char ports[32];
  std::snprintf(ports, sizeof ports, " %u %u\r\n", flow.client_port, flow.proxy_port);
  return std::string("PROXY TCP4 ") + dotted(flow.client_addr) + " " + dotted(flow.proxy_addr) + ports;
}

std::string proxy_header_v2(const ProxiedFlow& flow) {
  static constexpr char kSignature[12] = {'\r', '\n', '\r', '\n', '\0', '\r', '\n', 'Q', 'U', 'I', 'T', '\n'};
  std::string out(kSignature, sizeof kSignature);
  out.push_back('\x21');  // version 2, command PROXY
  out.push_back('\x11');  // AF_INET, SOCK_STREAM
  put_be(&out, 12, 2);    // the address block that follows
  put_be(&out, flow.client_addr, 4);
  put_be(&out, flow.proxy_addr, 4);
  put_be(&out, flow.client_port, 2);
  put_be(&out, flow.proxy_port, 2);
  return out;
}

std::string proxy_header(ProxyHeader version, const ProxiedFlow& flow) {
  switch (version) {
    case ProxyHeader::kV1: return proxy_header_v1(flow);
    case ProxyHeader::kV2: return proxy_header_v2(flow);
    case ProxyHeader::kNone: break;
  }
  return {};
}

}  // namespace xtcp_proxy
