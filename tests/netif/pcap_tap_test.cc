// PcapTap over an in-test queue link: every sent and received packet (malformed ones too)
// lands in the pcap file byte-exact with the Clock's timestamps, checked by parsing the
// file directly, against golden bytes, and by tshark reading it cleanly (skipped without it).
#include "stack/netif/pcap_tap.h"

#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "stack/core/clock.h"
#include "stack/wire/bytes.h"
#include "stack/wire/checksum.h"
#include "tests/support/netns.h"

namespace xtcp {
namespace {

using Bytes = std::vector<std::byte>;

// The trivial link under the tap: send() appends to sent, receive_batch() drains inbound.
class QueueLink final : public Link {
 public:
  int send(std::span<const std::byte> packet) override {
    sent.emplace_back(packet.begin(), packet.end());
    return send_result;
  }
  int receive_batch(int max_packets, PacketHandler on_packet) override {
    int n = 0;
    while (n < max_packets && !inbound.empty()) {
      const Bytes pkt = std::move(inbound.front());
      inbound.pop_front();
      on_packet(pkt);
      ++n;
    }
    return n;
  }
  std::size_t mtu() const override { return 1500; }
  int poll_fd() const override { return 42; }
  TimeNs next_event_time() const override { return next_event; }

  std::vector<Bytes> sent;
  TimeNs next_event = kNever;
  std::deque<Bytes> inbound;
  int send_result = 0;
};

Bytes ipv4_packet(std::uint8_t proto, std::uint32_t src, std::uint32_t dst, const Bytes& l4) {
  Bytes pkt(20 + l4.size());
  std::byte* ip = pkt.data();
  wire::store_u8(ip + 0, 0x45);
  wire::store_be16(ip + 2, static_cast<std::uint16_t>(pkt.size()));
  wire::store_u8(ip + 8, 64);
  wire::store_u8(ip + 9, proto);
  wire::store_be32(ip + 12, src);
  wire::store_be32(ip + 16, dst);
  wire::store_be16(ip + 10, wire::internet_checksum({ip, 20}));
  std::copy(l4.begin(), l4.end(), pkt.begin() + 20);
  return pkt;
}

Bytes udp_packet() {
  Bytes udp(8 + 5);
  wire::store_be16(udp.data() + 0, 40000);
  wire::store_be16(udp.data() + 2, 7);
  wire::store_be16(udp.data() + 4, static_cast<std::uint16_t>(udp.size()));
  std::memcpy(udp.data() + 8, "hello", 5);
  wire::Checksum sum = wire::pseudo_header_sum(0xC6120001, 0xC6120002, 17,
                                               static_cast<std::uint16_t>(udp.size()));
  sum.add(udp);
  wire::store_be16(udp.data() + 6, sum.finish());
  return ipv4_packet(17, 0xC6120001, 0xC6120002, udp);
}

Bytes icmp_echo_reply() {
  Bytes icmp(8 + 4);
  wire::store_u8(icmp.data(), 0);
  wire::store_be16(icmp.data() + 4, 0x0101);
  wire::store_be16(icmp.data() + 6, 1);
  std::memcpy(icmp.data() + 8, "ping", 4);
  wire::store_be16(icmp.data() + 2, wire::internet_checksum(icmp));
  return ipv4_packet(1, 0xC6120002, 0xC6120001, icmp);
}

Bytes bytes_of(std::initializer_list<int> v) {
  Bytes b;
  for (int x : v) {
    b.push_back(static_cast<std::byte>(x));
  }
  return b;
}

struct PcapRecord {
  std::uint32_t ts_sec;
  std::uint32_t ts_usec;
  std::uint32_t orig_len;
  Bytes data;
};

struct PcapFile {
  std::uint32_t magic = 0;
  std::uint16_t version_major = 0;
  std::uint16_t version_minor = 0;
  std::uint32_t snaplen = 0;
  std::uint32_t linktype = 0;
  std::vector<PcapRecord> records;
  bool truncated = false;
};

// An independent reader of the classic pcap format (written in host byte order).
PcapFile parse_pcap(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  PcapFile f;
  auto u32 = [&](std::size_t off) {
    std::uint32_t v;
    std::memcpy(&v, raw.data() + off, 4);
    return v;
  };
  auto u16 = [&](std::size_t off) {
    std::uint16_t v;
    std::memcpy(&v, raw.data() + off, 2);
    return v;
  };
  if (raw.size() < 24) {
    f.truncated = true;
    return f;
  }
  f.magic = u32(0);
  f.version_major = u16(4);
  f.version_minor = u16(6);
  f.snaplen = u32(16);
  f.linktype = u32(20);
  std::size_t off = 24;
  while (off < raw.size()) {
    if (raw.size() - off < 16) {
      f.truncated = true;
      break;
    }
    PcapRecord r{u32(off), u32(off + 4), u32(off + 12), {}};
    const std::uint32_t caplen = u32(off + 8);
    off += 16;
    if (raw.size() - off < caplen) {
      f.truncated = true;
      break;
    }
    const auto* p = reinterpret_cast<const std::byte*>(raw.data() + off);
    r.data.assign(p, p + caplen);
    off += caplen;
    f.records.push_back(std::move(r));
  }
  return f;
}

std::string temp_pcap_path(const std::string& tag) {
  return ::testing::TempDir() + "xtcp_pcap_tap_" + std::to_string(::getpid()) + "_" + tag +
         ".pcap";
}

// Drives the tap: sends and receives a mix of valid and malformed packets at known times.
struct Scenario {
  Bytes udp = udp_packet();
  Bytes reply = icmp_echo_reply();
  Bytes truncated_header = bytes_of({0x45, 0x00, 0x00, 0x54, 0xde, 0xad, 0x40, 0x00, 0x40});
  Bytes garbage = bytes_of({0xff, 0x00, 0x13});

