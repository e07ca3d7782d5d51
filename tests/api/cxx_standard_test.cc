// xtcp.hpp needs C++20: a C++17 consumer gets a clear message instead of a page of errors,
// and the C header stays usable from C++17 (and C).
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "tests/support/netns.h"

namespace xtcp::test {
namespace {

std::string api_include_dir() { return XTCP_API_INCLUDE_DIR; }

CommandResult compile(const std::string& std_flag, const std::string& source) {
  const std::string path = ::testing::TempDir() + "xtcp_std_" + std::to_string(::getpid()) + ".cc";
  std::ofstream(path) << source;
  auto r = run_command({"c++", std_flag, "-fsyntax-only", "-I" + api_include_dir(), path},
                       std::chrono::seconds(120));
  std::remove(path.c_str());
  return r;
}

TEST(ApiCxxStandard, TheCxxHeaderNeedsCxx20AndSaysSo) {
  if (!find_executable("c++")) {
    GTEST_SKIP() << "no c++ compiler in PATH";
  }
  const std::string use_hpp = "#include <xtcp/xtcp.hpp>\nint main() { return xtcp::version().empty(); }\n";
  const auto old = compile("-std=c++17", use_hpp);
  EXPECT_NE(old.exit_code, 0);
  EXPECT_NE(old.output.find("xtcp.hpp needs C++20"), std::string::npos) << old.output;
  const auto ok = compile("-std=c++20", use_hpp);
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  const auto c_api = compile("-std=c++17", "#include <xtcp/xtcp.h>\nint main() { return xtcp_version() == 0; }\n");
  EXPECT_EQ(c_api.exit_code, 0) << c_api.output;
}

}  // namespace
}  // namespace xtcp::test
