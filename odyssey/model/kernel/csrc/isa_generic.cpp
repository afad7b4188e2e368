// One step's arithmetic for any CPU, in float and double (double is what gradcheck runs).
#include <cmath>
#include <cstdint>

#include "kernels.h"

namespace odyssey_kernel::generic {

#include "step.inc"

// out[b, q] = sum_k a[b, k] P(k, q), one packed panel of kPanel columns at a time; the fixed-width
// inner loop is left to the compiler's vectoriser.
template <class T>
void gemm(const T* a, int64_t lda, int64_t rows, int64_t K, const T* p, int64_t N, T* out, int64_t ldo) {
  for (int64_t q0 = 0; q0 < N; q0 += kPanel) {
    const T* panel = p + q0 * K;
    for (int64_t b = 0; b < rows; ++b) {
      T acc[kPanel] = {};
      for (int64_t k = 0; k < K; ++k) {
        const T ak = a[b * lda + k];
        for (int64_t q = 0; q < kPanel; ++q) acc[q] += ak * panel[k * kPanel + q];
      }
      for (int64_t q = 0; q < kPanel; ++q) out[b * ldo + q0 + q] = acc[q];
    }
  }
}

template <class T>
void transpose(const T* const* columns, int64_t K, T* panel) {
  for (int64_t k = 0; k < K; ++k)
    for (int64_t q = 0; q < kPanel; ++q) panel[k * kPanel + q] = columns[q] ? columns[q][k] : T(0);
}

template <class T>
Kernels<T> make() {
  return {1, &forward_units<Scalar<T>, T>, &backward_units<Scalar<T>, T>, &gemm<T>, &transpose<T>};
}

Kernels<float> kernels_float() { return make<float>(); }
Kernels<double> kernels_double() { return make<double>(); }

}  // namespace odyssey_kernel::generic
