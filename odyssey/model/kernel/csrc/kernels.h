// The interface between the schedules that walk a sequence (team_schedule.h, library_schedule.h)
// and the arithmetic, which is compiled once per instruction set (isa_*.cpp) and chosen at run time.
// Plain structs and function pointers only: nothing here may be an inline function that two
// translation units compiled for different instruction sets could both emit.
#pragma once

#include <cstdint>

namespace odyssey_kernel {

// Which parts of the block exist (odyssey.model.variants.VariantSwitches), as indices; -1 = absent.
struct Layout {
  int64_t H;           // hidden units
  int64_t G;           // fused row blocks among i, f, z, o
  int64_t S;           // gate activations fed back under FGR
  int64_t K;           // width of the recurrent input [h, gates] = H * (1 + S)
  int bi, bf, bz, bo;  // block of each gate's rows (bf = -1 under CIFG: f = 1 - i)
  int pi, pf, po;      // peephole row of each gate
  int si, sf, so;      // FGR: position of each gate in the fed-back state
  int gate_of_block[4];  // FGR: row block of the gate-to-gate weights for each fused block, -1 for z
  bool coupled, act_in, act_out;
};

// One batch row, units [j0, j0 + n): every pointer already points at unit j0.
template <class T>
struct ForwardRow {
  const T* pre[4];     // recurrent pre-activations of each block (where the team's matmul put them)
  const T* xp;         // input projection (block stride H), or nullptr when already in pre; may
                       // alias acts: each block is read before its activation is written
  const T* peep;       // (P, H) peephole rows, or nullptr
  const T* c_prev;
  T* acts;             // gate activations, block stride H (may alias pre)
  T* c;                // new cell state
  T* h;                // new output state (the first H entries of the recurrent input)
  T* gates;            // new fed-back gates, source stride H (FGR)
  T* out;              // the layer's output at this step
};

template <class T>
struct BackwardRow {
  const T* acts;
  const T* c_prev;
  const T* c;
  const T* peep;
  const T* dr;         // gradient of the recurrent input: dh at dr, fed-back gates at dr + H
  const T* dout;       // gradient of the output at this step
  T* dc;               // in: gradient of this step's cell state; out: of the previous one
  T* da;               // out: gradient of the pre-activations, block stride H
  T* dpeep;            // accumulated peephole gradient (P, H), or nullptr
};

// Elementwise passes over n units, and out[b, :N] = a[b, :K] @ P for a weight matrix packed in
// panels of kPanel columns: P(k, q) lives at p[(q / kPanel) * K * kPanel + k * kPanel + q % kPanel].
constexpr int64_t kPanel = 32;

template <class T>
struct Kernels {
  int64_t width;  // lanes of the vector loops; units past the last full vector take a scalar path
  void (*forward)(const Layout&, const ForwardRow<T>&, int64_t n);
  void (*backward)(const Layout&, const BackwardRow<T>&, int64_t n);
  void (*gemm)(const T* a, int64_t lda, int64_t rows, int64_t K, const T* p, int64_t N, T* out, int64_t ldo);
  // One panel row by row from kPanel columns of K entries each: panel[k * kPanel + q] = columns[q][k]
  // (columns[q] == nullptr: zeros).
  void (*transpose)(const T* const* columns, int64_t K, T* panel);
};

namespace generic {
Kernels<float> kernels_float();
Kernels<double> kernels_double();
}  // namespace generic
namespace avx2 {
Kernels<float> kernels_float();
}  // namespace avx2
namespace avx512 {
Kernels<float> kernels_float();
}  // namespace avx512

}  // namespace odyssey_kernel
