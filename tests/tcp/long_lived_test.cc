// Long-lived connections: sequence-space distances past 2^31 from the ISS, and a sender
// limited by its application (not by cwnd) that must not inflate cwnd without bound.
#include <gtest/gtest.h>

#include "stack/tcp/tcb.h"
#include "tests/support/tcp_harness.h"
#include "tests/tcp/data_path_util.h"

namespace xtcp::test {
namespace {

using dp::ack_seg;
using dp::info_of;
using dp::open_with_rtt;
using dp::peer_options;

TEST(LongLived, OldestDataByteAfterTwoGibibytes) {
  Tcb t;
  t.iss = SeqNum(0xfffffff0u);
  t.snd_una = t.iss;
  EXPECT_EQ(t.oldest_data(), t.iss + 1) << "SYN unacknowledged: data starts after it";
  for (std::uint32_t sent : {1u, 0x7fffffffu, 0x80000000u, 0x80000010u, 0xfffffff0u}) {
    t.snd_una = t.iss + 1 + sent;
    EXPECT_EQ(t.oldest_data(), t.snd_una) << "after " << sent << " bytes";
  }
}

TEST(LongLived, ApplicationLimitedSenderDoesNotInflateCwnd) {
  TcpHarness h;
  const ConnId c = open_with_rtt(h, peer_options(false), 0);
  const std::uint32_t initial = info_of(h, c).cwnd;
  std::uint32_t acked = 1;
  for (int i = 0; i < 2000; ++i) {
    ASSERT_EQ(h.tcp().send(c, pattern_bytes(100, i)), 100);
    ASSERT_EQ(h.sent().size(), 1u);
    acked += 100;
    h.inject(ack_seg(acked));
  }
  // One 100-byte segment in flight at a time never uses a 10-segment window.
  EXPECT_EQ(info_of(h, c).cwnd, initial);
}

}  // namespace
}  // namespace xtcp::test
