#include "data/utf8.h"

namespace dsalign::utf8 {
namespace {

// Length of the valid sequence at s[i], 0 if invalid there. `partial` receives how many bytes
// form a valid-so-far prefix when the sequence is invalid or truncated (at least 1).
size_t valid_length(std::string_view s, size_t i, size_t* partial) {
  const auto b = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const uint8_t c = b(i);
  *partial = 1;
  if (c < 0x80) return 1;
  size_t need;
  uint8_t lo = 0x80, hi = 0xBF;  // range of the second byte (Unicode Table 3-7)
  if (c >= 0xC2 && c <= 0xDF) need = 2;
  else if (c == 0xE0) need = 3, lo = 0xA0;
  else if (c >= 0xE1 && c <= 0xEC) need = 3;
  else if (c == 0xED) need = 3, hi = 0x9F;
  else if (c >= 0xEE && c <= 0xEF) need = 3;
  else if (c == 0xF0) need = 4, lo = 0x90;
  else if (c >= 0xF1 && c <= 0xF3) need = 4;
  else if (c == 0xF4) need = 4, hi = 0x8F;
  else return 0;
  for (size_t k = 1; k < need; ++k) {
    if (i + k >= s.size()) return 0;
    uint8_t x = b(i + k);
    uint8_t l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (x < l || x > h) return 0;
    *partial = k + 1;
  }
  return need;
}

}  // namespace

std::optional<size_t> first_invalid(std::string_view text) {
  size_t partial;
  for (size_t i = 0; i < text.size();) {
    if (static_cast<uint8_t>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t n = valid_length(text, i, &partial);
    if (n == 0) return i;
    i += n;
  }
  return std::nullopt;
}

char32_t next(std::string_view s, size_t& i) {
  const uint8_t c = static_cast<uint8_t>(s[i]);
  if (c < 0x80) return s[i++];
  int n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
  char32_t cp = c & (0x7F >> n);
  for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3F);
  i += n;
  return cp;
}

void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t partial;
  for (size_t i = 0; i < s.size();) {
    size_t n = valid_length(s, i, &partial);
    if (n) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD for the maximal invalid subpart
      i += partial;
    }
  }
  return out;
}

size_t complete_prefix(std::string_view s) {
  // Look back at most 3 bytes for the start of a sequence that is valid so far but truncated.
  for (size_t back = 1; back <= 3 && back <= s.size(); ++back) {
    size_t i = s.size() - back;
    uint8_t c = static_cast<uint8_t>(s[i]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    size_t partial;
    if (valid_length(s, i, &partial) == 0 && partial == back && c >= 0xC2 && c <= 0xF4) return i;
    return s.size();
  }
  return s.size();
}

const std::array<char32_t, 256>& byte_to_char() {
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> t{};
    char32_t extra = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      t[b] = printable ? static_cast<char32_t>(b) : extra++;
    }
    return t;
  }();
  return table;
}

int char_to_byte(char32_t cp) {
  // The alphabet's code points all lie below 256 + 68.
  static const std::array<int16_t, 256 + 68> inverse = [] {
    std::array<int16_t, 256 + 68> t;
    t.fill(-1);
    const auto& forward = byte_to_char();
    for (int b = 0; b < 256; ++b) t[forward[b]] = static_cast<int16_t>(b);
    return t;
  }();
  return cp < inverse.size() ? inverse[cp] : -1;
}

}  // namespace dsalign::utf8
