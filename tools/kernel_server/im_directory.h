// The directory of logged-in IM users that xtcp-kernel-server's workers share (only with
// --processes > 1): name -> (worker, claim sequence), in memory every worker maps
// (MAP_SHARED, set up by the parent before fork), under one process-shared robust mutex.
//
// Layout in the region: a header, an open-addressing index (linear probing, deletion by
// backward shift, so no tombstones) of entry numbers, and a dense array of entries reused
// through a free list (so LIST scans only as many entries as were ever in use at once).
//
// Every claim and every release takes the next number of one global sequence, under the
// same mutex: the order of those numbers is the order in which the directory changed, and
// the workers deliver presence (ONLINE/OFFLINE) in exactly that order (see sequencer.h).
#pragma once

#include <pthread.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace xtcp::kserver {

inline constexpr std::size_t kDirMaxName = 32;  // as server_examples/im (kImMaxName)

class ImDirectory {
 public:
  // Bytes of shared memory for max_users entries.
  static std::size_t region_size(std::uint32_t max_users);
  // Formats memory (zero-filled, e.g. a fresh anonymous mapping) for max_users. Once, before fork.
  static ImDirectory* create(void* memory, std::uint32_t max_users);
  // The directory in memory formatted by create() (in this or a forked process).
  static ImDirectory* attach(void* memory) { return static_cast<ImDirectory*>(memory); }

  enum class Claim { kOk, kTaken, kFull };
  // Logs name in for worker: kOk with *seq (the change's number), kTaken when someone (on
  // any worker) has it, kFull when max_users are logged in.
  Claim claim(std::string_view name, int worker, std::uint64_t* seq);
  // Logs name out; the change's number, or 0 when name was not logged in by worker.
  std::uint64_t release(std::string_view name, int worker);

  struct Where {
    int worker = -1;
    std::uint64_t claim_seq = 0;  // identifies this login of the name
  };
  std::optional<Where> lookup(std::string_view name);
  // Every logged-in name, sorted by byte value.
  std::vector<std::string> names();
  std::uint32_t count();

 private:
  struct Entry {
    std::uint64_t claim_seq;
    std::uint32_t hash;
    std::uint32_t next_free;  // free list (entry number + 1; 0 ends it)
    std::int32_t worker;      // -1: free
    std::uint8_t len;
    char name[kDirMaxName];
  };

  ImDirectory() = default;
  void lock();
  void unlock() { pthread_mutex_unlock(&mu_); }
  std::uint32_t* index() { return reinterpret_cast<std::uint32_t*>(reinterpret_cast<char*>(this) + index_offset_); }
  Entry* entries() { return reinterpret_cast<Entry*>(reinterpret_cast<char*>(this) + entries_offset_); }
  // The index slot holding name (true), or the empty slot where it would go (false).
  bool find(std::string_view name, std::uint32_t hash, std::uint32_t* slot);
  void erase_slot(std::uint32_t slot);

  pthread_mutex_t mu_;
  std::uint64_t seq_ = 0;
  std::uint32_t slots_ = 0;  // a power of two, at least twice max_entries_
  std::uint32_t max_entries_ = 0;
  std::uint32_t high_ = 0;       // entries [0, high_) were used at some point
  std::uint32_t free_head_ = 0;  // entry number + 1
  std::uint32_t count_ = 0;
  std::size_t index_offset_ = 0;
  std::size_t entries_offset_ = 0;
};

}  // namespace xtcp::kserver
