// xtcp_config.shm_name: the process runtime serves on a shared-memory link instead of a
// TUN device (no root needed), a bad name or a region that exists is refused with the
// reason in xtcp_last_error(), and xtcp_finalize removes the link's files.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "stack/netif/shm_link.h"
#include "xtcp/xtcp.h"

namespace {

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::string unique_name(const char* what) { return std::string("api") + std::to_string(::getpid()) + what; }

TEST(ApiShm, StructKeepsItsSize) {
  if (sizeof(void*) == 8) {
    EXPECT_EQ(sizeof(xtcp_config), 104u);
  }
}

TEST(ApiShm, BadNamesAreRefused) {
  xtcp_config c{};
  c.local_addr = "198.18.0.2";
  for (const char* bad : {"", "a/b", "a-name-that-is-longer-than-32-chars"}) {
    c.shm_name = bad;
    EXPECT_EQ(xtcp_configure(&c), -EINVAL) << bad;
    EXPECT_NE(std::string(xtcp_last_error()).find("shm_name"), std::string::npos) << xtcp_last_error();
  }
}

TEST(ApiShm, ServesOnTheLinkAndRemovesItAtTheEnd) {
  const std::string name = unique_name("serve");
  xtcp_config c{};
  c.local_addr = "198.18.0.2";
  c.shm_name = name.c_str();
  c.tun_name = "ignored0";  // unused with shm_name: no TUN device is opened (no root here)
  ASSERT_EQ(xtcp_configure(&c), 0);
  ASSERT_EQ(xtcp_initialize(1u << 20), 0) << xtcp_last_error();
  EXPECT_TRUE(exists(xtcp::ShmLink::region_path(name)));
  EXPECT_GE(xtcp_link_fd(), 0) << "the link's FIFO, to wait on";
  const int gd = xtcp_open_group(PF_INET, SOCK_STREAM, 0, 7000);
  EXPECT_GT(gd, 0);
  std::string error;
  auto client = xtcp::ShmLink::attach(name, &error);
  ASSERT_NE(client, nullptr) << error;
  EXPECT_EQ(client->mtu(), 1500u);
  client.reset();
  EXPECT_EQ(xtcp_close_group(gd), 0);
  EXPECT_EQ(xtcp_finalize(), 0);
  EXPECT_FALSE(exists(xtcp::ShmLink::region_path(name)));
  EXPECT_FALSE(exists(xtcp::ShmLink::fifo_path(name, 0)));
  EXPECT_FALSE(exists(xtcp::ShmLink::fifo_path(name, 1)));
}

TEST(ApiShm, ExistingRegionFailsWithTheReason) {
  const std::string name = unique_name("taken");
  std::string error;
  auto other = xtcp::ShmLink::create(name, xtcp::ShmOptions{}, &error);
  ASSERT_NE(other, nullptr) << error;
  xtcp_config c{};
  c.local_addr = "198.18.0.2";
  c.shm_name = name.c_str();
  ASSERT_EQ(xtcp_configure(&c), 0);
  EXPECT_EQ(xtcp_initialize(1u << 20), -EEXIST);
  const std::string why = xtcp_last_error();
  EXPECT_NE(why.find("xtcp_initialize"), std::string::npos) << why;
  EXPECT_NE(why.find("exists"), std::string::npos) << why;
  EXPECT_TRUE(exists(xtcp::ShmLink::region_path(name))) << "the other owner's region stays";
}

}  // namespace