  void run(PcapTap& tap, QueueLink& inner, ManualClock& clock) {
    clock.set(seconds(1) + us(1));
    EXPECT_EQ(tap.send(udp), 0);
    clock.set(seconds(1) + ms(500));
    inner.inbound.push_back(reply);
    inner.inbound.push_back(garbage);
    std::vector<Bytes> handed;
    EXPECT_EQ(tap.receive_batch(1, [&](std::span<const std::byte> p) {
                handed.emplace_back(p.begin(), p.end());
              }),
              1);
    clock.set(seconds(2));
    EXPECT_EQ(tap.send(truncated_header), 0);
    clock.set(seconds(2) + ms(250));
    EXPECT_EQ(tap.receive_batch(8, [&](std::span<const std::byte> p) {
                handed.emplace_back(p.begin(), p.end());
              }),
              1);
    clock.set(seconds(3));
    EXPECT_EQ(tap.send({}), 0);  // reaches the inner link, cannot be recorded

    // The tap is transparent to both directions.
    ASSERT_EQ(inner.sent.size(), 3u);
    EXPECT_EQ(inner.sent[0], udp);
    EXPECT_EQ(inner.sent[1], truncated_header);
    EXPECT_TRUE(inner.sent[2].empty());
    ASSERT_EQ(handed.size(), 2u);
    EXPECT_EQ(handed[0], reply);
    EXPECT_EQ(handed[1], garbage);
  }
};

TEST(PcapTap, RecordsBothDirectionsByteExactWithClockTimestamps) {
  const std::string path = temp_pcap_path("exact");
  QueueLink inner;
  ManualClock clock;
  Scenario s;
  std::string error;
  auto tap = PcapTap::open(inner, clock, path, &error);
  ASSERT_NE(tap, nullptr) << error;
  EXPECT_EQ(tap->mtu(), 1500u);
  EXPECT_EQ(tap->poll_fd(), 42);
  EXPECT_EQ(tap->next_event_time(), kNever);
  inner.next_event = seconds(7);  // a delaying inner link's wake-up must show through
  EXPECT_EQ(tap->next_event_time(), seconds(7));
  s.run(*tap, inner, clock);
  EXPECT_EQ(tap->counters().packets_recorded, 4u);
  EXPECT_EQ(tap->counters().bytes_recorded,
            s.udp.size() + s.reply.size() + s.truncated_header.size() + s.garbage.size());
  EXPECT_EQ(tap->counters().packets_not_recorded, 1u);
  tap.reset();  // closes the file

  const PcapFile f = parse_pcap(path);
  EXPECT_EQ(f.magic, 0xa1b2c3d4u);
  EXPECT_EQ(f.version_major, 2);
  EXPECT_EQ(f.version_minor, 4);
  EXPECT_EQ(f.linktype, 101u) << "expected LINKTYPE_RAW";
  EXPECT_GE(f.snaplen, 65535u);
  EXPECT_FALSE(f.truncated);
  ASSERT_EQ(f.records.size(), 4u);
  const Bytes* expect[] = {&s.udp, &s.reply, &s.truncated_header, &s.garbage};
  const std::uint32_t sec[] = {1, 1, 2, 2};
  const std::uint32_t usec[] = {1, 500000, 0, 250000};
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(f.records[i].data, *expect[i]) << "record " << i;
    EXPECT_EQ(f.records[i].orig_len, expect[i]->size()) << "record " << i;
    EXPECT_EQ(f.records[i].ts_sec, sec[i]) << "record " << i;
    EXPECT_EQ(f.records[i].ts_usec, usec[i]) << "record " << i;
  }
  std::remove(path.c_str());
}

TEST(PcapTap, TsharkReadsTheCaptureCleanly) {
  const auto tshark = find_executable("tshark");
  if (!tshark) {
    GTEST_SKIP() << "tshark not installed (apt-get install tshark)";
  }
  const std::string path = temp_pcap_path("tshark");
  {
    QueueLink inner;
    ManualClock clock;
    Scenario s;
    std::string error;
    auto tap = PcapTap::open(inner, clock, path, &error);
    ASSERT_NE(tap, nullptr) << error;
    s.run(*tap, inner, clock);
  }
  // -T fields: one line per frame; stderr (tshark's "running as root" note) is mixed in,
  // so only lines starting with the frame number are counted.
  const CommandResult r =
      run_command({*tshark, "-n", "-r", path, "-T", "fields", "-E", "separator=,", "-e",
                   "frame.number", "-e", "frame.len", "-e", "ip.proto", "-e", "icmp.type"},
                  std::chrono::seconds(60));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::vector<std::string> frames;
  std::istringstream lines(r.output);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line[0] >= '1' && line[0] <= '9') {
      frames.push_back(line);
    }
  }
  ASSERT_EQ(frames.size(), 4u) << r.output;
  // Valid packets decode as IPv4 (proves LINKTYPE_RAW is read as IP); broken ones are
  // still present with their lengths.
  EXPECT_EQ(frames[0], "1,33,17,") << r.output;
  EXPECT_EQ(frames[1], "2,32,1,0") << r.output;
  EXPECT_EQ(frames[2].rfind("3,9,", 0), 0u) << r.output;
  EXPECT_EQ(frames[3].rfind("4,3,", 0), 0u) << r.output;
  EXPECT_EQ(r.output.find("cut short"), std::string::npos) << r.output;
  std::remove(path.c_str());
}

