// Where the connections of one TCP layer live. Every connection has a 64-byte TcbHot (what an
// idle established connection needs) in the hot slab, indexed by its ConnId. While it is
// busy it also has a full Tcb in the cold slab, which the engine works on; when it goes
// quiet the Tcb is packed back into its hot record and the cold slot returned. Both slabs
// are reserved at start-up for max_connections and become resident only as slots are used,
// so no connection ever waits for a table to grow.
//
//   ConnId --hot[conn]--> TcbHot { key, ..., cold } --cold[cold - 1]--> Tcb (self = conn)
#pragma once

#include <cstddef>
#include <cstdint>

#include "stack/core/slab.h"
#include "stack/tcp/tcb.h"

namespace xtcp {

class ConnStore {
 public:
  // Throws std::bad_alloc when the address space cannot be reserved.
  explicit ConnStore(std::uint32_t max_connections) : hot_(max_connections), cold_(max_connections) {}

  // A new connection with its cold Tcb attached (default-constructed, self set), or kNoConn
  // when every slot is taken.
  ConnId alloc() {
    const std::uint32_t h = hot_.alloc();
    if (h == Slab<TcbHot>::kNone) {
      return kNoConn;
    }
    const std::uint32_t c = cold_.alloc();
    if (c == Slab<Tcb>::kNone) {
      hot_.free(h);
      return kNoConn;
    }
    hot_[h].cold = c + 1;
    cold_[c].self = h;
    return h;
  }

  // Frees the connection's slots; its id may be handed out again.
  void free(ConnId conn) {
    TcbHot& h = hot_[conn];
    if (h.cold != 0) {
      cold_.free(h.cold - 1);
    }
    h = TcbHot{};  // state kListen: free
    hot_.free(conn);
  }

  // A connection id that names a live connection (never freed since it was handed out).
  bool live(ConnId conn) const { return conn < hot_.high_water() && hot_[conn].state != TcpState::kListen; }
  bool attached(ConnId conn) const { return hot_[conn].cold != 0; }

  TcbHot& hot(ConnId conn) { return hot_[conn]; }
  const TcbHot& hot(ConnId conn) const { return hot_[conn]; }
  // The full Tcb of an attached connection.
  Tcb& cold(ConnId conn) { return cold_[hot_[conn].cold - 1]; }
  const Tcb& cold(ConnId conn) const { return cold_[hot_[conn].cold - 1]; }

  // Gives a quiet connection a cold Tcb again (default-constructed, self set; the caller
  // fills it from the hot record). False when the cold slab is full.
  bool attach(ConnId conn) {
    const std::uint32_t c = cold_.alloc();
    if (c == Slab<Tcb>::kNone) {
      return false;
    }
    hot_[conn].cold = c + 1;
    cold_[c].self = conn;
    return true;
  }
  // Returns the cold slot of a connection whose Tcb was packed into its hot record.
  void detach(ConnId conn) {
    cold_.free(hot_[conn].cold - 1);
    hot_[conn].cold = 0;
  }

  // Timers are kept per cold slot (only busy connections have them).
  std::uint32_t cold_index(ConnId conn) const { return hot_[conn].cold - 1; }
  Tcb& cold_at(std::uint32_t index) { return cold_[index]; }

  std::uint32_t capacity() const { return hot_.capacity(); }
  std::uint32_t connections() const { return hot_.in_use(); }
  std::uint32_t busy() const { return cold_.in_use(); }
  std::uint32_t high_water() const { return hot_.high_water(); }
  std::uint32_t cold_high_water() const { return cold_.high_water(); }
  std::size_t hot_bytes() const { return hot_.resident_bytes(); }
  std::size_t cold_bytes() const { return cold_.resident_bytes(); }

 private:
  Slab<TcbHot> hot_;
  Slab<Tcb> cold_;
};

}  // namespace xtcp
