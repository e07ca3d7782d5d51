// ShmLink implementation: the region's layout, create/attach with their checks, the two
// SPSC rings and the FIFO wake-ups.
//
// Why no wake-up is lost. A producer publishes a packet (head = h + 1, release), then, after
// a sequentially consistent fence, loads the consumer's tail; it writes a byte into the
// consumer's FIFO when tail == h, i.e. when the consumer had taken everything before this
// packet and may be about to sleep. A consumer ends every batch by storing its tail, a
// sequentially consistent fence, and a fresh load of head; if packets are left it writes a
// byte into its own FIFO, so poll() returns at once. The two fences order the producer's
// (store head, load tail) against the consumer's (store tail, load head): either the
// producer sees the final tail (and wakes the consumer when the ring was empty) or the
// consumer's re-check sees the new head (and keeps itself awake). Acquire/release alone
// would allow both loads to miss both stores (the store-load reordering of x86 included).
// FIFO bytes are only hints: the consumer drains them all, then reads the ring.
#include "stack/netif/shm_link.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <new>

namespace xtcp {

namespace {

constexpr std::uint64_t kMagic = 0x31534b4e494c4d53ull;  // "SMLINKS1", little-endian
constexpr std::uint32_t kVersion = 1;
constexpr std::size_t kCacheLine = 64;

static_assert(std::atomic<std::uint32_t>::is_always_lock_free,
              "the rings' indices are shared between processes: they must be lock-free atomics");
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "the magic is published with an atomic store");

void set_error(std::string* error, const std::string& what, int err) {
  if (error != nullptr) {
    *error = what + ": " + std::strerror(err);
  }
}

void set_message(std::string* error, const std::string& what) {
  if (error != nullptr) {
    *error = what;
  }
}

bool valid_name(const std::string& name) {
  return !name.empty() && name.size() <= ShmLink::kMaxName && name.find('/') == std::string::npos &&
         name != "." && name != "..";
}

std::string shm_object(const std::string& name) { return "/xtcp-" + name; }

// Reads and discards everything waiting in a non-blocking FIFO.
void drain_fd(int fd) {
  char buf[256];
  while (::read(fd, buf, sizeof buf) > 0) {
  }
}

// One byte into a non-blocking FIFO. A full FIFO (EAGAIN) is readable already: nothing lost.
bool poke_fd(int fd) {
  const char b = 1;
  return ::write(fd, &b, 1) == 1;
}

}  // namespace

// The start of the region. Written once by the creator before the magic is published;
// only `attached` changes afterwards.
struct alignas(kCacheLine) ShmLink::Region {
  std::atomic<std::uint64_t> magic;  // stored last (release): the rest is valid once it reads kMagic
  std::uint32_t version;
  std::uint32_t slot_size;
  std::uint32_t slot_count;
  std::uint32_t mtu;
  std::uint64_t total_size;          // the file's size, checked by the attacher
  std::atomic<std::uint32_t> attached;  // the attached process's pid, 0 when none
  std::uint32_t creator_pid;         // for humans looking at a stale region
};

// One direction's indices: free-running counters (slot = index & mask), each on its own
// cache line so that the producer and the consumer do not write the same line.
struct ShmLink::Ring {
  alignas(kCacheLine) std::atomic<std::uint32_t> head;  // next slot the producer fills
  alignas(kCacheLine) std::atomic<std::uint32_t> tail;  // next slot the consumer reads
};

namespace {

// Layout: Region, Ring 0, Ring 1, the slots of ring 0, the slots of ring 1.
constexpr std::size_t kRegionBytes = (sizeof(ShmLink::Region) + kCacheLine - 1) / kCacheLine * kCacheLine;
constexpr std::size_t kRingBytes = sizeof(ShmLink::Ring);
constexpr std::size_t kSlotsOffset = kRegionBytes + 2 * kRingBytes;
static_assert(kSlotsOffset % kCacheLine == 0);

std::size_t total_size(std::uint32_t slot_size, std::uint32_t slot_count) {
  return kSlotsOffset + 2 * static_cast<std::size_t>(slot_size) * slot_count;
}

}  // namespace

std::string ShmLink::region_path(const std::string& name) { return "/dev/shm" + shm_object(name); }

std::string ShmLink::fifo_path(const std::string& name, int ring) {
  return region_path(name) + "." + std::to_string(ring);
}