TEST(PcapTap, DirectionFiltersAndWallClockTimestamps) {
  const std::string path = temp_pcap_path("filters");
  QueueLink inner;
  ManualClock clock(seconds(5));
  std::string error;
  auto tap = PcapTap::open(inner, clock, path,
                           PcapTapOptions{.record_sent = false, .record_received = true,
                                          .wall_clock_timestamps = true},
                           &error);
  ASSERT_NE(tap, nullptr) << error;
  const Bytes udp = udp_packet();
  inner.send_result = -EAGAIN;
  EXPECT_EQ(tap->send(udp), -EAGAIN);  // the inner link's answer passes through
  EXPECT_EQ(inner.sent.size(), 1u);
  inner.inbound.push_back(icmp_echo_reply());
  clock.advance(seconds(2));
  int handed = 0;
  EXPECT_EQ(tap->receive_batch(4, [&](std::span<const std::byte>) { ++handed; }), 1);
  EXPECT_EQ(handed, 1);
  tap.reset();

  const PcapFile f = parse_pcap(path);
  ASSERT_EQ(f.records.size(), 1u);  // only the received packet
  EXPECT_EQ(f.records[0].data, icmp_echo_reply());
  // Anchored to CLOCK_REALTIME at open, plus the 2 s the clock moved since.
  const auto now = static_cast<std::int64_t>(std::time(nullptr));
  EXPECT_GE(static_cast<std::int64_t>(f.records[0].ts_sec), now - 60 + 2);
  EXPECT_LE(static_cast<std::int64_t>(f.records[0].ts_sec), now + 60 + 2);
  std::remove(path.c_str());
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string as_string(std::initializer_list<int> v) {
  std::string b;
  for (int x : v) {
    b.push_back(static_cast<char>(x));
  }
  return b;
}

// The classic pcap format byte for byte, as libpcap's pcap_dump (behind libtins's
// PacketWriter, which PcapTap used before) wrote it: host byte order, here little-endian.
TEST(PcapTap, GoldenBytesOfTheFileHeaderAndOneRecord) {
  if constexpr (std::endian::native != std::endian::little) {
    GTEST_SKIP() << "golden bytes are little-endian; pcap files are written in host order";
  }
  const std::string path = temp_pcap_path("golden");
  QueueLink inner;
  ManualClock clock(seconds(1'700'000'000) + us(123'456) + 789);  // the 789 ns are dropped
  std::string error;
  auto tap = PcapTap::open(inner, clock, path, &error);
  ASSERT_NE(tap, nullptr) << error;
  EXPECT_EQ(tap->send(bytes_of({0x45, 0x00, 0x00, 0x14, 0xab})), 0);
  tap.reset();

  const std::string header = as_string({
      0xd4, 0xc3, 0xb2, 0xa1,  // magic 0xa1b2c3d4: microsecond timestamps
      0x02, 0x00, 0x04, 0x00,  // version 2.4
      0x00, 0x00, 0x00, 0x00,  // thiszone 0
      0x00, 0x00, 0x00, 0x00,  // sigfigs 0
      0xff, 0xff, 0x00, 0x00,  // snaplen 65535
      0x65, 0x00, 0x00, 0x00,  // linktype 101, LINKTYPE_RAW
  });
  const std::string record = as_string({
      0x00, 0xf1, 0x53, 0x65,  // ts_sec 1700000000
      0x40, 0xe2, 0x01, 0x00,  // ts_usec 123456
      0x05, 0x00, 0x00, 0x00,  // captured length 5
      0x05, 0x00, 0x00, 0x00,  // original length 5
      0x45, 0x00, 0x00, 0x14, 0xab,
  });
  const std::string file = read_file(path);
  ASSERT_EQ(file.size(), header.size() + record.size());
  EXPECT_EQ(file.substr(0, header.size()), header);
  EXPECT_EQ(file.substr(header.size()), record);
  std::remove(path.c_str());
}

// Timestamps before the epoch are written as 0; seconds past 2^32 keep their low 32 bits.
TEST(PcapTap, TimestampsAreClampedAtZeroAndSecondsKeepTheirLow32Bits) {
  const std::string path = temp_pcap_path("stamps");
  QueueLink inner;
  ManualClock clock(-seconds(5));
  std::string error;
  auto tap = PcapTap::open(inner, clock, path, &error);
  ASSERT_NE(tap, nullptr) << error;
  const Bytes one = bytes_of({0x45});
  tap->send(one);
  clock.set(seconds(5'000'000'000) + ms(123) + 999);
  tap->send(one);
  tap.reset();

  const PcapFile f = parse_pcap(path);
  ASSERT_EQ(f.records.size(), 2u);
  EXPECT_EQ(f.records[0].ts_sec, 0u);
  EXPECT_EQ(f.records[0].ts_usec, 0u);
  EXPECT_EQ(f.records[1].ts_sec, static_cast<std::uint32_t>(5'000'000'000 % (1LL << 32)));
  EXPECT_EQ(f.records[1].ts_usec, 123'000u);
  std::remove(path.c_str());
}

// `tshark -r FILE` on a capture from PcapWriter: exit status 0 and nothing on stderr but
// tshark's note about running as root (about how tshark runs, not about the file).
TEST(PcapTap, TsharkOpensTheFileWithNoErrorOrWarning) {
  const auto tshark = find_executable("tshark");
  if (!tshark) {
    GTEST_SKIP() << "tshark not installed (apt-get install tshark)";
  }
  const std::string path = temp_pcap_path("tshark_stderr");
  {
    QueueLink inner;
    ManualClock clock;
    Scenario s;
    std::string error;
    auto tap = PcapTap::open(inner, clock, path, &error);
    ASSERT_NE(tap, nullptr) << error;
    s.run(*tap, inner, clock);
    // Many more records than one stdio buffer holds, the largest IPv4 packet among them.
    Bytes big = udp_packet();
    big.resize(65535, std::byte{0x5a});
    for (int i = 0; i < 3000; ++i) {
      clock.advance(us(7));
      tap->send(i % 100 == 0 ? big : s.udp);
    }
  }
  // Only stderr is captured: stdout (the packet list) goes to /dev/null.
  const CommandResult r = run_command(
      {"/bin/sh", "-c", "exec \"$0\" -r \"$1\" 2>&1 >/dev/null", *tshark, path},
      std::chrono::seconds(120));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::string stderr_text;
  std::istringstream lines(r.output);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("Running as user \"root\"", 0) != 0) {
      stderr_text += line + "\n";
    }
  }
  EXPECT_EQ(stderr_text, "") << "tshark -r " << path;
  std::remove(path.c_str());
}

// Write errors are not reported (as with libtins before): the tap still forwards every
// packet and counts it; the file keeps what was written before the failure.
TEST(PcapTap, AWriteErrorDoesNotStopTheLink) {
  QueueLink inner;
  ManualClock clock;
  std::string error;
  auto tap = PcapTap::open(inner, clock, "/dev/full", &error);
  if (!tap) {
    GTEST_SKIP() << "no /dev/full: " << error;
  }
  const Bytes udp = udp_packet();
  for (int i = 0; i < 1000; ++i) {
    EXPECT_EQ(tap->send(udp), 0);
  }
  EXPECT_EQ(inner.sent.size(), 1000u);
  EXPECT_EQ(tap->counters().packets_recorded, 1000u);
}

TEST(PcapTap, UnwritablePathIsAnErrorNotAThrow) {
  QueueLink inner;
  ManualClock clock;
  std::string error;
  auto tap = PcapTap::open(inner, clock, "/nonexistent-dir/x/y.pcap", &error);
  EXPECT_EQ(tap, nullptr);
  EXPECT_EQ(error, "cannot open pcap file '/nonexistent-dir/x/y.pcap': No such file or directory");
}

}  // namespace
}  // namespace xtcp
