// xtcp_config.tun_multi_queue: the runtime attaches its queue of a multi-queue TUN device,
// and a second process doing the same (a shard of xtcp-echo --shards N; here a TunLink and
// the same kernel-side settings) adds its queue without error. Without the flag, the
// multi-queue device is refused, with the library's explanation.
// The file's name puts it after observability_test.cc, whose first tests need a process that
// was never configured (the binary runs the files in name order; a configuration stays).
#include <gtest/gtest.h>

#include <cerrno>
#include <memory>
#include <string>

#include "stack/netif/tun_link.h"
#include "tests/support/netns.h"
#include "xtcp/xtcp.h"

namespace xtcp::test {
namespace {

#define EXPECT_HAS(text, part) EXPECT_NE((text).find(part), std::string::npos) << (text)

TEST(ApiMultiQueue, EachShardAddsAQueueAndSetsTheSameKernelSide) {
  if (auto why = netns_unavailable_reason()) {
    GTEST_SKIP() << *why;
  }
  std::string err;
  auto ns = NetNs::create(&err);
  ASSERT_TRUE(ns) << err;
  std::unique_ptr<TunLink> second;
  ASSERT_EQ(ns->run_in_thread([&] {
    xtcp_config c{};
    c.local_addr = "198.18.0.2";
    c.tun_name = "xtcpmq";
    c.kernel_addr = "198.18.0.1/24";
    c.tun_queue_len = 3000;
    c.tun_multi_queue = 1;
    ASSERT_EQ(xtcp_configure(&c), 0) << xtcp_last_error();
    ASSERT_EQ(xtcp_initialize(1u << 20), 0) << xtcp_last_error();
    // The second shard: the same device, queue length and kernel address, once more.
    std::string why;
    second = TunLink::open(TunOptions{.name = "xtcpmq", .multi_queue = true, .tx_queue_len = 3000}, &why);
    ASSERT_NE(second, nullptr) << why;
    EXPECT_EQ(configure_kernel_side("xtcpmq", 0xC6120001, 24, &why), 0) << why;
  }, &err), 0) << err;
  const CommandResult queues = ns->run("ls /sys/class/net/xtcpmq/queues");
  EXPECT_HAS(queues.output, "rx-0");
  EXPECT_HAS(queues.output, "rx-1");
  const CommandResult link = ns->run("ip -d link show dev xtcpmq");
  EXPECT_HAS(link.output, "multi_queue");
  EXPECT_HAS(link.output, "qlen 3000");
  const CommandResult addr = ns->run("ip -4 -o addr show dev xtcpmq");
  EXPECT_HAS(addr.output, "198.18.0.1/24");
  EXPECT_EQ(addr.output.find("198.18.0.1/24"), addr.output.rfind("198.18.0.1/24")) << "one address, not two";
  EXPECT_EQ(xtcp_finalize(), 0);

  // The device lives on with the second queue; a single-queue runtime cannot attach to it.
  ASSERT_EQ(ns->run_in_thread([&] {
    xtcp_config c{};
    c.local_addr = "198.18.0.2";
    c.tun_name = "xtcpmq";
    ASSERT_EQ(xtcp_configure(&c), 0);
    EXPECT_EQ(xtcp_initialize(1u << 20), -EINVAL);
    EXPECT_HAS(std::string(xtcp_last_error()), "not a TUN device with these flags");
  }, &err), 0) << err;
  second.reset();
}

}  // namespace
}  // namespace xtcp::test
