// Per-connection packet captures through the C API (xtcp_capture_start/stop/query) in
// virtual time: the pcap files are read back record by record and every packet's 4-tuple,
// flags and lengths checked against what the scripted clients and the stack exchanged.
#include <dirent.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "tests/api/api_test_util.h"
#include "xtcp/xtcp.h"

namespace xtcp::test {
namespace {

using namespace api_bench;  // NOLINT

// One record of a pcap file, and the TCP/IPv4 fields the tests look at.
struct Record {
  std::uint32_t ts_sec = 0;
  std::uint32_t ts_usec = 0;
  std::uint32_t caplen = 0;
  std::uint32_t origlen = 0;
  std::vector<std::byte> bytes;
  std::uint32_t src = 0;
  std::uint32_t dst = 0;
  std::uint16_t sport = 0;
  std::uint16_t dport = 0;
  std::uint8_t flags = 0;
  std::size_t payload = 0;  // TCP payload bytes by the IP total length (not what was kept)
};

struct PcapFile {
  bool ok = false;
  std::string why;
  std::uint32_t snaplen = 0;
  std::uint32_t linktype = 0;
  std::vector<Record> records;
};

std::uint32_t le32(const unsigned char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;  // the writer's native order: this machine's
}

std::uint32_t be(const std::vector<std::byte>& b, std::size_t at, std::size_t n) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < n; ++i) {
    v = v << 8 | static_cast<std::uint8_t>(b[at + i]);
  }
  return v;
}

// Reads a whole classic pcap file; ok false with why on any inconsistency.
PcapFile read_pcap(const std::string& path) {
  PcapFile f;
  std::ifstream in(path, std::ios::binary);
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  if (!in.good() && data.empty()) {
    f.why = "cannot read " + path;
    return f;
  }
  if (data.size() < 24 || le32(p) != 0xa1b2c3d4) {
    f.why = path + ": no pcap header";
    return f;
  }
  f.snaplen = le32(p + 16);
  f.linktype = le32(p + 20);
  std::size_t at = 24;
  while (at < data.size()) {
    if (data.size() - at < 16) {
      f.why = path + ": a record header is cut";
      return f;
    }
    Record r;
    r.ts_sec = le32(p + at);
    r.ts_usec = le32(p + at + 4);
    r.caplen = le32(p + at + 8);
    r.origlen = le32(p + at + 12);
    at += 16;
    if (data.size() - at < r.caplen || r.caplen > r.origlen || r.caplen > f.snaplen) {
      f.why = path + ": a record's bytes are cut or longer than its lengths allow";
      return f;
    }
    r.bytes.assign(reinterpret_cast<const std::byte*>(p + at), reinterpret_cast<const std::byte*>(p + at + r.caplen));
    at += r.caplen;
    if (r.bytes.size() >= 40) {
      const std::size_t ihl = (static_cast<std::size_t>(r.bytes[0]) & 0x0f) * 4;
      r.src = be(r.bytes, 12, 4);
      r.dst = be(r.bytes, 16, 4);
      r.sport = static_cast<std::uint16_t>(be(r.bytes, ihl, 2));
      r.dport = static_cast<std::uint16_t>(be(r.bytes, ihl + 2, 2));
      r.flags = static_cast<std::uint8_t>(r.bytes[ihl + 13]);
      const std::size_t doff = (static_cast<std::size_t>(r.bytes[ihl + 12]) >> 4) * 4;
      r.payload = be(r.bytes, 2, 2) - ihl - doff;
    }
    f.records.push_back(std::move(r));
  }
  f.ok = true;
  return f;
}

