// ChunkQueues' per-connection cost: an empty queue is a zero index entry, records exist only
// for queues holding bytes and are recycled, the index can be reserved for a million ids
// without becoming resident, memory_bytes() counts what is really used, and the whole
// interface agrees with a std::deque per connection under random operations.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <map>
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

// Resident set of this process (/proc/self/statm), 0 if unknown.
std::size_t resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) {
    return 0;
  }
  unsigned long size = 0;
  unsigned long resident = 0;
  const int got = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return got == 2 ? resident * ZeroPages::page_size() : 0;
}

TEST(ChunkQueuesMemory, EmptyQueuesHoldNoRecord) {
  ChunkQueues q(64 * 16, 64);
  EXPECT_EQ(q.queues_in_use(), 0u);
  EXPECT_EQ(q.queue_records(), 0u);
  // Queries, empty appends, pops and releases of unknown ids take nothing.
  EXPECT_EQ(q.bytes(5), 0u);
  EXPECT_EQ(q.tail_room(5), 0u);
  EXPECT_EQ(q.append(5, wire::ByteSpan{}), 0u);
  EXPECT_EQ(q.append(5, bytes("abc"), 0), 0u);
  EXPECT_EQ(q.pop_front(5, 10), 0u);
  q.release(5);
  EXPECT_EQ(q.queue_records(), 0u);
  EXPECT_EQ(q.index_size(), 0u) << "nothing stored: the index was not even mapped";
  EXPECT_EQ(q.append(5, bytes("abc")), 3u);
  EXPECT_EQ(q.queues_in_use(), 1u);
  EXPECT_EQ(q.queue_records(), 1u);
  EXPECT_EQ(q.pop_front(5, 2), 2u);
  EXPECT_EQ(q.queues_in_use(), 1u) << "still one byte";
  EXPECT_EQ(q.pop_front(5, 2), 1u);
  EXPECT_EQ(q.queues_in_use(), 0u) << "popped to zero: the record went back";
  EXPECT_EQ(q.bytes(5), 0u);
  EXPECT_EQ(q.tail_room(5), 0u);
  EXPECT_EQ(peek_str(q, 5, 0, 10), "");
}

// Thousands of connections each append and drain (by pop_front or release) while at most a
// few dozen hold bytes at once: no record is left behind and the pool never holds more
// records than queues were ever non-empty together.
TEST(ChunkQueuesMemory, RecordsAreRecycled) {
  ChunkQueues q(64 * 4000, 64);
  std::mt19937 rng(7);
  std::deque<ConnId> holding;
  std::size_t most_at_once = 0;
  for (ConnId c = 0; c < 20000; ++c) {
    const std::string s = pattern(1 + rng() % 200, static_cast<int>(c));
    ASSERT_EQ(q.append(c, bytes(s)), s.size());
    holding.push_back(c);
    most_at_once = std::max(most_at_once, holding.size());
    ASSERT_EQ(q.queues_in_use(), holding.size());
    ASSERT_LE(q.queue_records(), most_at_once);
    const std::size_t keep = 1 + rng() % 40;
    while (holding.size() > keep) {
      const ConnId d = holding.front();
      holding.pop_front();
      if (d % 3 == 0) {
        q.release(d);
      } else {
        // Drain in two steps: a partial pop keeps the record, the last one returns it.
        const std::size_t n = q.bytes(d);
        ASSERT_EQ(q.pop_front(d, n / 2), n / 2);
        ASSERT_EQ(q.pop_front(d, n), n - n / 2);
      }
      ASSERT_EQ(q.bytes(d), 0u);
    }
  }
  EXPECT_LE(most_at_once, 41u);
  EXPECT_LE(q.queue_records(), most_at_once);
  for (const ConnId d : holding) {
    q.release(d);
  }
  EXPECT_EQ(q.queues_in_use(), 0u);
  EXPECT_EQ(q.used(), 0u);
  EXPECT_EQ(q.free_chunks(), 4000u);
  // The same ids again reuse the same records.
  const std::size_t records = q.queue_records();
  for (ConnId c = 0; c < 20000; ++c) {
    ASSERT_EQ(q.append(c, bytes("x")), 1u);
    ASSERT_EQ(q.pop_front(c, 1), 1u);
  }
  EXPECT_EQ(q.queue_records(), records);
  EXPECT_EQ(q.queues_in_use(), 0u);
}

