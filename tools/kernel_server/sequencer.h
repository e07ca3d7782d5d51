// The order in which an xtcp-kernel-server worker delivers what concerns its IM users
// (only with --processes > 1).
//
// Records come from origins: every other worker over the mesh (FIFO per pair of workers),
// and the worker itself. Two kinds:
//   - a push (FROM): deliver in the order of its origin's channel;
//   - a presence event (ONLINE/OFFLINE name, numbered by the directory's global sequence,
//     im_directory.h): every worker gets every event, and delivers them in the order of
//     their numbers, so that every watcher sees the logins and logouts of a name in the
//     order they happened, even when the name moved between workers.
// A channel whose next record is an event with a number beyond the next one expected waits
// (with everything behind it, so a sender's ONLINE still comes before its first FROM and
// its last FROM before its OFFLINE); the missing event is already on its way from the
// worker that took that number (it sends its events right after taking them), and when it
// arrives the waiting channels go on. Nothing waits when events do not cross.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace xtcp::kserver {

struct MeshRecord {
  enum Type : std::uint8_t {
    kFrom = 1,      // line for the user `name`, if its login is still `seq` (its claim number)
    kPresence = 2,  // ONLINE (online) or OFFLINE name, event number `seq`
    kLocalPush = 3, // line for connection (fd, serial) of this worker (never on the mesh)
  };
  Type type = kFrom;
  bool online = false;
  std::uint64_t seq = 0;
  std::uint32_t fd = 0;
  std::uint32_t serial = 0;
  std::string name;
  std::string line;
};

class Sequencer {
 public:
  using Deliver = std::function<void(MeshRecord&)>;
  // origins: the number of workers (every channel, this worker's own included).
  Sequencer(int origins, Deliver deliver) : channels_(static_cast<std::size_t>(origins)), deliver_(std::move(deliver)) {}

  // A record from origin, in that origin's order. Delivers it now if nothing it must
  // follow is missing (and whatever waited for it), else keeps it.
  void add(int origin, MeshRecord&& r) {
    std::deque<MeshRecord>& ch = channels_[static_cast<std::size_t>(origin)];
    if (ch.empty() && ready(r)) {
      deliver_one(r);
      if (held_ != 0 && r.type == MeshRecord::kPresence) {
        drain();
      }
      return;
    }
    ch.push_back(std::move(r));
    ++held_;
    ++held_total_;
  }

  std::uint64_t next_event() const { return next_; }
  std::size_t held() const { return held_; }              // records waiting now
  std::uint64_t held_total() const { return held_total_; }  // records that ever waited
  std::uint64_t stale_events() const { return stale_; }    // events numbered below next_event (never expected)

 private:
  bool ready(const MeshRecord& r) const { return r.type != MeshRecord::kPresence || r.seq <= next_; }

  void deliver_one(MeshRecord& r) {
    if (r.type == MeshRecord::kPresence) {
      if (r.seq < next_) {
        ++stale_;  // a number delivered already: a bug elsewhere, never delivered twice
        return;
      }
      ++next_;
    }
    deliver_(r);
  }

  void drain() {
    bool progress = true;
    while (progress && held_ != 0) {
      progress = false;
      for (std::deque<MeshRecord>& ch : channels_) {
        while (!ch.empty() && ready(ch.front())) {
          MeshRecord r = std::move(ch.front());
          ch.pop_front();
          --held_;
          deliver_one(r);
          progress = true;
        }
      }
    }
  }

  std::vector<std::deque<MeshRecord>> channels_;
  Deliver deliver_;
  std::uint64_t next_ = 1;  // the directory's first number is 1
  std::size_t held_ = 0;
  std::uint64_t held_total_ = 0;
  std::uint64_t stale_ = 0;
};

}  // namespace xtcp::kserver
