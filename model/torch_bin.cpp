// PyTorch .bin checkpoints (torch.save's zip format, as deepseek-llm ships its weights):
// a zip whose `<archive>/data.pkl` is a pickle of the state dict and whose `<archive>/data/<key>`
// records hold the raw, uncompressed storages. The zip directory comes from LibTorch's
// PyTorchStreamReader; the pickle is read by the small interpreter below, which understands only
// what a state dict needs (dicts, tuples, ints, strings, _rebuild_tensor_v2, persistent storage
// ids) and builds no Python objects, so an untrusted file can name no code to run.
#include <caffe2/serialize/inline_container.h>

#include <map>

#include "model/weight_file.h"
#include "util/error.h"
#include "util/files.h"

namespace dsalign {
namespace {

struct PyValue;
using PyPtr = std::shared_ptr<PyValue>;

struct PyValue {
  enum class Kind { none, boolean, integer, floating, string, tuple, list, dict, global, storage, tensor, object };
  Kind kind = Kind::none;
  int64_t integer = 0;
  double floating = 0;
  std::string text;  // string value, "module.name" of a global or object's constructor
  std::vector<PyPtr> items;
  std::vector<std::pair<PyPtr, PyPtr>> dict;
  // storage
  torch::ScalarType dtype = torch::kFloat32;
  int64_t numel = 0;
  // tensor: a storage, offset, size, stride
  PyPtr storage;
  std::vector<int64_t> shape, stride;
};

PyPtr make(PyValue::Kind kind) {
  auto v = std::make_shared<PyValue>();
  v->kind = kind;
  return v;
}

std::optional<torch::ScalarType> storage_dtype(const std::string& global) {
  static const std::map<std::string, torch::ScalarType> types = {
      {"torch.FloatStorage", torch::kFloat32}, {"torch.HalfStorage", torch::kFloat16},
      {"torch.BFloat16Storage", torch::kBFloat16}, {"torch.DoubleStorage", torch::kFloat64},
      {"torch.LongStorage", torch::kInt64}, {"torch.IntStorage", torch::kInt32},
      {"torch.ShortStorage", torch::kInt16}, {"torch.CharStorage", torch::kInt8},
      {"torch.ByteStorage", torch::kUInt8}, {"torch.BoolStorage", torch::kBool},
  };
  auto it = types.find(global);
  if (it == types.end()) return std::nullopt;
  return it->second;
}

class PickleReader {
 public:
  PickleReader(const uint8_t* data, size_t size, std::string where) : p_(data), end_(data + size), where_(std::move(where)) {}

