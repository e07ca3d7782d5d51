// The XTCP runtime (see runtime.h), part 4: what a program can see inside. xtcp_counters
// lists every counter of the IP and TCP layers, the connections by state, the link, the
// runtime's own ("api.*") and the memory of each part ("mem.*"); xtcp_connection_info is
// one connection as the engine sees it, plus what the pool and the cache hold for it.
#include <arpa/inet.h>

#include <cctype>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>

#include "api/src/runtime_internal.h"

namespace xtcp::api {

namespace {

// Counter names live for the process: xtcp_counter.name points into this table. The
// order of the counters never changes, so the i-th name is made once.
const char* counter_name(std::size_t i, const char* prefix, const char* name) {
  static std::mutex mu;  // runtimes of several threads (tests) share the table
  const std::lock_guard<std::mutex> lock(mu);
  static std::deque<std::string> names;
  while (names.size() <= i) {
    names.emplace_back();
  }
  if (names[i].empty()) {
    names[i] = std::string(prefix) + name;
  }
  return names[i].c_str();
}

std::string state_counter_name(TcpState s) {
  std::string n = "tcp.state.";
  for (const char* p = to_string(s); *p != '\0'; ++p) {
    n += *p == '-' ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(*p)));
  }
  return n;
}

sockaddr_in to_sockaddr(std::uint32_t addr, std::uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(addr);
  sa.sin_port = htons(port);
  return sa;
}

}  // namespace

// f(prefix, name, value) for every counter, always in the same order.
template <class F>
void Runtime::visit_counters(F&& f) const {
  const Stack& st = *stack_;
  st.ip().stats().for_each([&](const char* name, std::uint64_t v) { f("ip.", name, v); });
  st.tcp().stats().for_each([&](const char* name, std::uint64_t v) { f("tcp.", name, v); });
  const auto by_state = st.tcp().connections_by_state();
  for (int s = 0; s < kTcpStateCount; ++s) {
    f("", state_counter_name(static_cast<TcpState>(s)).c_str(), by_state[static_cast<std::size_t>(s)]);
  }
  f("link.", "errors", st.link_errors());
  f("link.", "backlog_polls", st.backlog_polls());

  std::uint64_t rx_size = 0, rx_used = 0, rx_bytes = 0, rx_dropped = 0, rx_mem = 0, rx_committed = 0;
  std::uint64_t acks_on_answers = 0, acks_alone = 0, accept_timeouts = 0, groups = 0;
  for (const auto& [id, p] : pools_) {
    rx_size += p->rx->size();
    rx_used += p->rx->used();
    rx_bytes += p->rx->stats().bytes_in;
    rx_dropped += p->rx->stats().bytes_refused;
    rx_committed += p->rx->committed();
    rx_mem += p->rx->memory_bytes();
    acks_on_answers += p->acks_on_answers;
    acks_alone += p->acks_alone;
    accept_timeouts += p->accept_timeouts;
    groups += p->groups;
  }
  f("api.", "connections", live_conns_);
  f("api.", "pools", pools_.size());
  f("api.", "groups", groups);
  f("api.", "rx_buffer_size", rx_size);
  f("api.", "rx_buffer_used", rx_used);
  f("api.", "rx_bytes", rx_bytes);
  f("api.", "rx_dropped_full", rx_dropped);
  f("api.", "rx_committed", rx_committed);
  f("api.", "tx_cache_size", tx_.size());
  f("api.", "tx_cache_used", tx_.used());
  f("api.", "tx_cache_refused", tx_.stats().refused);
  f("api.", "acks_on_answers", acks_on_answers);
  f("api.", "acks_alone", acks_alone);
  f("api.", "accept_timeouts", accept_timeouts);
  f("api.", "sends_refused", sends_refused_);
  f("api.", "writable_wakeups", writable_wakeups_);
  f("api.", "zero_window_aborts", zero_window_aborts_);
  f("api.", "refused_window_updates", refused_window_updates_);
  f("api.", "busy_connections", cold_.in_use());

  const TcpLayer::Memory tcp_mem = st.tcp().memory();
  const std::uint64_t mem_tcp = tcp_mem.total();
  // The API's own memory: the hot records and cold records ever made resident (the slabs
  // keep their pages), the engine index's written pages, the port table, and the queues of
  // the groups and of the refused sends (entries only; their fixed blocks are left out).
  std::uint64_t mem_queues = write_fifo_.size() * sizeof(WriteWaiter) +
                             write_want_.size() * (sizeof(std::uint32_t) * 2 + sizeof(void*)) +
                             write_want_.bucket_count() * sizeof(void*);
  for (const auto& g : groups_) {
    if (g) {
      mem_queues += sizeof(Group) + g->ready.size() * sizeof(std::uint32_t) +
                    g->pending.size() * sizeof(Pending) + g->writable.size() * sizeof(WriteWaiter);
    }
  }
  const std::uint64_t mem_api = conns_.resident_bytes() + cold_.resident_bytes() + engine_to_slot_.resident_bytes() +
                                port_gd_.capacity() * sizeof(std::uint16_t) + mem_queues;
  const std::uint64_t mem_tx = tx_.memory_bytes();
  f("mem.", "tcp", mem_tcp);
  f("mem.", "tcp_hot_blocks", tcp_mem.hot_blocks);
  f("mem.", "tcp_busy_blocks", tcp_mem.busy_blocks);
  f("mem.", "tcp_flow_index", tcp_mem.flow_index);
  f("mem.", "tcp_time_wait", tcp_mem.time_wait);
  f("mem.", "tcp_timers", tcp_mem.timers);
  f("mem.", "rx_pools", rx_mem);
  f("mem.", "tx_cache", mem_tx);
  f("mem.", "api", mem_api);
  f("mem.", "total", mem_tcp + rx_mem + mem_tx + mem_api);

  const CaptureTotals& cap = capture_->totals();
  f("capture.", "started", cap.started);
  f("capture.", "running", cap.running);
  f("capture.", "packets", cap.packets);
  f("capture.", "bytes", cap.bytes);
  f("capture.", "truncated", cap.truncated);
  f("capture.", "errors", cap.errors);
}

