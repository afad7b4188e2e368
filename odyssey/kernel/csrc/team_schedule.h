// The team schedule: a team of (at most) two threads walks the whole sequence. Each member owns
// half of the hidden units and a packed copy of the recurrent weights those units need, which
// stays in its own cache; per step it multiplies (vector_kernels.inc), runs the cell on its units
// and meets the other at one barrier. At batch 1 this latency-bound work would drown in a library
// call's fork/join per step (kernel-notes: 0.45-0.7x of nn.LSTM's time).
#pragma once

#include <ATen/Parallel.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <new>
#include <vector>

#include "sequence.h"
#include "team.h"
#include "tuner.h"

namespace odyssey_kernel {

// Below this many units per step a second thread costs more at the barrier than it saves.
constexpr int64_t kTeamUnits = 64;

// 0: the tuner sizes each team; 1 or 2: that many threads wherever torch allows (for tests).
inline std::atomic<int> team_override{0};

// The hidden units in two halves, cut at a multiple of the vector width. A team of two takes a
// half each, a team of one both, one after the other: every unit runs through the same code
// (vector lanes or scalar tail) and every sum is formed in the same order either way, so the
// tuner's choice never changes a result.
struct Halves {
  int64_t H, width;
  int64_t begin(int half) const {
    return half <= 0 ? 0 : half >= 2 ? H : std::min(H, (H / 2 + width / 2) / width * width);
  }
  int64_t size(int half) const { return begin(half + 1) - begin(half); }
  int64_t most() const { return std::max(size(0), size(1)); }
};

// A member of the team: the halves [first, last) it owns, and the barrier it meets the others at.
struct Member {
  int team, first, last;
  SpinBarrier* barrier;
  void sync() const {
    if (team > 1) barrier->wait(team);
  }
};

// Kept per calling thread and only grown, so that a training loop does not page-fault a fresh
// megabyte of packed weights every call. Taken before the team starts: a member that threw inside
// would leave the others at the barrier. Cache-line aligned, as is every region cut from it
// (aligned()): a vector load that straddles two lines costs a third of the matmul's speed.
constexpr int64_t kLine = 64;

template <class T>
int64_t aligned(int64_t count) {
  return round_up(count, kLine / static_cast<int64_t>(sizeof(T)));
}

template <class T>
T* scratch(int64_t size) {
  struct Memory {
    T* data = nullptr;
    int64_t size = 0;
    ~Memory() { std::free(data); }
  };
  thread_local Memory memory;
  if (memory.size < size) {
    std::free(memory.data);
    memory.data = static_cast<T*>(std::aligned_alloc(kLine, round_up(size * sizeof(T), kLine)));
    memory.size = memory.data ? size : 0;
    if (!memory.data) throw std::bad_alloc();
  }
  return memory.data;
}

// Where packed column q reads its entries: from `at`, `stride` apart (at == nullptr: zeros).
template <class T>
struct Source {
  const T* at;
  int64_t stride;
};

// Rows [k0, k1) of every kPanel-wide panel of a (K x N) packed matrix; column(q) gives each
// column's Source at row k0.
template <class T, class F>
void pack(T* dst, int64_t K, int64_t N, int64_t k0, int64_t k1, const F& column) {
  Source<T> src[kPanel];
  for (int64_t q0 = 0; q0 < N; q0 += kPanel) {
    for (int64_t q = 0; q < kPanel; ++q) src[q] = column(q0 + q);
    T* panel = dst + q0 * K + k0 * kPanel;
    for (int64_t k = 0; k < k1 - k0; ++k)
      for (int64_t q = 0; q < kPanel; ++q) *panel++ = src[q].at ? src[q].at[k * src[q].stride] : T(0);
  }
}

// Runs body(member) on a team of the size the tuner picks for this shape, and reports the time.
template <class T, class Body>
void on_team(bool backward, const Sequence<T>& s, const Halves& halves, const Body& body) {
  const int64_t H = s.L.H, B = s.batch;
  const TeamTuner::Key key{backward, B, H, s.L.K};
  const int forced = team_override.load();
  const bool tuned = !forced && B * H >= kTeamUnits && halves.size(0) > 0 && at::get_num_threads() > 1;
  const int wanted = forced ? forced : (tuned ? team_tuner().choose(key) : 1);
  SpinBarrier barrier;
  std::atomic<int> used{1};
  const auto start = std::chrono::steady_clock::now();
  run_team(wanted, [&](int rank, int team) {
    if (rank == 0) used.store(team, std::memory_order_relaxed);
    body(team == 1 ? Member{1, 0, 2, &barrier} : Member{team, rank, rank + 1, &barrier});
  });
  if (tuned) team_tuner().record(key, used.load(), elapsed_ns(start) / std::max<int64_t>(s.steps, 1));
}

// The order of the blocks in a half's packed weights. Under FGR the block input z sees no fed-back
// gates, so it goes last and is multiplied by h alone, skipping R's zero rows for it (a fifth of
// FGR's recurrent work); the `wide` blocks before it see all of [h, gates].
struct BlockOrder {
  bool split;
  int64_t wide;
  int position[4], block_at[4];
  explicit BlockOrder(const Layout& L) : split(L.S > 0), wide(L.S > 0 ? L.G - 1 : L.G) {
    for (int g = 0; g < L.G; ++g) {
      position[g] = !split ? g : g == L.bz ? static_cast<int>(L.G - 1) : L.gate_of_block[g];
      block_at[position[g]] = g;
    }
  }
};

// Forward: each half multiplies the recurrent input by the rows of R of its own units (every
// block), then runs the cell on those units; the next step needs every unit, hence the barrier.
template <class T>
void forward_team(const Sequence<T>& s, const Kernels<T>& k, T* out) {
  const Layout& L = s.L;
  const int64_t H = L.H, K = L.K, SH = L.S * H, B = s.batch;
  const Halves halves{H, k.width};
  const BlockOrder order(L);
  const int64_t most = halves.most(), NW = round_up(order.wide * most, kPanel), NZ = order.split ? round_up(most, kPanel) : 0;
  const int64_t per_half = aligned<T>(NW * K + NZ * H + (NW + NZ) * B);
  T* memory = scratch<T>(2 * per_half);
  auto wide = [&](int h) { return memory + h * per_half; };    // packed (K x NW), then z's (H x NZ)
  auto product = [&](int h) { return wide(h) + NW * K + NZ * H; };  // (B x NW), then z's (B x NZ)
  on_team(false, s, halves, [&](const Member& m) {
    for (int h = m.first; h < m.last; ++h) {
      const int64_t u0 = halves.begin(h), n = halves.size(h);
      // Packed column position(g) * n + j is row g * H + u0 + j of R; z's columns on their own.
      auto row = [&](int64_t q) { return q < order.wide * n ? order.block_at[q / n] * H + u0 + q % n : -1; };
      pack(wide(h), K, NW, 0, H, [&](int64_t q) { return Source<T>{row(q) < 0 ? nullptr : s.whh + row(q) * H, 1}; });
      if (L.S > 0) pack(wide(h), K, NW, H, K, [&](int64_t q) {
        return Source<T>{row(q) < 0 ? nullptr : s.gate_rows(row(q) / H) + (u0 + q % n) * SH, 1};
      });
      if (order.split) pack(wide(h) + NW * K, H, NZ, 0, H, [&](int64_t q) {
        return Source<T>{q < n ? s.whh + (L.bz * H + u0 + q) * H : nullptr, 1};
      });
    }
    for (int64_t t = 0; t < s.steps; ++t) {
      for (int h = m.first; h < m.last; ++h) {
        const int64_t u0 = halves.begin(h), n = halves.size(h);
        T* pre = product(h);
        k.gemm(s.rs + t * B * K, K, B, K, wide(h), NW, pre, NW);
        if (order.split) k.gemm(s.rs + t * B * K, K, B, H, wide(h) + NW * K, NZ, pre + B * NW, NZ);
        for (int64_t b = 0; b < B; ++b) {
          if (s.active(t, b)) {
            auto block = [&](int g) -> const T* {
              return order.split && g == L.bz ? pre + B * NW + b * NZ : pre + b * NW + order.position[g] * n;
            };
            k.forward(L, forward_row(s, t, b, u0, block, out), n);
          } else {
            hold(s, t, b, u0, n, out);
          }
        }
      }
      m.sync();
    }
  });
}

// Backward: each half multiplies its own units' pre-activation gradients by their rows of R, a
// partial gradient of the whole recurrent input ([h | gates], z's rows only reaching h); after the
// barrier each half adds both partials for its own units' inputs (half 0's first). Partials
// alternate between two buffers by step, so a member one step ahead never overwrites what the
// other still reads.
template <class T>
void backward_team(const Sequence<T>& s, const Kernels<T>& k, const T* dout, T* da, T* dr, T* dc, T* dpeep) {
  const Layout& L = s.L;
  const int64_t H = L.H, K = L.K, SH = L.S * H, GH = L.G * H, B = s.batch;
  const Halves halves{H, k.width};
  const BlockOrder order(L);
  const int64_t rows = L.G * halves.most(), NH = round_up(H, kPanel), NG = L.S ? round_up(SH, kPanel) : 0;
  const int64_t N = NH + NG, per_half = aligned<T>(rows * N + B * rows);
  T* memory = scratch<T>(2 * per_half + 4 * B * N);
  auto packed = [&](int h) { return memory + h * per_half; };  // (rows x NH), then the gates' (wide rows x NG)
  auto own = [&](int h) { return packed(h) + rows * N; };      // (B x G n): this half's da, in BlockOrder
  auto partial = [&](int64_t t, int h) { return memory + 2 * per_half + ((t % 2) * 2 + h) * B * N; };
  on_team(true, s, halves, [&](const Member& m) {
    for (int h = m.first; h < m.last; ++h) {
      const int64_t u0 = halves.begin(h), n = halves.size(h);
      for (int64_t g = 0; g < L.G; ++g) {  // packed row position(g) * n + j is R's row g * H + u0 + j
        const int64_t r0 = order.position[g] * n;
        const T* gates = s.gate_rows(g);
        pack(packed(h), L.G * n, NH, r0, r0 + n, [&](int64_t c) {
          return Source<T>{c < H ? s.whh + (g * H + u0) * H + c : nullptr, H};
        });
        if (gates) pack(packed(h) + L.G * n * NH, order.wide * n, NG, r0, r0 + n, [&](int64_t c) {
          return Source<T>{c < SH ? gates + u0 * SH + c : nullptr, SH};
        });
      }
    }
    for (int64_t t = s.steps - 1; t >= 0; --t) {
      for (int h = m.first; h < m.last; ++h) {
        const int64_t u0 = halves.begin(h), n = halves.size(h), width = L.G * n;
        for (int64_t b = 0; b < B; ++b) {
          if (s.active(t, b)) {
            k.backward(L, backward_row(s, t, b, u0, dout, da, dr, dc, dpeep), n);
          } else {
            zero_gradient(s, da, t, b, u0, n);
          }
          for (int64_t g = 0; g < L.G; ++g)
            std::copy_n(da + (t * B + b) * GH + g * H + u0, n, own(h) + b * width + order.position[g] * n);
        }
        k.gemm(own(h), width, B, width, packed(h), NH, partial(t, h), N);
        if (L.S) k.gemm(own(h), width, B, order.wide * n, packed(h) + width * NH, NG, partial(t, h) + NH, N);
      }
      m.sync();  // both partials of step t are complete
      for (int h = m.first; h < m.last; ++h) {
        const int64_t u0 = halves.begin(h), n = halves.size(h);
        for (int64_t b = 0; b < B; ++b) {
          if (!s.active(t, b)) continue;  // a finished sequence passes its gradient through unchanged
          for (int64_t part = 0; part <= L.S; ++part) {
            const int64_t c = b * N + (part ? NH + (part - 1) * H : 0) + u0;
            for (int64_t j = 0; j < n; ++j) dr[b * K + part * H + u0 + j] = partial(t, 0)[c + j] + partial(t, 1)[c + j];
          }
        }
      }
    }
  });
}

}  // namespace odyssey_kernel
