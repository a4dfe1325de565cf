// Argument parsing shared by the subcommands (Boost.Program_options).
#pragma once
#include <boost/program_options.hpp>

#include <iostream>

#include <torch/cuda.h>

#include "cli/commands.h"
#include "util/error.h"

namespace dsalign::cli {

namespace po = boost::program_options;

// Parses args into vm; returns false after printing help when --help was given.
inline bool parse(const Args& args, const std::string& usage_line, po::options_description& options,
                  const po::positional_options_description& positional, po::variables_map& vm) {
  options.add_options()("help,h", "show this help");
  po::store(po::command_line_parser(args).options(options).positional(positional).run(), vm);
  if (vm.count("help")) {
    std::cout << "usage: " << usage_line << "\n\n" << options << "\n";
    return false;
  }
  po::notify(vm);
  return true;
}

// --device: cpu, cuda or cuda:N (an Error when CUDA is asked for and absent).
inline torch::Device parse_device(const std::string& name) {
  if (name == "cpu") return torch::kCPU;
  if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
    if (!torch::cuda::is_available()) fail("--device ", name, ": no CUDA device is available");
    return torch::Device(name);
  }
  fail("--device must be cpu or cuda[:N], got '", name, "'");
}

}  // namespace dsalign::cli
