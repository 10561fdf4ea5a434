// SKIFF_CHECK: invariants that must hold in every build; a failure is a skiff bug, so abort.
#pragma once

#include <cstdio>
#include <cstdlib>

#define SKIFF_CHECK(cond)                                                              \
  do {                                                                                 \
    if (!(cond)) [[unlikely]] {                                                        \
      std::fprintf(stderr, "%s:%d: SKIFF_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                    \
    }                                                                                  \
  } while (0)

#ifdef NDEBUG
#define SKIFF_DCHECK(cond) \
  do {                     \
  } while (0)
#else
#define SKIFF_DCHECK(cond) SKIFF_CHECK(cond)
#endif
