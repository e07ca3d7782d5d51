// Histogram: bucket index = linear below 128, then 64 buckets per power of two (the value's
// top 7 bits, the leading one implied).
#include "tools/loadgen/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace xtcp::loadgen {

std::uint32_t Histogram::bucket_of(std::uint64_t v) {
  v = std::min(v, kMax);
  if (v < (1u << kSubBits)) {
    return static_cast<std::uint32_t>(v);
  }
  const int top = 63 - std::countl_zero(v);    // >= kSubBits
  const int shift = top - (kSubBits - 1);      // keep kSubBits bits: 1xxxxxx
  const auto mantissa = static_cast<std::uint32_t>(v >> shift) - (1u << (kSubBits - 1));  // 0..63
  return (1u << kSubBits) + static_cast<std::uint32_t>(shift - 1) * (1u << (kSubBits - 1)) + mantissa;
}

std::uint64_t Histogram::bucket_top(std::uint32_t b) {
  if (b < (1u << kSubBits)) {
    return b;
  }
  const std::uint32_t above = b - (1u << kSubBits);
  const int shift = static_cast<int>(above / (1u << (kSubBits - 1))) + 1;
  const std::uint64_t mantissa = (above % (1u << (kSubBits - 1))) + (1u << (kSubBits - 1));
  return ((mantissa + 1) << shift) - 1;
}

void Histogram::record(std::uint64_t value) {
  value = std::min(value, kMax);
  ++counts_[bucket_of(value)];
  ++count_;
  sum_ += value;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
}

void Histogram::merge(const Histogram& o) {
  for (std::uint32_t i = 0; i < kBuckets; ++i) {
    counts_[i] += o.counts_[i];
  }
  count_ += o.count_;
  sum_ += o.sum_;
  min_ = std::min(min_, o.min_);
  max_ = std::max(max_, o.max_);
}

void Histogram::reset() { *this = Histogram{}; }

std::uint64_t Histogram::percentile(double p) const {
  if (count_ == 0) {
    return 0;
  }
  p = std::clamp(p, 0.0, 100.0);
  const auto rank = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_))));
  std::uint64_t seen = 0;
  for (std::uint32_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      return std::min(bucket_top(i), max_);
    }
  }
  return max_;
}

}  // namespace xtcp::loadgen
