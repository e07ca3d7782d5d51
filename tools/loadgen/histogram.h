// A latency histogram in the HDR style: log-linear buckets give every recorded value to
// within 1/128 (under 1%) from 1 us to hours, in a fixed 19 KiB, so percentiles (p50, p99,
// p99.9) come out exact to that precision however many values are recorded.
//
//   record(us) --> bucket(us): top 7 significant bits + exponent --> counts_[bucket]
//   percentile(p) --> walk the counts to the p-th value --> the bucket's highest value
#pragma once

#include <array>
#include <cstdint>

namespace xtcp::loadgen {

class Histogram {
 public:
  // Values are whole microseconds; larger than kMax are recorded as kMax.
  static constexpr std::uint64_t kMax = (std::uint64_t{1} << 42) - 1;  // ~51 days

  void record(std::uint64_t value);
  void merge(const Histogram& other);
  void reset();

  std::uint64_t count() const { return count_; }
  std::uint64_t min() const { return count_ == 0 ? 0 : min_; }
  std::uint64_t max() const { return max_; }
  double mean() const { return count_ == 0 ? 0.0 : static_cast<double>(sum_) / static_cast<double>(count_); }
  // The smallest recorded value v (to the bucket's precision) such that at least p% of the
  // values are <= v; 0 when empty. p in [0, 100].
  std::uint64_t percentile(double p) const;

  // Bucket arithmetic, public for tests.
  static std::uint32_t bucket_of(std::uint64_t value);
  // The largest value that falls in bucket b.
  static std::uint64_t bucket_top(std::uint32_t b);

 private:
  static constexpr int kSubBits = 7;                   // 128 linear steps per power of two
  static constexpr int kExponents = 42 - kSubBits + 1;  // powers of two above the linear range
  static constexpr std::uint32_t kBuckets = (1u << kSubBits) + kExponents * (1u << (kSubBits - 1));

  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t sum_ = 0;
  std::uint64_t min_ = UINT64_MAX;
  std::uint64_t max_ = 0;
};

}  // namespace xtcp::loadgen
