// tokenize: the data-level subcommands.
#include <fstream>
#include <iostream>
#include <iterator>

#include "cli/args.h"
#include "data/tokenizer.h"
#include "util/error.h"
#include "util/files.h"

namespace dsalign::cli {

int tokenize_command(const Args& args) {
  po::options_description options("options");
  std::string tokenizer_dir, input;
  options.add_options()
      ("tokenizer", po::value(&tokenizer_dir)->required(), "directory with tokenizer.json (and tokenizer_config.json)")
      ("input", po::value(&input)->default_value("-"), "text file, or - for standard input")
      ("ids", po::bool_switch(), "print token ids, space-separated (the default)")
      ("tokens", po::bool_switch(), "print the tokens, one per line, as JSON strings")
      ("count", po::bool_switch(), "print only the number of tokens")
      ("bos", po::bool_switch(), "add BOS / EOS as tokenizer_config.json's add_bos_token / add_eos_token say");
  po::positional_options_description positional;
  positional.add("input", 1);
  po::variables_map vm;
  if (!parse(args, "dsalign tokenize --tokenizer <dir> [--ids|--tokens|--count] [--bos] [file|-]\n\n"
                   "Encodes the whole input as one text, exactly as the `tokenizers` library does.",
             options, positional, vm))
    return 0;
  int modes = vm["ids"].as<bool>() + vm["tokens"].as<bool>() + vm["count"].as<bool>();
  if (modes > 1) fail("choose one of --ids, --tokens, --count");
  Tokenizer tokenizer = Tokenizer::load(tokenizer_dir);
  std::string text;
  if (input == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    if (!is_existing_file(input)) fail(input, ": not a file");
    text = read_text_file(input);
  }
  std::vector<int32_t> ids;
  try {
    ids = tokenizer.encode(text, vm["bos"].as<bool>());
  } catch (const Error& e) {
    fail(input == "-" ? "standard input" : input, ": ", e.what());
  }
  if (vm["count"].as<bool>()) {
    std::cout << ids.size() << "\n";
  } else if (vm["tokens"].as<bool>()) {
    for (int32_t id : ids) std::cout << nlohmann::json(tokenizer.id_to_token(id)).dump() << "\n";
  } else {
    for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
    std::cout << "\n";
  }
  return 0;
}

}  // namespace dsalign::cli
