// Concentrator: id mapping between levels, per-upstream session tracking (so a dead
// upstream's sessions are closed downstream), and backpressure in both directions through
// kRetryLater + on_space, with resumes run outside the callbacks.
#include "netpdu/concentrator.h"

#include <unistd.h>

#include <cerrno>

namespace xtcp::netpdu {

Concentrator::Concentrator(const Transport& downstream, const ConcentratorConfig& config, const Clock& clock)
    : config_(config), clock_(clock) {
  if (config_.index_bits < 1 || config_.index_bits > 32) {
    config_.index_bits = 16;
  }
  down_ = Endpoint::open(downstream, config_.downstream, clock_, [this](const Tlpdu& t) { return from_downstream(t); });
  down_->set_on_space([this] { resume_ups_ = true; });
}

Concentrator::~Concentrator() = default;

int Concentrator::add_upstream(const Transport& t) {
  auto close_fds = [&t] {
    ::close(t.fd);
    for (int fd : t.data_fds) {
      ::close(fd);
    }
  };
  if (failed_) {
    close_fds();
    return -EPIPE;
  }
  if (ups_.size() >= (std::uint64_t{1} << config_.index_bits)) {
    close_fds();
    return -ENOSPC;
  }
  const auto index = static_cast<std::uint32_t>(ups_.size());
  auto up = std::make_unique<Upstream>();
  up->ep = Endpoint::open(t, config_.upstream, clock_, [this, index](const Tlpdu& x) { return from_upstream(index, x); });
  up->ep->set_on_space([this] { resume_down_ = true; });
  for (int fd : up->ep->fds()) {
    fd_index_[fd] = index;
  }
  ups_.push_back(std::move(up));
  return static_cast<int>(index);
}

Verdict Concentrator::from_upstream(std::uint32_t index, const Tlpdu& t) {
  Upstream& up = *ups_[index];
  const unsigned bits = config_.index_bits;
  if ((t.meta.session >> (64 - bits)) != 0) {
    return Verdict::kReject;  // its top bits would be shifted out: not unambiguous any more
  }
  auto it = up.sessions.find(t.meta.session);
  if (t.meta.type == TlpduType::kOpen) {
    if (it != up.sessions.end()) {
      return Verdict::kReject;  // OPEN of a session that is open
    }
  } else {
    if (it == up.sessions.end()) {
      return Verdict::kUnknownSession;
    }
    if (it->second.up_closed) {
      return Verdict::kReject;  // traffic after its CLOSE
    }
    if (t.meta.seq != it->second.next_up_seq) {
      return Verdict::kBadSequence;
    }
  }
  TlpduMeta m = t.meta;
  m.session = down_id(t.meta.session, index, bits);
  const int rc = down_->submit(m, t.payload);
  if (rc == -EAGAIN) {
    up.blocked = true;
    return Verdict::kRetryLater;
  }
  if (rc != 0) {
    // The downstream failed: poll_timers() tears everything down; stop delivering here.
    up.blocked = true;
    return Verdict::kRetryLater;
  }
  ++stats_.up_tlpdus;
  if (t.meta.type == TlpduType::kOpen) {
    it = up.sessions.emplace(t.meta.session, SessionState{}).first;
  }
  it->second.next_up_seq = t.meta.seq + 1;
  if (t.meta.type == TlpduType::kClose) {
    it->second.up_closed = true;
    if (it->second.down_closed) {
      up.sessions.erase(it);
    }
  }
  return Verdict::kAccept;
}

Verdict Concentrator::from_downstream(const Tlpdu& t) {
  const unsigned bits = config_.index_bits;
  const std::uint32_t index = index_of(t.meta.session, bits);
  if (index >= ups_.size()) {
    return Verdict::kUnknownSession;  // no upstream ever had this index
  }
  Upstream* up = ups_[index].get();
  if (up == nullptr) {
    ++stats_.dropped_answers;  // that upstream is gone; its sessions were closed downstream
    return Verdict::kAccept;
  }
  const std::uint64_t s = up_id(t.meta.session, bits);
  if (t.payload.size() > up->ep->max_payload_bytes()) {
    ++stats_.oversize_answers;
    return Verdict::kAccept;
  }
  TlpduMeta m = t.meta;
  m.session = s;
  const int rc = up->ep->submit(m, t.payload);
  if (rc == -EAGAIN) {
    return Verdict::kRetryLater;  // resumed by that upstream's on_space
  }
  if (rc != 0) {
    ++stats_.dropped_answers;  // the upstream just failed; poll_timers() retires it
    return Verdict::kAccept;
  }
  ++stats_.down_tlpdus;
  if (t.meta.type == TlpduType::kClose) {
    auto it = up->sessions.find(s);
    if (it != up->sessions.end()) {
      it->second.down_closed = true;
      if (it->second.up_closed) {
        up->sessions.erase(it);
      }
    }
  }
  return Verdict::kAccept;
}

void Concentrator::handle(int fd, short revents) {
  if (failed_) {
    return;
  }
  if (auto it = fd_index_.find(fd); it != fd_index_.end()) {
    if (Upstream* up = ups_[it->second].get()) {
      up->ep->handle(fd, revents);
    }
  } else {
    down_->handle(fd, revents);
  }
  run_resumes();
}

void Concentrator::run_resumes() {
  // on_space callbacks only set flags: resuming from inside an aggregator's write path
  // would re-enter it. Loop because each resume can free room for the other direction.
  for (int round = 0; round < 4 && (resume_ups_ || resume_down_) && !failed_; ++round) {
    if (resume_down_) {
      resume_down_ = false;
      if (down_->delivery_blocked()) {
        down_->resume();
      }
    }
    if (resume_ups_) {
      resume_ups_ = false;
      send_pending_closes();
      for (auto& up : ups_) {
        if (up && up->blocked) {
          up->blocked = false;
          up->ep->resume();
        }
      }
    }
  }
}

void Concentrator::poll_timers() {
  if (failed_) {
    return;
  }
  if (down_->state() != Endpoint::State::kOpen) {
    fail_all("downstream " + std::string(down_->state() == Endpoint::State::kClosed ? "closed" : "failed") +
             (down_->error_message().empty() ? "" : ": " + down_->error_message()));
    return;
  }
  for (std::uint32_t i = 0; i < ups_.size(); ++i) {
    if (ups_[i] && ups_[i]->ep->state() != Endpoint::State::kOpen) {
      retire(i);
    }
  }
  for (auto& up : ups_) {
    if (up) {
      up->ep->poll_timers();
    }
  }
  send_pending_closes();
  down_->poll_timers();
  run_resumes();
}

void Concentrator::retire(std::uint32_t index) {
  Upstream& up = *ups_[index];
  const bool clean = up.ep->state() == Endpoint::State::kClosed;
  log_.push_back("upstream " + std::to_string(index) + (clean ? " closed" : " failed: " + up.ep->error_message()));
  for (const auto& [s, st] : up.sessions) {
    if (!st.up_closed) {
      pending_closes_.push_back({down_id(s, index, config_.index_bits), st.next_up_seq});
    }
  }
  for (int fd : up.ep->fds()) {
    fd_index_.erase(fd);
  }
  ups_[index].reset();
}

void Concentrator::send_pending_closes() {
  while (!pending_closes_.empty()) {
    TlpduMeta m;
    m.type = TlpduType::kClose;
    m.session = pending_closes_.front().session;
    m.seq = pending_closes_.front().seq;
    if (down_->submit(m, Payload{}) != 0) {
      return;  // -EAGAIN: retried on the downstream's on_space
    }
    ++stats_.synthesized_closes;
    pending_closes_.pop_front();
  }
}

void Concentrator::fail_all(const std::string& why) {
  failed_ = true;
  error_ = why;
  log_.push_back(why);
  ups_.clear();  // closing the upstream transports tells the level above
  fd_index_.clear();
  pending_closes_.clear();
}

void Concentrator::pollfds(std::vector<pollfd>* out) const {
  if (failed_) {
    return;
  }
  down_->pollfds(out);
  for (const auto& up : ups_) {
    if (up) {
      up->ep->pollfds(out);
    }
  }
}

TimeNs Concentrator::next_deadline() const {
  if (failed_) {
    return kNever;
  }
  TimeNs t = down_->next_deadline();
  for (const auto& up : ups_) {
    if (up) {
      t = std::min(t, up->ep->next_deadline());
    }
  }
  return t;
}

std::string Concentrator::error_message() const { return error_; }

std::size_t Concentrator::live_upstreams() const {
  std::size_t n = 0;
  for (const auto& up : ups_) {
    n += up ? 1 : 0;
  }
  return n;
}

bool Concentrator::upstream_open(std::uint32_t index) const {
  return index < ups_.size() && ups_[index] && ups_[index]->ep->state() == Endpoint::State::kOpen;
}

}  // namespace xtcp::netpdu
