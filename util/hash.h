// A fast, non-cryptographic 128-bit content hash (two independent 64-bit multiply-xorshift
// lanes), for cache keys: equal inputs give equal keys; different inputs collide with
// negligible probability. Not for security.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace dsalign {

class Hasher {
 public:
  Hasher& add(std::string_view bytes) {
    size_t i = 0;
    for (; i + 8 <= bytes.size(); i += 8) {
      uint64_t w;
      std::memcpy(&w, bytes.data() + i, 8);
      mix(w);
    }
    uint64_t tail = 0;
    std::memcpy(&tail, bytes.data() + i, bytes.size() - i);
    mix(tail ^ (static_cast<uint64_t>(bytes.size() - i) << 56));
    mix(bytes.size());  // field separator: ("ab","c") != ("a","bc")
    return *this;
  }
  Hasher& add(uint64_t v) {
    mix(v);
    return *this;
  }
  std::string hex() const {
    char buf[33];
    std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(finalise(a_)),
                  static_cast<unsigned long long>(finalise(b_)));
    return buf;
  }

 private:
  void mix(uint64_t w) {
    a_ = (a_ ^ w) * 0x9E3779B97F4A7C15ull;
    a_ ^= a_ >> 29;
    b_ = (b_ + w) * 0xC2B2AE3D27D4EB4Full;
    b_ ^= b_ >> 31;
    b_ = (b_ << 23) | (b_ >> 41);
  }
  static uint64_t finalise(uint64_t x) {
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDull;
    x ^= x >> 33;
    x *= 0xC4CEB9FE1A85EC53ull;
    return x ^ (x >> 33);
  }
  uint64_t a_ = 0x243F6A8885A308D3ull, b_ = 0x13198A2E03707344ull;
};

}  // namespace dsalign
