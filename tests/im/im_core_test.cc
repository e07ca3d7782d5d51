// ImCore (the xtcp-im protocol without networking): request lines in, the answer and the
// pushes for other connections out; every rule of docs/im-protocol.md has a case here.
#include "server_examples/im/im_core.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace xtcp_examples {
namespace {

class ImCoreTest : public ::testing::Test {
 protected:
  // The answer to line on cd; pushes land in pushes_.
  std::string req(int cd, const std::string& line) {
    std::string reply;
    pushes_.clear();
    after_ = core_.on_line(cd, line, &reply, &pushes_);
    return reply;
  }
  std::vector<std::string> pushes_for(int cd) const {
    std::vector<std::string> out;
    for (const ImPush& p : pushes_) {
      if (p.cd == cd) {
        out.push_back(p.line);
      }
    }
    return out;
  }

  ImCore core_;
  std::vector<ImPush> pushes_;
  ImCore::After after_ = ImCore::After::kKeepOpen;
};

TEST_F(ImCoreTest, LoginAnnouncesToOthersOnly) {
  EXPECT_EQ(req(1, "LOGIN alice"), "OK\n");
  EXPECT_TRUE(pushes_.empty());
  EXPECT_EQ(req(2, "LOGIN bob"), "OK\n");
  ASSERT_EQ(pushes_.size(), 1u);
  EXPECT_EQ(pushes_[0].cd, 1);
  EXPECT_EQ(pushes_[0].line, "ONLINE bob\n");
  EXPECT_EQ(req(3, "LOGIN carol\r"), "OK\n");
  EXPECT_EQ(pushes_for(1), std::vector<std::string>{"ONLINE carol\n"});
  EXPECT_EQ(pushes_for(2), std::vector<std::string>{"ONLINE carol\n"});
  EXPECT_TRUE(pushes_for(3).empty());
  EXPECT_EQ(core_.online(), 3u);
  EXPECT_EQ(core_.user_of(2), "bob");
}

TEST_F(ImCoreTest, LoginErrors) {
  EXPECT_EQ(req(1, "LOGIN alice"), "OK\n");
  EXPECT_EQ(req(2, "LOGIN alice"), "ERR name-taken\n");
  EXPECT_EQ(req(1, "LOGIN other"), "ERR already-logged-in\n");
  EXPECT_EQ(req(2, "LOGIN"), "ERR bad-name\n");
  EXPECT_EQ(req(2, "LOGIN a b"), "ERR bad-name\n");
  EXPECT_EQ(req(2, "LOGIN bad/name"), "ERR bad-name\n");
  EXPECT_EQ(req(2, "LOGIN " + std::string(33, 'x')), "ERR bad-name\n");
  EXPECT_EQ(req(2, "LOGIN " + std::string(32, 'x')), "OK\n");
  EXPECT_EQ(req(3, "LOGIN A.b-c_9"), "OK\n");
  EXPECT_EQ(core_.counters().logins, 3u);
  EXPECT_EQ(core_.counters().errors, 6u);
}

TEST_F(ImCoreTest, MessageDeliveredToRecipientOnly) {
  req(1, "LOGIN alice");
  req(2, "LOGIN bob");
  req(3, "LOGIN carol");
  EXPECT_EQ(req(1, "MSG bob hi  bob,  two spaces kept "), "OK\n");
  ASSERT_EQ(pushes_.size(), 1u);
  EXPECT_EQ(pushes_[0].cd, 2);
  EXPECT_EQ(pushes_[0].line, "FROM alice hi  bob,  two spaces kept \n");
  EXPECT_EQ(req(1, "MSG alice note to self"), "OK\n");
  EXPECT_EQ(pushes_for(1), std::vector<std::string>{"FROM alice note to self\n"});
  EXPECT_EQ(req(2, "MSG dave hello"), "ERR offline\n");
  EXPECT_TRUE(pushes_.empty());
  EXPECT_EQ(req(2, "MSG alice"), "ERR usage MSG to text\n");
  EXPECT_EQ(req(2, "MSG alice "), "ERR usage MSG to text\n");
  EXPECT_EQ(req(2, "MSG"), "ERR usage MSG to text\n");
  EXPECT_EQ(core_.counters().messages, 2u);
  EXPECT_EQ(core_.counters().messages_offline, 1u);
}

TEST_F(ImCoreTest, ListIsSortedAndIncludesCaller) {
  req(1, "LOGIN zed");
  req(2, "LOGIN amy");
  req(3, "LOGIN Bob");
  EXPECT_EQ(req(1, "LIST"), "USERS Bob amy zed\n");
  EXPECT_EQ(req(1, "LIST all"), "ERR usage LIST\n");
}

TEST_F(ImCoreTest, NeedsLoginAndKnownCommands) {
  EXPECT_EQ(req(1, "MSG bob hi"), "ERR not-logged-in\n");
  EXPECT_EQ(req(1, "LIST"), "ERR not-logged-in\n");
  EXPECT_EQ(req(1, "HELLO"), "ERR unknown-command\n");
  EXPECT_EQ(req(1, "login alice"), "ERR unknown-command\n");
  EXPECT_EQ(req(1, ""), "ERR empty-line\n");
  EXPECT_EQ(req(1, "   "), "ERR empty-line\n");
  EXPECT_EQ(req(1, "\r"), "ERR empty-line\n");
}

TEST_F(ImCoreTest, LineLimit) {
  req(1, "LOGIN alice");
  const std::string at_limit = "MSG alice " + std::string(kImMaxLine - 10, 'x');
  ASSERT_EQ(at_limit.size(), kImMaxLine);
  EXPECT_EQ(req(1, at_limit), "OK\n");
  EXPECT_EQ(req(1, at_limit + "\r"), "OK\n");  // the '\r' does not count
  EXPECT_EQ(req(1, at_limit + "y"), "ERR line-too-long\n");
  EXPECT_TRUE(pushes_.empty());
}

TEST_F(ImCoreTest, QuitAndDisconnectAnnounceOffline) {
  req(1, "LOGIN alice");
  req(2, "LOGIN bob");
  req(3, "LOGIN carol");
  EXPECT_EQ(req(2, "QUIT"), "BYE\n");
  EXPECT_EQ(after_, ImCore::After::kClose);
  EXPECT_EQ(pushes_for(1), std::vector<std::string>{"OFFLINE bob\n"});
  EXPECT_EQ(pushes_for(3), std::vector<std::string>{"OFFLINE bob\n"});
  EXPECT_EQ(pushes_.size(), 2u);
  EXPECT_EQ(req(1, "MSG bob still there?"), "ERR offline\n");

  pushes_.clear();
  core_.on_disconnect(3, &pushes_);
  EXPECT_EQ(pushes_for(1), std::vector<std::string>{"OFFLINE carol\n"});
  EXPECT_EQ(pushes_.size(), 1u);
  pushes_.clear();
  core_.on_disconnect(3, &pushes_);  // twice, or a connection never logged in: nothing
  core_.on_disconnect(42, &pushes_);
  EXPECT_TRUE(pushes_.empty());
  EXPECT_EQ(core_.online(), 1u);
  EXPECT_EQ(req(4, "LOGIN bob"), "OK\n");  // the name is free again
  EXPECT_EQ(core_.counters().logouts, 2u);
}

TEST_F(ImCoreTest, QuitBeforeLogin) {
  EXPECT_EQ(req(1, "QUIT"), "BYE\n");
  EXPECT_EQ(after_, ImCore::After::kClose);
  EXPECT_TRUE(pushes_.empty());
}

// Presence for watchers only: a login or logout is pushed to the connections that asked
// with WATCH, not to everyone.
TEST_F(ImCoreTest, WatchedPresenceGoesOnlyToWatchers) {
  core_.set_presence(ImCore::Presence::kWatched);
  EXPECT_EQ(req(1, "LOGIN alice"), "OK\n");
  EXPECT_EQ(req(2, "LOGIN bob"), "OK\n");
  EXPECT_TRUE(pushes_.empty()) << "nobody watches bob";
  EXPECT_EQ(req(1, "WATCH carol"), "OK\n");
  EXPECT_EQ(req(1, "WATCH carol"), "OK\n") << "watching twice is one watch";
  EXPECT_EQ(req(2, "WATCH carol"), "OK\n");
  EXPECT_EQ(req(3, "LOGIN carol"), "OK\n");
  EXPECT_EQ(pushes_for(1), (std::vector<std::string>{"ONLINE carol\n"}));
  EXPECT_EQ(pushes_for(2), (std::vector<std::string>{"ONLINE carol\n"}));
  EXPECT_EQ(pushes_.size(), 2u);
  // bob leaves: his watch goes with him.
  std::vector<ImPush> out;
  core_.on_disconnect(2, &out);
  EXPECT_TRUE(out.empty()) << "nobody watches bob";
  EXPECT_EQ(req(3, "QUIT"), "BYE\n");
  EXPECT_EQ(pushes_for(1), (std::vector<std::string>{"OFFLINE carol\n"}));
  EXPECT_EQ(pushes_.size(), 1u);
  EXPECT_EQ(core_.counters().watches, 3u);
}

TEST_F(ImCoreTest, WatchNeedsLoginAndAName) {
  EXPECT_EQ(req(1, "WATCH bob"), "ERR not-logged-in\n");
  EXPECT_EQ(req(1, "LOGIN alice"), "OK\n");
  EXPECT_EQ(req(1, "WATCH"), "ERR usage WATCH name\n");
  EXPECT_EQ(req(1, "WATCH b@d"), "ERR usage WATCH name\n");
  EXPECT_EQ(req(1, "WATCH bob carol"), "ERR usage WATCH name\n");
  for (std::size_t i = 0; i < kImMaxWatches; ++i) {
    ASSERT_EQ(req(1, "WATCH u" + std::to_string(i)), "OK\n");
  }
  EXPECT_EQ(req(1, "WATCH onemore"), "ERR too-many-watches\n");
}

// In the default mode WATCH is accepted and changes nothing: everyone hears of everyone.
TEST_F(ImCoreTest, WatchInAllModeIsHarmless) {
  EXPECT_EQ(req(1, "LOGIN alice"), "OK\n");
  EXPECT_EQ(req(1, "WATCH bob"), "OK\n");
  EXPECT_EQ(req(2, "LOGIN bob"), "OK\n");
  EXPECT_EQ(pushes_for(1), (std::vector<std::string>{"ONLINE bob\n"}));
  EXPECT_EQ(pushes_.size(), 1u);
}

}  // namespace
}  // namespace xtcp_examples
