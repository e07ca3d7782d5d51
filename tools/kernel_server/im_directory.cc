// ImDirectory: see im_directory.h.
#include "tools/kernel_server/im_directory.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

namespace xtcp::kserver {
namespace {

std::size_t align_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }

std::uint32_t slots_for(std::uint32_t max_users) {
  std::uint64_t s = 16;
  while (s < 2ull * max_users) {
    s <<= 1;
  }
  return static_cast<std::uint32_t>(s);
}

std::uint32_t hash_name(std::string_view name) {
  std::uint32_t h = 2166136261u;  // FNV-1a
  for (const char ch : name) {
    h ^= static_cast<unsigned char>(ch);
    h *= 16777619u;
  }
  return h ^ (h >> 15);
}

}  // namespace

std::size_t ImDirectory::region_size(std::uint32_t max_users) {
  const std::size_t index_off = align_up(sizeof(ImDirectory), 64);
  const std::size_t entries_off = align_up(index_off + sizeof(std::uint32_t) * slots_for(max_users), 64);
  return entries_off + sizeof(Entry) * max_users;
}

ImDirectory* ImDirectory::create(void* memory, std::uint32_t max_users) {
  auto* d = new (memory) ImDirectory();
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  // A worker that dies holding the lock must not hang the others (they are stopped then).
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(&d->mu_, &attr);
  pthread_mutexattr_destroy(&attr);
  d->slots_ = slots_for(max_users);
  d->max_entries_ = max_users;
  d->index_offset_ = align_up(sizeof(ImDirectory), 64);
  d->entries_offset_ = align_up(d->index_offset_ + sizeof(std::uint32_t) * d->slots_, 64);
  // The index is all zero (empty) in a fresh mapping; entries are formatted when used.
  return d;
}

void ImDirectory::lock() {
  const int rc = pthread_mutex_lock(&mu_);
  if (rc == EOWNERDEAD) {
    pthread_mutex_consistent(&mu_);  // the parent is stopping every worker anyway
  }
}

bool ImDirectory::find(std::string_view name, std::uint32_t hash, std::uint32_t* slot) {
  const std::uint32_t mask = slots_ - 1;
  std::uint32_t* idx = index();
  Entry* ent = entries();
  for (std::uint32_t i = hash & mask;; i = (i + 1) & mask) {
    const std::uint32_t e = idx[i];
    if (e == 0) {
      *slot = i;
      return false;
    }
    const Entry& x = ent[e - 1];
    if (x.hash == hash && x.len == name.size() && std::memcmp(x.name, name.data(), name.size()) == 0) {
      *slot = i;
      return true;
    }
  }
}

void ImDirectory::erase_slot(std::uint32_t slot) {
  const std::uint32_t mask = slots_ - 1;
  std::uint32_t* idx = index();
  Entry* ent = entries();
  std::uint32_t hole = slot;
  for (std::uint32_t j = (slot + 1) & mask; idx[j] != 0; j = (j + 1) & mask) {
    const std::uint32_t home = ent[idx[j] - 1].hash & mask;
    // The entry at j may move into the hole unless its home lies cyclically in (hole, j].
    const bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
    if (!stays) {
      idx[hole] = idx[j];
      hole = j;
    }
  }
  idx[hole] = 0;
}

ImDirectory::Claim ImDirectory::claim(std::string_view name, int worker, std::uint64_t* seq) {
  if (name.empty() || name.size() > kDirMaxName) {
    return Claim::kTaken;  // callers check names first; never stored
  }
  const std::uint32_t h = hash_name(name);
  lock();
  std::uint32_t slot = 0;
  if (find(name, h, &slot)) {
    unlock();
    return Claim::kTaken;
  }
  if (count_ >= max_entries_) {
    unlock();
    return Claim::kFull;
  }
  std::uint32_t e = 0;
  if (free_head_ != 0) {
    e = free_head_ - 1;
    free_head_ = entries()[e].next_free;
  } else {
    e = high_++;
  }
  Entry& x = entries()[e];
  x.hash = h;
  x.next_free = 0;
  x.worker = worker;
  x.len = static_cast<std::uint8_t>(name.size());
  std::memcpy(x.name, name.data(), name.size());
  x.claim_seq = ++seq_;
  *seq = x.claim_seq;
  index()[slot] = e + 1;
  ++count_;
  unlock();
  return Claim::kOk;
}

std::uint64_t ImDirectory::release(std::string_view name, int worker) {
  if (name.empty() || name.size() > kDirMaxName) {
    return 0;
  }
  const std::uint32_t h = hash_name(name);
  lock();
  std::uint32_t slot = 0;
  if (!find(name, h, &slot)) {
    unlock();
    return 0;
  }
  const std::uint32_t e = index()[slot] - 1;
  Entry& x = entries()[e];
  if (x.worker != worker) {
    unlock();
    return 0;
  }
  erase_slot(slot);
  x.worker = -1;
  x.len = 0;
  x.next_free = free_head_;
  free_head_ = e + 1;
  --count_;
  const std::uint64_t s = ++seq_;
  unlock();
  return s;
}

std::optional<ImDirectory::Where> ImDirectory::lookup(std::string_view name) {
  if (name.empty() || name.size() > kDirMaxName) {
    return std::nullopt;
  }
  const std::uint32_t h = hash_name(name);
  lock();
  std::uint32_t slot = 0;
  std::optional<Where> w;
  if (find(name, h, &slot)) {
    const Entry& x = entries()[index()[slot] - 1];
    w = Where{x.worker, x.claim_seq};
  }
  unlock();
  return w;
}

std::vector<std::string> ImDirectory::names() {
  std::vector<std::string> out;
  lock();
  out.reserve(count_);
  const Entry* ent = entries();
  for (std::uint32_t i = 0; i < high_; ++i) {
    if (ent[i].len != 0) {
      out.emplace_back(ent[i].name, ent[i].len);
    }
  }
  unlock();
  std::sort(out.begin(), out.end());  // std::string compares bytes as unsigned char
  return out;
}

std::uint32_t ImDirectory::count() {
  lock();
  const std::uint32_t n = count_;
  unlock();
  return n;
}

}  // namespace xtcp::kserver
