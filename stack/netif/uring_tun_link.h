// UringTunLink: a Link over a Linux TUN device that moves packets with io_uring instead of
// one read(2)/write(2) per packet.
//
// Receive, two ways (UringTunOptions::rx_multishot):
//  - queued reads: rx_slots read requests, each with its own buffer of the device MTU's
//    size, stay queued on the TUN descriptor. The kernel fills them as packets arrive (in
//    the thread that queued them, through io_uring task work) and posts a completion per
//    packet. receive_batch() takes completions from the completion ring (shared memory: no
//    system call), hands each packet to the handler, queues the read again for its buffer,
//    and re-arms them all with one io_uring_enter at its end.
//  - multishot (the default where the kernel has IORING_OP_READ_MULTISHOT, Linux 6.7+): one
//    read request stays armed over a ring of rx_slots provided MTU-sized buffers; each
//    packet is one completion naming its buffer, and receive_batch() gives the buffer back
//    through shared memory: no system call at all while buffers last. When they run out
//    the kernel ends the read (-ENOBUFS, counted); packets then wait in the device queue
//    until receive_batch() arms it again. Queued reads all wait on the device's wait queue,
//    so every packet that finds the device empty wakes each of them: a cost per packet that
//    grows with rx_slots (docs/benchmarks.md, "TUN I/O: read/write vs io_uring").
//
// Send: send() copies the packet into one of tx_slots send buffers and queues a write
// request; nothing enters the kernel yet. The queued writes go in one io_uring_enter with
// the next re-arm of receive_batch(), at flush(), or from send() itself when tx_batch of
// them wait. send() never blocks: when every send buffer is queued or being written it
// returns -EAGAIN (counted in send_drops; the packet is dropped, as TunLink does when the
// device queue is full). A TUN write does not wait for anything, so the kernel completes
// each write inside the io_uring_enter that submits it.
//
// poll_fd() is the io_uring descriptor itself: poll(2) reports it readable while the
// completion ring holds completions, which is exactly "packets wait" (plus the odd write
// completion). next_event_time() returns 0 (due now) while sends wait to be submitted or
// packets were taken off the ring by send() and not yet handed over, so run loops that
// sleep until next_event_time() (Stack::wait, the API runtime) call receive_batch() at
// once instead of sleeping. Not the TUN descriptor: once the kernel has moved a packet
// into one of our buffers the device queue is empty and the TUN descriptor stays quiet
// while the completion waits. Not an eventfd: it would cost a read(2) per wake-up to clear.
// (IORING_SETUP_DEFER_TASKRUN is not used: with it the ring descriptor is not woken until
// someone calls io_uring_enter.)
//
// Threads: one thread at a time uses a link (as with every Link). The kernel runs a read's
// completion in the thread that queued it; reads queued by a thread that has exited are
// cancelled by the kernel and queued again by the next receive_batch() (rx_canceled).
//
// Without liburing at build time (XTCP_HAVE_LIBURING unset), or when the kernel refuses
// io_uring, available() says why and open() fails with that message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "stack/netif/link.h"
#include "stack/netif/tun_link.h"

