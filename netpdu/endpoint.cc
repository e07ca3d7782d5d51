// The two Endpoint implementations: SingleEndpoint (variant 1 on one descriptor) and
// SplitEndpoint (variant 2: control + data descriptors), each an aggregator for what goes
// out and a de-aggregator for what comes in over the same descriptors.
#include "netpdu/endpoint.h"

#include <unistd.h>

#include "netpdu/deaggregator.h"
#include "netpdu/io.h"
#include "netpdu/split_aggregator.h"
#include "netpdu/split_deaggregator.h"

namespace xtcp::netpdu {

EndpointConfig endpoint_config(const Negotiated& n, EndpointConfig base) {
  base.tx.max_pdu_bytes = n.max_pdu_bytes;
  base.tx.max_tlpdus = n.max_tlpdus;
  base.tx.flush_bytes = std::min(base.tx.flush_bytes, n.max_pdu_bytes);
  if (base.tx.max_queued_bytes < 2 * std::size_t{n.max_pdu_bytes}) {
    base.tx.max_queued_bytes = 2 * std::size_t{n.max_pdu_bytes};
    base.tx.low_watermark = n.max_pdu_bytes;
  }
  base.rx.limits.max_pdu_bytes = n.max_pdu_bytes;
  base.rx.limits.max_tlpdus = n.max_tlpdus;
  return base;
}

void Endpoint::pollfds(std::vector<pollfd>* out) const {
  for (int fd : fds()) {
    const short ev = events_for(fd);
    if (ev != 0) {
      out->push_back(pollfd{fd, ev, 0});
    }
  }
}

namespace {

std::string join_errors(const std::string& rx, const std::string& tx) {
  if (rx.empty()) {
    return tx;
  }
  if (tx.empty()) {
    return rx;
  }
  return rx + "; " + tx;
}

class SingleEndpoint final : public Endpoint {
 public:
  SingleEndpoint(int fd, const EndpointConfig& config, const Clock& clock, TlpduSink sink,
                 std::shared_ptr<MemoryBudget> budget)
      : fd_(fd),
        max_queued_(config.tx.max_queued_bytes),
        max_pdu_(config.tx.max_pdu_bytes),
        fds_{fd},
        io_(fd),
        tx_(io_, config.tx, clock),
        rx_(io_, config.rx, std::move(sink), std::move(budget)) {}
  ~SingleEndpoint() override { ::close(fd_); }

  int submit(const TlpduMeta& meta, Payload payload) override {
    if (state() != State::kOpen) {
      return -EPIPE;
    }
    return tx_.submit(meta, std::move(payload));
  }
  void flush() override { tx_.flush(); }
  void poll_timers() override {
    if (rx_.yielded()) {
      rx_.on_readable();
    }
    tx_.poll();
  }
  void handle(int fd, short revents) override {
    if (fd != fd_) {
      return;
    }
    if ((revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      rx_.on_readable();
    }
    if ((revents & (POLLOUT | POLLERR)) != 0 && tx_.wants_write()) {
      tx_.on_writable();
    }
  }
  void resume() override { rx_.on_readable(); }
  TimeNs next_deadline() const override { return rx_.yielded() ? 0 : tx_.next_deadline(); }
  short events_for(int fd) const override {
    if (fd != fd_ || state() != State::kOpen) {
      return 0;
    }
    return static_cast<short>((rx_.wants_read() ? POLLIN : 0) | (tx_.wants_write() ? POLLOUT : 0));
  }
  const std::vector<int>& fds() const override { return fds_; }
  State state() const override {
    if (rx_.state() == RxState::kFailed || tx_.failed()) {
      return State::kFailed;
    }
    return rx_.state() == RxState::kClosed ? State::kClosed : State::kOpen;
  }
  std::string error_message() const override { return join_errors(rx_.error_message(), tx_.error_message()); }
  RxError rx_error() const override { return rx_.error(); }
  bool tx_idle() const override { return tx_.idle(); }
  std::size_t queued_bytes() const override { return tx_.queued_bytes(); }
  bool can_accept(std::size_t payload_bytes, std::size_t tlpdus) const override {
    return !tx_.failed() && tx_.queued_bytes() + payload_bytes + 2 * kTlpduHeaderLen * tlpdus <= max_queued_;
  }
  std::size_t max_payload_bytes() const override { return max_payload(max_pdu_); }
  bool delivery_blocked() const override { return rx_.delivery_blocked(); }
  void set_on_space(std::function<void()> fn) override { tx_.set_on_space(std::move(fn)); }
  const AggregatorStats& tx_stats() const override { return tx_.stats(); }
  const RxStats& rx_stats() const override { return rx_.stats(); }

 private:
  int fd_;
  std::size_t max_queued_;
  std::uint32_t max_pdu_;
  std::vector<int> fds_;
  FdIo io_;
  Aggregator tx_;
  Deaggregator rx_;
};

class SplitEndpoint final : public Endpoint {
 public:
  SplitEndpoint(int control_fd, std::vector<int> data_fds, const EndpointConfig& config, const Clock& clock,
                TlpduSink sink, std::shared_ptr<MemoryBudget> budget)
      : max_queued_(config.tx.max_queued_bytes),
        max_pdu_(config.tx.max_pdu_bytes),
        control_io_(control_fd),
        data_fds_(std::move(data_fds)) {
    fds_.push_back(control_fd);
    for (int fd : data_fds_) {
      fds_.push_back(fd);
      data_io_.push_back(std::make_unique<FdIo>(fd));
    }
    std::vector<ByteSink*> sinks;
    std::vector<ByteSource*> sources;
    for (auto& io : data_io_) {
      sinks.push_back(io.get());
      sources.push_back(io.get());
    }
    tx_ = std::make_unique<SplitAggregator>(control_io_, sinks, config.tx, clock);
    rx_ = std::make_unique<SplitDeaggregator>(control_io_, sources, config.rx, std::move(sink), std::move(budget));
  }
  ~SplitEndpoint() override {
    rx_.reset();
    tx_.reset();
    for (int fd : fds_) {
      ::close(fd);
    }
  }

