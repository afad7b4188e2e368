// The float cell for CPUs with AVX-512F (16 lanes), chosen at run time like isa_avx2.cpp, whose
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
constexpr int kRows = 8;  // 8 rows x 2 vectors = 16 accumulators of 32 registers

#include "vector_kernels.inc"

}  // namespace odyssey_kernel::avx512

#pragma GCC pop_options
#endif