// A fresh directory for one test's files, removed with them at the end.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/xtcp-capture-XXXXXX";
    const char* d = ::mkdtemp(tmpl);
    EXPECT_NE(d, nullptr);
    path_ = d != nullptr ? d : "/tmp";
  }
  ~TempDir() {
    for (const std::string& n : names()) {
      std::remove((path_ + "/" + n).c_str());
    }
    ::rmdir(path_.c_str());
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  std::set<std::string> names() const {
    std::set<std::string> out;
    if (DIR* d = ::opendir(path_.c_str())) {
      while (const dirent* e = ::readdir(d)) {
        if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
          out.insert(e->d_name);
        }
      }
      ::closedir(d);
    }
    return out;
  }

 private:
  std::string path_;
};

std::uint64_t counter(const char* name) {
  const int n = xtcp_counters(nullptr, 0);
  std::vector<xtcp_counter> all(static_cast<std::size_t>(n > 0 ? n : 0));
  xtcp_counters(all.data(), all.size());
  for (const auto& c : all) {
    if (std::strcmp(c.name, name) == 0) {
      return c.value;
    }
  }
  ADD_FAILURE() << "no counter " << name;
  return 0;
}

// Whether the record is a packet of client c's connection to the stack, either way.
bool of_client(const Record& r, const Client& c) {
  const bool in = r.src == c.addr && r.sport == c.port && r.dst == kStackAddr && r.dport == c.server_port;
  const bool out = r.src == kStackAddr && r.sport == c.server_port && r.dst == c.addr && r.dport == c.port;
  return in || out;
}

bool inbound(const Record& r) { return r.dst == kStackAddr; }

// A bench with the C API on its runtime and one group listening on 7000.
struct CBench {
  CBench() {
    b.install();
    EXPECT_EQ(xtcp_initialize(1u << 20), 0);
    gd = xtcp_open_group(PF_INET, SOCK_STREAM, 0, 7000);
    EXPECT_GT(gd, 0);
  }
  ~CBench() { xtcp_finalize(); }
  int open(Client& c) {
    b.handshake(c);
    const int cd = xtcp_accept(gd);
    EXPECT_GT(cd, 0);
    return cd;
  }
  // Client c sends req; the server answers ans on cd, acknowledging the request.
  void exchange(Client& c, int cd, std::uint32_t rel_seq, const std::string& req, const std::string& ans) {
    b.inject(c, data(rel_seq, req));
    char buf[4096];
    int rcd = 0;
    ASSERT_EQ(xtcp_recv(gd, &rcd, buf, sizeof buf), static_cast<int>(req.size()));
    ASSERT_EQ(rcd, cd);
    ASSERT_EQ(xtcp_send(gd, cd, req.size(), ans.data(), ans.size()), static_cast<int>(ans.size()));
    b.sent({&c});
  }
  // Starts a capture of connection cd into path, with the other fields of s.
  int capture(int cd, const std::string& path, xtcp_capture_spec s = {}) {
    s.path = path.c_str();
    s.gd = gd;
    s.cd = cd;
    const int id = xtcp_capture_start(&s);
    EXPECT_GT(id, 0) << xtcp_last_error();
    return id;
  }
  Bench b;
  int gd = 0;
};

// "answer-007": 10 bytes for exchange 0 to 999.
std::string answer_of(int exchange) {
  std::string n = std::to_string(exchange % 1000);
  return std::string("answer-") + std::string(3 - n.size(), '0') + n;
}

// Every test of the API: a fresh directory and a runtime with a group on 7000.
class CaptureApi : public ::testing::Test {
 protected:
  TempDir dir;
  CBench cb;
};

// A spec writing to path (which must outlive the spec: no temporaries).
xtcp_capture_spec spec_for(const std::string& path) {
  xtcp_capture_spec s{};
  s.path = path.c_str();
  return s;
}
xtcp_capture_spec spec_for(std::string&& path) = delete;