std::unique_ptr<ShmLink> ShmLink::create(const std::string& name, const ShmOptions& options, std::string* error,
                                         int* error_code) {
  auto fail = [&](int err) -> std::unique_ptr<ShmLink> {
    if (error_code != nullptr) {
      *error_code = err;
    }
    return nullptr;
  };
  if (!valid_name(name)) {
    set_message(error, "shared-memory link name '" + name + "': 1 to " + std::to_string(kMaxName) +
                           " characters, no '/'");
    return fail(-EINVAL);
  }
  if (options.slot_size < 128 || options.slot_size > 65536 || options.slot_size % kCacheLine != 0) {
    set_message(error, "slot size " + std::to_string(options.slot_size) + ": a multiple of 64 from 128 to 65536");
    return fail(-EINVAL);
  }
  if (options.slot_count < 2 || options.slot_count > (1u << 20) || !std::has_single_bit(options.slot_count)) {
    set_message(error, "slot count " + std::to_string(options.slot_count) +
                           ": a power of two from 2 to 1048576");
    return fail(-EINVAL);
  }
  if (options.mtu < 68 || options.mtu > options.slot_size - kSlotHeader) {
    set_message(error, "MTU " + std::to_string(options.mtu) + ": 68 to " +
                           std::to_string(options.slot_size - kSlotHeader) + " (what a slot holds)");
    return fail(-EINVAL);
  }

  std::unique_ptr<ShmLink> link(new ShmLink());
  link->creator_ = true;
  link->name_ = name;
  link->path_ = region_path(name);
  // O_EXCL makes this process the region's one owner: a second server of the same name, or
  // a region a dead server left behind, is reported rather than silently taken over.
  const int fd = ::shm_open(shm_object(name).c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int err = errno;
    if (err == EEXIST) {
      set_error(error, "shared-memory link " + link->path_ +
                           " exists (another server uses the name, or one that stopped left it: remove "
                           "it and its .0/.1 FIFOs)",
                err);
    } else {
      set_error(error, "cannot create shared-memory link " + link->path_, err);
    }
    link->creator_ = false;  // not ours: the destructor must not unlink it
    return fail(-err);
  }
  const std::size_t size = total_size(options.slot_size, options.slot_count);
  // From here the region is ours: the destructor removes it (and the FIFOs) on any failure.
  // FIFOs of the same name without a region are leftovers of a dead creator: replaced.
  for (int ring = 0; ring < 2; ++ring) {
    const std::string fifo = fifo_path(name, ring);
    ::unlink(fifo.c_str());
    if (::mkfifo(fifo.c_str(), 0600) < 0) {
      const int err = errno;
      ::close(fd);
      set_error(error, "cannot create FIFO " + fifo, err);
      return fail(-err);
    }
  }
  if (::ftruncate(fd, static_cast<off_t>(size)) < 0) {
    const int err = errno;
    ::close(fd);
    set_error(error, "cannot size shared-memory link " + link->path_ + " to " + std::to_string(size) + " bytes",
              err);
    return fail(-err);
  }
  void* map = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int map_err = errno;
  ::close(fd);  // the mapping keeps the region alive
  if (map == MAP_FAILED) {
    set_error(error, "cannot map shared-memory link " + link->path_, map_err);
    return fail(-map_err);
  }
  link->map_ = map;
  link->map_size_ = size;
  auto* base = static_cast<std::byte*>(map);
  // The file is new and zero-filled; the atomics are constructed in place all the same.
  auto* region = new (base) Region{};
  region->version = kVersion;
  region->slot_size = options.slot_size;
  region->slot_count = options.slot_count;
  region->mtu = options.mtu;
  region->total_size = size;
  region->attached.store(0, std::memory_order_relaxed);
  region->creator_pid = static_cast<std::uint32_t>(::getpid());
  auto* ring0 = new (base + kRegionBytes) Ring{};
  auto* ring1 = new (base + kRegionBytes + kRingBytes) Ring{};
  link->region_ = region;
  link->tx_ = ring0;
  link->rx_ = ring1;
  link->tx_slots_ = base + kSlotsOffset;
  link->rx_slots_ = base + kSlotsOffset + static_cast<std::size_t>(options.slot_size) * options.slot_count;
  link->slot_size_ = options.slot_size;
  link->mask_ = options.slot_count - 1;
  link->mtu_ = options.mtu;
  if (int rc = link->open_fifos(error); rc < 0) {
    return fail(rc);
  }
  // Published last: an attacher that sees the magic sees everything above.
  region->magic.store(kMagic, std::memory_order_release);
  return link;
}