  PyPtr run() {
    while (true) {
      uint8_t op = byte();
      switch (op) {
        case 0x80: byte(); break;            // PROTO
        case 0x95: bytes(8); break;          // FRAME
        case '}': push(make(PyValue::Kind::dict)); break;
        case ']': push(make(PyValue::Kind::list)); break;
        case ')': push(make(PyValue::Kind::tuple)); break;
        case '(': marks_.push_back(stack_.size()); break;
        case 'q': memo_[byte()] = top(); break;
        case 'r': memo_[u32()] = top(); break;
        case 0x94: memo_[memo_.size()] = top(); break;  // MEMOIZE
        case 'h': push(memo_get(byte())); break;
        case 'j': push(memo_get(u32())); break;
        case 'X': push(string(u32())); break;
        case 0x8c: push(string(byte())); break;
        case 0x8d: push(string(u64())); break;
        case 'U': push(string(byte())); break;
        case 'T': push(string(u32())); break;
        case 'C': push(string(byte())); break;
        case 'B': push(string(u32())); break;
        case 'c': {
          std::string module = line(), name = line();
          push(global(module + "." + name));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          PyPtr name = pop(), module = pop();
          push(global(module->text + "." + name->text));
          break;
        }
        case 'Q': push(persistent_load(pop())); break;
        case 'K': push(integer(byte())); break;
        case 'M': push(integer(u16())); break;
        case 'J': push(integer(static_cast<int32_t>(u32()))); break;
        case 0x8a: push(integer(long1(byte()))); break;
        case 'G': {
          uint64_t bits = 0;
          for (int i = 0; i < 8; ++i) bits = (bits << 8) | byte();  // big-endian
          auto v = make(PyValue::Kind::floating);
          std::memcpy(&v->floating, &bits, 8);
          push(v);
          break;
        }
        case 'N': push(make(PyValue::Kind::none)); break;
        case 0x88: push(boolean(true)); break;
        case 0x89: push(boolean(false)); break;
        case 't': push(sequence(PyValue::Kind::tuple, pop_mark())); break;
        case 0x85: push(sequence(PyValue::Kind::tuple, pop_n(1))); break;
        case 0x86: push(sequence(PyValue::Kind::tuple, pop_n(2))); break;
        case 0x87: push(sequence(PyValue::Kind::tuple, pop_n(3))); break;
        case 'l': push(sequence(PyValue::Kind::list, pop_mark())); break;
        case 'a': {
          PyPtr v = pop();
          top()->items.push_back(v);
          break;
        }
        case 'e': {
          auto values = pop_mark();
          for (auto& v : values) top()->items.push_back(v);
          break;
        }
        case 'd': {
          auto d = make(PyValue::Kind::dict);
          set_items(d, pop_mark());
          push(d);
          break;
        }
        case 's': {
          PyPtr value = pop(), key = pop();
          top()->dict.emplace_back(key, value);
          break;
        }
        case 'u': {
          auto values = pop_mark();
          set_items(top(), values);
          break;
        }
        case 'R': {
          PyPtr args = pop(), callable = pop();
          push(call(callable, args));
          break;
        }
        case 0x81: {  // NEWOBJ
          PyPtr args = pop(), cls = pop();
          push(call(cls, args));
          break;
        }
        case 'b': pop(); break;  // BUILD: object state (a state dict's _metadata) is not needed
        case '.': return pop();
        default: bad("unsupported pickle opcode 0x", hex(op));
      }
    }
  }

