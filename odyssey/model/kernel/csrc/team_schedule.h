// The team schedule: a team of (at most) two threads walks the whole sequence, each on packed
// copies of the recurrent weights that stay in its own cache; per step it multiplies
// (vector_kernels.inc) and runs the step. Split by units, each member owns half of the hidden units
// and the two meet at one barrier per step; split by rows, each owns half of the batch (Split).
// At batch 1 this latency-bound work would drown in a library call's fork/join per step
// (kernel-notes: 0.45-0.7x of nn.LSTM's time).
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

// 0: the tuner sizes each team; 1 or 2: that many threads wherever torch allows, 1 the whole call
// on the calling thread (for tests).
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

// How a team shares a sequence. By units: each member owns half of the hidden units of every row,
// and the members meet at a barrier once per step, since each step needs every unit of the last.
// By rows: each member owns half of the batch, all units, and walks its rows alone: no barrier and
// nothing crosses between cores, but each member streams all of R from its cache every step, so
// it pays for batches big enough to be compute-bound, with R small enough to stay in cache.
// The rows [b0, b1) of the batch a member walks: all of them split by units, half split by rows.
struct Rows {
  int part;
  int64_t b0, b1;
};

struct Split {
  bool by_rows;
  int64_t batch;
  Rows rows(int part) const {
    if (!by_rows) return {0, 0, batch};
    return {part, part == 0 ? 0 : batch / 2, part == 0 ? batch / 2 : batch};
  }
};

// A member of the team: the parts [first, last) it owns (halves of the units, or of the rows), and
// the barrier it meets the others at.
struct Member {
  int team, first, last;
  Barrier* barrier;
  void sync() const {
    if (team > 1) barrier->wait(team);
  }
};

// Kept per calling thread and only grown, so that a training loop does not page-fault a fresh
// megabyte of packed weights every call. Taken before the team starts: a member that threw inside
// would leave the others at the barrier. Cache-line aligned, as is every region cut from it
// (aligned()): a vector load that straddles two lines cost a third of the matmul's speed (measured
// at batch 1, where the matmul streams the weights from L2).
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

// Rows [k0, k1) of every kPanel-wide panel of a (K x N) packed matrix whose column q has its
// entries from row k0 on at column(q) (nullptr: zeros): a transpose (the forward's R^T).
template <class T, class F>
void pack_columns(const Kernels<T>& k, T* dst, int64_t K, int64_t N, int64_t k0, int64_t k1, const F& column) {
  const T* columns[kPanel];
  for (int64_t q0 = 0; q0 < N; q0 += kPanel) {
    for (int64_t q = 0; q < kPanel; ++q) columns[q] = column(q0 + q);
    k.transpose(columns, k1 - k0, dst + q0 * K + k0 * kPanel);
  }
}

// Rows [k0, k1) of a (K x N) packed matrix whose row k holds `width` entries side by side at
// row(k), zeros after them: a copy (the backward's R).
template <class T, class F>
void pack_rows(T* dst, int64_t K, int64_t N, int64_t k0, int64_t k1, int64_t width, const F& row) {
  for (int64_t q0 = 0; q0 < N; q0 += kPanel) {
    const int64_t filled = std::clamp<int64_t>(width - q0, 0, kPanel);
    T* panel = dst + q0 * K + k0 * kPanel;
    for (int64_t k = k0; k < k1; ++k, panel += kPanel) {
      std::copy_n(row(k) + q0, filled, panel);
      std::fill(panel + filled, panel + kPanel, T(0));
    }
  }
}

// How one call uses the cores, decided before it starts (recurrence.cpp's threads_for): the team
// size for its recurrence; whether the whole call runs on the calling thread (the tuner found the
// cores busy); in how many row blocks its library matmuls run (0: as one call on torch's threads);
// and whether the tuner hears how the team did.
struct CallThreads {
  bool tuned;
  int team;
  bool lone;
  int blocks;
  TeamTuner::Key key;
};

