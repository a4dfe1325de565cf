// Reading and writing weights: safetensors and torch .bin files, checkpoint directories with
// strict checks, and the CLI's one-line errors on bad input.
#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <csignal>
#include <cstdio>
#include <fstream>

#include "model/checkpoint.h"
#include "model/export.h"
#include "model/host_buffer.h"
#include "model/torch_pickle.h"
#include "model/weight_file.h"
#include "train/training_checkpoint.h"
#include "util/error.h"
#include "util/files.h"
#include "util/interrupt.h"
#include "test_util.h"

using namespace dsalign;
using dsalign::testing::TempDir;
using dsalign::testing::error_of;

namespace {

std::string read_bytes(const fs::path& p) { return read_text_file(p); }
void write_bytes(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << s;
}

// Runs a command; returns exit status and stderr.
std::pair<int, std::string> run(const std::string& command) {
  std::string full = command + " 2>&1 >/dev/null";
  FILE* pipe = ::popen(full.c_str(), "r");
  std::string err;
  char buf[512];
  while (std::fgets(buf, sizeof buf, pipe)) err += buf;
  int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, err};
}

ModelConfig tiny() { return *model_preset("tiny"); }

// Writes a tiny checkpoint with init weights and returns the model.
CausalLM write_tiny(const fs::path& dir, torch::ScalarType dtype = torch::kFloat32, int64_t shard = int64_t{5} << 30) {
  CausalLM m(tiny(), DecoderOptions{});
  m->init_weights(1);
  SaveOptions s;
  s.dtype = dtype;
  s.max_shard_bytes = shard;
  save_checkpoint(m, dir, s);
  return m;
}

}  // namespace

TEST(Safetensors, RoundTripAllDtypes) {
  TempDir tmp;
  std::vector<std::pair<std::string, torch::Tensor>> tensors = {
      {"a", torch::randn({3, 5})},
      {"b", torch::randn({7}).to(torch::kBFloat16)},
      {"c", torch::randn({2, 2, 2}).to(torch::kFloat16)},
      {"d", torch::arange(10, torch::kInt64)},
      {"empty", torch::zeros({0, 4})},
  };
  write_safetensors(tmp.path / "x.safetensors", tensors);
  auto back = read_safetensors(tmp.path / "x.safetensors");
  ASSERT_EQ(back.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(back[i].first, tensors[i].first);
    EXPECT_TRUE(torch::equal(back[i].second, tensors[i].second)) << tensors[i].first;
  }
}

TEST(Safetensors, BadFilesGiveOneLineErrors) {
  TempDir tmp;
  write_safetensors(tmp.path / "good.safetensors", {{"w", torch::randn({16, 16})}});
  std::string good = read_bytes(tmp.path / "good.safetensors");
  auto check = [&](const std::string& bytes, const std::string& expected) {
    write_bytes(tmp.path / "bad.safetensors", bytes);
    std::string e = error_of([&] { open_safetensors(tmp.path / "bad.safetensors"); });
    EXPECT_NE(e.find(expected), std::string::npos) << "got: " << e;
    EXPECT_EQ(e.find('\n'), std::string::npos);
  };
  check("", "shorter than its 8-byte header length");
  check(good.substr(0, good.size() - 100), "truncated");
  check(std::string("\xff\xff\xff\xff\x00\x00\x00\x00", 8) + "{}", "bad safetensors header length");
  std::string broken = good;
  broken[8] = '#';  // the header's opening brace
  check(broken, "not valid JSON");
  std::string header = R"({"w":{"dtype":"F32","shape":[16,16],"data_offsets":[0,12]}})";
  uint64_t n = header.size();
  check(std::string(reinterpret_cast<char*>(&n), 8) + header + std::string(12, '\0'), "needs 1024");
  header = R"({"w":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}})";
  n = header.size();
  check(std::string(reinterpret_cast<char*>(&n), 8) + header + "x", "unsupported dtype");
  // Checkpoints from strangers: offsets past the file, tensors sharing bytes.
  header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[1000000,1000008]}})";
  n = header.size();
  check(std::string(reinterpret_cast<char*>(&n), 8) + header + std::string(8, '\0'), "but the file holds 8 data bytes");
  header = R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})";
  n = header.size();
  check(std::string(reinterpret_cast<char*>(&n), 8) + header + std::string(16, '\0'), "tensors 'a' (bytes 0..16) and 'b' (bytes 8..16) overlap");
  // An empty tensor inside another's bytes overlaps nothing, but the one after it still does.
  header = R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},)"
           R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";
  n = header.size();
  check(std::string(reinterpret_cast<char*>(&n), 8) + header + std::string(16, '\0'), "and 'b' (bytes 8..12) overlap");
}

