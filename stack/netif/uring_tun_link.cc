// UringTunLink implementation: one io_uring per link, rx_slots read requests always queued on
// the TUN descriptor (one MTU-sized buffer each), write requests from tx_slots send buffers,
// submitted together. Completions are taken straight off the shared completion ring.
// Built without liburing (XTCP_HAVE_LIBURING unset), open() fails with -ENOSYS.
#include "stack/netif/uring_tun_link.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>
#include <vector>

#if defined(XTCP_HAVE_LIBURING)
#include <liburing.h>
#endif

namespace xtcp {

#if defined(XTCP_HAVE_LIBURING)

namespace {

void set_error(std::string* error, const std::string& what, int err) {
  if (error != nullptr) {
    *error = what + ": " + std::strerror(err);
  }
}

// A request's user_data: what it is in the high half, its buffer slot in the low half.
enum class Kind : std::uint64_t { kRead = 1, kWrite = 2, kCancel = 3 };
constexpr std::uint64_t tag(Kind k, std::uint32_t slot) {
  return (static_cast<std::uint64_t>(k) << 32) | slot;
}
constexpr Kind kind_of(std::uint64_t user_data) { return static_cast<Kind>(user_data >> 32); }
constexpr std::uint32_t slot_of(std::uint64_t user_data) {
  return static_cast<std::uint32_t>(user_data & 0xffffffffu);
}

constexpr std::uint32_t kMaxSlots = 4096;

// IORING_OP_READ_MULTISHOT (Linux 6.7), newer than liburing 2.3's headers: one read request
// that stays armed and fills a provided buffer per packet. Used only when the kernel's
// probe lists it.
constexpr std::uint8_t kOpReadMultishot = 49;
constexpr std::uint16_t kBufferGroup = 0;
constexpr std::uint32_t kMultishotSlot = 0xffffffffu;  // user_data slot of the multishot read

// A read that filled its buffer may have been cut short: TUN copies what fits and reports
// only that. The IP header says how long the packet really was.
bool cut_short(const std::byte* p, std::size_t n, std::size_t buffer) {
  if (n < buffer || n < 20) {
    return false;
  }
  const unsigned version = std::to_integer<unsigned>(p[0]) >> 4;
  if (version == 4) {
    return ((std::to_integer<std::size_t>(p[2]) << 8) | std::to_integer<std::size_t>(p[3])) > n;
  }
  if (version == 6 && n >= 40) {
    return 40 + ((std::to_integer<std::size_t>(p[4]) << 8) | std::to_integer<std::size_t>(p[5])) > n;
  }
  return false;
}

std::string io_uring_refused(int err) {
  std::string why = std::string("io_uring_setup failed: ") + std::strerror(err);
  if (err == ENOSYS) {
    why += " (kernel built without io_uring)";
  } else if (err == EPERM || err == EACCES) {
    why += " (io_uring disabled: sysctl kernel.io_uring_disabled, or a seccomp filter)";
  }
  return why;
}

}  // namespace

struct UringTunLink::State {
  struct Completion {
    std::uint32_t slot;  // the buffer (queued reads: from user_data; multishot: from flags)
    std::int32_t res;
    std::uint32_t flags;  // the CQE's flags (multishot: IORING_CQE_F_MORE, F_BUFFER)
  };

  std::unique_ptr<TunLink> tun;
  int fd = -1;
  std::size_t buf_size = 0;
  io_uring ring{};
  bool ring_ready = false;
  bool fixed_file = false;  // the TUN descriptor is registered with the ring (index 0)
  // Multishot receive: one armed read, buffers handed to the kernel through a provided
  // buffer ring (returned after each packet without a system call).
  bool multishot = false;
  io_uring_buf_ring* buf_ring = nullptr;
  std::size_t buf_ring_bytes = 0;
  unsigned buf_ring_mask = 0;
  std::uint32_t rx_slots = 0;
  std::uint32_t tx_slots = 0;
  std::uint32_t tx_batch = 0;
  std::vector<std::byte> rx_mem;  // rx_slots buffers of buf_size
  std::vector<std::byte> tx_mem;  // tx_slots buffers of buf_size
  std::vector<std::uint32_t> tx_free;  // free send slots (a stack)
  // Read completions taken off the ring by send() (looking for finished writes) and not
  // yet handed over: a FIFO of at most rx_slots, drained before the ring.
  std::vector<Completion> stash;
  std::size_t stash_head = 0;
  std::size_t stash_count = 0;
  std::uint32_t queued_writes = 0;  // writes prepared since the last submit
  std::uint32_t rx_outstanding = 0;  // reads prepared whose completion was not taken yet
  std::uint32_t tx_outstanding = 0;  // writes prepared whose completion was not taken yet
  UringTunCounters counters;