int Runtime::counters(struct xtcp_counter* out, std::size_t n) {
  std::size_t i = 0;
  visit_counters([&](const char* prefix, const char* name, std::uint64_t v) {
    if (out != nullptr && i < n) {
      out[i].name = counter_name(i, prefix, name);
      out[i].value = v;
    }
    ++i;
  });
  return static_cast<int>(i);
}

int Runtime::conn_info(int gd, int cd, struct xtcp_conn_info* out) {
  std::uint32_t slot = 0;
  const Conn* c = conn(0, gd, cd, &slot);
  if (c == nullptr) {
    return -EBADF;
  }
  if (out == nullptr) {
    return -EINVAL;
  }
  *out = {};
  out->state = XTCP_STATE_CLOSED;
  std::uint32_t remote_addr = 0;
  std::uint16_t remote_port = 0;
  remote_of(*c, &remote_addr, &remote_port);
  out->remote = to_sockaddr(remote_addr, remote_port);
  out->local = to_sockaddr(stack_->ip().local_addr(), 0);
  out->user_data = c->user_data;
  out->error = c->error;
  ConnInfo info{};
  if (c->conn != kNoConn && stack_->tcp().info(c->conn, &info) == 0) {
    out->state = static_cast<int>(info.state);
    out->local = to_sockaddr(info.key.local_addr, info.key.local_port);
    out->snd_mss = info.snd_mss;
    out->snd_wnd = info.snd_wnd;
    out->rcv_wnd = info.rcv_wnd;
    out->cwnd = info.cwnd;
    out->ssthresh = info.ssthresh;
    out->srtt_us = info.srtt_us;
    out->rttvar_us = info.rttvar_us;
    out->rto_us = info.rto_us;
    out->bytes_in_flight = static_cast<std::uint32_t>(info.snd_nxt - info.snd_una);
    out->backoff = info.backoff;
    out->rx_held = rx_.held(c->conn);
    out->tx_cached = tx_.queued(c->conn);
    out->error = info.error != 0 ? info.error : c->error;
  }
  out->state_name = to_string(static_cast<TcpState>(out->state));
  return 0;
}

}  // namespace xtcp::api
