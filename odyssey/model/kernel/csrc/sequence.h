// The pointers of one call and the per-row views the step kernels take: shared by both schedules.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels.h"

namespace odyssey_kernel {

inline int64_t divup(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return divup(a, b) * b; }

// What the Python side passes (function.py's layout): H, G, S, the block, peephole and fed-back
// position of each gate (-1 where absent), then three flags.
Layout make_layout(const std::vector<int64_t>& v);

// Buffers (row (t, b) of a (T, B, X) buffer starts at (t * B + b) * X): rs (T+1, B, K) the
// recurrent inputs [h, fed-back gates] before each step, cs (T+1, B, H) the cell states, acts (T, B, G*H)
// the gate activations. The recurrent weights stay as the parameters hold them: W_hh (G*H, H) and,
// under FGR, W_gg (gates*H, S*H) for the gate blocks only, the block input z seeing no gates. R
// below means [W_hh | W_gg, zero rows for z], (G*H, K); only the library schedule builds it.
template <class T>
struct Sequence {
  Layout L;
  int64_t steps, batch;
  const T* whh;
  const T* wgg;    // or nullptr without FGR
  const T* peep;   // (P, H) or nullptr
  const bool* mask;
  const T* xp;     // (T, B, G*H) input projections still to be added, or nullptr
  T* rs;
  T* cs;
  T* acts;         // the projections until each step overwrites its own with the activations
  bool active(int64_t t, int64_t b) const { return !mask || mask[t * batch + b]; }
  T* acts_at(int64_t t, int64_t b) const { return acts + (t * batch + b) * L.G * L.H; }
  // Row block g of W_gg's rows, or nullptr for z.
  const T* gate_rows(int64_t g) const {
    const int gate = L.gate_of_block[g];
    return gate < 0 ? nullptr : wgg + gate * L.H * L.S * L.H;
  }
};

// A finished sequence at step t: its state carries over and its output is zero.
template <class T>
void hold(const Sequence<T>& s, int64_t t, int64_t b, int64_t u0, int64_t n, T* out) {
  const int64_t H = s.L.H, K = s.L.K, row = t * s.batch + b;
  for (int64_t part = 0; part <= s.L.S; ++part)
    std::copy_n(s.rs + row * K + part * H + u0, n, s.rs + (row + s.batch) * K + part * H + u0);
  std::copy_n(s.cs + row * H + u0, n, s.cs + (row + s.batch) * H + u0);
  std::fill_n(out + row * H + u0, n, T(0));
}

// pre(g): the recurrent pre-activations of row (t, b), block g, at unit u0.
template <class T, class Pre>
ForwardRow<T> forward_row(const Sequence<T>& s, int64_t t, int64_t b, int64_t u0, const Pre& pre, T* out) {
  const int64_t H = s.L.H, K = s.L.K, row = t * s.batch + b;
  T* next = s.rs + (row + s.batch) * K;
  ForwardRow<T> r{{}, s.xp ? s.xp + row * s.L.G * H + u0 : nullptr, s.peep ? s.peep + u0 : nullptr,
                  s.cs + row * H + u0, s.acts_at(t, b) + u0, s.cs + (row + s.batch) * H + u0,
                  next + u0, next + H + u0, out + row * H + u0};
  for (int g = 0; g < s.L.G; ++g) r.pre[g] = pre(g);
  return r;
}

template <class T>
BackwardRow<T> backward_row(const Sequence<T>& s, int64_t t, int64_t b, int64_t u0, const T* dout, T* da, T* dr,
                            T* dc, T* dpeep) {
  const int64_t H = s.L.H, row = t * s.batch + b;
  return {s.acts_at(t, b) + u0, s.cs + row * H + u0, s.cs + (row + s.batch) * H + u0, s.peep ? s.peep + u0 : nullptr,
          dr + b * s.L.K + u0, dout + row * H + u0, dc + b * H + u0, da + row * s.L.G * H + u0,
          dpeep ? dpeep + u0 : nullptr};
}

// A step that does not exist for row b (its sequence has ended) has no pre-activation gradient.
template <class T>
void zero_gradient(const Sequence<T>& s, T* da, int64_t t, int64_t b, int64_t u0, int64_t n) {
  for (int64_t g = 0; g < s.L.G; ++g) std::fill_n(da + (t * s.batch + b) * s.L.G * s.L.H + g * s.L.H + u0, n, T(0));
}

}  // namespace odyssey_kernel