std::unique_ptr<ShmLink> ShmLink::attach(const std::string& name, std::string* error, int* error_code) {
  auto fail = [&](int err) -> std::unique_ptr<ShmLink> {
    if (error_code != nullptr) {
      *error_code = err;
    }
    return nullptr;
  };
  if (!valid_name(name)) {
    set_message(error, "shared-memory link name '" + name + "': 1 to " + std::to_string(kMaxName) +
                           " characters, no '/'");
    return fail(-EINVAL);
  }
  const std::string path = region_path(name);
  const int fd = ::shm_open(shm_object(name).c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) {
    const int err = errno;
    set_error(error, err == ENOENT ? "no shared-memory link " + path + " (is the server running with --shm " +
                                         name + "?)"
                                   : "cannot open shared-memory link " + path,
              err);
    return fail(-err);
  }
  struct stat st {};
  if (::fstat(fd, &st) < 0) {
    const int err = errno;
    ::close(fd);
    set_error(error, "cannot stat shared-memory link " + path, err);
    return fail(-err);
  }
  if (static_cast<std::size_t>(st.st_size) < kSlotsOffset) {
    ::close(fd);
    set_message(error, path + " is not an xtcp shared-memory link (" + std::to_string(st.st_size) +
                           " bytes; or its server is still creating it)");
    return fail(-EPROTO);
  }
  const std::size_t size = static_cast<std::size_t>(st.st_size);
  void* map = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int map_err = errno;
  ::close(fd);
  if (map == MAP_FAILED) {
    set_error(error, "cannot map shared-memory link " + path, map_err);
    return fail(-map_err);
  }
  std::unique_ptr<ShmLink> link(new ShmLink());
  link->name_ = name;
  link->path_ = path;
  link->map_ = map;
  link->map_size_ = size;
  auto* base = static_cast<std::byte*>(map);
  auto* region = std::launder(reinterpret_cast<Region*>(base));
  if (region->magic.load(std::memory_order_acquire) != kMagic) {
    set_message(error, path + " is not an xtcp shared-memory link (bad magic; or its server is still creating it)");
    return fail(-EPROTO);
  }
  if (region->version != kVersion) {
    set_message(error, path + ": version " + std::to_string(region->version) + ", this program speaks " +
                           std::to_string(kVersion));
    return fail(-EPROTO);
  }
  const std::uint32_t slot_size = region->slot_size;
  const std::uint32_t slot_count = region->slot_count;
  if (slot_size < 128 || slot_size % kCacheLine != 0 || slot_size > 65536 || slot_count < 2 ||
      slot_count > (1u << 20) || !std::has_single_bit(slot_count) || region->mtu > slot_size - kSlotHeader ||
      region->total_size != size || total_size(slot_size, slot_count) != size) {
    set_message(error, path + ": inconsistent header (slot size " + std::to_string(slot_size) + ", " +
                           std::to_string(slot_count) + " slots, " + std::to_string(size) + " bytes)");
    return fail(-EPROTO);
  }
  // One attacher at a time: each ring has one producer and one consumer. `attached` holds
  // the attacher's pid, so that one killed without its destructor (SIGKILL) does not lock
  // the link until the server restarts: a pid that no longer exists is taken over.
  const auto self = static_cast<std::uint32_t>(::getpid());
  std::uint32_t expected = 0;
  if (!region->attached.compare_exchange_strong(expected, self, std::memory_order_acq_rel)) {
    const bool gone = ::kill(static_cast<pid_t>(expected), 0) < 0 && errno == ESRCH;
    if (!gone || !region->attached.compare_exchange_strong(expected, self, std::memory_order_acq_rel)) {
      set_message(error, path + ": another process (pid " + std::to_string(expected) +
                             ") is attached to this link");
      return fail(-EBUSY);
    }
  }
  link->region_ = region;
  link->tx_ = std::launder(reinterpret_cast<Ring*>(base + kRegionBytes + kRingBytes));
  link->rx_ = std::launder(reinterpret_cast<Ring*>(base + kRegionBytes));
  link->tx_slots_ = base + kSlotsOffset + static_cast<std::size_t>(slot_size) * slot_count;
  link->rx_slots_ = base + kSlotsOffset;
  link->slot_size_ = slot_size;
  link->mask_ = slot_count - 1;
  link->mtu_ = region->mtu;
  // Packets already in ring 0 are kept: the creator may have sent before this side came
  // (a client racing its server's start). Any left by an earlier attacher are TCP segments
  // of connections this process does not know, answered like any stray segment.
  link->tx_head_ = link->tx_->head.load(std::memory_order_relaxed);
  link->tx_tail_seen_ = link->tx_->tail.load(std::memory_order_acquire);
  if (int rc = link->open_fifos(error); rc < 0) {
    return fail(rc);  // the destructor clears `attached`
  }
  return link;
}