TEST(ChunkQueuesMemory, ReleaseOfAConnectionWithBytes) {
  ChunkQueues q(32 * 10, 32);
  const std::string a = pattern(100, 1);
  const std::string b = pattern(50, 2);
  ASSERT_EQ(q.append(1, bytes(a)), 100u);  // four chunks
  ASSERT_EQ(q.append(2, bytes(b)), 50u);   // two chunks
  ASSERT_EQ(q.pop_front(1, 40), 40u);      // head inside the second chunk: three chunks left
  EXPECT_EQ(q.free_chunks(), 5u);
  EXPECT_EQ(q.queues_in_use(), 2u);
  q.release(1);
  EXPECT_EQ(q.bytes(1), 0u);
  EXPECT_EQ(q.tail_room(1), 0u);
  EXPECT_EQ(peek_str(q, 1, 0, 10), "");
  EXPECT_EQ(q.pop_front(1, 10), 0u);
  EXPECT_EQ(q.free_chunks(), 8u);
  EXPECT_EQ(q.used(), 50u);
  EXPECT_EQ(q.queues_in_use(), 1u);
  EXPECT_EQ(peek_str(q, 2, 0, 50), b) << "the other connection is untouched";
  // The released id starts afresh, on a recycled record.
  ASSERT_EQ(q.append(1, bytes(a)), 100u);
  EXPECT_EQ(peek_str(q, 1, 0, 100), a);
  EXPECT_EQ(q.tail_room(1), 28u) << "a fresh queue starts at the head of its first chunk";
  EXPECT_EQ(q.queue_records(), 2u);
  q.release(2);
  q.release(1);
  EXPECT_EQ(q.free_chunks(), 10u);
  EXPECT_EQ(q.used(), 0u);
  EXPECT_EQ(q.queues_in_use(), 0u);
}

TEST(ChunkQueuesMemory, ReserveConnectionsThenUseTheHighestId) {
  constexpr std::size_t kIds = 1'000'000;
  ChunkQueues q(64 * 64, 64);
  const std::size_t m0 = q.memory_bytes();
  q.reserve_connections(kIds);
  const std::size_t mapped = q.index_size();
  EXPECT_GE(mapped, kIds);
  EXPECT_EQ(q.memory_bytes(), m0) << "a reserved index costs nothing until ids are used";
  const auto top = static_cast<ConnId>(kIds - 1);
  const std::string s = pattern(150, 3);
  ASSERT_EQ(q.append(top, bytes(s)), 150u);
  EXPECT_EQ(q.index_size(), mapped) << "no growth";
  EXPECT_EQ(q.bytes(top), 150u);
  EXPECT_EQ(peek_str(q, top, 70, 100), s.substr(70));
  EXPECT_EQ(q.bytes(top - 1), 0u);
  EXPECT_EQ(q.bytes(0), 0u);
  EXPECT_EQ(q.memory_bytes() - m0, 2 * ZeroPages::page_size() + 3 * 64)
      << "one index page (the top id's), one record page, and the three chunks used";
  EXPECT_EQ(q.pop_front(top, 150), 150u);
  EXPECT_EQ(q.queues_in_use(), 0u);
  // Reserving less than what is mapped changes nothing; ids past the reservation still work.
  q.reserve_connections(10);
  EXPECT_GE(q.index_size(), kIds);
  ASSERT_EQ(q.append(static_cast<ConnId>(3 * kIds), bytes(s)), 150u);
  EXPECT_GT(q.index_size(), 3 * kIds);
  EXPECT_EQ(peek_str(q, static_cast<ConnId>(3 * kIds), 0, 150), s);
}

TEST(ChunkQueuesMemory, ReservedIndexIsNotResident) {
  constexpr std::size_t kIds = 16u << 20;  // 64 MiB of index
  const std::size_t rss0 = resident_bytes();
  if (rss0 == 0) {
    GTEST_SKIP() << "no /proc/self/statm";
  }
  ChunkQueues q(256 * 16, 256);
  q.reserve_connections(kIds);
  for (ConnId c = 0; c < kIds; c += 1 << 16) {  // reads only: every queue is empty
    ASSERT_EQ(q.bytes(c), 0u);
  }
  ASSERT_EQ(q.append(static_cast<ConnId>(kIds - 1), bytes("x")), 1u);
  const std::size_t rss1 = resident_bytes();
  EXPECT_LT(rss1 > rss0 ? rss1 - rss0 : 0, std::size_t{4} << 20)
      << "reserving 64 MiB of index made it resident";
}