  ~State() {
    if (ring_ready) {
      shut_down();
    }
    if (buf_ring != nullptr) {
      ::munmap(buf_ring, buf_ring_bytes);
    }
    tun.reset();  // closes the device, after the ring let go of it
  }

  std::byte* rx_buf(std::uint32_t slot) { return rx_mem.data() + std::size_t{slot} * buf_size; }
  std::byte* tx_buf(std::uint32_t slot) { return tx_mem.data() + std::size_t{slot} * buf_size; }

  io_uring_sqe* get_sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    if (sqe == nullptr) {
      // Not expected: the ring has room for every read, every write and a cancel at once.
      submit();
      sqe = io_uring_get_sqe(&ring);
    }
    return sqe;
  }

  void set_file(io_uring_sqe* sqe) {
    if (fixed_file) {
      sqe->fd = 0;
      sqe->flags |= IOSQE_FIXED_FILE;
    }
  }

  // Multishot: the one read request, armed again whenever the kernel ended it (buffers ran
  // out, its thread exited, an error).
  bool prep_multishot() {
    io_uring_sqe* sqe = get_sqe();
    if (sqe == nullptr) {
      return false;
    }
    io_uring_prep_rw(kOpReadMultishot, sqe, fd, nullptr, 0, 0);
    set_file(sqe);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kBufferGroup;
    io_uring_sqe_set_data64(sqe, tag(Kind::kRead, kMultishotSlot));
    ++rx_outstanding;
    return true;
  }

  void give_buffer(std::uint32_t slot) {
    io_uring_buf_ring_add(buf_ring, rx_buf(slot), static_cast<unsigned>(buf_size), static_cast<unsigned short>(slot),
                          static_cast<int>(buf_ring_mask), 0);
    io_uring_buf_ring_advance(buf_ring, 1);
  }

  // Whether a read completion ends its request (every queued read; a multishot read only
  // without IORING_CQE_F_MORE).
  bool ends_request(std::uint32_t cqe_flags) const {
    return !multishot || (cqe_flags & IORING_CQE_F_MORE) == 0;
  }

  // After a read completion was handled: its buffer goes back, its request is re-armed.
  void rearm(const Completion& c) {
    if (!multishot) {
      prep_read(c.slot);
      return;
    }
    if ((c.flags & IORING_CQE_F_BUFFER) != 0) {
      give_buffer(c.slot);
    }
    if ((c.flags & IORING_CQE_F_MORE) == 0) {
      prep_multishot();
    }
  }

  Completion completion_of(const io_uring_cqe* cqe) const {
    if (multishot && slot_of(cqe->user_data) == kMultishotSlot) {
      return {cqe->flags >> IORING_CQE_BUFFER_SHIFT, cqe->res, cqe->flags};
    }
    return {slot_of(cqe->user_data), cqe->res, cqe->flags};
  }

  bool prep_read(std::uint32_t slot) {
    io_uring_sqe* sqe = get_sqe();
    if (sqe == nullptr) {
      return false;
    }
    io_uring_prep_read(sqe, fd, rx_buf(slot), static_cast<unsigned>(buf_size), 0);
    set_file(sqe);
    io_uring_sqe_set_data64(sqe, tag(Kind::kRead, slot));
    ++rx_outstanding;
    return true;
  }

