// The IM protocol state machine: a table of logged-in users (name <-> connection) and the
// handling of LOGIN, MSG, LIST and QUIT; see im_core.h and docs/im-protocol.md.
#include "server_examples/im/im_core.h"

#include <algorithm>

namespace xtcp_examples {
namespace {

// Splits off the first space-separated word of *rest (leading spaces skipped).
std::string_view next_word(std::string_view* rest) {
  std::size_t i = 0;
  while (i < rest->size() && (*rest)[i] == ' ') {
    ++i;
  }
  std::size_t j = i;
  while (j < rest->size() && (*rest)[j] != ' ') {
    ++j;
  }
  const std::string_view word = rest->substr(i, j - i);
  *rest = rest->substr(j);
  return word;
}

}  // namespace

bool ImCore::valid_name(std::string_view name) {
  if (name.empty() || name.size() > kImMaxName) {
    return false;
  }
  for (const char ch : name) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.';
    if (!ok) {
      return false;
    }
  }
  return true;
}

std::string_view ImCore::user_of(int cd) const {
  const auto it = by_cd_.find(cd);
  return it == by_cd_.end() ? std::string_view() : std::string_view(it->second);
}

void ImCore::error(std::string* reply, std::string_view what) {
  ++counters_.errors;
  reply->append("ERR ").append(what).push_back('\n');
}

void ImCore::announce(int cd, const std::string& name, const std::string& line, std::vector<ImPush>* pushes) {
  if (presence_ == Presence::kAll) {
    broadcast(cd, line, pushes);
    return;
  }
  const auto it = watchers_.find(name);
  if (it == watchers_.end()) {
    return;
  }
  for (const int watcher : it->second) {
    if (watcher != cd) {
      pushes->push_back(ImPush{watcher, line});
      ++counters_.pushes;
    }
  }
}

void ImCore::forget_watches(int cd) {
  const auto it = watching_.find(cd);
  if (it == watching_.end()) {
    return;
  }
  for (const std::string& name : it->second) {
    const auto w = watchers_.find(name);
    if (w == watchers_.end()) {
      continue;
    }
    std::erase(w->second, cd);
    if (w->second.empty()) {
      watchers_.erase(w);
    }
  }
  watching_.erase(it);
}

void ImCore::broadcast(int except_cd, const std::string& line, std::vector<ImPush>* pushes) {
  for (const auto& [name, cd] : by_name_) {
    if (cd != except_cd) {
      pushes->push_back(ImPush{cd, line});
      ++counters_.pushes;
    }
  }
}

ImCore::After ImCore::on_line(int cd, std::string_view line, std::string* reply,
                              std::vector<ImPush>* pushes) {
  ++counters_.requests;
  if (!line.empty() && line.back() == '\r') {
    line.remove_suffix(1);
  }
  if (line.size() > kImMaxLine) {
    error(reply, "line-too-long");
    return After::kKeepOpen;
  }
  std::string_view rest = line;
  const std::string_view cmd = next_word(&rest);
  const auto me = by_cd_.find(cd);

  if (cmd == "LOGIN") {
    const std::string_view name = next_word(&rest);
    if (me != by_cd_.end()) {
      error(reply, "already-logged-in");
    } else if (!valid_name(name) || !next_word(&rest).empty()) {
      error(reply, "bad-name");
    } else if (by_name_.find(name) != by_name_.end()) {
      error(reply, "name-taken");
    } else {
      ++counters_.logins;
      const std::string n(name);
      announce(cd, n, "ONLINE " + n + "\n", pushes);
      by_name_.emplace(n, cd);
      by_cd_.emplace(cd, n);
      reply->append("OK\n");
    }
    return After::kKeepOpen;
  }
  if (cmd == "QUIT") {
    reply->append("BYE\n");
    on_disconnect(cd, pushes);
    return After::kClose;
  }
  if (cmd != "MSG" && cmd != "LIST" && cmd != "WATCH") {
    error(reply, cmd.empty() ? "empty-line" : "unknown-command");
    return After::kKeepOpen;
  }
  if (me == by_cd_.end()) {
    error(reply, "not-logged-in");
    return After::kKeepOpen;
  }
  if (cmd == "WATCH") {
    const std::string_view name = next_word(&rest);
    if (!valid_name(name) || !next_word(&rest).empty()) {
      error(reply, "usage WATCH name");
      return After::kKeepOpen;
    }
    std::vector<std::string>& mine = watching_[cd];
    if (std::find(mine.begin(), mine.end(), name) == mine.end()) {
      if (mine.size() >= kImMaxWatches) {
        error(reply, "too-many-watches");
        return After::kKeepOpen;
      }
      mine.emplace_back(name);
      watchers_[std::string(name)].push_back(cd);
    }
    ++counters_.watches;
    reply->append("OK\n");
    return After::kKeepOpen;
  }
  if (cmd == "LIST") {
    if (!next_word(&rest).empty()) {
      error(reply, "usage LIST");
      return After::kKeepOpen;
    }
    ++counters_.lists;
    reply->append("USERS");
    for (const auto& [name, user_cd] : by_name_) {
      reply->append(" ").append(name);
    }
    reply->push_back('\n');
    return After::kKeepOpen;
  }
  // MSG to text: the text is everything after the single space that follows the name.
  const std::string_view to = next_word(&rest);
  if (to.empty() || rest.size() < 2 || rest[0] != ' ') {
    error(reply, "usage MSG to text");
    return After::kKeepOpen;
  }
  const std::string_view text = rest.substr(1);
  const auto target = by_name_.find(to);
  if (target == by_name_.end()) {
    ++counters_.messages_offline;
    error(reply, "offline");
    return After::kKeepOpen;
  }
  ++counters_.messages;
  ++counters_.pushes;
  std::string push;
  push.reserve(6 + me->second.size() + text.size() + 1);
  push.append("FROM ").append(me->second).append(" ").append(text).push_back('\n');
  pushes->push_back(ImPush{target->second, std::move(push)});
  reply->append("OK\n");
  return After::kKeepOpen;
}

void ImCore::on_disconnect(int cd, std::vector<ImPush>* pushes) {
  const auto it = by_cd_.find(cd);
  if (it == by_cd_.end()) {
    return;
  }
  const std::string name = std::move(it->second);
  by_cd_.erase(it);
  by_name_.erase(name);
  ++counters_.logouts;
  forget_watches(cd);
  announce(cd, name, "OFFLINE " + name + "\n", pushes);
}

}  // namespace xtcp_examples