// 100,000 connections that held a byte and are empty again cost their index entry alone;
// holding one byte each adds a 16-byte record.
TEST(ChunkQueuesMemory, EmptyVersusHoldingOneByte) {
  constexpr std::size_t kConns = 100'000;
  ChunkQueues q(64 * kConns, 64);
  const std::size_t m0 = q.memory_bytes();
  for (ConnId c = 0; c < kConns; ++c) {
    ASSERT_EQ(q.append(c, bytes("x")), 1u);
    ASSERT_EQ(q.pop_front(c, 1), 1u);
  }
  const std::size_t m_empty = q.memory_bytes();
  const double per_empty = static_cast<double>(m_empty - m0) / kConns;
  EXPECT_GE(per_empty, 4.0);
  EXPECT_LE(per_empty, 6.0);
  // Ids that never held bytes cost nothing, whatever is asked about them.
  for (ConnId c = kConns; c < 3 * kConns; ++c) {
    ASSERT_EQ(q.bytes(c), 0u);
    q.release(c);
    ASSERT_EQ(q.pop_front(c, 1), 0u);
  }
  EXPECT_EQ(q.memory_bytes(), m_empty);

  for (ConnId c = 0; c < kConns; ++c) {
    ASSERT_EQ(q.append(c, bytes("y")), 1u);
  }
  const std::size_t m_holding = q.memory_bytes();
  const double per_holding = static_cast<double>(m_holding - m0) / kConns;
  EXPECT_GE(per_holding, 20.0 + 64);  // 4-byte index entry + 16-byte record + its chunk
  EXPECT_LE(per_holding, 22.0 + 64);
  EXPECT_EQ(q.queues_in_use(), kConns);
  for (ConnId c = 0; c < kConns; ++c) {
    q.release(c);
  }
  EXPECT_EQ(q.memory_bytes(), m_holding) << "what was made resident stays counted";
}

// Random appends (with and without a limit), peeks at any offset, pops and releases over
// sparse connection ids, compared with a std::deque<std::byte> per connection: every
// returned count and byte, bytes(), tail_room(), appendable(), used(), free_chunks().
TEST(ChunkQueuesMemory, RandomizedAgainstDequeModel) {
  constexpr std::size_t kChunk = 48;
  constexpr std::size_t kChunks = 300;
  ChunkQueues q(kChunk * kChunks + 17, kChunk);  // the odd bytes are rounded away
  ASSERT_EQ(q.capacity(), kChunk * kChunks);
  struct Model {
    std::deque<std::byte> data;
    std::size_t head_off = 0;  // where the head chunk's first live byte is
  };
  std::vector<ConnId> ids;
  for (ConnId i = 0; i < 40; ++i) {
    ids.push_back(i);
  }
  for (ConnId i : {1000u, 4095u, 4096u, 65535u, 1000000u, (1u << 24) + 3}) {
    ids.push_back(i);
  }
  std::map<ConnId, Model> model;
  std::mt19937 rng(20240611);
  std::size_t most_nonempty = 0;
  std::size_t cut_short = 0;  // appends the full slab cut short
  std::vector<std::byte> src(600);
  std::vector<std::byte> dst(700);
  for (int step = 0; step < 60000; ++step) {
    const ConnId c = ids[rng() % ids.size()];
    Model& m = model[c];
    const unsigned op = rng() % 16;
    if (op < 7) {  // append
      const std::size_t len = rng() % src.size();
      for (std::size_t i = 0; i < len; ++i) {
        src[i] = static_cast<std::byte>(rng());
      }
      const std::size_t limit = rng() % 4 == 0 ? rng() % 300 : SIZE_MAX;
      const std::size_t expect = std::min({len, limit, q.appendable(c)});
      const std::size_t took = q.append(c, wire::ByteSpan(src.data(), len), limit);
      ASSERT_EQ(took, expect) << "step " << step;
      cut_short += took < std::min(len, limit) ? 1 : 0;
      if (m.data.empty()) {
        m.head_off = 0;
      }
      m.data.insert(m.data.end(), src.begin(), src.begin() + static_cast<std::ptrdiff_t>(took));
    } else if (op < 11) {  // peek at any offset, also past the end
      const std::size_t off = rng() % (m.data.size() + 20);
      const std::size_t len = rng() % dst.size();
      const std::size_t got = q.peek(c, off, wire::MutableByteSpan(dst.data(), len));
      const std::size_t expect = off >= m.data.size() ? 0 : std::min(len, m.data.size() - off);
      ASSERT_EQ(got, expect) << "step " << step;
      for (std::size_t i = 0; i < got; ++i) {
        ASSERT_EQ(dst[i], m.data[off + i]) << "step " << step << " byte " << i;
      }
    } else if (op < 15) {  // pop_front
      const std::size_t n = rng() % 2 == 0 ? rng() % 100 : rng() % (m.data.size() + 10);
      const std::size_t popped = q.pop_front(c, n);
      ASSERT_EQ(popped, std::min(n, m.data.size())) << "step " << step;
      m.data.erase(m.data.begin(), m.data.begin() + static_cast<std::ptrdiff_t>(popped));
      m.head_off = (m.head_off + popped) % kChunk;
    } else {
      q.release(c);
      m.data.clear();
    }

    ASSERT_EQ(q.bytes(c), m.data.size()) << "step " << step;
    std::size_t used = 0;
    std::size_t chunks = 0;
    std::size_t nonempty = 0;
    for (const auto& [id, mm] : model) {
      const std::size_t size = mm.data.size();
      used += size;
      if (size > 0) {
        ++nonempty;
        chunks += (mm.head_off + size + kChunk - 1) / kChunk;
        ASSERT_EQ(q.tail_room(id), kChunk - ((mm.head_off + size - 1) % kChunk + 1)) << "step " << step;
      } else {
        ASSERT_EQ(q.tail_room(id), 0u);
      }
      ASSERT_EQ(q.appendable(id), q.tail_room(id) + q.free_chunk_bytes());
    }
    most_nonempty = std::max(most_nonempty, nonempty);
    ASSERT_EQ(q.used(), used) << "step " << step;
    ASSERT_EQ(q.free_chunks(), kChunks - chunks) << "step " << step;
    ASSERT_EQ(q.queues_in_use(), nonempty) << "step " << step;
    ASSERT_LE(q.queue_records(), most_nonempty) << "step " << step;
  }
  EXPECT_GT(cut_short, 100u) << "the slab was meant to run full now and then";
  for (const ConnId c : ids) {
    q.release(c);
  }
  EXPECT_EQ(q.used(), 0u);
  EXPECT_EQ(q.free_chunks(), kChunks);
  EXPECT_EQ(q.queues_in_use(), 0u);
}

