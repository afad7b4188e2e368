// A small team of threads that stays together for a whole sequence, meeting at a barrier once
// per step. The threads are torch's own OpenMP threads (the kernel is compiled with -fopenmp and
// binds to the runtime torch loaded), so it never competes with a second pool for the cores.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace odyssey_kernel {

// Spins while the partner is a few microseconds behind (the usual case: a step takes tens of
// microseconds and the halves finish close together), then sleeps in the kernel (a futex, through
// C++20's atomic wait) until the last one arrives. A spinning thread whose partner has been
// descheduled would burn the very core the partner needs, a whole time slice per step. Counts the
// waits that had to sleep: the sign that the team does not have the cores to itself.
class Barrier {
 public:
  void wait(int parties) {
    const int generation = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) == parties - 1) {
      arrived_.store(0, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_seq_cst);
      if (sleepers_.load(std::memory_order_seq_cst) > 0) generation_.notify_all();
      return;
    }
    const auto deadline = std::chrono::steady_clock::now() + kSpin;
    for (int spins = 1; generation_.load(std::memory_order_acquire) == generation; ++spins) {
      pause();
      if (spins % 64 != 0 || std::chrono::steady_clock::now() < deadline) continue;
      slept_.fetch_add(1, std::memory_order_relaxed);
      // Announced before the last look, so the releaser either sees a sleeper or is seen.
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      while (generation_.load(std::memory_order_seq_cst) == generation) generation_.wait(generation, std::memory_order_seq_cst);
      sleepers_.fetch_sub(1, std::memory_order_relaxed);
      return;
    }
  }

  // How many waits slept so far.
  int slept() const { return slept_.load(std::memory_order_relaxed); }

 private:
  // About a step's worth at the sizes the team runs: longer than the halves' usual imbalance,
  // far shorter than a scheduler's time slice (milliseconds).
  static constexpr std::chrono::microseconds kSpin{30};
  static void pause() {
#if defined(__x86_64__) || defined(_M_X64)
    _mm_pause();
#endif
  }
  std::atomic<int> arrived_{0};
  std::atomic<int> generation_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<int> slept_{0};
};

// CPU time of the calling thread so far, in nanoseconds.
inline double thread_cpu_ns() {
#if defined(__linux__) || defined(__APPLE__)
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return 1e9 * static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec);
#else
  return 0;  // no such clock: a member never looks off its core, and crowded() rests on the barrier
#endif
}

// How long the calling thread has been off its core since this was made: wall time less its CPU time.
class OffCore {
 public:
  double ns() const {
    const double wall = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - wall_).count();
    return cpu_ == 0 ? 0 : std::max(0.0, wall - (thread_cpu_ns() - cpu_));
  }

 private:
  std::chrono::steady_clock::time_point wall_ = std::chrono::steady_clock::now();
  double cpu_ = thread_cpu_ns();
};

// While it lives, the calling thread's parallel regions, torch's at::parallel_for and oneDNN's
// (both sized by omp_get_max_threads(), a per-thread setting), run inline on it: no OpenMP thread is
// woken, and none is left spinning after the region (libgomp's default is to spin for a long while,
// taking the core another process wants). Restores the setting on leaving.
class OneThread {
 public:
  explicit OneThread(bool on) {
#ifdef _OPENMP
    if (!on) return;
    (void)at::get_num_threads();  // torch sets each thread's count on its first parallel call: not after this
    before_ = omp_get_max_threads();
    omp_set_num_threads(1);
#endif
  }
  ~OneThread() {
#ifdef _OPENMP
    if (before_ > 0) omp_set_num_threads(before_);
#endif
  }
  OneThread(const OneThread&) = delete;
  OneThread& operator=(const OneThread&) = delete;

 private:
  int before_ = 0;
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
