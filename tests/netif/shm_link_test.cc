// ShmLink: create/attach, packets both ways, a full ring, the FIFO wake-ups, the checks on
// names and regions, the creator's clean-up, and a second process echoing packets back.
#include "stack/netif/shm_link.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

namespace xtcp {
namespace {

// A name no other test run uses at the same time.
std::string unique_name(const char* what) {
  static int n = 0;
  return std::string("t") + std::to_string(::getpid()) + "-" + what + std::to_string(n++);
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// Readable right now (poll with a zero timeout: no wall-clock waiting in the assertion).
bool readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

std::vector<std::byte> packet(std::uint32_t seq, std::size_t size) {
  std::vector<std::byte> p(size);
  for (std::size_t i = 0; i < size; ++i) {
    p[i] = static_cast<std::byte>((seq * 131 + i * 7 + (i >> 8)) & 0xFF);
  }
  return p;
}

std::vector<std::vector<std::byte>> receive_all(ShmLink& link, int max = 1 << 20) {
  std::vector<std::vector<std::byte>> got;
  link.receive_batch(max, [&](std::span<const std::byte> p) { got.emplace_back(p.begin(), p.end()); });
  return got;
}

struct Pair {
  std::unique_ptr<ShmLink> creator;
  std::unique_ptr<ShmLink> attacher;
};

Pair make_link_pair(const std::string& name, const ShmOptions& o = ShmOptions{}) {
  Pair p;
  std::string error;
  p.creator = ShmLink::create(name, o, &error);
  EXPECT_NE(p.creator, nullptr) << error;
  if (p.creator) {
    p.attacher = ShmLink::attach(name, &error);
    EXPECT_NE(p.attacher, nullptr) << error;
  }
  return p;
}

TEST(ShmLinkTest, PacketsBothWaysIntactAndInOrder) {
  Pair p = make_link_pair(unique_name("both"));
  ASSERT_TRUE(p.creator && p.attacher);
  EXPECT_TRUE(p.creator->is_creator());
  EXPECT_FALSE(p.attacher->is_creator());
  EXPECT_EQ(p.creator->mtu(), 1500u);
  EXPECT_EQ(p.attacher->mtu(), 1500u);
  for (std::uint32_t i = 0; i < 100; ++i) {
    ASSERT_EQ(p.creator->send(packet(i, 20 + i * 14)), 0);
    ASSERT_EQ(p.attacher->send(packet(1000 + i, 1500 - i)), 0);
  }
  auto at_attacher = receive_all(*p.attacher);
  auto at_creator = receive_all(*p.creator);
  ASSERT_EQ(at_attacher.size(), 100u);
  ASSERT_EQ(at_creator.size(), 100u);
  for (std::uint32_t i = 0; i < 100; ++i) {
    EXPECT_EQ(at_attacher[i], packet(i, 20 + i * 14)) << i;
    EXPECT_EQ(at_creator[i], packet(1000 + i, 1500 - i)) << i;
  }
  EXPECT_EQ(p.creator->counters().packets_out, 100u);
  EXPECT_EQ(p.attacher->counters().packets_in, 100u);
  EXPECT_TRUE(receive_all(*p.attacher).empty());
}

TEST(ShmLinkTest, BatchHandsOverAtMostMax) {
  Pair p = make_link_pair(unique_name("batch"));
  ASSERT_TRUE(p.creator && p.attacher);
  for (std::uint32_t i = 0; i < 10; ++i) {
    ASSERT_EQ(p.creator->send(packet(i, 60)), 0);
  }
  EXPECT_EQ(receive_all(*p.attacher, 4).size(), 4u);
  // Packets are left: the attacher's descriptor stays readable for the next round.
  EXPECT_TRUE(readable(p.attacher->poll_fd()));
  auto rest = receive_all(*p.attacher);
  ASSERT_EQ(rest.size(), 6u);
  EXPECT_EQ(rest[0], packet(4, 60));
  EXPECT_FALSE(readable(p.attacher->poll_fd()));
}

TEST(ShmLinkTest, FullRingReturnsEagainAndRecovers) {
  ShmOptions o;
  o.slot_count = 8;
  Pair p = make_link_pair(unique_name("full"), o);
  ASSERT_TRUE(p.creator && p.attacher);
  for (std::uint32_t i = 0; i < 8; ++i) {
    ASSERT_EQ(p.creator->send(packet(i, 100)), 0) << i;
  }
  EXPECT_EQ(p.creator->send(packet(8, 100)), -EAGAIN);
  EXPECT_EQ(p.creator->send(packet(9, 100)), -EAGAIN);
  EXPECT_EQ(p.creator->counters().send_drops, 2u);
  auto first = receive_all(*p.attacher, 3);
  ASSERT_EQ(first.size(), 3u);
  for (std::uint32_t i = 0; i < 3; ++i) {
    ASSERT_EQ(p.creator->send(packet(100 + i, 100)), 0) << i;
  }
  EXPECT_EQ(p.creator->send(packet(200, 100)), -EAGAIN);
  auto rest = receive_all(*p.attacher);
  ASSERT_EQ(rest.size(), 8u);
  for (std::uint32_t i = 0; i < 5; ++i) {
    EXPECT_EQ(rest[i], packet(3 + i, 100));
  }
  for (std::uint32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(rest[5 + i], packet(100 + i, 100));
  }
  EXPECT_EQ(p.creator->send(packet(300, 100)), 0);
  EXPECT_EQ(receive_all(*p.attacher).size(), 1u);
}

TEST(ShmLinkTest, OversizedPacketIsRejected) {
  Pair p = make_link_pair(unique_name("big"));
  ASSERT_TRUE(p.creator && p.attacher);
  EXPECT_EQ(p.creator->send(packet(0, 2048 - ShmLink::kSlotHeader)), 0);
  EXPECT_EQ(p.creator->send(packet(1, 2048 - ShmLink::kSlotHeader + 1)), -EMSGSIZE);
  EXPECT_EQ(p.creator->send(packet(2, 9000)), -EMSGSIZE);
  EXPECT_EQ(p.creator->counters().send_errors, 2u);
  EXPECT_EQ(receive_all(*p.attacher).size(), 1u);
}

TEST(ShmLinkTest, PollFdReadableOnlyOnceAPacketIsSent) {
  Pair p = make_link_pair(unique_name("poll"));
  ASSERT_TRUE(p.creator && p.attacher);
  EXPECT_FALSE(readable(p.attacher->poll_fd()));
  EXPECT_FALSE(readable(p.creator->poll_fd()));
  ASSERT_EQ(p.creator->send(packet(0, 64)), 0);
  EXPECT_TRUE(readable(p.attacher->poll_fd()));
  EXPECT_FALSE(readable(p.creator->poll_fd()));
  EXPECT_EQ(receive_all(*p.attacher).size(), 1u);
  EXPECT_FALSE(readable(p.attacher->poll_fd()));
  // A second packet into a ring that was drained wakes the consumer again.
  ASSERT_EQ(p.creator->send(packet(1, 64)), 0);
  ASSERT_EQ(p.creator->send(packet(2, 64)), 0);
  EXPECT_TRUE(readable(p.attacher->poll_fd()));
  EXPECT_EQ(receive_all(*p.attacher).size(), 2u);
  EXPECT_FALSE(readable(p.attacher->poll_fd()));
  // The other direction.
  ASSERT_EQ(p.attacher->send(packet(3, 64)), 0);
  EXPECT_TRUE(readable(p.creator->poll_fd()));
  EXPECT_EQ(receive_all(*p.creator).size(), 1u);
  EXPECT_FALSE(readable(p.creator->poll_fd()));
}

TEST(ShmLinkTest, BadNamesAndMissingRegionFailWithAMessage) {
  for (const std::string& bad : {std::string(), std::string("a/b"), std::string(33, 'x')}) {
    std::string error;
    int code = 0;
    EXPECT_EQ(ShmLink::create(bad, ShmOptions{}, &error, &code), nullptr) << bad;
    EXPECT_EQ(code, -EINVAL);
    EXPECT_NE(error.find("name"), std::string::npos) << error;
    error.clear();
    EXPECT_EQ(ShmLink::attach(bad, &error, &code), nullptr) << bad;
    EXPECT_FALSE(error.empty());
  }
  std::string error;
  int code = 0;
  const std::string missing = unique_name("missing");
  EXPECT_EQ(ShmLink::attach(missing, &error, &code), nullptr);
  EXPECT_EQ(code, -ENOENT);
  EXPECT_NE(error.find(ShmLink::region_path(missing)), std::string::npos) << error;
  // 32 characters is the longest name.
  const std::string longest = unique_name("l") + std::string(32, 'n');
  auto ok = ShmLink::create(longest.substr(longest.size() - 32), ShmOptions{}, &error);
  EXPECT_NE(ok, nullptr) << error;
}

TEST(ShmLinkTest, BadOptionsFail) {
  std::string error;
  ShmOptions o;
  o.slot_count = 1000;  // not a power of two
  EXPECT_EQ(ShmLink::create(unique_name("opt"), o, &error), nullptr);
  EXPECT_NE(error.find("slot count"), std::string::npos) << error;
  o = ShmOptions{};
  o.mtu = 2048;  // more than a slot of 2048 bytes holds
  EXPECT_EQ(ShmLink::create(unique_name("opt"), o, &error), nullptr);
  EXPECT_NE(error.find("MTU"), std::string::npos) << error;
}

TEST(ShmLinkTest, ExistingRegionAndBadMagicAndSecondAttacherFail) {
  const std::string name = unique_name("dup");
  Pair p = make_link_pair(name);
  ASSERT_TRUE(p.creator && p.attacher);
  std::string error;
  int code = 0;
  EXPECT_EQ(ShmLink::create(name, ShmOptions{}, &error, &code), nullptr);
  EXPECT_EQ(code, -EEXIST);
  EXPECT_NE(error.find("exists"), std::string::npos) << error;
  // The failed create must not have removed the live region.
  EXPECT_TRUE(exists(ShmLink::region_path(name)));
  EXPECT_EQ(ShmLink::attach(name, &error, &code), nullptr);
  EXPECT_EQ(code, -EBUSY);
  EXPECT_NE(error.find("attached"), std::string::npos) << error;
  // Once the attacher is gone another may come.
  p.attacher.reset();
  p.attacher = ShmLink::attach(name, &error);
  EXPECT_NE(p.attacher, nullptr) << error;

  // A file of the right size without the magic is not a link.
  const std::string fake = unique_name("fake");
  const std::string path = ShmLink::region_path(fake);
  {
    FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::vector<char> zeros(1 << 16, 0);
    std::fwrite(zeros.data(), 1, zeros.size(), f);
    std::fclose(f);
  }
  EXPECT_EQ(ShmLink::attach(fake, &error, &code), nullptr);
  EXPECT_EQ(code, -EPROTO);
  EXPECT_NE(error.find("magic"), std::string::npos) << error;
  ::unlink(path.c_str());
}

// An attacher killed without its destructor leaves its pid in the region: the next
// attacher finds that process gone and takes over.
TEST(ShmLinkTest, AttacherThatDiedIsReplaced) {
  const std::string name = unique_name("dead");
  std::string error;
  auto creator = ShmLink::create(name, ShmOptions{}, &error);
  ASSERT_NE(creator, nullptr) << error;
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::string why;
    auto link = ShmLink::attach(name, &why);
    ::_exit(link ? 0 : 10);  // _exit: no destructor clears the attached mark
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  auto attacher = ShmLink::attach(name, &error);
  ASSERT_NE(attacher, nullptr) << error;
  ASSERT_EQ(creator->send(packet(7, 80)), 0);
  auto got = receive_all(*attacher);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], packet(7, 80));
}

TEST(ShmLinkTest, CreatorRemovesItsFiles) {
  const std::string name = unique_name("rm");
  Pair p = make_link_pair(name);
  ASSERT_TRUE(p.creator && p.attacher);
  EXPECT_EQ(p.creator->path(), ShmLink::region_path(name));
  EXPECT_TRUE(exists(ShmLink::region_path(name)));
  EXPECT_TRUE(exists(ShmLink::fifo_path(name, 0)));
  EXPECT_TRUE(exists(ShmLink::fifo_path(name, 1)));
  p.attacher.reset();  // the attacher leaves the files alone
  EXPECT_TRUE(exists(ShmLink::region_path(name)));
  p.creator.reset();
  EXPECT_FALSE(exists(ShmLink::region_path(name)));
  EXPECT_FALSE(exists(ShmLink::fifo_path(name, 0)));
  EXPECT_FALSE(exists(ShmLink::fifo_path(name, 1)));
}

// A second process attaches and echoes every packet back; the parent keeps up to a window
// of packets in flight, sleeps in poll() on the link's descriptor, and checks every byte.
TEST(ShmLinkTest, ForkedChildEchoesTenThousandPackets) {
  constexpr std::uint32_t kPackets = 10'000;
  constexpr std::uint32_t kWindow = 256;
  const std::string name = unique_name("fork");
  std::string error;
  auto creator = ShmLink::create(name, ShmOptions{}, &error);
  ASSERT_NE(creator, nullptr) << error;
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The child: no gtest assertions (they would report into the parent's copy); its exit
    // status tells the parent what went wrong.
    std::string why;
    auto link = ShmLink::attach(name, &why);
    if (!link) {
      ::_exit(10);
    }
    std::uint32_t echoed = 0;
    std::vector<std::vector<std::byte>> pending;
    while (echoed < kPackets) {
      pollfd pfd{link->poll_fd(), POLLIN, 0};
      if (::poll(&pfd, 1, 10'000) <= 0) {
        ::_exit(11);  // nothing for ten seconds: the parent is gone or a wake-up was lost
      }
      link->receive_batch(64, [&](std::span<const std::byte> p) { pending.emplace_back(p.begin(), p.end()); });
      for (const auto& p : pending) {
        while (link->send(p) == -EAGAIN) {
          ::usleep(100);  // the parent's ring is full: it drains it in its own loop
        }
        ++echoed;
      }
      pending.clear();
    }
    link.reset();
    ::_exit(0);
  }
  std::uint32_t sent = 0;
  std::uint32_t received = 0;
  bool bad = false;
  while (received < kPackets && !bad) {
    while (sent < kPackets && sent - received < kWindow) {
      ASSERT_EQ(creator->send(packet(sent, 40 + sent % 1461)), 0);
      ++sent;
    }
    pollfd pfd{creator->poll_fd(), POLLIN, 0};
    if (::poll(&pfd, 1, 10'000) <= 0) {
      ADD_FAILURE() << "no echo for ten seconds after " << received << " packets";
      break;
    }
    creator->receive_batch(64, [&](std::span<const std::byte> p) {
      const auto want = packet(received, 40 + received % 1461);
      if (p.size() != want.size() || std::memcmp(p.data(), want.data(), want.size()) != 0) {
        ADD_FAILURE() << "packet " << received << " came back different";
        bad = true;
      }
      ++received;
    });
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(received, kPackets);
  EXPECT_EQ(creator->counters().packets_in, kPackets);
}

}  // namespace
}  // namespace xtcp
