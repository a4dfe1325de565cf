// A whole torch.save checkpoint (model/torch_bin_index): the zip directory, data.pkl and the
// storage records each tensor views.
#include "fuzz/fuzz_input.h"
#include "model/safetensors_header.h"
#include "model/torch_bin_index.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dsalign::fuzz::accept_errors([&] {
    for (const auto& b : dsalign::read_torch_bin_index(data, size, "fuzz/pytorch_model.bin")) {
      // Every accepted view lies inside the file: its last byte is readable.
      const size_t element = dsalign::safetensors_element_size(b.dtype);
      const uint64_t storage_bytes = static_cast<uint64_t>(b.tensor.storage_numel) * element;
      if (element == 0 || b.data_offset > size || storage_bytes > size - b.data_offset) __builtin_trap();
      if (storage_bytes > 0) {
        volatile uint8_t last = data[b.data_offset + storage_bytes - 1];
        (void)last;
      }
    }
  });
  return 0;
}
