// A server application written against xtcp.h alone, run on a thread of its own inside a
// network namespace the test created: the thread enters the namespace, configures the
// process-wide runtime (xtcp_configure, xtcp_initialize), opens one group and hands it to
// the test's serving loop until stop(); xtcp_finalize at the end completes any capture.
// Used by the tests that put the C API on a real TUN device with kernel clients.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "tests/support/netns.h"
#include "xtcp/xtcp.h"

namespace xtcp::test {

class ApiServerThread {
 public:
  struct Setup {
    xtcp_config config{};
    std::size_t pool_size = 1u << 20;
    std::uint16_t port = 0;
    // Called with the new group (options, ...): 0, or a negative errno that fails start().
    std::function<int(int gd)> configure_group;
  };
  // The serving loop: runs on the server thread until stop_requested() turns true.
  using Serve = std::function<void(int gd, const std::atomic<bool>& stop_requested)>;

  ApiServerThread() = default;
  ApiServerThread(const ApiServerThread&) = delete;
  ApiServerThread& operator=(const ApiServerThread&) = delete;
  ~ApiServerThread() { stop(); }

  // Starts the thread and waits (at most 20 s) until it serves. false with *error set
  // (the set-up step that failed and xtcp_last_error()) when it did not.
  bool start(const NetNs& ns, Setup setup, Serve serve, std::string* error) {
    thread_ = std::thread([this, &ns, setup = std::move(setup), serve = std::move(serve)] {
      std::string why;
      if (ns.enter_on_this_thread(&why) < 0) {
        return report(-1, why);
      }
      int rc = xtcp_configure(&setup.config);
      if (rc == 0) {
        rc = xtcp_initialize(setup.pool_size);
      }
      const int gd = rc == 0 ? xtcp_open_group(PF_INET, SOCK_STREAM, 0, setup.port) : rc;
      rc = gd;
      if (gd > 0 && setup.configure_group) {
        rc = setup.configure_group(gd);
      }
      if (rc < 0) {
        why = std::string("set-up failed: ") + std::to_string(rc) + ": " + xtcp_last_error();
        xtcp_finalize();
        return report(-1, why);
      }
      report(1, "");
      serve(gd, stop_);
      xtcp_finalize();
    });
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(20), [this] { return state_ != 0; });
    if (state_ == 1) {
      return true;
    }
    *error = state_ == 0 ? std::string("the server thread did not start in 20 s") : error_;
    lock.unlock();
    stop();
    return false;
  }

  // Asks the serving loop to end and joins the thread.
  void stop() {
    stop_ = true;
    if (thread_.joinable()) {
      thread_.join();
    }
  }

 private:
  void report(int state, const std::string& error) {
    std::lock_guard<std::mutex> lock(mu_);
    state_ = state;
    error_ = error;
    cv_.notify_all();
  }

  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  int state_ = 0;  // 1 serving, -1 failed
  std::string error_;
};

}  // namespace xtcp::test