TEST(SharedStoresMemory, ReserveConnectionsPassesThrough) {
  SharedRxPool rx(64 * 1024);
  SharedTxCache tx(64 * 1024, 128);
  const std::size_t rx0 = rx.memory_bytes();
  const std::size_t tx0 = tx.memory_bytes();
  rx.reserve_connections(1 << 20);
  tx.reserve_connections(1 << 20);
  EXPECT_EQ(rx.memory_bytes(), rx0);
  EXPECT_EQ(tx.memory_bytes(), tx0);
  const ConnId top = (1 << 20) - 1;
  EXPECT_EQ(rx.append(top, bytes("request")), 7u);
  EXPECT_EQ(tx.append(top, bytes("answer")), 6u);
  EXPECT_EQ(rx.held(top), 7u);
  EXPECT_EQ(tx.queued(top), 6u);
  // One index page and one record page each, and the chunk the bytes occupy.
  EXPECT_EQ(rx.memory_bytes() - rx0, 2 * ZeroPages::page_size() + 256);
  EXPECT_EQ(tx.memory_bytes() - tx0, 2 * ZeroPages::page_size() + 128);
}

TEST(PoolRxDispatchMemory, ReservedMapCostsOnlyThePagesOfMappedIds) {
  SharedRxPool a(4096);
  SharedRxPool b(4096);
  PoolRxDispatch d(64 * 1024);
  const int sa = d.add_pool(&a);
  d.reserve_connections(1 << 20);  // also reserves a's index; b's when it is added
  const int sb = d.add_pool(&b);
  const std::size_t a0 = a.memory_bytes();
  const std::size_t b0 = b.memory_bytes();
  EXPECT_EQ(d.memory_bytes(), 0u);
  d.set_resolver([&](ConnId c) { return c % 2 == 0 ? sa : sb; });
  // Questions about unmapped ids that no pool claims (removed pool, no resolver) write
  // nothing; release of an unmapped id neither.
  const ConnId top = (1 << 20) - 1;
  d.release(top);
  d.release(5u << 20);
  EXPECT_EQ(d.capacity(top), 64u * 1024);
  EXPECT_EQ(d.memory_bytes(), 0u);
  EXPECT_EQ(d.append(top, bytes("odd")), 3u);
  EXPECT_EQ(d.append(top - 1, bytes("even")), 4u);
  EXPECT_EQ(b.held(top), 3u);
  EXPECT_EQ(a.held(top - 1), 4u);
  EXPECT_EQ(d.slot_of(top), sb);
  EXPECT_EQ(d.memory_bytes(), ZeroPages::page_size()) << "both ids are in the map's last page";
  EXPECT_EQ(a.memory_bytes() - a0, 2 * ZeroPages::page_size() + 256)
      << "reserved before: no growth; one index page, one record page, one chunk";
  EXPECT_EQ(b.memory_bytes() - b0, 2 * ZeroPages::page_size() + 256);
  d.detach(top);
  EXPECT_EQ(b.held(top), 0u);
  EXPECT_EQ(d.append(top, bytes("late")), 4u);
  EXPECT_EQ(d.discarded(), 4u);
  d.release(top);
  EXPECT_EQ(d.append(top, bytes("new")), 3u) << "released: resolved afresh";
  EXPECT_EQ(b.held(top), 3u);
  // An id past the reservation still works (the map grows).
  d.bind(3u << 20, sa);
  EXPECT_EQ(d.append(3u << 20, bytes("far")), 3u);
  EXPECT_EQ(a.held(3u << 20), 3u);
  EXPECT_EQ(d.memory_bytes(), 2 * ZeroPages::page_size());
}

}  // namespace
}  // namespace xtcp
