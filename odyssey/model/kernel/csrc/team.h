// A small team of threads that stays together for a whole sequence, meeting at a barrier once
// per step. The threads are torch's own OpenMP threads (the kernel is compiled with -fopenmp and
// binds to the runtime torch loaded), so it never competes with a second pool for the cores.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <thread>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace odyssey_kernel {

// Spins while the partner is a few microseconds behind (the usual case: steps take microseconds),
// and yields after that, so a descheduled partner on a busy machine gets its core back.
class SpinBarrier {
 public:
  void wait(int parties) {
    const int generation = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) == parties - 1) {
      arrived_.store(0, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
      return;
    }
    for (int spins = 0; generation_.load(std::memory_order_acquire) == generation; ++spins) {
      if (spins < kSpins) {
        pause();
      } else {
        std::this_thread::yield();
      }
    }
  }

 private:
  static constexpr int kSpins = 2000;
  static void pause() {
#if defined(__x86_64__) || defined(_M_X64)
    _mm_pause();
#endif
  }
  std::atomic<int> arrived_{0};
  std::atomic<int> generation_{0};
};

// Calls body(rank, team) on each of `team` threads at once: up to `wanted`, fewer when OpenMP
// hands out fewer (one thread configured, nested in a parallel region, a dynamic team). `team`
// is what actually runs, so a barrier over `team` parties cannot wait for a thread that never
// comes. The body must not throw: allocate before calling.
template <class F>
void run_team(int wanted, const F& body) {
#ifdef _OPENMP
  if (wanted > 1 && !at::in_parallel_region() && !omp_in_parallel()) {
#pragma omp parallel
    {
      const int team = std::min(omp_get_num_threads(), wanted), rank = omp_get_thread_num();
      if (rank < team) body(rank, team);
    }
    return;
  }
#endif
  body(0, 1);
}

}  // namespace odyssey_kernel