namespace xtcp {

struct UringTunOptions {
  // Device name, multi-queue, MTU and transmit queue length, exactly as for TunLink (the
  // device is opened with TunLink::open).
  TunOptions tun;
  // Receive buffers, MTU-sized: how many packets the kernel can hand over between two
  // receive_batch() calls without queueing them in the device (whose queue, tx_queue_len
  // packets, comes on top). With queued reads, one read request per buffer.
  std::uint32_t rx_slots = 64;
  // One multishot read (IORING_OP_READ_MULTISHOT, Linux 6.7+) over a ring of rx_slots
  // provided buffers instead of rx_slots queued reads, when the kernel has it (otherwise
  // queued reads). Every queued read waits on the device's wait queue, so each packet
  // that finds the device empty wakes all of them (one finds the packet, the others go
  // back to waiting): about half a microsecond of CPU per queued read per packet on the
  // benchmark machine. The multishot read is one waiter, and its buffers go back without a
  // system call.
  bool rx_multishot = true;
  // Send buffers (MTU-sized). send() returns -EAGAIN when all of them are queued or being
  // written.
  std::uint32_t tx_slots = 256;
  // send() submits the queued writes itself once this many wait (1: every send at once, as
  // write(2) would; 0: never, only receive_batch() and flush() submit).
  std::uint32_t tx_batch = 64;
};

struct UringTunCounters {
  std::uint64_t packets_in = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t packets_out = 0;   // writes the kernel completed
  std::uint64_t bytes_out = 0;
  std::uint64_t read_errors = 0;   // a read completed with an error other than EAGAIN/EINTR/ECANCELED
  std::uint64_t rx_truncated = 0;  // a packet longer than the read buffers (MTU raised after open): dropped
  std::uint64_t rx_canceled = 0;   // reads the kernel cancelled (their thread exited): queued again
  std::uint64_t rx_no_buffers = 0; // multishot: every buffer was full, the read ended: armed again
  std::uint64_t send_drops = 0;    // send() found every send buffer in flight: -EAGAIN, packet dropped
  std::uint64_t send_errors = 0;   // a write completed with an error, or a packet larger than the MTU
  std::uint64_t rx_batches = 0;    // receive_batch() calls that handed over at least one packet
  std::uint64_t tx_batches = 0;    // io_uring_enter calls that submitted at least one write
  std::uint64_t syscalls = 0;      // system calls made by the link after open (all io_uring_enter)
};

class UringTunLink final : public Link {
 public:
  // True when this build has liburing and the kernel lets this process create an
  // io_uring; otherwise false with the reason in *why (may be null).
  static bool available(std::string* why);

  // Opens the device with TunLink::open (then clears O_NONBLOCK on its descriptor: io_uring
  // waits for packets itself) and sets up the ring, the buffers and the queued reads. On
  // failure returns nullptr with a message in *error and a negative errno in *error_code
  // (-ENOSYS when built without liburing); either may be null.
  static std::unique_ptr<UringTunLink> open(const UringTunOptions& options, std::string* error,
                                            int* error_code = nullptr);

  // Cancels the requests still queued, waits for them (bounded), and closes the device.
  ~UringTunLink() override;
  UringTunLink(const UringTunLink&) = delete;
  UringTunLink& operator=(const UringTunLink&) = delete;

  // Copies the packet into a send buffer and queues its write. 0 when queued; -EAGAIN when
  // every send buffer is in flight (send_drops); -EMSGSIZE when larger than the MTU.
  // Write errors show up later, in send_errors.
  int send(std::span<const std::byte> packet) override;

  // Hands over up to max_packets completed reads, in the order the kernel filled them,
  // re-queues their reads and submits everything queued (reads and writes) in one
  // io_uring_enter. No system call when nothing arrived and nothing waits to be submitted.
  // Returns the count, or a negative errno when a read failed and no packet was handed
  // over (the failure recurs on the next call if it persists).
  int receive_batch(int max_packets, PacketHandler on_packet) override;

  // Submits the queued writes (and reads to re-arm) in one io_uring_enter; no system call
  // when nothing waits. Stack::poll calls it after each receive round and after the
  // timers, the API runtime before it blocks or returns to the application.
  int flush() override;

  int poll_fd() const override;
  std::size_t mtu() const override;
  TimeNs next_event_time() const override;

  const std::string& name() const;
  const UringTunCounters& counters() const;
  std::uint32_t rx_slots() const;
  std::uint32_t tx_slots() const;
  // True when receiving with one multishot read (see UringTunOptions::rx_multishot).
  bool multishot() const;
  // Send buffers not free: queued or being written.
  std::uint32_t sends_in_flight() const;

  struct State;  // the ring and the buffers (uring_tun_link.cc)

 private:
  explicit UringTunLink(std::unique_ptr<State> state);
  std::unique_ptr<State> s_;
};

}  // namespace xtcp