// Two clients on one group: the capture of one connection (gd, cd) holds exactly that
// connection's packets, both directions, in order, and nothing of the other.
TEST_F(CaptureApi, OneConnectionOfTwoHoldsOnlyItsPackets) {
  Client a;
  Client other;
  other.addr = 0xC6120003;  // 198.18.0.3
  other.port = 40001;
  const int cda = cb.open(a);
  const int cdo = cb.open(other);
  const std::string path = dir.file("a.pcap");
  const int id = cb.capture(cda, path);
  ASSERT_GT(id, 0);
  EXPECT_EQ(counter("capture.running"), 1u);
  cb.exchange(a, cda, 1, "A-REQUEST-1", "A-ANSWER-1");
  cb.exchange(other, cdo, 1, "O-REQUEST-1", "O-ANSWER-1");
  cb.exchange(a, cda, 12, "A-REQUEST-2", "A-ANSWER-2");
  cb.b.inject(a, ack(21, 23));  // the client ACKs both answers
  cb.b.inject(other, ack(11, 12));
  xtcp_capture_stats st{};
  ASSERT_EQ(xtcp_capture_query(id, &st), 0);
  EXPECT_EQ(st.running, 1);
  EXPECT_EQ(st.packets, 5u);
  ASSERT_EQ(xtcp_capture_stop(id), 0);
  EXPECT_EQ(xtcp_capture_query(id, &st), -EBADF) << "a stopped capture is gone";
  EXPECT_EQ(xtcp_capture_stop(id), -EBADF);
  cb.exchange(a, cda, 23, "A-AFTER-STOP", "not captured");

  const PcapFile f = read_pcap(path);
  ASSERT_TRUE(f.ok) << f.why;
  EXPECT_EQ(f.linktype, 101u);
  EXPECT_EQ(f.snaplen, 65535u);
  // request in, answer out (the ACK rides on it), twice; then the client's ACK.
  ASSERT_EQ(f.records.size(), 5u);
  const bool in_expected[] = {true, false, true, false, true};
  const std::size_t payload_expected[] = {11, 10, 11, 10, 0};
  for (std::size_t i = 0; i < f.records.size(); ++i) {
    const Record& r = f.records[i];
    EXPECT_TRUE(of_client(r, a)) << "record " << i << " is not client a's";
    EXPECT_EQ(inbound(r), in_expected[i]) << "record " << i;
    EXPECT_EQ(r.payload, payload_expected[i]) << "record " << i;
    EXPECT_EQ(r.caplen, r.origlen);
    // virtual time: the Clock's value itself (100 s)
    EXPECT_EQ(r.ts_sec, 100u);
  }
  EXPECT_EQ(str(std::vector<std::byte>(f.records[1].bytes.end() - 10, f.records[1].bytes.end())), "A-ANSWER-1");
  EXPECT_EQ(counter("capture.packets"), 5u);
  EXPECT_EQ(counter("capture.running"), 0u);
  EXPECT_EQ(counter("capture.started"), 1u);
  EXPECT_EQ(counter("capture.errors"), 0u);
}

