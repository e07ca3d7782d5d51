// Fair shares of the shared receive pool and the shared transmit cache, driven the way the
// engine drives them: every window offered is reported back as a promise (promised()), and
// bytes arrive only inside promises. The rules: never offer more than the chunks nobody
// was promised; a promise is never taken back; one connection's share shrinks as more
// connections hold data or a promise, never below min_share; a reserve keeps room for a
// new connection while hoarders hold the rest; in-window bytes are never refused while the
// pool's promises are backed; refused connections are queued in refusal order.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "stack/buffer/shared_rx_pool.h"
#include "stack/buffer/shared_tx_cache.h"

namespace xtcp {
namespace {

wire::ByteSpan bytes(const std::string& s) {
  return wire::ByteSpan(reinterpret_cast<const std::byte*>(s.data()), s.size());
}

// One connection as the engine sees it: its outstanding promise.
struct Peer {
  ConnId id;
  std::size_t promise = 0;
};

// The engine advertises what the pool offers now.
void advertise(SharedRxPool& pool, Peer& p) {
  const std::size_t w = pool.offer(p.id, p.promise);
  ASSERT_GE(w, p.promise) << "a promise is never taken back";
  pool.promised(p.id, p.promise, w);
  p.promise = w;
}

// The peer sends n bytes inside its window; returns what the pool took.
std::size_t arrive(SharedRxPool& pool, Peer& p, std::size_t n) {
  EXPECT_LE(n, p.promise) << "the test sends only inside the window";
  const std::size_t took = pool.append(p.id, bytes(std::string(n, 'x')));
  pool.promised(p.id, p.promise, p.promise - took);
  p.promise -= took;
  return took;
}

SharedRxPoolOptions options() {
  SharedRxPoolOptions o;
  o.chunk_size = 256;
  o.conn_window = 64 * 1024;
  o.low_water = 2048;
  o.min_share = 1536;
  o.quiet_window = 1536;
  return o;
}

TEST(FairRxPool, NeverOffersMoreThanTheChunksNobodyWasPromised) {
  SharedRxPool pool(64 * 256, options());  // 16 KiB, reserve 2 KiB, min_share 1536
  Peer a{0};
  Peer b{1};
  Peer c{2};
  advertise(pool, a);
  EXPECT_EQ(a.promise, 16384u - 2048u) << "the first takes the pool less the reserve";
  advertise(pool, b);
  EXPECT_EQ(b.promise, 1536u) << "the next one gets min_share from the reserve";
  EXPECT_LE(pool.committed(), pool.free_bytes()) << "both promises are backed";
  advertise(pool, c);
  EXPECT_EQ(c.promise, 1536u) << "512 backed, the rest overbooked up to min_share";
  EXPECT_GT(pool.committed(), pool.free_bytes());
  // Every peer fills its whole window, nobody reads: nothing inside a backed window is
  // refused; the overbooked part of c's is.
  std::size_t n = a.promise;
  EXPECT_EQ(arrive(pool, a, n), n);
  n = b.promise;
  EXPECT_EQ(arrive(pool, b, n), n);
  EXPECT_EQ(pool.stats().bytes_refused, 0u);
  EXPECT_EQ(arrive(pool, c, 1536), 512u);
  EXPECT_EQ(pool.stats().bytes_refused, 1024u);
  EXPECT_EQ(pool.front_refused(), c.id) << "queued for a window update";
  EXPECT_EQ(pool.free_bytes(), 0u);
  for (Peer* p : {&a, &b}) {
    advertise(pool, *p);
    EXPECT_EQ(p->promise, 0u) << "a full pool offers nothing more";
  }
  // The promise c still has is kept (never taken back), and committed as such.
  EXPECT_EQ(pool.offer(c.id, c.promise), 1024u);
  EXPECT_EQ(pool.committed(), 1024u);
}

TEST(FairRxPool, OldCodeOfferedEveryConnectionTheWholePool) {
  // The situation that used to drop in-window data: many connections are each offered a
  // window at once, then all of them send it. Windows beyond min_share are always backed;
  // only connections offered min_share or less while everything was promised overbook.
  SharedRxPool pool(64 * 1024, options());
  std::vector<Peer> peers;
  std::vector<bool> backed;
  for (ConnId c = 0; c < 16; ++c) {
    peers.push_back(Peer{c});
    advertise(pool, peers.back());
    backed.push_back(pool.committed() <= pool.free_bytes());
    if (!backed.back()) {
      EXPECT_LE(peers.back().promise, 1536u) << "overbooked, so at most min_share";
    }
  }
  EXPECT_GT(peers[0].promise, 1536u);
  EXPECT_TRUE(backed[0]);
  EXPECT_FALSE(backed[15]) << "sixteen 64 KiB windows cannot all be backed";
  for (ConnId c = 0; c < 16; ++c) {
    if (backed[c]) {
      const std::size_t n = peers[c].promise;
      EXPECT_EQ(arrive(pool, peers[c], n), n) << "connection " << c;
    }
  }
  EXPECT_EQ(pool.stats().bytes_refused, 0u);
}

TEST(FairRxPool, ShareShrinksWithConnectionsButNotBelowMinShare) {
  SharedRxPoolOptions o = options();
  o.low_water = 0;
  SharedRxPool pool(256 * 1024, o);
  EXPECT_EQ(pool.fair_share(0), 64u * 1024) << "alone: conn_window";
  std::vector<Peer> peers;
  for (ConnId c = 0; c < 8; ++c) {
    peers.push_back(Peer{c});
    advertise(pool, peers.back());
    arrive(pool, peers.back(), 100);  // holds a little
  }
  EXPECT_EQ(pool.fair_share(100), 256u * 1024 / 9) << "a newcomer's share among nine";
  for (ConnId c = 8; c < 400; ++c) {
    Peer p{c};
    advertise(pool, p);
    arrive(pool, p, std::min<std::size_t>(p.promise, 10));
  }
  EXPECT_EQ(pool.fair_share(1000), 1536u) << "never below min_share";
  for (const Peer& p : peers) {
    EXPECT_LE(pool.held(p.id) + p.promise, 64u * 1024);
  }
}

TEST(FairRxPool, ReserveLeavesRoomForANewConnectionWhileHoardersHoldThePool) {
  SharedRxPoolOptions o = options();
  o.conn_window = 16 * 1024;
  SharedRxPool pool(64 * 1024, o);
  // Four hoarders send whatever they are offered, over and over; nobody reads.
  std::vector<Peer> hoarders;
  for (ConnId c = 0; c < 4; ++c) {
    hoarders.push_back(Peer{c});
  }
  for (int round = 0; round < 20; ++round) {
    for (Peer& h : hoarders) {
      advertise(pool, h);
      arrive(pool, h, h.promise);
    }
  }
  EXPECT_EQ(pool.stats().bytes_refused, 0u);
  EXPECT_EQ(pool.free_bytes(), 2048u) << "the hoarders hold all but the reserve";
  for (Peer& h : hoarders) {
    advertise(pool, h);
    EXPECT_EQ(h.promise, 0u) << "a hoarder gets nothing from the reserve";
  }
  // A new connection still gets a full-sized segment's room, and it all fits.
  Peer fresh{1000};
  advertise(pool, fresh);
  EXPECT_GE(fresh.promise, 1460u);
  const std::size_t n = fresh.promise;
  EXPECT_EQ(arrive(pool, fresh, n), n);
  EXPECT_EQ(pool.stats().bytes_refused, 0u);
}

// A hoarder whose answers are stuck (its client's window is closed) may hold nothing at a
// moment (its last request was echoed into the transmit cache), but it is not quiet: it
// gets no window out of the reserve, which stays for new connections. Without the busy
// test it would take a quiet window from the reserve each time, until the reserve was
// the hoarders'.
TEST(FairRxPool, ABusyConnectionHoldingNothingGetsNothingFromTheReserve) {
  for (const bool with_busy_test : {true, false}) {
    SCOPED_TRACE(with_busy_test ? "busy test set" : "no busy test");
    SharedRxPoolOptions o = options();
    o.conn_window = 16 * 1024;
    SharedRxPool pool(64 * 1024, o);
    if (with_busy_test) {
      pool.set_busy_test([](ConnId c) { return c < 1000; });  // the hoarders' answers are stuck
    }
    std::vector<Peer> hoarders;
    for (ConnId c = 0; c < 4; ++c) {
      hoarders.push_back(Peer{c});
    }
    for (int round = 0; round < 20; ++round) {
      for (Peer& h : hoarders) {
        advertise(pool, h);
        arrive(pool, h, h.promise);
      }
    }
    ASSERT_EQ(pool.free_bytes(), 2048u);
    // Hoarder 0's requests were echoed into the cache: it holds nothing now; two more
    // hoarders take the room it left.
    pool.pop_front(0, pool.held(0));
    hoarders.push_back(Peer{4});
    hoarders.push_back(Peer{5});
    for (int round = 0; round < 20; ++round) {
      for (std::size_t i = 4; i < hoarders.size(); ++i) {
        advertise(pool, hoarders[i]);
        arrive(pool, hoarders[i], hoarders[i].promise);
      }
    }
    if (!with_busy_test) {
      // Holding nothing counted as quiet: hoarders drew their windows from the reserve.
      EXPECT_LT(pool.free_bytes(), 2048u) << "the hoarders took part of the reserve";
      continue;
    }
    ASSERT_EQ(pool.free_bytes(), 2048u) << "only the reserve is free";
    advertise(pool, hoarders[0]);
    EXPECT_EQ(hoarders[0].promise, 0u) << "a busy hoarder gets nothing from the reserve";
    Peer fresh{1000};
    advertise(pool, fresh);
    EXPECT_GE(fresh.promise, 1460u) << "the reserve is still there for a new connection";
    const std::size_t n = fresh.promise;
    EXPECT_EQ(arrive(pool, fresh, n), n);
    EXPECT_EQ(pool.stats().bytes_refused, 0u);
  }
}

TEST(FairRxPool, APromiseIsNeverTakenBack) {
  SharedRxPool pool(16 * 1024, options());
  Peer a{1};
  advertise(pool, a);
  const std::size_t first = a.promise;
  Peer b{2};
  advertise(pool, b);
  arrive(pool, b, b.promise);
  // b holding data shrinks a's fair share, but a's window stays.
  EXPECT_EQ(pool.offer(a.id, a.promise), first);
  EXPECT_EQ(arrive(pool, a, first), first);
}

TEST(FairRxPool, RefusedConnectionsAreQueuedInRefusalOrder) {
  SharedRxPool pool(16 * 256, options());  // 4 KiB, reserve 2 KiB
  Peer big{0};
  advertise(pool, big);
  EXPECT_EQ(arrive(pool, big, big.promise), 2048u);
  Peer mid{1};
  advertise(pool, mid);
  EXPECT_EQ(arrive(pool, mid, mid.promise), 1536u);
  Peer last{2};
  advertise(pool, last);
  EXPECT_EQ(arrive(pool, last, last.promise), 512u);
  EXPECT_EQ(pool.free_bytes(), 0u);
  // A quiet connection: no chunk is free, so nothing is offered, not even overbooked.
  Peer q1{7};
  advertise(pool, q1);
  EXPECT_EQ(q1.promise, 0u);
  // Two chunks free up: q2 is promised both (backed); q3 and q4, holding nothing, are
  // offered the same two chunks overbooked.
  EXPECT_EQ(pool.pop_front(big.id, 512), 512u);
  Peer q2{8};
  Peer q3{9};
  Peer q4{10};
  advertise(pool, q2);
  advertise(pool, q3);
  advertise(pool, q4);
  EXPECT_EQ(q2.promise, 512u) << "backed by the two free chunks";
  EXPECT_EQ(q3.promise, 512u) << "overbooked: what is physically free";
  EXPECT_EQ(q4.promise, 512u) << "overbooked: what is physically free";
  EXPECT_EQ(arrive(pool, q2, q2.promise), 512u) << "the backed promise is kept";
  EXPECT_EQ(pool.stats().bytes_refused, 0u);
  EXPECT_EQ(arrive(pool, q4, 200), 0u);  // the overbooked ones are refused, q4 first
  EXPECT_EQ(arrive(pool, q3, 200), 0u);
  EXPECT_EQ(pool.front_refused(), q4.id);
  pool.pop_refused();
  EXPECT_EQ(pool.front_refused(), q3.id);
  pool.pop_refused();
  EXPECT_FALSE(pool.has_refused());
}

TEST(FairTxCache, HoardersCannotTakeTheWholeCache) {
  // 64 KiB in 128-byte chunks; at most 1 KiB each (the default's 1/64 of the cache);
  // reserve 4 KiB; min share 512.
  SharedTxCache tx(64 * 1024, 128, 1024, 4096, 512);
  const std::string answer(300, 'a');
  // 64 connections whose clients never acknowledge keep answering until refused.
  for (ConnId c = 0; c < 64; ++c) {
    while (tx.append(c, bytes(answer)) > 0) {
    }
  }
  for (ConnId c = 0; c < 64; ++c) {
    EXPECT_LE(tx.queued(c), 1024u) << "connection " << c;
  }
  EXPECT_LE(tx.used(), 64u * 1024 - 4096 + 4 * 512) << "at most min_share each from the reserve";
  // A quiet connection's answer (up to min_share) still fits.
  EXPECT_EQ(tx.append(100, bytes(std::string(1500, 'q'))), 512u);
  EXPECT_EQ(tx.append(100, bytes(std::string(100, 'q'))), 0u) << "now it holds an answer";
}

TEST(FairTxCache, ShareNeverBelowMinShare) {
  SharedTxCache tx(1u << 20, 128, 1u << 20, 1024, 4096);
  for (ConnId c = 0; c < 1000; ++c) {
    tx.append(c, bytes(std::string(200, 'x')));
  }
  EXPECT_EQ(tx.share(5000), 4096u);
  EXPECT_EQ(tx.free_space(5), 4096u - 200u);
}

}  // namespace
}  // namespace xtcp
