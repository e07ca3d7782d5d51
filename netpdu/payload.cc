// Payload constructors and MemoryBudget block allocation (see payload.h for who owns what).
#include "netpdu/payload.h"

#include <cstring>

namespace xtcp::netpdu {

namespace {

// Owns one callback and runs it on destruction: the shared_ptr's last release.
class Releaser {
 public:
  explicit Releaser(std::function<void()> fn) : fn_(std::move(fn)) {}
  Releaser(const Releaser&) = delete;
  Releaser& operator=(const Releaser&) = delete;
  ~Releaser() {
    if (fn_) {
      fn_();
    }
  }

 private:
  std::function<void()> fn_;
};

}  // namespace

Payload copy_payload(ByteSpan bytes) {
  if (bytes.empty()) {
    return {};
  }
  std::shared_ptr<std::byte[]> buf(new std::byte[bytes.size()]);
  std::memcpy(buf.get(), bytes.data(), bytes.size());
  Payload p;
  p.bytes = ByteSpan(buf.get(), bytes.size());
  p.owner = std::move(buf);
  return p;
}

Payload payload_with_release(ByteSpan bytes, std::function<void()> on_release) {
  Payload p;
  p.bytes = bytes;
  p.owner = std::make_shared<Releaser>(std::move(on_release));
  return p;
}

std::shared_ptr<std::byte> MemoryBudget::allocate(const std::shared_ptr<MemoryBudget>& budget, std::size_t n) {
  budget->used_.fetch_add(n, std::memory_order_relaxed);
  // new std::byte[n] leaves the bytes uninitialised: they are about to be read into.
  return std::shared_ptr<std::byte>(new std::byte[n == 0 ? 1 : n], [budget, n](std::byte* p) {
    delete[] p;
    budget->used_.fetch_sub(n, std::memory_order_relaxed);
  });
}

}  // namespace xtcp::netpdu
