// Shared receive pool, shared transmit cache and their chunk queues: FIFO order across chunk
// boundaries, offsets, partial pops, O(1) release, space accounting, the per-connection
// window, throttling below low water, and the pool dispatcher's routing.
#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <random>
#include <string>
#include <vector>

#include "stack/buffer/chunk_queues.h"
#include "stack/buffer/pool_rx_dispatch.h"
#include "stack/buffer/shared_rx_pool.h"
#include "stack/buffer/shared_tx_cache.h"

namespace xtcp {
namespace {

wire::ByteSpan bytes(const std::string& s) {
  return wire::ByteSpan(reinterpret_cast<const std::byte*>(s.data()), s.size());
}

std::string peek_str(const ChunkQueues& q, ConnId c, std::size_t off, std::size_t n) {
  std::string out(n, '\0');
  const std::size_t got = q.peek(c, off, wire::MutableByteSpan(reinterpret_cast<std::byte*>(out.data()), n));
  out.resize(got);
  return out;
}

std::string pattern(std::size_t n, int seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>('a' + (i * 7 + static_cast<std::size_t>(seed)) % 26);
  }
  return s;
}

TEST(ChunkQueues, AppendPeekPopAcrossChunks) {
  ChunkQueues q(16 * 8, 16);
  EXPECT_EQ(q.capacity(), 128u);
  const std::string a = pattern(40, 1);
  EXPECT_EQ(q.append(3, bytes(a)), 40u);
  EXPECT_EQ(q.bytes(3), 40u);
  EXPECT_EQ(q.free_chunks(), 5u);  // 40 bytes: three 16-byte chunks
  EXPECT_EQ(q.tail_room(3), 8u);
  EXPECT_EQ(peek_str(q, 3, 0, 40), a);
  EXPECT_EQ(peek_str(q, 3, 15, 3), a.substr(15, 3));
  EXPECT_EQ(peek_str(q, 3, 30, 100), a.substr(30));
  EXPECT_EQ(peek_str(q, 3, 40, 1), "");
  EXPECT_EQ(q.pop_front(3, 17), 17u);  // frees the first chunk, lands inside the second
  EXPECT_EQ(q.free_chunks(), 6u);
  EXPECT_EQ(peek_str(q, 3, 0, 23), a.substr(17));
  const std::string b = pattern(30, 2);
  EXPECT_EQ(q.append(3, bytes(b)), 30u);
  EXPECT_EQ(peek_str(q, 3, 0, 53), a.substr(17) + b);
  EXPECT_EQ(q.pop_front(3, 1000), 53u);
  EXPECT_EQ(q.bytes(3), 0u);
  EXPECT_EQ(q.free_chunks(), 8u);
  EXPECT_EQ(q.used(), 0u);
}

TEST(ChunkQueues, FullSlabRefusesAndReleaseReturnsEverything) {
  ChunkQueues q(64, 16);
  EXPECT_EQ(q.append(1, bytes(pattern(40, 1))), 40u);
  EXPECT_EQ(q.append(2, bytes(pattern(40, 2))), 16u) << "one chunk left";
  EXPECT_EQ(q.free_chunks(), 0u);
  EXPECT_EQ(q.append(1, bytes(pattern(40, 3))), 8u) << "conn 1's tail room only";
  EXPECT_EQ(q.append(2, bytes("x")), 0u);
  q.release(1);
  EXPECT_EQ(q.free_chunks(), 3u);
  EXPECT_EQ(q.used(), 16u);
  EXPECT_EQ(q.append(2, bytes(pattern(48, 4))), 48u);
  EXPECT_EQ(q.used(), 64u);
  q.release(2);
  q.release(2);  // twice is harmless
  q.release(77);  // never seen
  EXPECT_EQ(q.free_chunks(), 4u);
  EXPECT_EQ(q.used(), 0u);
}

TEST(ChunkQueues, LimitAndZeroLength) {
  ChunkQueues q(256, 32);
  EXPECT_EQ(q.append(0, bytes(pattern(100, 1)), 10), 10u);
  EXPECT_EQ(q.append(0, wire::ByteSpan{}), 0u);
  EXPECT_EQ(q.pop_front(0, 0), 0u);
  EXPECT_EQ(q.pop_front(9, 5), 0u);
  EXPECT_EQ(q.bytes(0), 10u);
  EXPECT_THROW(ChunkQueues(100, 0), std::invalid_argument);
}

// Many connections interleaving appends and pops against a reference model.
TEST(ChunkQueues, RandomizedAgainstModel) {
  ChunkQueues q(64 * 40, 64);
  std::vector<std::string> model(12);
  std::mt19937 rng(42);
  for (int step = 0; step < 20000; ++step) {
    const auto c = static_cast<ConnId>(rng() % model.size());
    const int op = static_cast<int>(rng() % 10);
    if (op < 5) {
      const std::string s = pattern(rng() % 150, step);
      const std::size_t room = q.appendable(c);
      const std::size_t took = q.append(c, bytes(s));
      ASSERT_EQ(took, std::min(room, s.size()));
      model[c] += s.substr(0, took);
    } else if (op < 9) {
      const std::size_t n = rng() % 120;
      const std::size_t popped = q.pop_front(c, n);
      ASSERT_EQ(popped, std::min(n, model[c].size()));
      model[c].erase(0, popped);
    } else {
      q.release(c);
      model[c].clear();
    }
    ASSERT_EQ(q.bytes(c), model[c].size());
    if (!model[c].empty()) {
      const std::size_t off = rng() % model[c].size();
      ASSERT_EQ(peek_str(q, c, off, 77), model[c].substr(off, 77));
    }
    std::size_t total = 0;
    for (const auto& m : model) {
      total += m.size();
    }
    ASSERT_EQ(q.used(), total);
  }
}

TEST(SharedRxPool, WindowIsBoundedPerConnectionAndByThePool) {
  SharedRxPoolOptions o;
  o.chunk_size = 256;
  o.conn_window = 1024;
  o.low_water = 0;
  SharedRxPool pool(256 * 6, o);
  EXPECT_EQ(pool.size(), 1536u);
  EXPECT_EQ(pool.capacity(0), 1024u);
  EXPECT_EQ(pool.free_space(0), 1024u);
  EXPECT_EQ(pool.append(0, bytes(pattern(2000, 1))), 1024u) << "the connection's window";
  EXPECT_EQ(pool.free_space(0), 0u);
  EXPECT_EQ(pool.held(0), 1024u);
  EXPECT_EQ(pool.free_space(1), 512u) << "two chunks left in the pool";
  EXPECT_EQ(pool.append(1, bytes(pattern(600, 2))), 512u);
  EXPECT_EQ(pool.stats().bytes_refused, 976u + 88u);
  EXPECT_EQ(pool.pop_front(0, 300), 300u);
  EXPECT_EQ(pool.free_bytes(), 256u);
  EXPECT_EQ(pool.free_space(0), 256u) << "the freed chunk (its tail chunk is full)";
  pool.release(1);
  EXPECT_EQ(pool.used(), 724u);
}

TEST(SharedRxPool, ThrottlesConnectionsHoldingDataBelowLowWater) {
  SharedRxPoolOptions o;
  o.chunk_size = 100;
  o.conn_window = 10000;
  o.low_water = 300;
  o.min_share = 200;
  SharedRxPool pool(1000, o);
  EXPECT_EQ(pool.append(1, bytes(pattern(650, 1))), 650u);  // 7 chunks: 300 free = low water
  EXPECT_FALSE(pool.throttled());
  EXPECT_EQ(pool.append(1, bytes(pattern(100, 2))), 100u);  // 8th chunk: 200 free < 300
  EXPECT_TRUE(pool.throttled());
  EXPECT_EQ(pool.free_space(1), 0u) << "it holds more than its share (the pool less the reserve)";
  EXPECT_EQ(pool.free_space(2), 200u) << "an idle connection's request still gets in";
  EXPECT_EQ(pool.append(2, bytes(pattern(80, 4))), 80u);
  EXPECT_EQ(pool.free_space(2), 0u) << "holding data: nothing from the reserve";
  EXPECT_EQ(pool.pop_front(1, 750), 750u);
  EXPECT_FALSE(pool.throttled());
  EXPECT_GT(pool.free_space(1), 0u);
}

TEST(SharedTxCache, OffsetsConsumeAndPerConnectionShare) {
  SharedTxCache tx(1024, 64, 300);
  EXPECT_EQ(tx.append(5, bytes(pattern(500, 1))), 300u) << "the connection's share";
  EXPECT_EQ(tx.free_space(5), 0u);
  EXPECT_EQ(tx.stats().refused, 200u);
  const std::string a = pattern(500, 1).substr(0, 300);
  std::string out(100, '\0');
  auto dst = wire::MutableByteSpan(reinterpret_cast<std::byte*>(out.data()), out.size());
  EXPECT_EQ(tx.copy(5, 130, dst), 100u);
  EXPECT_EQ(out, a.substr(130, 100));
  tx.consume(5, 130);  // the client ACKed 130 bytes: they are purged
  EXPECT_EQ(tx.queued(5), 170u);
  EXPECT_EQ(tx.stats().bytes_purged, 130u);
  EXPECT_EQ(tx.copy(5, 0, dst), 100u);
  EXPECT_EQ(out, a.substr(130, 100));
  EXPECT_EQ(tx.free_space(5), 130u);
  tx.release(5);  // the connection went down: the rest is purged at once
  EXPECT_EQ(tx.used(), 0u);
  EXPECT_EQ(tx.stats().bytes_released, 170u);
  EXPECT_EQ(tx.free_space(6), 300u);
}

TEST(PoolRxDispatch, RoutesConnectionsToTheirPools) {
  SharedRxPool a(4096);
  SharedRxPool b(2048);
  PoolRxDispatch d(64 * 1024);
  const int sa = d.add_pool(&a);
  const int sb = d.add_pool(&b);
  // The resolver stands in for "the pool of the group listening on the local port".
  d.set_resolver([&](ConnId c) { return c < 10 ? sa : (c < 20 ? sb : -1); });
  EXPECT_EQ(d.capacity(0), 64u * 1024) << "start-up question, no resolving";
  EXPECT_EQ(d.append(3, bytes("hello")), 5u);
  EXPECT_EQ(d.append(13, bytes("world!")), 6u);
  EXPECT_EQ(a.held(3), 5u);
  EXPECT_EQ(b.held(13), 6u);
  EXPECT_EQ(d.held(3), 5u);
  EXPECT_EQ(d.capacity(13), 1536u) << "its fair share of pool b (min_share)";
  EXPECT_EQ(d.append(25, bytes("lost")), 0u) << "no pool: nothing stored";
  EXPECT_EQ(d.free_space(25), 0u);
  d.bind(25, sb);  // an active open: mapped explicitly
  EXPECT_EQ(d.append(25, bytes("mine")), 4u);
  EXPECT_EQ(b.held(25), 4u);
  d.release(3);
  EXPECT_EQ(a.held(3), 0u);
  // The application closed 13: later bytes are discarded, not stored.
  d.detach(13);
  EXPECT_EQ(b.held(13), 0u);
  EXPECT_EQ(d.append(13, bytes("late")), 4u);
  EXPECT_EQ(b.held(13), 0u);
  EXPECT_EQ(d.discarded(), 4u);
  d.release(13);  // the engine let go: the id is fresh for the next connection
  EXPECT_EQ(d.append(13, bytes("new")), 3u);
  EXPECT_EQ(b.held(13), 3u);
  d.remove_pool(sb);
  EXPECT_EQ(d.append(13, bytes("x")), 0u) << "a removed pool takes nothing";
  EXPECT_EQ(d.held(13), 0u);
}

}  // namespace
}  // namespace xtcp
