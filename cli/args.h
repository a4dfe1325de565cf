// Argument parsing shared by the subcommands (Boost.Program_options).
#pragma once
#include <boost/program_options.hpp>

#include <iostream>

#include "cli/commands.h"

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

}  // namespace dsalign::cli
