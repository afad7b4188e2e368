// The library schedule: per step one ATen matmul (oneDNN/MKL on all cores) and one elementwise
// pass split over threads by units. For large B * H on machines with more than two cores.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "sequence.h"

namespace odyssey_kernel {

// The elementwise pass splits over threads above this many units.
constexpr int64_t kParallelUnits = 2048;

inline int64_t unit_grain(int64_t batch) { return std::max<int64_t>(8, divup(kParallelUnits, batch)); }

// R = [W_hh | W_gg with zero rows for z], (G*H, K), built for this call only.
inline at::Tensor full_recurrent(const at::Tensor& whh, const std::optional<at::Tensor>& wgg, const Layout& L) {
  if (L.S == 0) return whh;
  at::Tensor R = at::zeros({L.G * L.H, L.K}, whh.options());
  R.narrow(1, 0, L.H).copy_(whh);
  for (int64_t g = 0; g < L.G; ++g)
    if (L.gate_of_block[g] >= 0)
      R.narrow(0, g * L.H, L.H).narrow(1, L.H, L.S * L.H).copy_(wgg->narrow(0, L.gate_of_block[g] * L.H, L.H));
  return R;
}

// acts holds the projections: each step adds the recurrent matmul in place, then the step
// overwrites the pre-activations with the activations.
template <class T>
void forward_library(const Sequence<T>& s, const Kernels<T>& k, const at::Tensor& R, const at::Tensor& rs,
                     const at::Tensor& acts, T* out) {
  const Layout& L = s.L;
  const at::Tensor Rt = R.t();
  Sequence<T> step = s;
  step.xp = nullptr;  // already in the matmul's result
  for (int64_t t = 0; t < s.steps; ++t) {
    at::Tensor a = acts.select(0, t);
    a.addmm_(rs.select(0, t), Rt);
    at::parallel_for(0, L.H, unit_grain(s.batch), [&](int64_t j0, int64_t j1) {
      for (int64_t b = 0; b < s.batch; ++b) {
        if (s.active(t, b)) {
          const T* pre = step.acts_at(t, b) + j0;
          k.forward(L, forward_row(step, t, b, j0, [&](int g) { return pre + g * L.H; }, out), j1 - j0);
        } else {
          hold(step, t, b, j0, j1 - j0, out);
        }
      }
    });
  }
}

template <class T>
void backward_library(const Sequence<T>& s, const Kernels<T>& k, const T* dout, const at::Tensor& da,
                      const at::Tensor& R, at::Tensor& dr, T* dc, T* dpeep) {
  at::Tensor next = at::empty_like(dr);
  for (int64_t t = s.steps - 1; t >= 0; --t) {
    T* da_ptr = da.data_ptr<T>();
    T* dr_ptr = dr.data_ptr<T>();
    at::parallel_for(0, s.L.H, unit_grain(s.batch), [&](int64_t j0, int64_t j1) {
      for (int64_t b = 0; b < s.batch; ++b) {
        if (s.active(t, b)) {
          k.backward(s.L, backward_row(s, t, b, j0, dout, da_ptr, dr_ptr, dc, dpeep), j1 - j0);
        } else {
          zero_gradient(s, da_ptr, t, b, j0, j1 - j0);
        }
      }
    });
    at::mm_out(next, da.select(0, t), R);
    for (int64_t b = 0; b < s.batch; ++b)  // a finished sequence passes its gradient through unchanged
      if (!s.active(t, b)) next.select(0, b).copy_(dr.select(0, b));
    std::swap(dr, next);
  }
}

}  // namespace odyssey_kernel
