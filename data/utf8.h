// UTF-8 helpers for the tokenizer: validation, code points, lossy decoding with the same
// replacement rule as Rust's String::from_utf8_lossy (one U+FFFD per maximal invalid subpart),
// and GPT-2's byte-level alphabet (each byte <-> one printable code point).
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dsalign::utf8 {

// Byte offset of the first invalid sequence, or nullopt when `text` is valid UTF-8.
std::optional<size_t> first_invalid(std::string_view text);

// Decodes the code point at text[i] (which must be valid UTF-8); advances i.
char32_t next(std::string_view text, size_t& i);
void append(std::string& out, char32_t cp);

// Rust's from_utf8_lossy: invalid subparts become U+FFFD.
std::string lossy(std::string_view bytes);

// Length of the longest prefix of `bytes` that does not end inside an incomplete (but so far
// valid) multi-byte sequence: what an incremental decoder may emit now.
size_t complete_prefix(std::string_view bytes);

// GPT-2 byte-level alphabet.
const std::array<char32_t, 256>& byte_to_char();
// -1 when the code point is not in the alphabet.
int char_to_byte(char32_t cp);

}  // namespace dsalign::utf8
