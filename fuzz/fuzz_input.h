// What every fuzz target shares. A dsalign::Error is the one accepted answer to bad input; any
// other exception escaping (a raw library message), a crash, a sanitizer report or a hang is a
// finding. Readers that take paths get the input written to a file of this process.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "util/error.h"

namespace dsalign::fuzz {

// This process's scratch directory, removed when the fuzzer exits.
inline const std::filesystem::path& scratch_dir() {
  struct Scratch {
    std::filesystem::path dir = std::filesystem::temp_directory_path() / ("dsalign_fuzz_" + std::to_string(::getpid()));
    Scratch() { std::filesystem::create_directories(dir); }
    ~Scratch() {
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
    }
  };
  static const Scratch scratch;
  return scratch.dir;
}

inline std::filesystem::path write_file(const std::string& name, const std::string& bytes) {
  const std::filesystem::path path = scratch_dir() / name;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

inline std::string as_string(const uint8_t* data, size_t size) { return std::string(reinterpret_cast<const char*>(data), size); }

// Runs fn; a dsalign::Error is bad input said clearly, and fine.
template <typename Fn>
void accept_errors(Fn&& fn) {
  try {
    fn();
  } catch (const dsalign::Error&) {
  }
}

}  // namespace dsalign::fuzz
