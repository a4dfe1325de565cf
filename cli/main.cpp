// dsalign <command> [arguments]: parse the command name and dispatch; nothing else lives here.
#include <c10/util/Exception.h>

#include <boost/program_options/errors.hpp>
#include <cstring>
#include <filesystem>
#include <new>
#include <iostream>

#include "cli/commands.h"
#include "util/error.h"
#include "util/host_allocator.h"

namespace {

struct Command {
  const char* name;
  int (*run)(const dsalign::cli::Args&);
  const char* summary;
};

constexpr Command kCommands[] = {
    {"sft", dsalign::cli::sft_command, "supervised fine-tuning from a recipe"},
    {"dpo", dsalign::cli::dpo_command, "Direct Preference Optimization (and IPO, hinge, RPO, SimPO) from a recipe"},
    {"run", dsalign::cli::run_command, "a pipeline: stages (init, sft, dpo, export) in order, each feeding the next"},
    {"eval", dsalign::cli::eval_command, "eval repetition | loglik | mc | bpb: repetition ratio; log-likelihood scoring as lm-evaluation-harness does it"},
    {"generate", dsalign::cli::generate_command, "greedy chat responses to prompts"},
    {"export", dsalign::cli::export_command, "a run or checkpoint -> a Hugging Face chat checkpoint"},
    {"init", dsalign::cli::init_command, "write a randomly initialised checkpoint (preset or config.json)"},
    {"inspect", dsalign::cli::inspect_command, "architecture, parameter counts, FLOPs, training memory; --load times a load"},
    {"forward", dsalign::cli::forward_command, "run the model on token ids and write fp32 logits to safetensors"},
    {"tokenize", dsalign::cli::tokenize_command, "text -> token ids, tokens or a count, with a checkpoint's tokenizer"},
    {"report", dsalign::cli::report_command, "one HTML page (or --text) of curves and summaries comparing runs"},
    {"launch", dsalign::cli::launch_command, "run a dsalign command as N ranks on this machine (like torchrun)"},
};

void usage(std::ostream& out) {
  out << "usage: dsalign <command> [arguments]   (dsalign <command> --help for details)\n\ncommands:\n";
  for (const auto& c : kCommands) out << "  " << c.name << std::string(10 - std::strlen(c.name), ' ') << c.summary << "\n";
}

// "filesystem error: cannot remove: Not a directory [a] [b]" -> "a: cannot remove: Not a directory".
std::string filesystem_message(const std::filesystem::filesystem_error& e) {
  std::string what = dsalign::first_line(e);
  const std::string prefix = "filesystem error: ";
  if (what.rfind(prefix, 0) == 0) what = what.substr(prefix.size());
  const size_t bracket = what.find(" [");
  if (bracket != std::string::npos) what = what.substr(0, bracket);
  std::string path = e.path1().string();
  if (path.size() > 200) path = path.substr(0, 200) + "...";
  return path.empty() ? what : path + ": " + what;
}

}  // namespace

int main(int argc, char** argv) {
  dsalign::keep_freed_memory_for_reuse();
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    usage(std::cout);
    return argc < 2 ? 2 : 0;
  }
  const std::string name = argv[1];
  for (const auto& c : kCommands) {
    if (name != c.name) continue;
    try {
      return c.run(dsalign::cli::Args(argv + 2, argv + argc));
    } catch (const dsalign::Error& e) {
      std::cerr << "dsalign " << name << ": error: " << e.what() << "\n";
    } catch (const boost::program_options::error& e) {
      std::cerr << "dsalign " << name << ": error: " << e.what() << " (see dsalign " << name << " --help)\n";
    } catch (const c10::Error& e) {
      std::cerr << "dsalign " << name << ": error: " << dsalign::first_line(e) << "\n";
    } catch (const std::filesystem::filesystem_error& e) {
      // A path the checks before it missed: still one line that leads with the path.
      std::cerr << "dsalign " << name << ": error: " << filesystem_message(e) << "\n";
    } catch (const std::bad_alloc&) {
      std::cerr << "dsalign " << name << ": error: out of memory (an input larger than this machine can hold?)\n";
    } catch (const std::exception& e) {
      std::cerr << "dsalign " << name << ": error: " << dsalign::first_line(e) << "\n";
    }
    return 1;
  }
  std::cerr << "dsalign: unknown command '" << name << "'\n";
  usage(std::cerr);
  return 2;
}
