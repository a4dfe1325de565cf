// Helpers the test suites share: a per-test temporary directory and "the Error this throws".
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "model/config.h"
#include "util/error.h"

namespace dsalign::testing {

// A fresh directory named after the running test, removed afterwards.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    // Parameterized tests are named "Name/param": one directory, not a nested one.
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : name)
      if (c == '/') c = '_';
    path = std::filesystem::temp_directory_path() / ("dsalign_test_" + std::to_string(::getpid()) + "_" + name);
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::filesystem::path write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
    return path / name;
  }
};

// The message of the dsalign::Error that fn throws; "" when it throws none.
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A model of ~58M parameters (232 MB in fp32): large enough that host-memory growth while loading
// it stands out of the process's noise, small enough for CI.
inline ModelConfig memory_test_config() {
  ModelConfig c = *model_preset("tiny");
  c.hidden_size = 512;
  c.intermediate_size = 1376;
  c.num_hidden_layers = 8;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 8;
  c.head_dim = 64;
  c.vocab_size = 32000;
  return c;
}

}  // namespace dsalign::testing