// Runs body(member) on a team of the call's size and tells the tuner the time and whether the cores
// were busy (crowded(): the barrier slept, or a member spent a share of the call off its core).
template <class T, class Body>
void on_team(const CallThreads& call, const Sequence<T>& s, const Body& body) {
  Barrier barrier;
  std::atomic<int> used{1};
  double off_core[2] = {0, 0};
  const auto start = std::chrono::steady_clock::now();
  run_team(call.team, [&](int rank, int team) {
    const OffCore away;
    if (rank == 0) used.store(team, std::memory_order_relaxed);
    body(team == 1 ? Member{1, 0, 2, &barrier} : Member{team, rank, rank + 1, &barrier});
    if (rank < 2) off_core[rank] = away.ns();
  });
  if (!call.tuned) return;
  const double wall = elapsed_ns(start);
  team_tuner().record(call.key, used.load(), wall / std::max<int64_t>(s.steps, 1),
                      crowded(barrier.slept(), s.steps, wall, std::max(off_core[0], off_core[1])));
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

// Walks the steps of a sequence over the parts a member owns: step(t, h, rows) for each half h of
// the units it covers and its rows, then, split by units, the barrier; then after(t, h, rows) (the
// backward's second phase).
template <class Step, class After>
void walk(const Member& m, const Split& split, int64_t steps, bool backward, const Step& step, const After& after) {
  auto walk_rows = [&](int h0, int h1, const Rows& rows) {
    for (int64_t i = 0; i < steps; ++i) {
      const int64_t t = backward ? steps - 1 - i : i;
      for (int h = h0; h < h1; ++h) step(t, h, rows);
      if (!split.by_rows) m.sync();
      for (int h = h0; h < h1; ++h) after(t, h, rows);
    }
  };
  if (!split.by_rows) return walk_rows(m.first, m.last, split.rows(0));
  m.sync();  // each member packed one half of the weights; its rows need both
  for (int part = m.first; part < m.last; ++part) walk_rows(0, 2, split.rows(part));
}

// Forward: each half of the units multiplies the recurrent input by the rows of R of its units
// (every block), then runs the step on those units.
template <class T>
void forward_team(const CallThreads& call, const Sequence<T>& s, const Kernels<T>& k, const Split& split, T* out) {
  const Layout& L = s.L;
  const int64_t H = L.H, K = L.K, SH = L.S * H, B = s.batch;
  const Halves halves{H, k.width};
  const BlockOrder order(L);
  const int64_t most = halves.most(), NW = round_up(order.wide * most, kPanel), NZ = order.split ? round_up(most, kPanel) : 0;
  const int64_t per_half = aligned<T>(NW * K + NZ * H + (NW + NZ) * B);
  T* memory = scratch<T>(2 * per_half);
  auto wide = [&](int h) { return memory + h * per_half; };    // packed (K x NW), then z's (H x NZ)
  auto product = [&](int h) { return wide(h) + NW * K + NZ * H; };  // (B x NW), then z's (B x NZ)
  on_team(call, s, [&](const Member& m) {
    for (int h = m.first; h < m.last; ++h) {
      const int64_t u0 = halves.begin(h), n = halves.size(h);
      // Packed column position(g) * n + j is row g * H + u0 + j of R; z's columns on their own.
      auto row = [&](int64_t q) { return q < order.wide * n ? order.block_at[q / n] * H + u0 + q % n : -1; };
      pack_columns(k, wide(h), K, NW, 0, H, [&](int64_t q) { return row(q) < 0 ? nullptr : s.whh + row(q) * H; });
      if (L.S > 0) pack_columns(k, wide(h), K, NW, H, K, [&](int64_t q) {
        return row(q) < 0 ? nullptr : s.gate_rows(row(q) / H) + (u0 + q % n) * SH;
      });
      if (order.split) pack_columns(k, wide(h) + NW * K, H, NZ, 0, H, [&](int64_t q) {
        return q < n ? s.whh + (L.bz * H + u0 + q) * H : nullptr;
      });
    }
    auto step = [&](int64_t t, int h, const Rows& r) {
      const int64_t u0 = halves.begin(h), n = halves.size(h), b0 = r.b0, b1 = r.b1;
      T* pre = product(h);
      const T* input = s.rs + (t * B + b0) * K;
      k.gemm(input, K, b1 - b0, K, wide(h), NW, pre + b0 * NW, NW);
      if (order.split) k.gemm(input, K, b1 - b0, H, wide(h) + NW * K, NZ, pre + B * NW + b0 * NZ, NZ);
      for (int64_t b = b0; b < b1; ++b) {
        if (s.active(t, b)) {
          auto block = [&](int g) -> const T* {
            return order.split && g == L.bz ? pre + B * NW + b * NZ : pre + b * NW + order.position[g] * n;
          };
          k.forward(L, forward_row(s, t, b, u0, block, out), n);
        } else {
          hold(s, t, b, u0, n, out);
        }
      }
    };
    walk(m, split, s.steps, false, step, [](int64_t, int, const Rows&) {});
  });
}

// Backward: each half of the units multiplies its own units' pre-activation gradients by their
// rows of R, a partial gradient of the whole recurrent input ([h | gates], z's rows only reaching
// h); once both halves are in (after the barrier when split by units), each half adds both
// partials for its own units' inputs (half 0's first). Partials alternate between two buffers by
// step, so a member one step ahead never overwrites what the other still reads.
template <class T>
void backward_team(const CallThreads& call, const Sequence<T>& s, const Kernels<T>& k, const Split& split, const T* dout,
                   T* da, T* dr, T* dc, T* dpeep) {
  const Layout& L = s.L;
  const int64_t H = L.H, K = L.K, SH = L.S * H, GH = L.G * H, B = s.batch;
  const Halves halves{H, k.width};
  const BlockOrder order(L);
  const int64_t rows = L.G * halves.most(), NH = round_up(H, kPanel), NG = L.S ? round_up(SH, kPanel) : 0;
  const int64_t N = NH + NG, per_half = aligned<T>(rows * N + B * rows);
  const int64_t peep_size = dpeep && split.by_rows ? ((L.pi >= 0) + (L.pf >= 0) + (L.po >= 0)) * H : 0;
  T* memory = scratch<T>(2 * per_half + 4 * B * N + 2 * peep_size);
  auto packed = [&](int h) { return memory + h * per_half; };  // (rows x NH), then the gates' (wide rows x NG)
  auto own = [&](int h) { return packed(h) + rows * N; };      // (B x G n): this half's da, in BlockOrder
  auto partial = [&](int64_t t, int h) { return memory + 2 * per_half + ((t % 2) * 2 + h) * B * N; };
  // Split by rows, both members reach every unit's peepholes: each sums its own, added up at the end.
  auto peep_part = [&](int part) { return memory + 2 * per_half + 4 * B * N + part * peep_size; };
  std::fill_n(peep_part(0), 2 * peep_size, T(0));
  on_team(call, s, [&](const Member& m) {
    for (int h = m.first; h < m.last; ++h) {
      const int64_t u0 = halves.begin(h), n = halves.size(h);
      for (int64_t g = 0; g < L.G; ++g) {  // packed row position(g) * n + j is R's row g * H + u0 + j
        const int64_t r0 = order.position[g] * n;
        const T* gates = s.gate_rows(g);
        pack_rows(packed(h), L.G * n, NH, r0, r0 + n, H, [&](int64_t r) { return s.whh + (g * H + u0 + r - r0) * H; });
        if (gates) pack_rows(packed(h) + L.G * n * NH, order.wide * n, NG, r0, r0 + n, SH, [&](int64_t r) {
          return gates + (u0 + r - r0) * SH;
        });
      }
    }
    auto step = [&](int64_t t, int h, const Rows& r) {
      const int64_t u0 = halves.begin(h), n = halves.size(h), width = L.G * n, b0 = r.b0, b1 = r.b1;
      T* peep_sums = !dpeep ? nullptr : split.by_rows ? peep_part(r.part) : dpeep;
      for (int64_t b = b0; b < b1; ++b) {
        if (s.active(t, b)) {
          k.backward(L, backward_row(s, t, b, u0, dout, da, dr, dc, peep_sums), n);
        } else {
          zero_gradient(s, da, t, b, u0, n);
        }
        for (int64_t g = 0; g < L.G; ++g)
          std::copy_n(da + (t * B + b) * GH + g * H + u0, n, own(h) + b * width + order.position[g] * n);
      }
      const T* rows_da = own(h) + b0 * width;
      k.gemm(rows_da, width, b1 - b0, width, packed(h), NH, partial(t, h) + b0 * N, N);
      if (L.S) k.gemm(rows_da, width, b1 - b0, order.wide * n, packed(h) + width * NH, NG, partial(t, h) + b0 * N + NH, N);
    };
    auto add_partials = [&](int64_t t, int h, const Rows& r) {
      const int64_t u0 = halves.begin(h), n = halves.size(h);
      for (int64_t b = r.b0; b < r.b1; ++b) {
        if (!s.active(t, b)) continue;  // a finished sequence passes its gradient through unchanged
        for (int64_t part = 0; part <= L.S; ++part) {
          const int64_t c = b * N + (part ? NH + (part - 1) * H : 0) + u0;
          for (int64_t j = 0; j < n; ++j) dr[b * K + part * H + u0 + j] = partial(t, 0)[c + j] + partial(t, 1)[c + j];
        }
      }
    };
    walk(m, split, s.steps, true, step, add_partials);
  });
  for (int64_t i = 0; i < peep_size; ++i) dpeep[i] += peep_part(0)[i] + peep_part(1)[i];
}

}  // namespace odyssey_kernel
