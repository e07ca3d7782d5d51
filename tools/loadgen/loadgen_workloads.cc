// What the load generator's clients send and how every answer is checked.
//   echo: message_size bytes of a pattern known from (client, stream offset) alone; the echo
//         must match byte for byte; latency = send to last byte back.
//   im:   LOGIN as the client's own user, then every interval MSG a random logged-in user;
//         every message must reach its target once, in the order its sender sent it (the
//         protocol's guarantee); latency = send to delivery at the target.
// Received bytes stay in the shared receive pool until a whole line (IM) or the bytes
// (echo) are consumed: no per-client buffer.
#include <algorithm>
#include <charconv>
#include <cstring>
#include <string>

#include "tools/loadgen/loadgen_internal.h"

namespace xtcp::loadgen {

namespace {

std::uint8_t pattern_byte(std::uint32_t client, std::uint64_t offset) {
  return static_cast<std::uint8_t>(((offset + client) * 2654435761ull) >> 13);
}

// "u<index>.<gen>"
std::string user_name(std::uint32_t index, std::uint8_t gen) {
  std::string s = "u";
  s += std::to_string(index);
  s += '.';
  s += std::to_string(gen);
  return s;
}

// Parses "<a>.<b>" or "<a>:<b>:<c>" style numbers: reads an unsigned from s at pos and
// skips one separator. False when there is no number.
bool take_number(std::string_view s, std::size_t* pos, std::uint64_t* out) {
  const char* begin = s.data() + *pos;
  const char* end = s.data() + s.size();
  const auto r = std::from_chars(begin, end, *out);
  if (r.ec != std::errc{} || r.ptr == begin) {
    return false;
  }
  *pos = static_cast<std::size_t>(r.ptr - s.data()) + 1;
  return true;
}

}  // namespace

bool Loadgen::write(Client& c, std::string_view bytes) {
  const std::int64_t n =
      stack_->tcp().send(c.conn, wire::ByteSpan(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()));
  if (n != static_cast<std::int64_t>(bytes.size())) {
    ++r_.sends_refused;
    return false;
  }
  return true;
}

void Loadgen::send_due(std::uint32_t index) {
  Client& c = clients_[index];
  if (c.state != kReady) {
    return;
  }
  if (opt_.workload == Workload::kEcho) {
    echo_send(c, index);
  } else if (opt_.workload == Workload::kIm) {
    im_send(c, index);
  }
}

void Loadgen::on_readable(std::uint32_t index) {
  Client& c = clients_[index];
  if (c.conn == kNoConn) {
    return;
  }
  if (opt_.workload == Workload::kIm) {
    im_input(c, index);
  } else {
    echo_input(c, index);
  }
  if (c.conn != kNoConn) {
    stack_->tcp().consumed(c.conn);  // the window opens again
  }
}

// ---- echo (and burst) ----------------------------------------------------------------

void Loadgen::echo_send(Client& c, std::uint32_t index) {
  if (c.echo_left > 0) {
    return;  // the previous echo is not back yet: one message in flight per connection
  }
  std::byte buf[4096];
  const std::uint64_t first = c.echo_pos;
  std::uint32_t left = opt_.message_size;
  std::uint64_t off = first;
  while (left > 0) {
    const std::uint32_t n = std::min<std::uint32_t>(left, sizeof buf);
    for (std::uint32_t i = 0; i < n; ++i) {
      buf[i] = static_cast<std::byte>(pattern_byte(index, off + i));
    }
    if (!write(c, std::string_view(reinterpret_cast<const char*>(buf), n))) {
      return;
    }
    off += n;
    left -= n;
  }
  c.echo_left = opt_.message_size;
  c.started_at = clock_.now();
  ++r_.messages_sent;
  ++echo_outstanding_;
}

void Loadgen::echo_input(Client& c, std::uint32_t index) {
  std::byte buf[4096];
  for (;;) {
    const std::size_t n = rx_.peek(c.conn, 0, wire::MutableByteSpan(buf, sizeof buf));
    if (n == 0) {
      return;
    }
    for (std::size_t i = 0; i < n; ++i) {
      if (static_cast<std::uint8_t>(buf[i]) != pattern_byte(index, c.echo_pos + i)) {
        ++r_.bad_answers;
        rx_.pop_front(c.conn, n);
        finish(index, false);  // a connection that corrupts data is of no further use
        return;
      }
    }
    rx_.pop_front(c.conn, n);
    c.echo_pos += n;
    if (n > c.echo_left) {
      ++r_.bad_answers;  // more came back than was sent
      finish(index, false);
      return;
    }
    c.echo_left -= static_cast<std::uint32_t>(n);
    if (c.echo_left == 0) {
      const TimeNs now = clock_.now();
      --echo_outstanding_;
      ++r_.messages_answered;
      if (phase_ == Phase::kMeasure) {
        r_.latency.record(static_cast<std::uint64_t>((now - c.started_at) / kNsPerUs));
      }
      if (opt_.workload == Workload::kBurst) {
        burst_answered();
      } else if (opt_.workload == Workload::kEcho) {
        sends_.add(index, c.gen, std::max(now, c.started_at + opt_.interval));
      }
    }
  }
}

// ---- IM --------------------------------------------------------------------------------

void Loadgen::im_login(Client& c) {
  const std::uint32_t index = static_cast<std::uint32_t>(&c - clients_.data());
  write(c, "LOGIN " + user_name(index, gen8(c.gen)) + "\n");
}

void Loadgen::im_ready_add(std::uint32_t index) {
  if (ready_pos_[index] != kNotReady) {
    return;
  }
  ready_pos_[index] = static_cast<std::uint32_t>(ready_.size());
  ready_.push_back(index);
}

void Loadgen::im_ready_remove(std::uint32_t index) {
  const std::uint32_t pos = ready_pos_[index];
  if (pos == kNotReady) {
    return;
  }
  const std::uint32_t last = ready_.back();
  ready_[pos] = last;
  ready_pos_[last] = pos;
  ready_.pop_back();
  ready_pos_[index] = kNotReady;
}

void Loadgen::im_forget_target(std::uint32_t index) {
  const Client& c = clients_[index];
  auto it = pending_->by_target.find(Pending::key(index, gen8(c.gen)));
  if (it != pending_->by_target.end()) {
    // The target left before these arrived: the server could not deliver them.
    r_.messages_dropped_by_churn += it->second.size();
    pending_->count -= it->second.size();
    pending_->by_target.erase(it);
  }
}

void Loadgen::im_send(Client& c, std::uint32_t index) {
  const TimeNs now = clock_.now();
  sends_.add(index, c.gen, now + opt_.interval);
  if (c.awaiting != 0 || ready_.empty()) {
    return;  // the previous MSG is not answered yet: skip this round
  }
  std::uniform_int_distribution<std::size_t> pick(0, ready_.size() - 1);
  std::uint32_t target = ready_[pick(rng_)];
  if (target == index && ready_.size() > 1) {
    target = ready_[(ready_pos_[index] + 1) % ready_.size()];
  }
  const std::uint8_t tgen = gen8(clients_[target].gen);
  // "MSG u<t>.<tg> <sender>:<sender gen>:<seq>:<padding>"
  std::string line = "MSG " + user_name(target, tgen) + " ";
  line += std::to_string(index);
  line += ':';
  line += std::to_string(gen8(c.gen));
  line += ':';
  line += std::to_string(c.seq);
  line += ':';
  const std::size_t text_len = line.size() - (4 + user_name(target, tgen).size() + 1);
  if (opt_.message_size > text_len) {
    line.append(opt_.message_size - text_len, 'x');
  }
  line += '\n';
  if (!write(c, line)) {
    return;
  }
  pending_->by_target[Pending::key(target, tgen)].push_back(Pending::Entry{index, gen8(c.gen), c.seq, now});
  ++pending_->count;
  c.awaiting = 1;
  c.last_target = target;
  c.last_target_gen = tgen;
  ++c.seq;
  ++r_.messages_sent;
}

void Loadgen::im_input(Client& c, std::uint32_t index) {
  char buf[2048];
  // Whole lines only: a partial line stays in the pool until its end arrives.
  for (int guard = 0; guard < 10'000 && c.conn != kNoConn; ++guard) {
    const std::size_t n = rx_.peek(c.conn, 0, wire::MutableByteSpan(reinterpret_cast<std::byte*>(buf), sizeof buf));
    if (n == 0) {
      return;
    }
    std::size_t used = 0;
    for (;;) {
      const void* nl = std::memchr(buf + used, '\n', n - used);
      if (nl == nullptr) {
        break;
      }
      const std::size_t end = static_cast<std::size_t>(static_cast<const char*>(nl) - buf);
      im_line(c, index, std::string_view(buf + used, end - used));
      used = end + 1;
      if (c.conn == kNoConn) {
        return;
      }
    }
    if (used == 0) {
      if (n == sizeof buf) {
        ++r_.bad_answers;  // a line longer than any the protocol sends
        finish(index, false);
      }
      return;
    }
    rx_.pop_front(c.conn, used);
  }
}

void Loadgen::im_line(Client& c, std::uint32_t index, std::string_view line) {
  const TimeNs now = clock_.now();
  if (line.rfind("FROM ", 0) == 0) {
    // "FROM u<s>.<sg> <s>:<sg>:<seq>:xxx"
    const std::size_t sp = line.find(' ', 5);
    std::uint64_t sender = 0, sgen = 0, seq = 0;
    std::size_t pos = sp == std::string_view::npos ? line.size() : sp + 1;
    if (sp == std::string_view::npos || !take_number(line, &pos, &sender) || !take_number(line, &pos, &sgen) ||
        !take_number(line, &pos, &seq)) {
      ++r_.bad_answers;
      return;
    }
    auto it = pending_->by_target.find(Pending::key(index, gen8(c.gen)));
    if (it == pending_->by_target.end()) {
      ++r_.messages_duplicated;  // nothing was in flight to us: a second copy
      return;
    }
    auto& list = it->second;
    bool older_waiting = false;
    for (auto e = list.begin(); e != list.end(); ++e) {
      if (e->sender != sender || e->sender_gen != sgen) {
        continue;
      }
      if (e->seq == seq) {
        if (older_waiting) {
          ++r_.messages_reordered;
        }
        ++r_.messages_answered;
        if (phase_ == Phase::kMeasure) {
          r_.latency.record(static_cast<std::uint64_t>((now - e->sent_at) / kNsPerUs));
        }
        list.erase(e);
        --pending_->count;
        if (list.empty()) {
          pending_->by_target.erase(it);
        }
        return;
      }
      older_waiting = true;  // an earlier message of this sender is still on its way
    }
    ++r_.messages_duplicated;
    return;
  }
  if (line.rfind("ONLINE ", 0) == 0 || line.rfind("OFFLINE ", 0) == 0) {
    return;  // presence pushes (a server that sends them to everyone)
  }
  if (c.state == kLoggingIn) {
    if (line == "OK") {
      c.state = kReady;
      ++r_.logins;
      im_ready_add(index);
      std::uniform_int_distribution<TimeNs> phase(0, std::max<TimeNs>(0, opt_.interval - 1));
      sends_.add(index, c.gen, now + phase(rng_));
    } else {
      ++r_.bad_answers;
    }
    return;
  }
  if (c.awaiting != 0 && (line == "OK" || line == "ERR offline")) {
    c.awaiting = 0;
    if (line == "ERR offline") {
      // The target left between our pick and the server's lookup: not delivered, by design.
      ++r_.offline_answers;
      auto it = pending_->by_target.find(Pending::key(c.last_target, c.last_target_gen));
      if (it != pending_->by_target.end()) {
        auto& list = it->second;
        for (auto e = list.end(); e != list.begin();) {
          --e;
          if (e->sender == index && e->seq + 1 == c.seq) {
            list.erase(e);
            --pending_->count;
            break;
          }
        }
        if (list.empty()) {
          pending_->by_target.erase(it);
        }
      }
    }
    return;
  }
  if (line == "BYE" && c.state == kClosing) {
    return;  // the server's FIN follows
  }
  ++r_.bad_answers;
}

}  // namespace xtcp::loadgen
