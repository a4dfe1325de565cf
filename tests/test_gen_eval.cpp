// Generation benchmarks' checking: the HumanEval sandbox (the 164 canonical solutions pass; wrong
// ones fail; endless loops, fork bombs, endless allocation, network access and writes outside
// the sandbox fail without harming the machine or the run) and the answer scoring of GSM8K and
// MATH samples. The extraction rules themselves are compared with lm-evaluation-harness in
// tests/test_eval_parity.cpp.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "eval/gen_tasks.h"
#include "eval/sandbox.h"
#include "test_util.h"
#include "util/error.h"

namespace dsalign {
namespace {

namespace fs = std::filesystem;
using testing::error_of;

const fs::path kHumanEval = fs::path(DSALIGN_SOURCE_DIR) / "tests/data/humaneval/HumanEval.jsonl";

SandboxLimits short_limits() {
  SandboxLimits l;
  l.wall_seconds = 3;
  l.cpu_seconds = 3;
  return l;
}

SandboxResult run_one(const std::string& program, const SandboxLimits& limits = short_limits()) {
  return run_python_sandboxed("python3", {program}, limits, 1).at(0);
}

// Skips the test where this machine cannot make the sandbox's namespaces (any other failure to
// run is a failure).
#define SKIP_WITHOUT_SANDBOX()                                                                          \
  do {                                                                                                  \
    const std::string error = error_of([] { run_python_sandboxed("python3", {"pass\n"}, short_limits(), 1); }); \
    if (error.find("sandbox: cannot create") != std::string::npos || error.find("sandbox: cannot mount") != std::string::npos || \
        error.find("sandbox: cannot make") != std::string::npos || error.find("sandbox: cannot map") != std::string::npos) \
      GTEST_SKIP() << "no sandbox on this machine: " << error;                                          \
    ASSERT_EQ(error, "");                                                                               \
  } while (0)

// The fork bombs below name their processes (prctl PR_SET_NAME, inherited by every child) so that
// what they leave behind can be counted, apart from other sandboxes' processes.
constexpr const char* kBombName = "dsalign-bomb";
const std::string kNameBomb = "import ctypes\nctypes.CDLL(None).prctl(15, b'" + std::string(kBombName) + "', 0, 0, 0)\n";

int bomb_processes() {
  int count = 0;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream comm(entry.path() / "comm");
    std::string line;
    if (std::getline(comm, line) && line == kBombName) ++count;
  }
  return count;
}

TEST(Sandbox, CanonicalHumanEvalSolutionsPassAndBrokenOnesFail) {
  SKIP_WITHOUT_SANDBOX();
  const std::vector<GenProblem> problems = read_gen_problems(kHumanEval, true, 0);
  ASSERT_EQ(problems.size(), 164u);
  std::vector<std::string> solutions;
  for_each_jsonl_object(kHumanEval, 0, [&](const nlohmann::json& j, const std::string&) {
    solutions.push_back(j.at("canonical_solution").get<std::string>());
  });
  std::vector<std::string> programs, broken;
  for (size_t i = 0; i < problems.size(); ++i) {
    programs.push_back(humaneval_program(problems[i], solutions[i]));
    if (i % 8 == 0) broken.push_back(humaneval_program(problems[i], "    raise NotImplementedError\n"));
  }
  const std::vector<SandboxResult> runs = run_python_sandboxed("python3", programs, SandboxLimits{}, 2);
  for (size_t i = 0; i < runs.size(); ++i)
    EXPECT_EQ(runs[i].outcome, SandboxOutcome::passed) << problems[i].id << " (exit " << runs[i].exit_code << "): " << runs[i].output;
  for (const SandboxResult& r : run_python_sandboxed("python3", broken, SandboxLimits{}, 2)) {
    EXPECT_EQ(r.outcome, SandboxOutcome::failed);
    EXPECT_NE(r.output.find("NotImplementedError"), std::string::npos) << "exit " << r.exit_code << ": " << r.output;
  }
}

TEST(Sandbox, ReportsExitCodeAndOutput) {
  SKIP_WITHOUT_SANDBOX();
  const SandboxResult r = run_one("print('hello from the sandbox')\nimport sys\nsys.exit(3)\n");
  EXPECT_EQ(r.outcome, SandboxOutcome::failed);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.output.find("hello from the sandbox"), std::string::npos) << r.output;
  EXPECT_EQ(run_one("assert 1 + 1 == 2\n").outcome, SandboxOutcome::passed);
}

TEST(Sandbox, EndlessLoopsAreStoppedByTheTimeLimit) {
  SKIP_WITHOUT_SANDBOX();
  for (const char* program : {"while True:\n    pass\n", "import time\ntime.sleep(1000)\n"}) {
    const SandboxResult r = run_one(program);
    EXPECT_EQ(r.outcome, SandboxOutcome::timed_out) << program;
    EXPECT_LT(r.seconds, 6.0) << program;
  }
}