  // Submits everything prepared in one io_uring_enter, then takes the write completions at
  // the head of the ring (TUN writes complete inside the submit), stopping at the first
  // read completion so that poll_fd() stays readable for it. Returns how many writes went,
  // or a negative errno (the requests stay queued for the next submit).
  int submit() {
    if (io_uring_sq_ready(&ring) == 0) {
      return 0;
    }
    int rc = 0;
    do {
      ++counters.syscalls;
      rc = io_uring_submit(&ring);
    } while (rc == -EINTR);
    if (rc < 0) {
      return rc;
    }
    const int writes = static_cast<int>(queued_writes);
    queued_writes = 0;
    if (writes > 0) {
      ++counters.tx_batches;
    }
    take_write_completions();
    return writes;
  }

  io_uring_cqe* peek() {
    unsigned head = 0;
    io_uring_cqe* cqe = nullptr;
    io_uring_for_each_cqe(&ring, head, cqe) { return cqe; }
    return nullptr;
  }

  void complete_write(std::uint32_t slot, std::int32_t res) {
    --tx_outstanding;
    tx_free.push_back(slot);
    if (res >= 0) {
      ++counters.packets_out;
      counters.bytes_out += static_cast<std::uint64_t>(res);
    } else {
      ++counters.send_errors;
    }
  }

  void take_write_completions() {
    while (io_uring_cqe* cqe = peek()) {
      const Kind k = kind_of(cqe->user_data);
      if (k == Kind::kRead) {
        break;
      }
      if (k == Kind::kWrite) {
        complete_write(slot_of(cqe->user_data), cqe->res);
      }
      io_uring_cqe_seen(&ring, cqe);
    }
  }

  // Takes every completion off the ring: writes free their buffers, reads go to the stash.
  void take_all_completions() {
    while (io_uring_cqe* cqe = peek()) {
      const Kind k = kind_of(cqe->user_data);
      if (k == Kind::kWrite) {
        complete_write(slot_of(cqe->user_data), cqe->res);
      } else if (k == Kind::kRead) {
        if (ends_request(cqe->flags)) {
          --rx_outstanding;
        }
        stash[(stash_head + stash_count) % stash.size()] = completion_of(cqe);
        ++stash_count;
      }
      io_uring_cqe_seen(&ring, cqe);
    }
  }

  // Multishot needs IORING_OP_READ_MULTISHOT (Linux 6.7) and a provided buffer ring (5.19);
  // false (queued reads are used) when either is missing.
  bool set_up_multishot() {
    io_uring_probe* probe = io_uring_get_probe_ring(&ring);
    const bool supported = probe != nullptr && io_uring_opcode_supported(probe, kOpReadMultishot);
    if (probe != nullptr) {
      io_uring_free_probe(probe);
    }
    if (!supported) {
      return false;
    }
    const unsigned entries = std::bit_ceil(rx_slots);
    buf_ring_bytes = entries * sizeof(io_uring_buf);
    void* mem = ::mmap(nullptr, buf_ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
      return false;
    }
    buf_ring = static_cast<io_uring_buf_ring*>(mem);
    io_uring_buf_ring_init(buf_ring);
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uintptr_t>(mem);
    reg.ring_entries = entries;
    reg.bgid = kBufferGroup;
    if (io_uring_register_buf_ring(&ring, &reg, 0) != 0) {
      ::munmap(mem, buf_ring_bytes);
      buf_ring = nullptr;
      return false;
    }
    buf_ring_mask = static_cast<unsigned>(io_uring_buf_ring_mask(entries));
    return true;
  }