// A capture by the client's address and port, started before it connects: the file holds
// its whole life, SYN to the last ACK of the FIN exchange, and a retransmission.
TEST_F(CaptureApi, ByRemoteAddressHoldsHandshakeRetransmissionAndFin) {
  Client a;
  Client other;
  other.addr = 0xC6120003;
  other.port = 40001;
  const std::string path = dir.file("remote");
  xtcp_capture_spec s = spec_for(path);
  s.remote_addr = "198.18.0.1";
  s.remote_port = a.port;
  s.local_port = 7000;
  const int id = xtcp_capture_start(&s);
  ASSERT_GT(id, 0) << xtcp_last_error();
  const int cdo = cb.open(other);
  const int cda = cb.open(a);
  cb.exchange(other, cdo, 1, "other", "other-answer");
  cb.exchange(a, cda, 1, "hello", "world");
  cb.b.inject(other, ack(13, 6));
  // The answer is not ACKed: it is retransmitted after the RTO.
  std::vector<Out> resent;
  for (int i = 0; i < 10 && resent.empty(); ++i) {
    cb.b.advance_to_next_deadline();
    resent = cb.b.sent({&a});
  }
  ASSERT_EQ(resent.size(), 1u);
  EXPECT_EQ(resent[0].dst_port, a.port);
  cb.b.inject(a, ack(6, 6));
  // The client closes; the server reads the end and closes too; the client ACKs its FIN.
  Seg fin = ack(6, 6);
  fin.flags = kFin | kAck;
  cb.b.inject(a, fin);
  cb.b.sent({&a});
  char buf[16];
  int rcd = 0;
  ASSERT_EQ(xtcp_recv(cb.gd, &rcd, buf, sizeof buf), 0);
  ASSERT_EQ(xtcp_close(cb.gd, cda), 0);
  const auto fin_out = cb.b.sent({&a});
  ASSERT_EQ(fin_out.size(), 1u);
  EXPECT_TRUE(fin_out[0].seg.has(kFin));
  cb.b.inject(a, ack(7, 7));
  ASSERT_EQ(xtcp_capture_stop(id), 0);

  const PcapFile f = read_pcap(path);
  ASSERT_TRUE(f.ok) << f.why;
  // SYN, SYN-ACK, ACK, "hello", "world", "world" again, ACK, FIN, ACK of it... , FIN, ACK.
  ASSERT_GE(f.records.size(), 10u);
  for (const Record& r : f.records) {
    EXPECT_TRUE(of_client(r, a)) << "a packet of another flow";
  }
  EXPECT_EQ(f.records[0].flags & (kSyn | kAck), kSyn);
  EXPECT_TRUE(inbound(f.records[0]));
  EXPECT_EQ(f.records[1].flags & (kSyn | kAck), kSyn | kAck);
  EXPECT_FALSE(inbound(f.records[1]));
  int answers = 0;
  bool fin_in = false;
  bool fin_out_seen = false;
  for (const Record& r : f.records) {
    if (!inbound(r) && r.payload == 5) {
      ++answers;
    }
    fin_in = fin_in || (inbound(r) && (r.flags & kFin) != 0);
    fin_out_seen = fin_out_seen || (!inbound(r) && (r.flags & kFin) != 0);
  }
  EXPECT_EQ(answers, 2) << "the answer and its retransmission";
  EXPECT_TRUE(fin_in);
  EXPECT_TRUE(fin_out_seen);
  const Record& last = f.records.back();
  EXPECT_TRUE(inbound(last));
  EXPECT_EQ(last.flags, kAck) << "the client's ACK of the server's FIN ends the file";
}

// A group capture takes every connection on its port; a snapshot length cuts packets and
// keeps their lengths.
TEST_F(CaptureApi, GroupCaptureWithSnapLength) {
  const std::string path = dir.file("group.pcap");
  xtcp_capture_spec s = spec_for(path);
  s.gd = cb.gd;
  s.snaplen = 48;
  const int id = xtcp_capture_start(&s);
  ASSERT_GT(id, 0) << xtcp_last_error();
  Client a;
  Client other;
  other.addr = 0xC6120003;
  other.port = 40001;
  const int cda = cb.open(a);
  const int cdo = cb.open(other);
  const std::string big(200, 'x');
  cb.exchange(a, cda, 1, big, "short");
  cb.exchange(other, cdo, 1, "tiny", big);
  xtcp_capture_stats st{};
  ASSERT_EQ(xtcp_capture_query(id, &st), 0);
  ASSERT_EQ(xtcp_capture_stop(id), 0);
  const PcapFile f = read_pcap(path);
  ASSERT_TRUE(f.ok) << f.why;
  EXPECT_EQ(f.snaplen, 48u);
  ASSERT_EQ(f.records.size(), 10u);  // two handshakes (3 each), two request/answer pairs
  std::size_t cut = 0;
  std::size_t big_ones = 0;
  for (const Record& r : f.records) {
    EXPECT_TRUE(of_client(r, a) || of_client(r, other));
    EXPECT_LE(r.caplen, 48u);
    EXPECT_EQ(r.caplen, std::min<std::uint32_t>(r.origlen, 48));
    cut += r.caplen < r.origlen ? 1 : 0;
    // the 200-byte request and answer (no TCP options): cut, with their length kept
    big_ones += r.origlen == 40u + 200u && r.caplen == 48u ? 1 : 0;
  }
  EXPECT_EQ(big_ones, 2u);
  EXPECT_EQ(st.truncated, cut);
  EXPECT_EQ(st.packets, 10u);
  EXPECT_EQ(counter("capture.truncated"), cut);
}

