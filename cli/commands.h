// The dsalign subcommands. Each parses its own arguments and calls into the library.
#pragma once
#include <string>
#include <vector>

namespace dsalign::cli {

using Args = std::vector<std::string>;  // arguments after the subcommand name

int init_command(const Args& args);
int inspect_command(const Args& args);
int forward_command(const Args& args);
int tokenize_command(const Args& args);
int sft_command(const Args& args);
int dpo_command(const Args& args);
int run_command(const Args& args);
int eval_command(const Args& args);
int eval_suite_command(const Args& args);  // dsalign eval suite
int eval_gen_command(const Args& args);    // dsalign eval gen
int generate_command(const Args& args);
int export_command(const Args& args);
int launch_command(const Args& args);
int report_command(const Args& args);

}  // namespace dsalign::cli
