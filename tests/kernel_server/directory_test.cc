// xtcp-kernel-server's shared pieces without networking (no root needed): the directory of
// logged-in names (claims, releases, lookups, LIST, the global sequence, a full table, the
// open-addressing index against a model under random churn, and two processes sharing it
// through a MAP_SHARED mapping), the sequencer's delivery order and the mesh's record
// encoding. Suite names start with kernel_server (`ctest -R kernel_server`).
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "tools/kernel_server/im_directory.h"
#include "tools/kernel_server/mesh.h"
#include "tools/kernel_server/sequencer.h"

namespace xtcp::kserver {
namespace {

// A zero-filled shared mapping, as the server's parent makes.
class SharedMemory {
 public:
  explicit SharedMemory(std::size_t size) : size_(size) {
    p_ = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  }
  ~SharedMemory() {
    if (p_ != MAP_FAILED) {
      ::munmap(p_, size_);
    }
  }
  void* get() const { return p_ == MAP_FAILED ? nullptr : p_; }

 private:
  std::size_t size_;
  void* p_;
};

TEST(kernel_server_directory, ClaimLookupReleaseAndTheSequence) {
  SharedMemory mem(ImDirectory::region_size(100));
  ASSERT_NE(mem.get(), nullptr);
  ImDirectory* d = ImDirectory::create(mem.get(), 100);
  std::uint64_t s1 = 0, s2 = 0, s3 = 0;
  EXPECT_EQ(d->claim("alice", 0, &s1), ImDirectory::Claim::kOk);
  EXPECT_EQ(d->claim("bob", 1, &s2), ImDirectory::Claim::kOk);
  EXPECT_EQ(s1, 1u);
  EXPECT_EQ(s2, 2u);
  EXPECT_EQ(d->claim("alice", 1, &s3), ImDirectory::Claim::kTaken) << "another worker has it";
  EXPECT_EQ(d->claim("alice", 0, &s3), ImDirectory::Claim::kTaken) << "and the same worker too";
  auto w = d->lookup("bob");
  ASSERT_TRUE(w);
  EXPECT_EQ(w->worker, 1);
  EXPECT_EQ(w->claim_seq, 2u);
  EXPECT_FALSE(d->lookup("carol"));
  EXPECT_FALSE(d->lookup(""));
  EXPECT_FALSE(d->lookup(std::string(33, 'x')));
  EXPECT_EQ(d->names(), (std::vector<std::string>{"alice", "bob"}));
  EXPECT_EQ(d->release("bob", 0), 0u) << "only the worker that has it releases it";
  EXPECT_EQ(d->release("bob", 1), 3u) << "a release takes the next number";
  EXPECT_FALSE(d->lookup("bob"));
  EXPECT_EQ(d->release("bob", 1), 0u);
  EXPECT_EQ(d->claim("bob", 0, &s3), ImDirectory::Claim::kOk);
  EXPECT_EQ(s3, 4u);
  EXPECT_EQ(d->lookup("bob")->worker, 0);
  EXPECT_EQ(d->count(), 2u);
  // LIST order: by byte value.
  std::uint64_t s = 0;
  for (const char* n : {"Zed", "_x", "a.b", "-", "0"}) {
    EXPECT_EQ(d->claim(n, 2, &s), ImDirectory::Claim::kOk);
  }
  EXPECT_EQ(d->names(), (std::vector<std::string>{"-", "0", "Zed", "_x", "a.b", "alice", "bob"}));
}

TEST(kernel_server_directory, FullTableRefusesAndReusesFreedEntries) {
  SharedMemory mem(ImDirectory::region_size(3));
  ImDirectory* d = ImDirectory::create(mem.get(), 3);
  std::uint64_t s = 0;
  EXPECT_EQ(d->claim("a", 0, &s), ImDirectory::Claim::kOk);
  EXPECT_EQ(d->claim("b", 0, &s), ImDirectory::Claim::kOk);
  EXPECT_EQ(d->claim("c", 0, &s), ImDirectory::Claim::kOk);
  EXPECT_EQ(d->claim("d", 0, &s), ImDirectory::Claim::kFull);
  EXPECT_NE(d->release("b", 0), 0u);
  EXPECT_EQ(d->claim("d", 0, &s), ImDirectory::Claim::kOk);
  EXPECT_EQ(d->names(), (std::vector<std::string>{"a", "c", "d"}));
}

// Random claims and releases against a std::map: the index (linear probing, deletion by
// backward shift) must never lose or invent a name, whatever collides.
TEST(kernel_server_directory, RandomChurnMatchesAModel) {
  constexpr std::uint32_t kMax = 500;
  SharedMemory mem(ImDirectory::region_size(kMax));
  ImDirectory* d = ImDirectory::create(mem.get(), kMax);
  std::map<std::string, std::pair<int, std::uint64_t>> model;
  std::mt19937 rng(7);
  std::uint64_t last = 0;
  for (int i = 0; i < 200'000; ++i) {
    const std::string name = "u" + std::to_string(rng() % 700);
    const int worker = static_cast<int>(rng() % 4);
    if (rng() % 2 == 0) {
      std::uint64_t s = 0;
      const auto r = d->claim(name, worker, &s);
      if (model.count(name) != 0) {
        ASSERT_EQ(r, ImDirectory::Claim::kTaken) << name;
      } else if (model.size() >= kMax) {
        ASSERT_EQ(r, ImDirectory::Claim::kFull);
      } else {
        ASSERT_EQ(r, ImDirectory::Claim::kOk) << name;
        ASSERT_EQ(s, last + 1);
        last = s;
        model[name] = {worker, s};
      }
    } else {
      const auto it = model.find(name);
      const std::uint64_t s = d->release(name, worker);
      if (it != model.end() && it->second.first == worker) {
        ASSERT_EQ(s, last + 1);
        last = s;
        model.erase(it);
      } else {
        ASSERT_EQ(s, 0u);
      }
    }
    if (i % 1000 == 0) {
      for (const auto& [n, v] : model) {
        const auto w = d->lookup(n);
        ASSERT_TRUE(w) << n;
        ASSERT_EQ(w->worker, v.first);
        ASSERT_EQ(w->claim_seq, v.second);
      }
      ASSERT_EQ(d->count(), model.size());
    }
  }
  std::vector<std::string> names;
  for (const auto& [n, v] : model) {
    names.push_back(n);
  }
  EXPECT_EQ(d->names(), names);
}

// Two processes on one mapping: what one claims the other sees taken, and the sequence is one.
TEST(kernel_server_directory, SharedBetweenProcesses) {
  SharedMemory mem(ImDirectory::region_size(1000));
  ImDirectory* d = ImDirectory::create(mem.get(), 1000);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ImDirectory* c = ImDirectory::attach(mem.get());
    std::uint64_t s = 0;
    int bad = 0;
    for (int i = 0; i < 500; ++i) {
      bad += c->claim("child" + std::to_string(i), 1, &s) == ImDirectory::Claim::kOk ? 0 : 1;
    }
    ::_exit(bad);
  }
  std::uint64_t s = 0;
  int ok = 0;
  for (int i = 0; i < 500; ++i) {
    ok += d->claim("parent" + std::to_string(i), 0, &s) == ImDirectory::Claim::kOk ? 1 : 0;
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(ok, 500);
  EXPECT_EQ(d->count(), 1000u);
  ASSERT_TRUE(d->lookup("child499"));
  EXPECT_EQ(d->lookup("child499")->worker, 1);
  EXPECT_EQ(d->claim("child7", 0, &s), ImDirectory::Claim::kTaken);
  std::uint64_t last = d->release("child7", 1);
  EXPECT_EQ(last, 1001u) << "1000 claims took 1..1000, in whatever order the two made them";
}

MeshRecord presence(std::uint64_t seq, const std::string& name, bool online = true) {
  MeshRecord r;
  r.type = MeshRecord::kPresence;
  r.seq = seq;
  r.online = online;
  r.name = name;
  return r;
}

MeshRecord from(const std::string& line) {
  MeshRecord r;
  r.type = MeshRecord::kFrom;
  r.line = line;
  return r;
}

std::string show(const MeshRecord& r) {
  return r.type == MeshRecord::kPresence ? "#" + std::to_string(r.seq) + (r.online ? "+" : "-") + r.name : r.line;
}

TEST(kernel_server_sequencer, InOrderEventsPassAtOnce) {
  std::vector<std::string> got;
  Sequencer s(3, [&](MeshRecord& r) { got.push_back(show(r)); });
  s.add(0, presence(1, "a"));
  s.add(1, from("x"));
  s.add(2, presence(2, "b"));
  s.add(1, presence(3, "a", false));
  EXPECT_EQ(got, (std::vector<std::string>{"#1+a", "x", "#2+b", "#3-a"}));
  EXPECT_EQ(s.held(), 0u);
  EXPECT_EQ(s.held_total(), 0u);
}

// The name moved: worker 0 logged "bob" out (#1) and worker 1 logged him in (#2), but #2
// arrived first. It waits, with the FROM of worker 1 behind it; worker 2's records do not.
TEST(kernel_server_sequencer, AnEventWaitsForTheEarlierOneAndKeepsItsChannelsOrder) {
  std::vector<std::string> got;
  Sequencer s(3, [&](MeshRecord& r) { got.push_back(show(r)); });
  s.add(1, presence(2, "bob"));
  s.add(1, from("FROM bob after login"));
  s.add(2, from("FROM carol unrelated"));
  EXPECT_EQ(got, (std::vector<std::string>{"FROM carol unrelated"}));
  EXPECT_EQ(s.held(), 2u);
  s.add(0, from("FROM bob before logout"));
  s.add(0, presence(1, "bob", false));
  EXPECT_EQ(got, (std::vector<std::string>{"FROM carol unrelated", "FROM bob before logout", "#1-bob", "#2+bob",
                                           "FROM bob after login"}));
  EXPECT_EQ(s.held(), 0u);
  EXPECT_EQ(s.next_event(), 3u);
}

TEST(kernel_server_sequencer, ChainsOfWaitsAcrossChannelsResolve) {
  std::vector<std::string> got;
  Sequencer s(4, [&](MeshRecord& r) { got.push_back(show(r)); });
  s.add(3, presence(4, "d"));
  s.add(2, presence(3, "c"));
  s.add(1, presence(2, "b"));
  s.add(2, from("after c"));
  EXPECT_TRUE(got.empty());
  s.add(0, presence(1, "a"));
  EXPECT_EQ(got, (std::vector<std::string>{"#1+a", "#2+b", "#3+c", "after c", "#4+d"}));
}

TEST(kernel_server_mesh, RecordsSurviveEncoding) {
  std::string packet;
  MeshRecord a = from("FROM alice hello world\n");
  a.name = "bob";
  a.seq = 77;
  MeshRecord b = presence(1ull << 40, std::string(32, 'n'), false);
  encode_record(a, &packet);
  encode_record(b, &packet);
  std::vector<MeshRecord> got;
  ASSERT_TRUE(decode_records(packet.data(), packet.size(), [&](MeshRecord&& r) { got.push_back(std::move(r)); }));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].type, MeshRecord::kFrom);
  EXPECT_EQ(got[0].name, "bob");
  EXPECT_EQ(got[0].seq, 77u);
  EXPECT_EQ(got[0].line, "FROM alice hello world\n");
  EXPECT_EQ(got[1].type, MeshRecord::kPresence);
  EXPECT_EQ(got[1].seq, 1ull << 40);
  EXPECT_FALSE(got[1].online);
  EXPECT_EQ(got[1].name, std::string(32, 'n'));
  EXPECT_FALSE(decode_records(packet.data(), packet.size() - 1, [](MeshRecord&&) {})) << "a cut record is refused";
}

}  // namespace
}  // namespace xtcp::kserver
