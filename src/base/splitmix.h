// splitmix64 (Steele, Lea and Flood): a finaliser that spreads every input bit over all 64
// output bits, and the tiny generator built on it (a Weyl sequence through the finaliser). For
// hashing keys and seeding or running non-cryptographic generators.
#pragma once

#include <cstdint>

namespace skiff::base {

constexpr uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Advances |state| by the golden-ratio increment and returns the next output.
constexpr uint64_t splitmix64_next(uint64_t& state) {
  return splitmix64_mix(state += 0x9e3779b97f4a7c15ULL);
}

}  // namespace skiff::base