// A .bin whose pickle names any global but torch's tensor-rebuilding functions and storage types
// (here os.system, as a malicious checkpoint would) is refused, naming it; nothing is imported
// or run (the reader is not Python).
TEST(TorchBin, PickleNamingOtherGlobalsIsRefused) {
  TempDir tmp;
  // {"w": os.system("touch <file>")} in pickle protocol 2.
  const fs::path victim = tmp.path / "pwned";
  const std::string command = "touch " + victim.string();
  std::string pickle = std::string("\x80\x02}q\x00X\x01\x00\x00\x00", 10) + "wq" + std::string("\x01", 1) +
                       "cos\nsystem\nq" + std::string("\x02", 1) + "X";
  const uint32_t length = static_cast<uint32_t>(command.size());
  pickle += std::string(reinterpret_cast<const char*>(&length), 4) + command + "\x85R" + "s.";
  std::string e = error_of([&] { read_state_dict_pickle(reinterpret_cast<const uint8_t*>(pickle.data()), pickle.size(), "x/data.pkl"); });
  EXPECT_NE(e.find("x/data.pkl: refused: the pickle names the global 'os.system'"), std::string::npos) << e;
  // The same inside a real torch.save zip, through the checkpoint loader.
  fs::create_directories(tmp.path / "ckpt");
  write_bytes(tmp.path / "ckpt" / "config.json", to_hf_config_json(tiny(), "float32").dump());
  {
    caffe2::serialize::PyTorchStreamWriter writer((tmp.path / "ckpt" / "pytorch_model.bin").string());
    writer.writeRecord("data.pkl", pickle.data(), pickle.size());
    writer.writeRecord("byteorder", "little", 6);
    writer.writeEndOfFile();
  }
  e = error_of([&] { load_model(tmp.path / "ckpt", {}); });
  EXPECT_NE(e.find("pytorch_model.bin: refused: the pickle names the global 'os.system'"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(victim));
}

TEST(Checkpoint, ShardedSaveAndStrictLoad) {
  TempDir tmp;
  CausalLM m = write_tiny(tmp.path / "ckpt", torch::kFloat32, 60 * 1000);
  ASSERT_TRUE(fs::exists(tmp.path / "ckpt" / "model.safetensors.index.json"));
  CheckpointFiles files = find_checkpoint_files(tmp.path / "ckpt");
  EXPECT_GT(files.files.size(), 2u);
  CausalLM back = load_model(tmp.path / "ckpt", DecoderOptions{});
  auto a = m->named_parameters(), b = back->named_parameters();
  for (auto& item : a) EXPECT_TRUE(torch::equal(item.value(), b[item.key()])) << item.key();
  // No staging directory is left behind.
  for (const auto& e : fs::directory_iterator(tmp.path)) EXPECT_EQ(e.path().filename(), "ckpt");
}

TEST(Checkpoint, RefusesToOverwriteAnExistingCheckpoint) {
  TempDir tmp;
  write_tiny(tmp.path / "ckpt");
  std::string e = error_of([&] { write_tiny(tmp.path / "ckpt"); });
  EXPECT_NE(e.find("not empty"), std::string::npos) << e;
}

TEST(Checkpoint, StrictCheckNamesTensorFileAndShape) {
  TempDir tmp;
  write_tiny(tmp.path / "ckpt");
  fs::path file = tmp.path / "ckpt" / "model.safetensors";
  auto tensors = read_safetensors(file);

  // missing tensor
  auto missing = tensors;
  missing.erase(std::remove_if(missing.begin(), missing.end(), [](auto& t) { return t.first == "model.norm.weight"; }),
                missing.end());
  write_safetensors(file, missing);
  std::string e = error_of([&] { load_model(tmp.path / "ckpt", {}); });
  EXPECT_NE(e.find("missing tensor 'model.norm.weight' (expected shape [64])"), std::string::npos) << e;

  // unexpected tensor
  auto extra = tensors;
  extra.emplace_back("model.layers.9.mlp.up_proj.weight", torch::zeros({2, 2}));
  write_safetensors(file, extra);
  e = error_of([&] { load_model(tmp.path / "ckpt", {}); });
  EXPECT_NE(e.find("unexpected tensor 'model.layers.9.mlp.up_proj.weight'"), std::string::npos) << e;
  EXPECT_NE(e.find("model.safetensors"), std::string::npos) << e;

  // misshapen tensor (config does not match the weights)
  auto wrong = tensors;
  for (auto& t : wrong)
    if (t.first == "model.layers.0.self_attn.k_proj.weight") t.second = torch::zeros({64, 64});
  write_safetensors(file, wrong);
  e = error_of([&] { load_model(tmp.path / "ckpt", {}); });
  EXPECT_NE(e.find("'model.layers.0.self_attn.k_proj.weight' has shape [64, 64], config.json implies [32, 64]"),
            std::string::npos) << e;

  // rotary inv_freq buffers from old checkpoints are ignored
  auto with_inv_freq = tensors;
  with_inv_freq.emplace_back("model.layers.0.self_attn.rotary_emb.inv_freq", torch::zeros({8}));
  write_safetensors(file, with_inv_freq);
  EXPECT_EQ(error_of([&] { load_model(tmp.path / "ckpt", {}); }), "");
}

TEST(Checkpoint, IndexProblemsAreNamed) {
  TempDir tmp;
  write_tiny(tmp.path / "ckpt", torch::kFloat32, 60 * 1000);
  CheckpointFiles files = find_checkpoint_files(tmp.path / "ckpt");
  ASSERT_GT(files.files.size(), 2u);
  fs::path shard = files.files[1];
  fs::remove(shard);
  std::string e = error_of([&] { load_model(tmp.path / "ckpt", {}); });
  EXPECT_NE(e.find(shard.filename().string()), std::string::npos) << e;
  EXPECT_NE(e.find("missing"), std::string::npos) << e;

  write_bytes(tmp.path / "ckpt" / "model.safetensors.index.json", "{\"weight_map\": 3}");
  e = error_of([&] { load_model(tmp.path / "ckpt", {}); });
  EXPECT_NE(e.find("weight_map"), std::string::npos) << e;
}

TEST(Checkpoint, Bf16OnDiskConvertsOnLoad) {
  TempDir tmp;
  CausalLM m = write_tiny(tmp.path / "ckpt", torch::kBFloat16);
  CausalLM back = load_model(tmp.path / "ckpt", DecoderOptions{});
  auto a = m->named_parameters(), b = back->named_parameters();
  for (auto& item : a)
    EXPECT_TRUE(torch::equal(item.value().to(torch::kBFloat16).to(torch::kFloat32), b[item.key()])) << item.key();
}

// torch.save's zips as written by PyTorch itself, plain and rewritten with zip64 records, load to
// exactly the tensors of the safetensors file they came from; compressed records are refused.
TEST(TorchBin, TorchSaveZipsLoadLikeSafetensors) {
  TempDir tmp;
  write_tiny(tmp.path / "st", torch::kBFloat16);
  const CausalLM from_safetensors = load_model(tmp.path / "st", DecoderOptions{});
  for (const std::string mode : {"plain", "zip64", "deflate"}) {
    SCOPED_TRACE(mode);
    const fs::path dir = tmp.path / mode;
    fs::create_directories(dir);
    fs::copy_file(tmp.path / "st" / "config.json", dir / "config.json");
    const std::string command = std::string(DSALIGN_PYTHON) + " " + DSALIGN_ORACLES_SRC + "/write_torch_bin.py " +
                                (tmp.path / "st" / "model.safetensors").string() + " " + (dir / "pytorch_model.bin").string() + " " + mode;
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
    if (mode == "deflate") {
      const std::string e = error_of([&] { load_model(dir, DecoderOptions{}); });
      EXPECT_NE(e.find("pytorch_model.bin: zip record 'data.pkl' is compressed"), std::string::npos) << e;
      continue;
    }
    const CausalLM from_bin = load_model(dir, DecoderOptions{});
    auto expected = from_safetensors->named_parameters();
    for (const auto& p : from_bin->named_parameters()) EXPECT_TRUE(torch::equal(p.value(), expected[p.key()])) << p.key();
    // Cut short, the file has no end-of-directory record; one line says so.
    const std::string bytes = read_bytes(dir / "pytorch_model.bin");
    write_bytes(dir / "pytorch_model.bin", bytes.substr(0, bytes.size() - 30));
    const std::string e = error_of([&] { load_model(dir, DecoderOptions{}); });
    EXPECT_NE(e.find("pytorch_model.bin: "), std::string::npos) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  }
}

// The pread loader (model/weight_reader) against the earlier copy from the memory map, which
// stays as the reference: the same tensors bit for bit, from safetensors and from a torch.save
// .bin, into fp32 and bf16 parameters, with blocks far smaller than a tensor (1 KiB) on three
// threads so that blocks split tensors; a rank's slice of rows (first_row) reads those rows; a
// tensor past the file's end is a one-line error naming the file and the tensor.
TEST(Checkpoint, PreadLoadEqualsTheMappedCopyFromSafetensorsAndBin) {
  TempDir tmp;
  write_tiny(tmp.path / "st", torch::kBFloat16);
  fs::create_directories(tmp.path / "bin");
  fs::copy_file(tmp.path / "st" / "config.json", tmp.path / "bin" / "config.json");
  const std::string command = std::string(DSALIGN_PYTHON) + " " + DSALIGN_ORACLES_SRC + "/write_torch_bin.py " +
                              (tmp.path / "st" / "model.safetensors").string() + " " + (tmp.path / "bin" / "pytorch_model.bin").string() +
                              " plain";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  WeightReadOptions mapped;
  mapped.pread = false;
  WeightReadOptions small_blocks;
  small_blocks.threads = 3;
  small_blocks.block_bytes = 1024;
  for (const torch::ScalarType dtype : {torch::kFloat32, torch::kBFloat16}) {
    DecoderOptions o;
    o.param_dtype = o.compute_dtype = dtype;
    CausalLM reference(tiny(), o);
    load_weights(reference, tmp.path / "st", mapped);
    auto expected = reference->named_parameters();
    for (const char* format : {"st", "bin"})
      for (const WeightReadOptions& read : {WeightReadOptions{}, small_blocks}) {
        SCOPED_TRACE(std::string(format) + ", " + c10::toString(dtype) + ", block " + std::to_string(read.block_bytes));
        CausalLM loaded(tiny(), o);
        const LoadReport report = load_weights(loaded, tmp.path / format, read);
        EXPECT_EQ(report.tensors, static_cast<int64_t>(expected.size()));
        for (const auto& p : loaded->named_parameters()) EXPECT_TRUE(torch::equal(p.value(), expected[p.key()])) << p.key();
      }
  }
  // Left on the file's mapping (models that are not trained): the same values after the file
  // object is gone; a write to such a parameter copies its page and never reaches the file.
  {
    DecoderOptions bf16;
    bf16.param_dtype = bf16.compute_dtype = torch::kBFloat16;
    CausalLM mapped = load_model(tmp.path / "st", bf16, frozen_model_reads());
    CausalLM read_in = load_model(tmp.path / "st", bf16);
    auto expected_bf16 = read_in->named_parameters();
    for (const auto& p : mapped->named_parameters()) EXPECT_TRUE(torch::equal(p.value(), expected_bf16[p.key()])) << p.key();
    const std::string file_before = read_bytes(tmp.path / "st" / "model.safetensors");
    {
      torch::NoGradGuard no_grad;
      mapped->named_parameters()["model.norm.weight"].fill_(7);
    }
    EXPECT_EQ(mapped->named_parameters()["model.norm.weight"][0].item<float>(), 7.0f);
    EXPECT_EQ(read_bytes(tmp.path / "st" / "model.safetensors"), file_before);
  }
  // Rows 3.. of one matrix, as a sharded rank reads them.
  auto file = open_safetensors(tmp.path / "st" / "model.safetensors");
  const TensorEntry* entry = nullptr;
  for (const TensorEntry& e : file->entries())
    if (e.name == "model.embed_tokens.weight") entry = &e;
  ASSERT_NE(entry, nullptr);
  torch::Tensor rows = torch::empty({entry->shape[0] - 3, entry->shape[1]}, torch::kFloat32);
  read_tensors(file->path(), {{entry, rows, 3}}, small_blocks);
  EXPECT_TRUE(torch::equal(rows, file->view(*entry).narrow(0, 3, rows.size(0)).to(torch::kFloat32)));
  // An entry that claims bytes past the end of the file.
  TensorEntry past = *entry;
  past.data_offset = static_cast<size_t>(fs::file_size(file->path())) - 8;
  const std::string e = error_of([&] { read_tensors(file->path(), {{&past, rows, 0}}, small_blocks); });
  EXPECT_NE(e.find("model.safetensors: ends at byte "), std::string::npos) << e;
  EXPECT_NE(e.find("inside tensor 'model.embed_tokens.weight' (truncated?)"), std::string::npos) << e;
}

TEST(TorchBin, CorruptFilesGiveOneLineErrors) {
  TempDir tmp;
  fs::create_directories(tmp.path / "ckpt");
  write_bytes(tmp.path / "ckpt" / "config.json", to_hf_config_json(tiny(), "float32").dump());
  write_bytes(tmp.path / "ckpt" / "pytorch_model.bin", "this is not a zip file at all");
  std::string e = error_of([&] { load_model(tmp.path / "ckpt", {}); });
  EXPECT_NE(e.find("not a zip-format torch.save file"), std::string::npos) << e;
  write_bytes(tmp.path / "ckpt" / "pytorch_model.bin", std::string("PK\x03\x04", 4) + std::string(100, 'x'));
  e = error_of([&] { load_model(tmp.path / "ckpt", {}); });
  EXPECT_NE(e.find("pytorch_model.bin: no zip end-of-directory record"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
}

TEST(Cli, InitInspectForward) {
  TempDir tmp;
  const std::string cli = DSALIGN_CLI;
  auto [status, err] = run(cli + " init tiny " + (tmp.path / "m").string() + " --dtype fp32 --seed 3");
  ASSERT_EQ(status, 0) << err;
  std::tie(status, err) = run(cli + " inspect " + (tmp.path / "m").string() + " --load");
  EXPECT_EQ(status, 0) << err;
  std::tie(status, err) = run(cli + " forward --model " + (tmp.path / "m").string() + " --ids 1,2,3,4,5 --out " +
                              (tmp.path / "logits.safetensors").string());
  ASSERT_EQ(status, 0) << err;
  auto out = read_safetensors(tmp.path / "logits.safetensors");
  ASSERT_EQ(out[0].first, "logits");
  EXPECT_EQ(out[0].second.sizes().vec(), (std::vector<int64_t>{1, 5, 512}));
  // The CLI's logits are the library's.
  CausalLM m = load_model(tmp.path / "m", {});
  torch::NoGradGuard no_grad;
  torch::Tensor expected = m->forward({torch::tensor({1, 2, 3, 4, 5}, torch::kInt64).unsqueeze(0)});
  EXPECT_TRUE(torch::allclose(out[0].second, expected));
}

TEST(Cli, BadInputIsOneLineAndNonZero) {
  TempDir tmp;
  const std::string cli = DSALIGN_CLI;
  ASSERT_EQ(run(cli + " init tiny " + (tmp.path / "m").string()).first, 0);
  std::string long_ids;
  for (int i = 0; i < 77; ++i) long_ids += (i ? "," : "") + std::to_string(i == 76 ? 600 : 300 + i);
  struct Case {
    std::string args, expected;
  };
  std::vector<Case> cases = {
      {"init nosuchpreset " + (tmp.path / "x").string(), "neither a checkpoint directory"},
      {"init tiny " + (tmp.path / "m").string(), "not empty"},
      {"inspect " + (tmp.path / "nope").string(), "neither a checkpoint directory"},
      {"forward --model " + (tmp.path / "m").string() + " --ids 1,2,99999 --out " + (tmp.path / "o").string(),
       "outside the vocabulary"},
      {"forward --model " + (tmp.path / "m").string() + " --ids 1,x --out " + (tmp.path / "o").string(),
       "'x' is not a token id"},
      {"forward --model " + tmp.path.string() + " --ids 1 --out " + (tmp.path / "o").string(), "config.json"},
      {"forward --model " + (tmp.path / "m").string() + " --ids 1 --out o --device tpu", "--device must be"},
      {"init tiny " + (tmp.path / "y").string() + " --dtype int3", "unknown dtype 'int3'"},
      {"inspect", "source"},
      {"inspect tiny --plan world=8,wrld=2", "--plan: unknown key 'wrld'"},
      {"inspect tiny --plan world=-1", "world=-1 (expected a positive integer)"},
      {"launch sft r.yaml", "--nproc-per-node is required"},
      {"launch --nproc-per-node 0 sft r.yaml", "--nproc-per-node 0: expected an integer in 1..1024"},
      {"launch --nproc-per-node 2", "no dsalign command to launch"},
      {"launch --nproc-per-node 2 --bogus 1 sft r.yaml", "unknown option --bogus"},
      {"nosuchcommand", "unknown command"},
      // The issue's cases: a 77-id list is a list, never tried as a path; an output under a file.
      {"forward --model " + (tmp.path / "m").string() + " --ids " + long_ids + " --out " + (tmp.path / "o").string(),
       "token id 600 is outside the vocabulary"},
      {"forward --model " + (tmp.path / "m").string() + " --ids " + (tmp.path / "missing.txt").string() + " --out " +
           (tmp.path / "o").string(), "missing.txt: no such file (expected a file of token ids, or ids like 1,2,3)"},
      {"forward --model " + (tmp.path / "m").string() + " --ids " + tmp.path.string() + " --out " + (tmp.path / "o").string(),
       "is a directory"},
      {"forward --model " + (tmp.path / "m").string() + " --ids " + std::string(5000, 'a') + " --out " + (tmp.path / "o").string(),
       "no such file"},
      {"export " + (tmp.path / "m").string() + " " + (tmp.path / "m" / "config.json" / "out").string(),
       "config.json is a file, not a directory"},
  };
  for (const auto& c : cases) {
    auto [status, err] = run(cli + " " + c.args);
    EXPECT_NE(status, 0) << c.args;
    EXPECT_NE(err.find(c.expected), std::string::npos) << c.args << " -> " << err;
    if (c.args != "nosuchcommand") EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << c.args << " -> " << err;
  }
  EXPECT_FALSE(fs::exists(tmp.path / "o"));
}

// Streaming load: peak host memory while loading stays near one copy of the weights (the model's
// own parameters), not parameters + file: the pread loader reads into the parameters through one
// block-sized buffer per thread and never maps the file. (Memory, not time: no timing assertion.)
TEST(Checkpoint, LoadPeakHostMemoryNearOneCopy) {
  TempDir tmp;
  ModelConfig c = dsalign::testing::memory_test_config();
  {
    CausalLM m(c, DecoderOptions{});
    m->init_weights(0);
    SaveOptions s;
    s.dtype = torch::kBFloat16;
    save_checkpoint(m, tmp.path / "ckpt", s);
  }
  reset_peak_host_memory();
  HostMemory before = host_memory();
  // One 116 MB bf16 file loaded into fp32 parameters (232 MB).
  CausalLM loaded = load_model(tmp.path / "ckpt", DecoderOptions{});
  HostMemory after = host_memory();
  double weights = 0;
  for (auto& p : loaded->parameters()) weights += static_cast<double>(p.nbytes());
  double growth = static_cast<double>(after.peak_resident_bytes - before.resident_bytes);
  ASSERT_GT(weights, 200e6);
  // Holding the whole bf16 file as well would be 1.5x.
  EXPECT_LE(growth, 1.2 * weights + 16e6) << "peak grew " << growth / 1e6 << " MB for " << weights / 1e6 << " MB of weights";
}

// `dsalign init` streams tensors to disk; its values are those of init_weights with the same seed.
TEST(Checkpoint, StreamingInitEqualsInitWeights) {
  TempDir tmp;
  SaveOptions s;
  s.dtype = torch::kFloat32;
  s.max_shard_bytes = 100 * 1000;
  init_checkpoint(tiny(), 11, tmp.path / "ckpt", s);
  CausalLM expected(tiny(), DecoderOptions{});
  expected->init_weights(11);
  CausalLM loaded = load_model(tmp.path / "ckpt", DecoderOptions{});
  auto a = expected->named_parameters(), b = loaded->named_parameters();
  for (auto& item : a) EXPECT_TRUE(torch::equal(item.value(), b[item.key()])) << item.key();
  EXPECT_NEAR(a["model.layers.0.mlp.up_proj.weight"].std().item<double>(), 0.02, 0.002);
}

// A signal during an export (util/interrupt) stops it between tensors with one line, and leaves
// neither the output nor its staging directory.
TEST(Export, SignalStopsBetweenTensorsAndLeavesNothing) {
  TempDir tmp;
  SaveOptions save;
  save.dtype = torch::kFloat32;
  init_checkpoint(*model_preset("tiny-coder"), 0, tmp.path / "model", save);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(fs::path(DSALIGN_SOURCE_DIR) / "assets/tokenizers/deepseek-coder" / f, tmp.path / "model" / f);
  {
    InterruptScope interrupts;
    ::raise(SIGINT);
    const std::string e = error_of([&] { export_model(tmp.path / "model", tmp.path / "out", "auto", ExportOptions{}); });
    EXPECT_NE(e.find("interrupted by SIGINT while exporting "), std::string::npos) << e;
    EXPECT_NE(e.find("out was not written"), std::string::npos) << e;
  }
  EXPECT_FALSE(fs::exists(tmp.path / "out"));
  for (const auto& entry : fs::directory_iterator(tmp.path))
    EXPECT_EQ(entry.path().filename().string().find(".tmp-"), std::string::npos) << entry.path();
  // The scope restored the default: no flag is left for the next export.
  export_model(tmp.path / "model", tmp.path / "out", "auto", ExportOptions{});
  EXPECT_TRUE(fs::exists(tmp.path / "out" / "model.safetensors"));
}

// Training checkpoints are copied into host buffers kept from one checkpoint to the next
// (train/host_staging): the second snapshot lands in the first one's memory, and a snapshot is
// only taken once the write of the previous one has ended, so what is on disk is what was copied.
TEST(Checkpoint, BackgroundWriterReusesHostBuffersOnlyAfterTheWrite) {
  TempDir tmp;
  CausalLM model(tiny(), DecoderOptions{});
  model->init_weights(3);
  CheckpointWriter writer(/*background=*/true);
  auto snapshot = [&](int64_t step) {
    CheckpointSnapshot s = snapshot_training_state(model, checkpoint_tensors(model), {}, writer.staging());
    s.dir = tmp.path / "checkpoints" / ("step_" + std::to_string(step));
    s.state = {{"step", step}};
    s.keep_last = 5;
    return s;
  };
  CheckpointSnapshot first = snapshot(1);
  const void* first_buffer = first.weights.front().second.data_ptr();
  const torch::Tensor first_values = first.weights.front().second.clone();
  EXPECT_TRUE(torch::equal(first_values, model->named_parameters()[first.weights.front().first]));
  writer.submit(std::move(first));
  std::map<std::string, torch::Tensor> at_step_1;
  for (auto& item : model->named_parameters()) at_step_1[item.key()] = item.value().detach().clone();
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->parameters()) p.add_(1.0);  // what the next step would do
  }
  CheckpointSnapshot second = snapshot(2);  // waits for step_1's write, then reuses its buffers
  EXPECT_EQ(second.weights.front().second.data_ptr(), first_buffer);
  EXPECT_TRUE(torch::equal(second.weights.front().second, first_values + 1.0));
  writer.submit(std::move(second));
  writer.wait();
  EXPECT_TRUE(writer.staging().bytes() >= static_cast<int64_t>(first_values.nbytes()));
  for (int64_t step : {1, 2}) {
    CausalLM loaded(tiny(), DecoderOptions{});
    load_weights(loaded, tmp.path / "checkpoints" / ("step_" + std::to_string(step)));
    for (auto& item : model->named_parameters())
      EXPECT_TRUE(torch::equal(loaded->named_parameters()[item.key()], step == 1 ? at_step_1.at(item.key()) : item.value()))
          << "step " << step << " " << item.key();
  }
  // A foreground writer keeps no buffers between checkpoints.
  CheckpointWriter foreground(/*background=*/false);
  CheckpointSnapshot third = snapshot_training_state(model, checkpoint_tensors(model), {}, foreground.staging());
  third.dir = tmp.path / "checkpoints" / "step_3";
  third.state = {{"step", 3}};
  third.keep_last = 5;
  EXPECT_GT(foreground.staging().bytes(), 0);
  foreground.submit(std::move(third));
  EXPECT_EQ(foreground.staging().bytes(), 0);
  EXPECT_TRUE(path_exists(tmp.path / "checkpoints" / "step_3" / "state.json"));
}

// On a GPU the copies go into pinned buffers, asynchronously, and have landed once finish()
// returns: on every GPU there is (the copies of a device other than the current one included).
TEST(Checkpoint, CudaHostStagingCopiesIntoPinnedBuffers) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (int64_t device = 0; device < static_cast<int64_t>(torch::cuda::device_count()); ++device) {
    HostStaging staging;
    const torch::Tensor on_gpu =
        torch::randn({3000, 1000}, torch::TensorOptions().device(torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(device))));
    torch::Tensor copy = staging.copy("w", on_gpu);
    staging.finish();
    EXPECT_TRUE(copy.device().is_cpu());
    EXPECT_TRUE(is_pinned_host(copy)) << "cuda:" << device;
    EXPECT_TRUE(torch::equal(copy, on_gpu.cpu())) << "cuda:" << device;
    const void* buffer = copy.data_ptr();
    torch::Tensor again = staging.copy("w", on_gpu * 2);
    staging.finish();
    EXPECT_EQ(again.data_ptr(), buffer);
    EXPECT_TRUE(torch::equal(again, (on_gpu * 2).cpu())) << "cuda:" << device;
    HostStaging unpinned(/*pin=*/false);
    EXPECT_FALSE(is_pinned_host(unpinned.copy("w", on_gpu)));
  }
}

