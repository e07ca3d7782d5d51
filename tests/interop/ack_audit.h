// Reads a pcap of a request/answer server's traffic and checks the XTCP promise on the
// wire: the ACK of every client request rides on a server segment that carries an answer,
// and the server sends no pure ACK segment (the handshake and ACKs of a client FIN aside).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace xtcp::test {

struct AckAudit {
  std::uint64_t packets = 0;            // TCP packets of the server's port
  std::uint64_t connections = 0;        // client 4-tuples seen
  std::uint64_t requests = 0;           // client segments with new payload
  std::uint64_t acked_by_answer = 0;    // ... whose first covering server ACK carried data
  std::uint64_t answers = 0;            // server segments with payload
  std::uint64_t pure_acks = 0;          // server ACK-only segments, excepted ones not counted
  std::uint64_t fin_acks = 0;           // server ACK-only segments acknowledging a client FIN
  std::uint64_t unacked_requests = 0;   // requests no server segment ever acknowledged
  std::vector<std::string> problems;    // the first violations, readable
  // True when every request was acknowledged by an answer and there was no pure ACK.
  bool clean() const {
    return requests == acked_by_answer && pure_acks == 0 && unacked_requests == 0 &&
           problems.empty();
  }
};

// Audits the traffic to and from server_ip:server_port (host byte order) in the pcap at
// path (LINKTYPE_RAW, IPV4, ETHERNET or LINUX_SLL; micro- or nanosecond format).
// false with *error when the file cannot be read.
bool audit_acks(const std::string& path, std::uint32_t server_ip, std::uint16_t server_port,
                AckAudit* out, std::string* error);

std::string describe(const AckAudit& a);

}  // namespace xtcp::test
