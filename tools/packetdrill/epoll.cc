// epoll over the packetdrill host's sockets, with Linux's answers: level-triggered by
// default; EPOLLET reports a socket again only after its next wakeup (an engine event for
// it: data, an ACK that frees room, a state change), whatever its state, as Linux's
// wakeup-driven ready list does; EPOLLONESHOT disables an item once it reported until
// EPOLL_CTL_MOD. EPOLLERR and EPOLLHUP are always reported.
#include <climits>
#include <cerrno>
#include <unistd.h>

#include "tools/packetdrill/host.h"

namespace xtcp::packetdrill {

int Host::epoll_create(int size) {
  std::unique_lock lock(mu_);
  if (size <= 0) {
    return -EINVAL;
  }
  Epoll ep;
  const int fd = new_placeholder(&ep.ino);
  if (fd < 0) {
    return fd;
  }
  epolls_[fd] = std::move(ep);
  return fd;
}

int Host::epoll_ctl(int epfd, int op, int fd, const epoll_event* event) {
  std::unique_lock lock(mu_);
  auto it = epolls_.find(epfd);
  if (it == epolls_.end()) {
    return find(epfd) != nullptr ? -EINVAL : -EBADF;
  }
  if (fd == epfd) {
    return -EINVAL;
  }
  if (find(fd) == nullptr) {
    return epolls_.count(fd) != 0 ? -EINVAL : -EBADF;  // nested epoll sets are not modelled
  }
  auto& items = it->second.items;
  const auto item = items.find(fd);
  switch (op) {
    case EPOLL_CTL_ADD:
    case EPOLL_CTL_MOD: {
      if (event == nullptr) {
        return -EFAULT;
      }
      if (op == EPOLL_CTL_ADD && item != items.end()) {
        return -EEXIST;
      }
      if (op == EPOLL_CTL_MOD && item == items.end()) {
        return -ENOENT;
      }
      EpollItem e;
      e.event = *event;
      // Adding (or modifying) looks at the socket at once, as a wakeup would.
      e.seen_wakeups = find(fd)->wakeups - 1;
      items[fd] = e;
      changed_.notify_all();
      return 0;
    }
    case EPOLL_CTL_DEL:
      if (item == items.end()) {
        return -ENOENT;
      }
      items.erase(item);
      return 0;
    default:
      return -EINVAL;
  }
}

int Host::epoll_wait(int epfd, epoll_event* events, int maxevents, int timeout_ms) {
  std::unique_lock lock(mu_);
  if (epolls_.count(epfd) == 0) {
    return find(epfd) != nullptr ? -EINVAL : -EBADF;
  }
  if (maxevents <= 0 || maxevents > INT_MAX / static_cast<int>(sizeof(epoll_event))) {
    return -EINVAL;
  }
  if (events == nullptr) {
    return -EFAULT;
  }
  int ready = 0;
  const auto scan = [&] {
    ready = 0;
    auto it = epolls_.find(epfd);
    if (it == epolls_.end()) {
      return true;  // closed meanwhile: nothing to report
    }
    for (auto& [fd, item] : it->second.items) {
      Socket* s = find(fd);
      if (s == nullptr || item.disabled) {
        continue;
      }
      const bool edge = (item.event.events & EPOLLET) != 0;
      if (edge && s->wakeups == item.seen_wakeups) {
        continue;
      }
      item.seen_wakeups = s->wakeups;
      const auto wanted = static_cast<short>(item.event.events & 0xffff);
      const short r = revents(fd, wanted);
      if (r == 0) {
        continue;
      }
      events[ready].events = static_cast<std::uint16_t>(r);
      events[ready].data = item.event.data;
      if ((item.event.events & EPOLLONESHOT) != 0) {
        item.disabled = true;
      }
      if (++ready == maxevents) {
        break;
      }
    }
    return ready > 0;
  };
  if (scan() || timeout_ms == 0) {
    return ready;
  }
  const TimeNs deadline = timeout_ms < 0 ? kNever : clock_.now() + ms(timeout_ms);
  wait_until(lock, scan, deadline);
  return ready;
}

}  // namespace xtcp::packetdrill