int ShmLink::open_fifos(std::string* error) {
  // O_RDWR: opening a FIFO for reading or writing alone blocks (or fails with ENXIO) until
  // the other end is open; with both, open returns at once whether or not the peer exists.
  const int own = creator_ ? 1 : 0;  // the FIFO of the ring this side consumes
  const std::string rx_path = fifo_path(name_, own);
  const std::string tx_path = fifo_path(name_, 1 - own);
  wake_rx_fd_ = ::open(rx_path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (wake_rx_fd_ < 0) {
    const int err = errno;
    set_error(error, "cannot open FIFO " + rx_path, err);
    return -err;
  }
  wake_tx_fd_ = ::open(tx_path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (wake_tx_fd_ < 0) {
    const int err = errno;
    set_error(error, "cannot open FIFO " + tx_path, err);
    return -err;
  }
  struct stat st {};
  if (::fstat(wake_rx_fd_, &st) < 0 || !S_ISFIFO(st.st_mode) || ::fstat(wake_tx_fd_, &st) < 0 ||
      !S_ISFIFO(st.st_mode)) {
    set_message(error, rx_path + " or " + tx_path + " is not a FIFO");
    return -EPROTO;
  }
  return 0;
}

ShmLink::~ShmLink() {
  if (wake_rx_fd_ >= 0) {
    ::close(wake_rx_fd_);
  }
  if (wake_tx_fd_ >= 0) {
    ::close(wake_tx_fd_);
  }
  if (!creator_ && region_ != nullptr) {
    region_->attached.store(0, std::memory_order_release);  // another client may attach
  }
  if (map_ != nullptr) {
    ::munmap(map_, map_size_);
  }
  if (creator_) {
    // Unlinked names disappear at once; an attacher keeps its mapping until it lets go.
    ::shm_unlink(shm_object(name_).c_str());
    ::unlink(fifo_path(name_, 0).c_str());
    ::unlink(fifo_path(name_, 1).c_str());
  }
}

void ShmLink::wake_peer() {
  if (poke_fd(wake_tx_fd_)) {
    ++counters_.wakeups_sent;
  }
}

int ShmLink::send(std::span<const std::byte> packet) {
  if (packet.size() > slot_size_ - kSlotHeader) {
    ++counters_.send_errors;
    return -EMSGSIZE;
  }
  const std::uint32_t h = tx_head_;
  if (h - tx_tail_seen_ > mask_) {
    tx_tail_seen_ = tx_->tail.load(std::memory_order_acquire);  // the consumer's slots are free again
    if (h - tx_tail_seen_ > mask_) {
      ++counters_.send_drops;
      return -EAGAIN;
    }
  }
  std::byte* slot = tx_slots_ + static_cast<std::size_t>(h & mask_) * slot_size_;
  const auto len = static_cast<std::uint16_t>(packet.size());
  std::memcpy(slot, &len, sizeof len);
  std::memcpy(slot + kSlotHeader, packet.data(), packet.size());
  tx_head_ = h + 1;
  tx_->head.store(h + 1, std::memory_order_release);  // the slot's bytes are visible with it
  // See the top of the file: this fence pairs with the consumer's after its tail store.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  tx_tail_seen_ = tx_->tail.load(std::memory_order_acquire);
  if (tx_tail_seen_ == h) {
    wake_peer();  // the ring was empty: the consumer may be asleep in poll()
  }
  ++counters_.packets_out;
  counters_.bytes_out += packet.size();
  return 0;
}

int ShmLink::receive_batch(int max_packets, PacketHandler on_packet) {
  // The hints first, then the ring: a byte written after this drain stays for the next poll.
  drain_fd(wake_rx_fd_);
  std::uint32_t t = rx_->tail.load(std::memory_order_relaxed);  // only this side writes it
  std::uint32_t h = rx_->head.load(std::memory_order_acquire);
  int n = 0;
  while (n < max_packets && t != h) {
    const std::byte* slot = rx_slots_ + static_cast<std::size_t>(t & mask_) * slot_size_;
    std::uint16_t len = 0;
    std::memcpy(&len, slot, sizeof len);
    // A length beyond the slot can only come from a broken peer: never read past the slot.
    if (len <= slot_size_ - kSlotHeader) {
      on_packet(std::span<const std::byte>(slot + kSlotHeader, len));
      ++counters_.packets_in;
      counters_.bytes_in += len;
    }
    ++t;
    ++n;
    if (t == h) {
      h = rx_->head.load(std::memory_order_acquire);  // packets that came during the batch
    }
  }
  rx_->tail.store(t, std::memory_order_release);  // the slots go back to the producer
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (rx_->head.load(std::memory_order_acquire) != t) {
    // Left for the next batch (max_packets reached, or sent during the check): the producer
    // may not have woken us for them, so this side's FIFO is made readable by itself.
    poke_fd(wake_rx_fd_);
  }
  return n;
}

}  // namespace xtcp