// GPU loads through the pinned ring (WeightReadOptions::device_staging) give the tensors the host
// load gives: bf16 on disk into bf16 and fp32 GPU parameters, 1 KiB blocks on 3 threads (each
// ring's two blocks reused many times), and a rank's rows.
TEST(Checkpoint, CudaStagedLoadEqualsTheHostLoad) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  TempDir tmp;
  write_tiny(tmp.path / "ckpt", torch::kBFloat16);
  WeightReadOptions staged;
  staged.device_staging = true;
  staged.block_bytes = 1024;
  staged.threads = 3;
  for (torch::ScalarType dtype : {torch::kBFloat16, torch::kFloat32}) {
    DecoderOptions on_host, on_gpu;
    on_host.param_dtype = on_gpu.param_dtype = dtype;
    on_gpu.device = torch::kCUDA;
    CausalLM expected = load_model(tmp.path / "ckpt", on_host);
    CausalLM got = load_model(tmp.path / "ckpt", on_gpu, staged);
    for (auto& item : expected->named_parameters()) {
      const torch::Tensor loaded = got->named_parameters()[item.key()];
      EXPECT_TRUE(loaded.is_cuda()) << item.key();
      EXPECT_TRUE(torch::equal(loaded.cpu(), item.value())) << c10::toString(dtype) << " " << item.key();
    }
  }
  auto file = open_safetensors(tmp.path / "ckpt" / "model.safetensors");
  const TensorEntry* entry = nullptr;
  for (const TensorEntry& e : file->entries())
    if (e.name == "model.embed_tokens.weight") entry = &e;
  ASSERT_NE(entry, nullptr);
  torch::Tensor rows = torch::empty({5, entry->shape[1]}, torch::TensorOptions().device(torch::kCUDA));
  read_tensors(file->path(), {{entry, rows, 3}}, staged);
  EXPECT_TRUE(torch::equal(rows.cpu(), file->view(*entry).narrow(0, 3, 5).to(torch::kFloat32)));
}
