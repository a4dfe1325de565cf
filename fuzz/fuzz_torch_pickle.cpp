// The pickle of a torch.save state dict (model/torch_pickle): data.pkl of a .bin checkpoint.
#include "fuzz/fuzz_input.h"
#include "model/torch_pickle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dsalign::fuzz::accept_errors([&] {
    for (const auto& t : dsalign::read_state_dict_pickle(data, size, "fuzz/data.pkl"))
      if (t.shape.size() != t.stride.size() || dsalign::torch_storage_dtype(t.storage_type).empty()) __builtin_trap();
  });
  return 0;
}
