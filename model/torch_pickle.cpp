#include "model/torch_pickle.h"

#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "util/error.h"

namespace dsalign {

std::string torch_storage_dtype(const std::string& storage_type) {
  static const std::map<std::string, std::string> types = {
      {"torch.FloatStorage", "F32"}, {"torch.HalfStorage", "F16"},  {"torch.BFloat16Storage", "BF16"},
      {"torch.DoubleStorage", "F64"}, {"torch.LongStorage", "I64"}, {"torch.IntStorage", "I32"},
      {"torch.ShortStorage", "I16"},  {"torch.CharStorage", "I8"},  {"torch.ByteStorage", "U8"},
      {"torch.BoolStorage", "BOOL"}};
  auto it = types.find(storage_type);
  return it == types.end() ? "" : it->second;
}

namespace {

struct PyValue;
using PyPtr = PyValue*;  // owned by the reader's arena: no cycles to leak, freed together

struct PyValue {
  enum class Kind { none, boolean, integer, floating, string, tuple, list, dict, global, storage, tensor, object };
  Kind kind = Kind::none;
  int64_t integer = 0;
  double floating = 0;
  std::string text;  // string value, "module.name" of a global or object's constructor
  std::vector<PyPtr> items;
  std::vector<std::pair<PyPtr, PyPtr>> dict;
  // storage
  std::string storage_type;  // "torch.FloatStorage", ...
  int64_t numel = 0;
  // tensor: a storage, offset, size, stride
  PyPtr storage;
  std::vector<int64_t> shape, stride;
};

class PickleReader {
 public:
  PickleReader(const uint8_t* data, size_t size, std::string where) : p_(data), end_(data + size), where_(std::move(where)) {}

  PyPtr make(PyValue::Kind kind) {
    arena_.push_back(std::make_unique<PyValue>());
    arena_.back()->kind = kind;
    return arena_.back().get();
  }

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
  // Only what torch.save writes for a state dict of tensors may be named. Nothing named is ever
  // imported or called (this is not Python), but a checkpoint that names anything else (os.system,
  // builtins.eval, ...) is not a plain state dict and is refused, naming the global.
  PyPtr global(const std::string& name) {
    static const std::set<std::string> allowed = {
        "collections.OrderedDict",        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor",   "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state"};
    if (!allowed.count(name) && torch_storage_dtype(name).empty())
      fail(where_, ": refused: the pickle names the global '", name.substr(0, 200),
           "', which a state dict of tensors never does (only torch's tensor and storage types are allowed; nothing "
           "in a checkpoint is ever imported or run)");
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
    if (torch_storage_dtype(it[1]->text).empty()) bad("unsupported storage type ", it[1]->text.substr(0, 100));
    if (it[2]->kind != PyValue::Kind::string || it[4]->kind != PyValue::Kind::integer) bad("malformed storage id");
    auto s = make(PyValue::Kind::storage);
    s->storage_type = it[1]->text;
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
  std::vector<std::unique_ptr<PyValue>> arena_;
};

}  // namespace

std::vector<PickledTensor> read_state_dict_pickle(const uint8_t* data, size_t size, const std::string& where) {
  PickleReader pickle(data, size, where);
  const PyValue* root = pickle.run();
  if (root->kind != PyValue::Kind::dict) fail(where, ": expected a state dict (a dict of tensors) at the top level");
  std::vector<PickledTensor> out;
  for (const auto& [key, value] : root->dict) {
    if (key->kind != PyValue::Kind::string) fail(where, ": state dict key is not a string");
    if (value->kind != PyValue::Kind::tensor)
      fail(where, ": entry '", key->text.substr(0, 200), "' is not a tensor (nested or non-tensor state dicts are not supported)");
    PickledTensor t;
    t.name = key->text;
    t.storage_key = value->storage->text;
    t.storage_type = value->storage->storage_type;
    t.storage_numel = value->storage->numel;
    t.storage_offset = value->integer;
    t.shape = value->shape;
    t.stride = value->stride;
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace dsalign