 private:
  template <typename... Parts>
  [[noreturn]] void bad(const Parts&... parts) {
    fail(where_, ": not a PyTorch state dict: ", parts...);
  }
  static std::string hex(uint8_t v) {
    char buf[4];
    std::snprintf(buf, sizeof buf, "%02x", v);
    return buf;
  }
  uint8_t byte() {
    if (p_ >= end_) bad("pickle ends early (truncated file?)");
    return *p_++;
  }
  const uint8_t* bytes(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) bad("pickle ends early (truncated file?)");
    const uint8_t* start = p_;
    p_ += n;
    return start;
  }
  uint64_t little(size_t n) {
    const uint8_t* b = bytes(n);
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(b[i]) << (8 * i);
    return v;
  }
  uint16_t u16() { return static_cast<uint16_t>(little(2)); }
  uint32_t u32() { return static_cast<uint32_t>(little(4)); }
  uint64_t u64() { return little(8); }
  int64_t long1(size_t n) {
    if (n > 8) bad("integer wider than 64 bits");
    if (n == 0) return 0;
    uint64_t v = little(n);
    if (n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);  // sign-extend
    return static_cast<int64_t>(v);
  }
  std::string line() {
    const uint8_t* start = p_;
    while (p_ < end_ && *p_ != '\n') ++p_;
    if (p_ >= end_) bad("pickle ends early (truncated file?)");
    return std::string(reinterpret_cast<const char*>(start), reinterpret_cast<const char*>(p_++));
  }
  PyPtr string(uint64_t n) {
    if (n > static_cast<uint64_t>(end_ - p_)) bad("pickle ends early (truncated file?)");
    auto v = make(PyValue::Kind::string);
    const uint8_t* b = bytes(n);
    v->text.assign(reinterpret_cast<const char*>(b), n);
    return v;
  }
  PyPtr integer(int64_t i) {
    auto v = make(PyValue::Kind::integer);
    v->integer = i;
    return v;
  }
  PyPtr boolean(bool b) {
    auto v = make(PyValue::Kind::boolean);
    v->integer = b;
    return v;
  }
  PyPtr global(const std::string& name) {
    auto v = make(PyValue::Kind::global);
    v->text = name;
    return v;
  }
  PyPtr sequence(PyValue::Kind kind, std::vector<PyPtr> items) {
    auto v = make(kind);
    v->items = std::move(items);
    return v;
  }
  void set_items(const PyPtr& d, const std::vector<PyPtr>& flat) {
    if (flat.size() % 2) bad("odd number of dict items");
    for (size_t i = 0; i < flat.size(); i += 2) d->dict.emplace_back(flat[i], flat[i + 1]);
  }
  void push(PyPtr v) { stack_.push_back(std::move(v)); }
  PyPtr pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) bad("pickle stack underflow");
    PyPtr v = stack_.back();
    stack_.pop_back();
    return v;
  }
  PyPtr top() {
    if (stack_.empty()) bad("pickle stack underflow");
    return stack_.back();
  }
  std::vector<PyPtr> pop_n(size_t n) {
    std::vector<PyPtr> out(n);
    for (size_t i = n; i-- > 0;) out[i] = pop();
    return out;
  }
  std::vector<PyPtr> pop_mark() {
    if (marks_.empty()) bad("pickle MARK missing");
    size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<PyPtr> out(stack_.begin() + static_cast<std::ptrdiff_t>(mark), stack_.end());
    stack_.resize(mark);
    return out;
  }
  PyPtr memo_get(uint64_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) bad("pickle memo key ", key, " unset");
    return it->second;
  }

  // ('storage', <torch.XStorage>, key, location, numel)
  PyPtr persistent_load(const PyPtr& pid) {
    if (pid->kind != PyValue::Kind::tuple || pid->items.size() < 5 || pid->items[0]->text != "storage")
      bad("unexpected persistent id");
    const auto& it = pid->items;
    auto dtype = storage_dtype(it[1]->text);
    if (!dtype) bad("unsupported storage type ", it[1]->text);
    if (it[2]->kind != PyValue::Kind::string || it[4]->kind != PyValue::Kind::integer) bad("malformed storage id");
    auto s = make(PyValue::Kind::storage);
    s->dtype = *dtype;
    s->text = it[2]->text;
    s->numel = it[4]->integer;
    return s;
  }

  std::vector<int64_t> int_tuple(const PyPtr& v, const char* what) {
    if (v->kind != PyValue::Kind::tuple) bad(what, " is not a tuple");
    std::vector<int64_t> out;
    for (const auto& item : v->items) {
      if (item->kind != PyValue::Kind::integer) bad(what, " holds a non-integer");
      out.push_back(item->integer);
    }
    return out;
  }

  PyPtr call(const PyPtr& callable, const PyPtr& args) {
    const std::string& name = callable->text;
    const auto& a = args->items;
    if (callable->kind == PyValue::Kind::global && name == "collections.OrderedDict") return make(PyValue::Kind::dict);
    if (callable->kind == PyValue::Kind::global &&
        (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor")) {
      if (a.size() < 4 || a[0]->kind != PyValue::Kind::storage || a[1]->kind != PyValue::Kind::integer)
        bad("malformed ", name, " arguments");
      auto t = make(PyValue::Kind::tensor);
      t->storage = a[0];
      t->integer = a[1]->integer;  // storage offset in elements
      t->shape = int_tuple(a[2], "tensor size");
      t->stride = int_tuple(a[3], "tensor stride");
      if (t->shape.size() != t->stride.size()) bad("tensor size and stride differ in length");
      return t;
    }
    if (callable->kind == PyValue::Kind::global &&
        (name == "torch._utils._rebuild_parameter" || name == "torch._utils._rebuild_parameter_with_state")) {
      if (a.empty() || a[0]->kind != PyValue::Kind::tensor) bad("malformed ", name, " arguments");
      return a[0];
    }
    auto obj = make(PyValue::Kind::object);  // anything else: opaque, fine unless used as a tensor
    obj->text = name;
    return obj;
  }

  const uint8_t* p_;
  const uint8_t* end_;
  std::string where_;
  std::vector<PyPtr> stack_;
  std::vector<size_t> marks_;
  std::map<uint64_t, PyPtr> memo_;
};