// Rotation: files of at most rotate_bytes, named path, NAME.1.pcap, ...; only the newest
// rotate_files stay, and together they hold the last packets in order.
TEST_F(CaptureApi, RotationKeepsTheNewestFiles) {
  Client a;
  const int cda = cb.open(a);
  const std::string path = dir.file("rot.pcap");
  xtcp_capture_spec rotation{};
  rotation.rotate_bytes = 4096;
  rotation.rotate_files = 3;
  const int id = cb.capture(cda, path, rotation);
  ASSERT_GT(id, 0);
  // Each exchange: a 1000-byte request (1056-byte record) and a 10-byte answer (66 bytes):
  // three exchanges fill a file (24 + 3 * 1122 bytes; a fourth would pass 4096), so 12 of
  // them make files 0 to 3, and the oldest, rot.pcap, is gone.
  std::uint32_t seq = 1;
  for (int i = 0; i < 12; ++i) {
    cb.exchange(a, cda, seq, std::string(1000, static_cast<char>('a' + i)), answer_of(i));
    seq += 1000;
  }
  xtcp_capture_stats st{};
  ASSERT_EQ(xtcp_capture_query(id, &st), 0);
  EXPECT_EQ(st.file_index, 3u);
  ASSERT_EQ(xtcp_capture_stop(id), 0);
  EXPECT_EQ(dir.names(), (std::set<std::string>{"rot.1.pcap", "rot.2.pcap", "rot.3.pcap"}));
  std::vector<Record> all;
  for (const char* n : {"rot.1.pcap", "rot.2.pcap", "rot.3.pcap"}) {
    struct stat sb {};
    ASSERT_EQ(::stat(dir.file(n).c_str(), &sb), 0);
    EXPECT_LE(sb.st_size, 4096) << n;
    const PcapFile f = read_pcap(dir.file(n));
    ASSERT_TRUE(f.ok) << f.why;
    EXPECT_FALSE(f.records.empty()) << n;
    all.insert(all.end(), f.records.begin(), f.records.end());
  }
  // 24 records in all, 3 exchanges (6 records) per file: files 1, 2, 3 hold exchanges 3 to 11.
  ASSERT_EQ(all.size(), 18u);
  for (std::size_t i = 0; i < all.size(); ++i) {
    const int exchange = 3 + static_cast<int>(i / 2);
    if (i % 2 == 0) {
      ASSERT_EQ(all[i].payload, 1000u);
      EXPECT_EQ(static_cast<char>(all[i].bytes.back()), static_cast<char>('a' + exchange));
    } else {
      EXPECT_EQ(str(std::vector<std::byte>(all[i].bytes.end() - 10, all[i].bytes.end())), answer_of(exchange));
    }
  }
  EXPECT_EQ(counter("capture.packets"), 24u);
}

// Records wait in the capture's buffer; stop writes them all and closes the file.
TEST_F(CaptureApi, StopFlushesAndClosesTheFile) {
  Client a;
  const int cda = cb.open(a);
  const std::string path = dir.file("flush.pcap");
  const int id = cb.capture(cda, path);
  ASSERT_GT(id, 0);
  cb.exchange(a, cda, 1, "ping", "pong");
  EXPECT_EQ(read_pcap(path).records.size(), 0u) << "buffered until the buffer fills or the capture stops";
  ASSERT_EQ(xtcp_capture_stop(id), 0);
  struct stat sb {};
  ASSERT_EQ(::stat(path.c_str(), &sb), 0);
  EXPECT_EQ(sb.st_size, 24 + (16 + 44) + (16 + 44));
  EXPECT_EQ(read_pcap(path).records.size(), 2u);
}