  int submit(const TlpduMeta& meta, Payload payload) override {
    if (state() != State::kOpen) {
      return -EPIPE;
    }
    return tx_->submit(meta, std::move(payload));
  }
  void flush() override { tx_->flush(); }
  void poll_timers() override {
    if (rx_->yielded()) {
      rx_->on_readable();
    }
    tx_->poll();
  }
  void handle(int fd, short revents) override {
    const int lane = lane_index(fd);
    if (lane < -1) {
      return;
    }
    if ((revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      rx_->on_readable();
    }
    if ((revents & (POLLOUT | POLLERR)) != 0) {
      if (lane == -1 && tx_->wants_write_control()) {
        tx_->on_writable_control();
      } else if (lane >= 0 && tx_->wants_write_data(static_cast<std::size_t>(lane))) {
        tx_->on_writable_data(static_cast<std::size_t>(lane));
      }
    }
  }
  void resume() override { rx_->on_readable(); }
  TimeNs next_deadline() const override { return rx_->yielded() ? 0 : tx_->next_deadline(); }
  short events_for(int fd) const override {
    const int lane = lane_index(fd);
    if (lane < -1 || state() != State::kOpen) {
      return 0;
    }
    if (lane == -1) {
      return static_cast<short>((rx_->wants_read_control() ? POLLIN : 0) |
                                (tx_->wants_write_control() ? POLLOUT : 0));
    }
    const auto l = static_cast<std::size_t>(lane);
    return static_cast<short>((rx_->wants_read_data(l) ? POLLIN : 0) | (tx_->wants_write_data(l) ? POLLOUT : 0));
  }
  const std::vector<int>& fds() const override { return fds_; }
  State state() const override {
    if (rx_->state() == RxState::kFailed || tx_->failed()) {
      return State::kFailed;
    }
    return rx_->state() == RxState::kClosed ? State::kClosed : State::kOpen;
  }
  std::string error_message() const override { return join_errors(rx_->error_message(), tx_->error_message()); }
  RxError rx_error() const override { return rx_->error(); }
  bool tx_idle() const override { return tx_->idle(); }
  std::size_t queued_bytes() const override { return tx_->queued_bytes(); }
  bool can_accept(std::size_t payload_bytes, std::size_t tlpdus) const override {
    return !tx_->failed() && tx_->queued_bytes() + payload_bytes + 2 * kTlpduHeaderLen * tlpdus <= max_queued_;
  }
  std::size_t max_payload_bytes() const override { return max_payload(max_pdu_); }
  bool delivery_blocked() const override { return rx_->delivery_blocked(); }
  void set_on_space(std::function<void()> fn) override { tx_->set_on_space(std::move(fn)); }
  const AggregatorStats& tx_stats() const override { return tx_->stats(); }
  const RxStats& rx_stats() const override { return rx_->stats(); }

 private:
  // -1: the control descriptor; 0..N-1: a data descriptor; -2: not ours.
  int lane_index(int fd) const {
    if (fd == control_io_.fd()) {
      return -1;
    }
    for (std::size_t i = 0; i < data_fds_.size(); ++i) {
      if (data_fds_[i] == fd) {
        return static_cast<int>(i);
      }
    }
    return -2;
  }

  std::size_t max_queued_;
  std::uint32_t max_pdu_;
  FdIo control_io_;
  std::vector<int> data_fds_;
  std::vector<std::unique_ptr<FdIo>> data_io_;
  std::vector<int> fds_;
  std::unique_ptr<SplitAggregator> tx_;
  std::unique_ptr<SplitDeaggregator> rx_;
};

}  // namespace

std::unique_ptr<Endpoint> Endpoint::open(const Transport& t, const EndpointConfig& base, const Clock& clock,
                                         TlpduSink sink, std::shared_ptr<MemoryBudget> budget) {
  const EndpointConfig config = endpoint_config(t.negotiated, base);
  if (t.negotiated.role == Role::kSingle) {
    return single(t.fd, config, clock, std::move(sink), std::move(budget));
  }
  return split(t.fd, t.data_fds, config, clock, std::move(sink), std::move(budget));
}

std::unique_ptr<Endpoint> Endpoint::single(int fd, const EndpointConfig& config, const Clock& clock, TlpduSink sink,
                                           std::shared_ptr<MemoryBudget> budget) {
  set_nonblocking(fd);
  return std::make_unique<SingleEndpoint>(fd, config, clock, std::move(sink), std::move(budget));
}

std::unique_ptr<Endpoint> Endpoint::split(int control_fd, std::vector<int> data_fds, const EndpointConfig& config,
                                          const Clock& clock, TlpduSink sink, std::shared_ptr<MemoryBudget> budget) {
  set_nonblocking(control_fd);
  for (int fd : data_fds) {
    set_nonblocking(fd);
  }
  return std::make_unique<SplitEndpoint>(control_fd, std::move(data_fds), config, clock, std::move(sink),
                                         std::move(budget));
}

}  // namespace xtcp::netpdu