  // Closing: submit what was sent, cancel every queued request, wait (bounded) until the
  // kernel returned them all, then let go of the descriptor. Without this the ring would
  // hold the device open for a while after close (its teardown is asynchronous).
  void shut_down() {
    submit();
    bool cancel_done = true;
    if (io_uring_sqe* sqe = get_sqe()) {
      io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
      io_uring_sqe_set_data64(sqe, tag(Kind::kCancel, 0));
      cancel_done = false;
      io_uring_submit(&ring);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while ((rx_outstanding > 0 || tx_outstanding > 0 || !cancel_done) &&
           std::chrono::steady_clock::now() < deadline) {
      __kernel_timespec ts{0, 50'000'000};
      io_uring_cqe* cqe = nullptr;
      const int rc = io_uring_wait_cqe_timeout(&ring, &cqe, &ts);
      if (rc < 0 && rc != -ETIME && rc != -EINTR) {
        break;
      }
      while ((cqe = peek()) != nullptr) {
        switch (kind_of(cqe->user_data)) {
          case Kind::kRead:
            if (ends_request(cqe->flags)) {
              --rx_outstanding;
            }
            break;
          case Kind::kWrite:
            complete_write(slot_of(cqe->user_data), cqe->res);
            break;
          case Kind::kCancel:
            cancel_done = true;
            break;
        }
        io_uring_cqe_seen(&ring, cqe);
      }
    }
    if (rx_outstanding > 0 || tx_outstanding > 0) {
      // The kernel did not hand every request back in time: it may still write into the
      // buffers after the ring is gone, so they are left allocated (never seen in practice).
      new std::vector<std::byte>(std::move(rx_mem));
      new std::vector<std::byte>(std::move(tx_mem));
      buf_ring = nullptr;
    }
    if (multishot) {
      io_uring_unregister_buf_ring(&ring, kBufferGroup);
    }
    if (fixed_file) {
      io_uring_unregister_files(&ring);
    }
    io_uring_queue_exit(&ring);
    ring_ready = false;
  }
};

bool UringTunLink::available(std::string* why) {
  io_uring ring{};
  const int rc = io_uring_queue_init(2, &ring, 0);
  if (rc < 0) {
    if (why != nullptr) {
      *why = io_uring_refused(-rc);
    }
    return false;
  }
  io_uring_queue_exit(&ring);
  return true;
}

std::unique_ptr<UringTunLink> UringTunLink::open(const UringTunOptions& options, std::string* error,
                                                 int* error_code) {
  auto fail = [&](int err) -> std::unique_ptr<UringTunLink> {
    if (error_code != nullptr) {
      *error_code = err;
    }
    return nullptr;
  };
  if (options.rx_slots == 0 || options.rx_slots > kMaxSlots || options.tx_slots == 0 ||
      options.tx_slots > kMaxSlots || options.tx_batch > options.tx_slots) {
    set_error(error,
              "io_uring TUN: rx_slots and tx_slots must be 1.." + std::to_string(kMaxSlots) +
                  ", tx_batch at most tx_slots",
              EINVAL);
    return fail(-EINVAL);
  }
  auto s = std::make_unique<State>();
  s->tun = TunLink::open(options.tun, error, error_code);
  if (!s->tun) {
    return nullptr;
  }
  s->fd = s->tun->poll_fd();
  // io_uring must be the one to wait: on a non-blocking descriptor some kernels complete a
  // read with -EAGAIN at once instead of waiting for a packet.
  const int fl = ::fcntl(s->fd, F_GETFL);
  if (fl < 0 || ::fcntl(s->fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
    const int err = errno;
    set_error(error, "fcntl(F_SETFL) on the TUN descriptor", err);
    return fail(-err);
  }
  s->buf_size = s->tun->mtu();
  s->rx_slots = options.rx_slots;
  s->tx_slots = options.tx_slots;
  s->tx_batch = options.tx_batch;

  // Room for every read, every write and the closing cancel at once: the submission ring
  // never fills, and the completion ring (twice as large) cannot overflow.
  const unsigned entries = std::bit_ceil(options.rx_slots + options.tx_slots + 1);
  io_uring_params params{};
  params.flags = IORING_SETUP_SUBMIT_ALL;  // 5.18+: a bad request does not stop the rest
  int rc = io_uring_queue_init_params(entries, &s->ring, &params);
  if (rc == -EINVAL) {
    params = io_uring_params{};
    rc = io_uring_queue_init_params(entries, &s->ring, &params);
  }
  if (rc < 0) {
    if (error != nullptr) {
      *error = io_uring_refused(-rc);
    }
    return fail(rc);
  }
  s->ring_ready = true;
  // A registered descriptor spares the kernel a file lookup per request; optional.
  s->fixed_file = io_uring_register_files(&s->ring, &s->fd, 1) == 0;

  s->rx_mem.resize(std::size_t{s->rx_slots} * s->buf_size);
  s->tx_mem.resize(std::size_t{s->tx_slots} * s->buf_size);
  s->tx_free.reserve(s->tx_slots);
  for (std::uint32_t i = s->tx_slots; i > 0; --i) {
    s->tx_free.push_back(i - 1);
  }
  // The stash holds read completions: at most one per buffer, plus the multishot's end.
  s->stash.resize(std::size_t{s->rx_slots} + 1);
  if (options.rx_multishot) {
    s->multishot = s->set_up_multishot();
  }
  if (s->multishot) {
    for (std::uint32_t i = 0; i < s->rx_slots; ++i) {
      s->give_buffer(i);
    }
    s->prep_multishot();
  } else {
    for (std::uint32_t i = 0; i < s->rx_slots; ++i) {
      s->prep_read(i);
    }
  }
  rc = s->submit();
  if (rc < 0) {
    set_error(error, "io_uring_enter (queueing the reads)", -rc);
    return fail(rc);
  }
  s->counters.syscalls = 0;  // counted from here: the set-up is not the link's traffic
  return std::unique_ptr<UringTunLink>(new UringTunLink(std::move(s)));
}

int UringTunLink::send(std::span<const std::byte> packet) {
  State& s = *s_;
  if (packet.size() > s.buf_size || packet.empty()) {
    ++s.counters.send_errors;
    return packet.empty() ? -EINVAL : -EMSGSIZE;
  }
  if (s.tx_free.empty()) {
    // Finished writes may wait on the ring: no system call to look.
    s.take_all_completions();
    if (s.tx_free.empty() && s.tx_batch != 0 && s.queued_writes > 0) {
      s.submit();  // the batch cannot grow: hand it over (TUN writes complete inside)
      s.take_all_completions();
    }
    if (s.tx_free.empty()) {
      ++s.counters.send_drops;
      return -EAGAIN;
    }
  }
  const std::uint32_t slot = s.tx_free.back();
  io_uring_sqe* sqe = s.get_sqe();
  if (sqe == nullptr) {
    ++s.counters.send_drops;
    return -EAGAIN;
  }
  s.tx_free.pop_back();
  std::memcpy(s.tx_buf(slot), packet.data(), packet.size());
  io_uring_prep_write(sqe, s.fd, s.tx_buf(slot), static_cast<unsigned>(packet.size()), 0);
  s.set_file(sqe);
  io_uring_sqe_set_data64(sqe, tag(Kind::kWrite, slot));
  ++s.tx_outstanding;
  ++s.queued_writes;
  if (s.tx_batch != 0 && s.queued_writes >= s.tx_batch) {
    s.submit();  // a failure leaves the writes queued for the next submit
  }
  return 0;
}

int UringTunLink::receive_batch(int max_packets, PacketHandler on_packet) {
  State& s = *s_;
  int handed = 0;
  int error = 0;
  while (handed < max_packets) {
    State::Completion c{};
    if (s.stash_count > 0) {
      c = s.stash[s.stash_head];
      s.stash_head = (s.stash_head + 1) % s.stash.size();
      --s.stash_count;
    } else {
      io_uring_cqe* cqe = s.peek();
      if (cqe == nullptr) {
        break;
      }
      const std::uint64_t ud = cqe->user_data;
      c = s.completion_of(cqe);
      io_uring_cqe_seen(&s.ring, cqe);
      if (kind_of(ud) == Kind::kWrite) {
        s.complete_write(c.slot, c.res);
        continue;
      }
      if (kind_of(ud) != Kind::kRead) {
        continue;
      }
      if (s.ends_request(c.flags)) {
        --s.rx_outstanding;
      }
    }
    const bool has_buffer = !s.multishot || (c.flags & IORING_CQE_F_BUFFER) != 0;
    const auto len = static_cast<std::size_t>(c.res > 0 && has_buffer ? c.res : 0);
    if (len > 0 && len <= s.buf_size && !cut_short(s.rx_buf(c.slot), len, s.buf_size)) {
      ++s.counters.packets_in;
      s.counters.bytes_in += static_cast<std::uint64_t>(c.res);
      ++handed;
      // The buffer is queued again only after the handler returns (it may send(), which
      // may submit: this slot's read is not prepared yet, so it cannot be overwritten).
      on_packet(std::span<const std::byte>(s.rx_buf(c.slot), static_cast<std::size_t>(c.res)));
    } else if (len > 0) {
      // The device MTU was raised after open and a longer packet came: dropped, counted.
      ++s.counters.rx_truncated;
    } else if (c.res == -ECANCELED) {
      ++s.counters.rx_canceled;
    } else if (c.res == -ENOBUFS) {
      ++s.counters.rx_no_buffers;  // multishot ended: every buffer was full; armed again below
    } else if (c.res != 0 && c.res != -EAGAIN && c.res != -EINTR) {
      ++s.counters.read_errors;
      if (error == 0) {
        error = c.res;
      }
    }
    s.rearm(c);
  }
  s.submit();
  if (handed > 0) {
    ++s.counters.rx_batches;
    return handed;
  }
  return error;
}

int UringTunLink::flush() { return s_->submit(); }

bool UringTunLink::multishot() const { return s_->multishot; }

int UringTunLink::poll_fd() const { return s_->ring.ring_fd; }

std::size_t UringTunLink::mtu() const { return s_->buf_size; }

TimeNs UringTunLink::next_event_time() const {
  return s_->queued_writes > 0 || s_->stash_count > 0 || io_uring_sq_ready(&s_->ring) > 0 ? 0 : kNever;
}

std::uint32_t UringTunLink::sends_in_flight() const {
  return s_->tx_slots - static_cast<std::uint32_t>(s_->tx_free.size());
}

#else  // !XTCP_HAVE_LIBURING

struct UringTunLink::State {
  std::unique_ptr<TunLink> tun;
  std::size_t buf_size = 0;
  std::uint32_t rx_slots = 0;
  std::uint32_t tx_slots = 0;
  UringTunCounters counters;
};

namespace {
constexpr const char* kNoLiburing =
    "xtcp was built without liburing (install liburing-dev and configure again): io_uring TUN link unavailable";
}  // namespace

bool UringTunLink::available(std::string* why) {
  if (why != nullptr) {
    *why = kNoLiburing;
  }
  return false;
}

std::unique_ptr<UringTunLink> UringTunLink::open(const UringTunOptions&, std::string* error, int* error_code) {
  if (error != nullptr) {
    *error = kNoLiburing;
  }
  if (error_code != nullptr) {
    *error_code = -ENOSYS;
  }
  return nullptr;
}

int UringTunLink::send(std::span<const std::byte>) { return -ENOSYS; }
bool UringTunLink::multishot() const { return false; }
int UringTunLink::receive_batch(int, PacketHandler) { return -ENOSYS; }
int UringTunLink::flush() { return -ENOSYS; }
int UringTunLink::poll_fd() const { return -1; }
std::size_t UringTunLink::mtu() const { return s_->buf_size; }
TimeNs UringTunLink::next_event_time() const { return kNever; }
std::uint32_t UringTunLink::sends_in_flight() const { return 0; }

#endif  // XTCP_HAVE_LIBURING

UringTunLink::UringTunLink(std::unique_ptr<State> state) : s_(std::move(state)) {}
UringTunLink::~UringTunLink() = default;

const std::string& UringTunLink::name() const { return s_->tun->name(); }
const UringTunCounters& UringTunLink::counters() const { return s_->counters; }
std::uint32_t UringTunLink::rx_slots() const { return s_->rx_slots; }
std::uint32_t UringTunLink::tx_slots() const { return s_->tx_slots; }

}  // namespace xtcp
