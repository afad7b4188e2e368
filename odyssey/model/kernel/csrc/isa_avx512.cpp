// The float step for CPUs with AVX-512F (16 lanes), chosen at run time like isa_avx2.cpp, whose
// notes apply here too.
#include <cmath>
#include <cstdint>

#include "kernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
#define TARGET __attribute__((target("avx512f,avx2,fma")))
#define SIMD(op) _mm512_##op
#define REG __m512
#define LANES 16
#define RECIPROCAL_ESTIMATE _mm512_rcp14_ps  // 14 bits

namespace odyssey_kernel::avx512 {

#include "vec_common.inc"

inline Vec vfloor(Vec a) { return {_mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)}; }
inline Vec vabs(Vec a) { return {_mm512_abs_ps(a.v)}; }
inline Vec pow2(Vec n) {  // 2^n for integral n in [-127, 127], through the exponent bits
  return {_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(n.v), _mm512_set1_epi32(127)), 23))};
}
inline Vec select_lt(Vec a, Vec b, Vec yes, Vec no) {
  return {_mm512_mask_blend_ps(_mm512_cmp_ps_mask(a.v, b.v, _CMP_LT_OQ), no.v, yes.v)};
}
// rows[i][j] <- rows[j][i] for 16 x 16 floats.
inline void transpose_block(Vec* rows) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = rows[i].v;
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  auto pairs = [](__m512 a, __m512 b, bool high) {
    const __m512d x = _mm512_castps_pd(a), y = _mm512_castps_pd(b);
    return _mm512_castpd_ps(high ? _mm512_unpackhi_pd(x, y) : _mm512_unpacklo_pd(x, y));
  };
  for (int i = 0; i < 4; ++i) {
    r[4 * i] = pairs(t[4 * i], t[4 * i + 2], false);
    r[4 * i + 1] = pairs(t[4 * i], t[4 * i + 2], true);
    r[4 * i + 2] = pairs(t[4 * i + 1], t[4 * i + 3], false);
    r[4 * i + 3] = pairs(t[4 * i + 1], t[4 * i + 3], true);
  }
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j) {
      t[8 * i + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + j + 4], 0x88);
      t[8 * i + j + 4] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + j + 4], 0xdd);
    }
  for (int j = 0; j < 8; ++j) {
    rows[j].v = _mm512_shuffle_f32x4(t[j], t[j + 8], 0x88);
    rows[j + 8].v = _mm512_shuffle_f32x4(t[j], t[j + 8], 0xdd);
  }
}
constexpr int kRows = 8;  // 8 rows x 2 vectors = 16 accumulators of 32 registers

#include "vector_kernels.inc"

}  // namespace odyssey_kernel::avx512

#pragma GCC pop_options
#endif