TEST(Sandbox, ForkBombsFailAndLeaveNothingBehind) {
  SKIP_WITHOUT_SANDBOX();
  // Without end, ignoring failures; and forking children that go on after their parent exits.
  const std::string bombs[] = {
      kNameBomb + "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
      kNameBomb + "import os, time\nfor _ in range(10000):\n    if os.fork() == 0:\n        time.sleep(1000)\n",
  };
  for (const std::string& program : bombs) {
    const SandboxResult r = run_one(program);
    EXPECT_NE(r.outcome, SandboxOutcome::passed) << program << r.output;
    EXPECT_LT(r.seconds, 6.0) << program;
    EXPECT_EQ(r.output.find("AttributeError"), std::string::npos) << "the process name was not set: " << r.output;
    // Every process of the sandbox dies with it (its PID namespace's init).
    for (int i = 0; i < 150 && bomb_processes() > 0; ++i) usleep(20000);
    EXPECT_EQ(bomb_processes(), 0) << program;
  }
  EXPECT_EQ(run_one("print('still fine')\n").outcome, SandboxOutcome::passed);
}

TEST(Sandbox, EndlessAllocationFails) {
  SKIP_WITHOUT_SANDBOX();
  const SandboxResult r = run_one("blocks = []\nwhile True:\n    blocks.append(bytearray(64 << 20))\n");
  EXPECT_EQ(r.outcome, SandboxOutcome::failed);
  EXPECT_NE(r.output.find("MemoryError"), std::string::npos) << r.output;
}

TEST(Sandbox, HasNoNetwork) {
  SKIP_WITHOUT_SANDBOX();
  const SandboxResult r = run_one("import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)\n");
  EXPECT_EQ(r.outcome, SandboxOutcome::failed);
  EXPECT_NE(r.output.find("unreachable"), std::string::npos) << r.output;
  // Not even the machine's own services: the namespace's loopback is down.
  const SandboxResult local = run_one(
      "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 22), timeout=2)\nexcept OSError as e:\n"
      "    print(e)\nelse:\n    raise SystemExit('connected')\n");
  EXPECT_EQ(local.outcome, SandboxOutcome::passed) << local.output;
}

TEST(Sandbox, WritesStayInItsOwnTmpfs) {
  SKIP_WITHOUT_SANDBOX();
  const std::string probe = "/tmp/dsalign-sandbox-probe-" + std::to_string(getpid());
  const SandboxResult r = run_one("open('" + probe + "', 'w').write('x')\nopen('program.copy', 'w').write('y')\n");
  EXPECT_EQ(r.outcome, SandboxOutcome::passed) << r.output;
  EXPECT_FALSE(fs::exists(probe)) << "the sandbox's /tmp is its own";
  if (geteuid() == 0) {
    // A root-owned directory outside /tmp (the checkout itself may be under /tmp).
    const SandboxResult outside = run_one("open('/etc/dsalign-sandbox-probe', 'w')\n");
    EXPECT_EQ(outside.outcome, SandboxOutcome::failed);
    EXPECT_NE(outside.output.find("Permission denied"), std::string::npos) << outside.output;
    EXPECT_FALSE(fs::exists("/etc/dsalign-sandbox-probe"));
  }
}

TEST(Sandbox, BadArgumentsAreErrors) {
  EXPECT_NE(error_of([] { run_python_sandboxed("no-such-python-here", {"pass\n"}, SandboxLimits{}, 1); })
                .find("--python: 'no-such-python-here' is not on PATH"),
            std::string::npos);
  EXPECT_NE(error_of([] { run_python_sandboxed("python3", {"pass\n"}, SandboxLimits{}, 0); }).find("workers must be at least 1"),
            std::string::npos);
}

TEST(GenScoring, Gsm8kAndMathSamples) {
  auto scored = [](GenTaskKind task, const std::string& answer, const std::string& text) {
    GenProblem p;
    p.answer = answer;
    GenSample s;
    s.generated.text = text;
    score_answer(task, p, s);
    return s;
  };
  GenSample s = scored(GenTaskKind::gsm8k, "1234", " She has 1,000 + 234 = 1,234 apples. So the answer is 1,234.");
  EXPECT_TRUE(s.correct);
  EXPECT_EQ(s.answer, "1234");
  s = scored(GenTaskKind::gsm8k, "18", " 9 * 2 = 18 dollars a day, 126 a week");
  EXPECT_FALSE(s.correct);
  EXPECT_FALSE(s.correct_flexible) << "the last number is 126";
  s = scored(GenTaskKind::gsm8k, "18", " 9 * 2 = $18");
  EXPECT_FALSE(s.correct);
  EXPECT_TRUE(s.correct_flexible);
  s = scored(GenTaskKind::math, "\\left( 3, \\frac{\\pi}{2} \\right)",
             " r = 3.\nFinal Answer: The final answer is $(3,\\frac{\\pi}{2})$. I hope it is correct.");
  EXPECT_FALSE(s.correct) << "\\left( ... \\right) and ( ... ) are different strings (no sympy here)";
  s = scored(GenTaskKind::math, "\\frac{1}{2}", " So x = \\frac12.\nFinal Answer: The final answer is $\\frac12$. I hope it is correct.");
  EXPECT_TRUE(s.correct);
  s = scored(GenTaskKind::math, "10", " The area is $\\boxed{10\\text{ cm}}$.");
  EXPECT_FALSE(s.correct);
  EXPECT_TRUE(s.correct_flexible);
  EXPECT_EQ(s.answer_flexible, "10");
}

}  // namespace
}  // namespace dsalign