// A write that fails ends the capture, counted and reported by query and stop; the traffic
// goes on. /dev/full fails every write with ENOSPC.
TEST_F(CaptureApi, DiskFullEndsTheCaptureNotTheTraffic) {
  Client a;
  const int cda = cb.open(a);
  const std::string full = "/dev/full";
  xtcp_capture_spec s = spec_for(full);
  s.gd = cb.gd;
  const int id = xtcp_capture_start(&s);
  ASSERT_GT(id, 0) << xtcp_last_error();
  // More than the 64 KiB buffer: the first write(2) fails.
  std::uint32_t seq = 1;
  for (int i = 0; i < 60; ++i) {
    cb.exchange(a, cda, seq, std::string(1400, 'q'), "ok");
    seq += 1400;
  }
  xtcp_capture_stats st{};
  ASSERT_EQ(xtcp_capture_query(id, &st), 0);
  EXPECT_EQ(st.running, 0);
  EXPECT_EQ(st.error, ENOSPC);
  EXPECT_EQ(counter("capture.errors"), 1u);
  EXPECT_EQ(counter("capture.running"), 0u);
  EXPECT_EQ(xtcp_capture_stop(id), -ENOSPC);
  EXPECT_EQ(xtcp_capture_stop(id), -EBADF);
  cb.exchange(a, cda, seq, "still", "served");
}

