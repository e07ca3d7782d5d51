// One end of an aggregated link, both directions: TLPDUs submitted here leave aggregated,
// TLPDUs arriving are de-aggregated to the sink. Variant 1 is one descriptor; variant 2 a
// control descriptor plus data descriptors. The owner polls the descriptors it is told to
// (pollfds / events_for) and forwards readiness with handle(); nothing runs on its own.
//
//   submit() --> Aggregator | SplitAggregator --> fd(s)
//   fd(s) --> Deaggregator | SplitDeaggregator --> sink(Tlpdu)
//   owner loop: poll(fds, next_deadline) -> handle(fd, revents) ... -> poll_timers()
#pragma once

#include <poll.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "netpdu/aggregator.h"
#include "netpdu/clock.h"
#include "netpdu/handshake.h"
#include "netpdu/receiver.h"

namespace xtcp::netpdu {

struct EndpointConfig {
  AggregatorConfig tx;
  ReceiverConfig rx;
};

// Fills the negotiated limits into both directions of `base`.
EndpointConfig endpoint_config(const Negotiated& n, EndpointConfig base = {});

class Endpoint {
 public:
  enum class State : std::uint8_t { kOpen, kClosed, kFailed };

  // Both take ownership of the descriptors (closed by the destructor) and make them
  // non-blocking. `clock` must outlive the endpoint. A null budget means a private one.
  static std::unique_ptr<Endpoint> single(int fd, const EndpointConfig& config, const Clock& clock, TlpduSink sink,
                                          std::shared_ptr<MemoryBudget> budget = nullptr);
  static std::unique_ptr<Endpoint> split(int control_fd, std::vector<int> data_fds, const EndpointConfig& config,
                                         const Clock& clock, TlpduSink sink,
                                         std::shared_ptr<MemoryBudget> budget = nullptr);

  // Either of the above, as the transport's role says; takes ownership of its descriptors.
  static std::unique_ptr<Endpoint> open(const Transport& t, const EndpointConfig& base, const Clock& clock,
                                        TlpduSink sink, std::shared_ptr<MemoryBudget> budget = nullptr);

  virtual ~Endpoint() = default;

  // Aggregator::submit's contract: 0, -EAGAIN (backpressure), -EMSGSIZE, or the failure.
  virtual int submit(const TlpduMeta& meta, Payload payload) = 0;
  virtual void flush() = 0;
  // Latency bound, pending writes, and receive work a fairness cap left over; call once per
  // loop turn (and at once when next_deadline() has passed).
  virtual void poll_timers() = 0;
  // Readiness of one of this endpoint's descriptors (revents as from poll(2)).
  virtual void handle(int fd, short revents) = 0;
  // Resume delivery after a sink's kRetryLater, or reading after the budget was spent.
  virtual void resume() = 0;

  // When poll_timers() must run next: a latency bound, 0 (now) when the receiver yielded
  // with work left, or kNever.
  virtual TimeNs next_deadline() const = 0;
  // The events this endpoint wants on fd right now (0: do not poll it).
  virtual short events_for(int fd) const = 0;
  virtual const std::vector<int>& fds() const = 0;
  void pollfds(std::vector<pollfd>* out) const;

  virtual State state() const = 0;
  // Why the endpoint failed / closed (receive or send side).
  virtual std::string error_message() const = 0;
  virtual RxError rx_error() const = 0;
  virtual bool tx_idle() const = 0;
  virtual std::size_t queued_bytes() const = 0;
  // Would `tlpdus` TLPDUs carrying `payload_bytes` in all be accepted now?
  virtual bool can_accept(std::size_t payload_bytes, std::size_t tlpdus) const = 0;
  // Largest payload one TLPDU may carry on this endpoint.
  virtual std::size_t max_payload_bytes() const = 0;
  virtual bool delivery_blocked() const = 0;
  virtual void set_on_space(std::function<void()> fn) = 0;
  virtual const AggregatorStats& tx_stats() const = 0;
  virtual const RxStats& rx_stats() const = 0;
};

}  // namespace xtcp::netpdu
