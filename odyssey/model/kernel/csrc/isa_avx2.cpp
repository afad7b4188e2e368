// The float step for CPUs with AVX2 and FMA (8 lanes), chosen at run time (recurrence.cpp), so the
// cached build carries no -march flag and loads on any x86-64 CPU. Everything after the pragma is
// compiled for AVX2: call into it only after checking the CPU. No standard-library template is
// instantiated below, so no shared (COMDAT) symbol can pick up AVX2 code.
#include <cmath>
#include <cstdint>

#include "kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define TARGET __attribute__((target("avx2,fma")))
#define SIMD(op) _mm256_##op
#define REG __m256
#define LANES 8
#define RECIPROCAL_ESTIMATE _mm256_rcp_ps  // 12 bits

namespace odyssey_kernel::avx2 {

#include "vec_common.inc"

inline Vec vfloor(Vec a) { return {_mm256_floor_ps(a.v)}; }
inline Vec vabs(Vec a) { return {_mm256_andnot_ps(_mm256_set1_ps(-0.0f), a.v)}; }
inline Vec pow2(Vec n) {  // 2^n for integral n in [-127, 127], through the exponent bits
  return {_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(n.v), _mm256_set1_epi32(127)), 23))};
}
inline Vec select_lt(Vec a, Vec b, Vec yes, Vec no) {
  return {_mm256_blendv_ps(no.v, yes.v, _mm256_cmp_ps(a.v, b.v, _CMP_LT_OQ))};
}
// rows[i][j] <- rows[j][i] for 8 x 8 floats.
inline void transpose_block(Vec* rows) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(rows[2 * i].v, rows[2 * i + 1].v);
    t[2 * i + 1] = _mm256_unpackhi_ps(rows[2 * i].v, rows[2 * i + 1].v);
  }
  for (int i = 0; i < 2; ++i) {
    u[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int j = 0; j < 4; ++j) {
    rows[j].v = _mm256_permute2f128_ps(u[j], u[j + 4], 0x20);
    rows[j + 4].v = _mm256_permute2f128_ps(u[j], u[j + 4], 0x31);
  }
}
constexpr int kRows = 3;  // 3 rows x 4 vectors = 12 accumulators of 16 registers

#include "vector_kernels.inc"

}  // namespace odyssey_kernel::avx2

#pragma GCC pop_options
#endif