// Every bad spec is refused with its errno (and explained); nothing is opened.
TEST_F(CaptureApi, BadSpecsAreRefused) {
  Client a;
  const int cda = cb.open(a);
  const std::string path = dir.file("x.pcap");
  EXPECT_EQ(xtcp_capture_start(nullptr), -EINVAL);
  xtcp_capture_spec s = spec_for(path);
  s.path = nullptr;
  EXPECT_EQ(xtcp_capture_start(&s), -EINVAL);
  s.path = "";
  EXPECT_EQ(xtcp_capture_start(&s), -EINVAL);
  auto refused = [&](xtcp_capture_spec bad, int want, const char* what) {
    EXPECT_EQ(xtcp_capture_start(&bad), want) << what;
    EXPECT_NE(std::string(xtcp_last_error()), "") << what;
  };
  xtcp_capture_spec b = spec_for(path);
  b.snaplen = 65536;
  refused(b, -EINVAL, "snaplen too big");
  b = spec_for(path);
  b.rotate_bytes = 4095;
  refused(b, -EINVAL, "rotate_bytes too small");
  b = spec_for(path);
  b.rotate_files = 3;
  refused(b, -EINVAL, "rotate_files without rotate_bytes");
  b = spec_for(path);
  b.rotate_bytes = 1 << 20;
  b.rotate_files = 10001;
  refused(b, -EINVAL, "rotate_files too many");
  b = spec_for(path);
  b.reserved[2] = 1;
  refused(b, -EINVAL, "reserved");
  b = spec_for(path);
  b.reserved_u32 = 1;
  refused(b, -EINVAL, "reserved_u32");
  b = spec_for(path);
  b.remote_addr = "198.18.0.300";
  refused(b, -EINVAL, "bad address");
  b = spec_for(path);
  b.cd = cda;
  refused(b, -EINVAL, "cd without gd");
  b = spec_for(path);
  b.gd = -1;
  refused(b, -EINVAL, "negative gd");
  b = spec_for(path);
  b.gd = cb.gd + 5;
  refused(b, -EBADF, "unknown group");
  b = spec_for(path);
  b.gd = cb.gd;
  b.cd = cda + 1;
  refused(b, -EBADF, "unknown connection");
  b = spec_for(path);
  b.gd = cb.gd;
  b.cd = cda;
  b.remote_port = 1234;
  refused(b, -EINVAL, "a remote port that is not the connection's");
  b.remote_port = a.port;  // the connection's own: agrees
  b.remote_addr = "198.18.0.1";
  const int agreeing = xtcp_capture_start(&b);
  EXPECT_GT(agreeing, 0) << xtcp_last_error();
  EXPECT_EQ(xtcp_capture_stop(agreeing), 0);
  b = spec_for(path);
  b.gd = cb.gd;
  b.local_port = 7001;
  refused(b, -EINVAL, "a local port that is not the group's");
  const int connect_group = xtcp_open_group(PF_INET, SOCK_STREAM, 0, 0);
  ASSERT_GT(connect_group, 0);
  b = spec_for(path);
  b.gd = connect_group;
  refused(b, -EINVAL, "a group without port");
  const std::string missing_dir = dir.file("no/such/dir.pcap");
  b = spec_for(missing_dir);
  refused(b, -ENOENT, "a directory that does not exist");
  EXPECT_EQ(xtcp_capture_stop(0), -EBADF);
  EXPECT_EQ(xtcp_capture_stop(12345), -EBADF);
  xtcp_capture_stats st{};
  EXPECT_EQ(xtcp_capture_query(12345, &st), -EBADF);
  // XTCP_MAX_CAPTURES at once, then -EMFILE; stopping one makes room.
  std::vector<int> ids;
  for (int i = 0; i < XTCP_MAX_CAPTURES; ++i) {
    const std::string name = dir.file(std::string("many") + std::to_string(i) + ".pcap");
    xtcp_capture_spec ok = spec_for(name);
    ok.local_port = static_cast<std::uint16_t>(7000 + i);
    ids.push_back(xtcp_capture_start(&ok));
    ASSERT_GT(ids.back(), 0) << xtcp_last_error();
  }
  EXPECT_EQ(std::set<int>(ids.begin(), ids.end()).size(), ids.size()) << "ids are distinct";
  const std::string extra = dir.file("one-too-many.pcap");
  b = spec_for(extra);
  refused(b, -EMFILE, "too many captures");
  EXPECT_EQ(xtcp_capture_query(ids[3], nullptr), -EINVAL);
  EXPECT_EQ(xtcp_capture_stop(ids[3]), 0);
  const int again = xtcp_capture_start(&b);
  EXPECT_GT(again, ids.back()) << "ids are not reused";
  EXPECT_EQ(counter("capture.running"), static_cast<std::uint64_t>(XTCP_MAX_CAPTURES));
  EXPECT_EQ(dir.names().count("one-too-many.pcap"), 1u);
  EXPECT_EQ(dir.names().count("x.pcap"), 1u) << "only the agreeing spec opened x.pcap";
}

TEST(Capture, FileNamesOfRotation) {
  EXPECT_EQ(CaptureFile::file_name("/t/a.pcap", 0), "/t/a.pcap");
  EXPECT_EQ(CaptureFile::file_name("/t/a.pcap", 1), "/t/a.1.pcap");
  EXPECT_EQ(CaptureFile::file_name("/t/a.pcap", 12), "/t/a.12.pcap");
  EXPECT_EQ(CaptureFile::file_name("/t/a", 2), "/t/a.2");
  EXPECT_EQ(CaptureFile::file_name(".pcap", 2), ".pcap.2");
}

// Before xtcp_initialize there is nothing to capture.
TEST(Capture, NotInitialized) {
  const std::string never = "/tmp/never.pcap";
  xtcp_capture_spec s = spec_for(never);
  EXPECT_EQ(xtcp_capture_start(&s), -EINVAL);
  EXPECT_EQ(xtcp_capture_stop(1), -EINVAL);
}

}  // namespace
}  // namespace xtcp::test