class TorchBinFile final : public WeightFile {
 public:
  explicit TorchBinFile(const std::filesystem::path& path) : map_(path) {
    const std::string where = path.string();
    if (map_.size() < 4 || std::memcmp(map_.data(), "PK\x03\x04", 4) != 0)
      fail(where, ": not a zip-format torch.save file (legacy pre-1.6 format or not a checkpoint; "
                  "re-save it with torch.save from torch >= 1.6, or convert it to safetensors)");
    try {
      caffe2::serialize::PyTorchStreamReader reader(path.string());
      auto [pickle_data, pickle_size] = reader.getRecord("data.pkl");
      PickleReader pickle(static_cast<const uint8_t*>(pickle_data.get()), pickle_size, where);
      PyPtr root = pickle.run();
      if (root->kind != PyValue::Kind::dict) fail(where, ": expected a state dict (a dict of tensors) at the top level");
      if (reader.hasRecord("byteorder")) {
        auto [order, n] = reader.getRecord("byteorder");
        if (std::string(static_cast<const char*>(order.get()), n) != "little")
          fail(where, ": big-endian checkpoints are not supported");
      }
      std::map<std::string, std::pair<size_t, size_t>> records;  // storage key -> offset, size
      for (const auto& [key, value] : root->dict) {
        if (key->kind != PyValue::Kind::string) fail(where, ": state dict key is not a string");
        if (value->kind != PyValue::Kind::tensor)
          fail(where, ": entry '", key->text, "' is not a tensor (nested or non-tensor state dicts are not supported)");
        const PyValue& storage = *value->storage;
        auto rec = records.find(storage.text);
        if (rec == records.end()) {
          std::string record = "data/" + storage.text;
          if (!reader.hasRecord(record)) fail(where, ": storage record '", record, "' for '", key->text, "' is missing");
          rec = records.emplace(storage.text, std::make_pair(reader.getRecordOffset(record), reader.getRecordSize(record))).first;
        }
        auto [offset, size] = rec->second;
        TensorEntry e;
        e.name = key->text;
        e.dtype = storage.dtype;
        e.shape = value->shape;
        e.stride = value->stride;
        e.data_offset = offset;
        e.storage_offset = value->integer;
        e.storage_numel = storage.numel;
        const size_t elem = torch::elementSize(e.dtype);
        if (storage.numel < 0 || static_cast<size_t>(storage.numel) * elem > size || offset + size > map_.size())
          fail(where, ": storage of '", e.name, "' is shorter than its ", storage.numel, " elements (truncated file?)");
        int64_t extent = e.storage_offset;  // last element index the view touches
        for (size_t d = 0; d < e.shape.size(); ++d) {
          if (e.shape[d] < 0 || e.stride[d] < 0) fail(where, ": tensor '", e.name, "' has a negative size or stride");
          if (e.shape[d] == 0) extent = -1;
          if (extent >= 0) extent += (e.shape[d] - 1) * e.stride[d];
        }
        if (e.storage_offset < 0 || extent >= storage.numel)
          fail(where, ": tensor '", e.name, "' reaches past its storage of ", storage.numel, " elements");
        entries_.push_back(std::move(e));
      }
    } catch (const c10::Error& e) {
      fail(where, ": cannot read the torch.save zip: ", first_line(e));
    }
    std::sort(entries_.begin(), entries_.end(),
              [](const TensorEntry& a, const TensorEntry& b) { return a.data_offset < b.data_offset; });
  }

  const std::filesystem::path& path() const override { return map_.path(); }
  const std::vector<TensorEntry>& entries() const override { return entries_; }
  torch::Tensor view(const TensorEntry& e) const override {
    torch::Tensor storage = torch::from_blob(const_cast<uint8_t*>(map_.data()) + e.data_offset, {e.storage_numel},
                                             torch::TensorOptions().dtype(e.dtype));
    return storage.as_strided(e.shape, e.stride, e.storage_offset);
  }
  void release(const TensorEntry& e) const override {
    map_.release(e.data_offset, static_cast<size_t>(e.storage_numel) * torch::elementSize(e.dtype));
  }

 private:
  MappedFile map_;
  std::vector<TensorEntry> entries_;
};

}  // namespace

std::unique_ptr<WeightFile> open_torch_bin(const std::filesystem::path& path) {
  return std::make_unique<TorchBinFile>(path);
}

}  // namespace dsalign
