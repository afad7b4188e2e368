// Whether a second thread pays off depends on the machine's load as much as on the shape: on a
// busy machine a descheduled partner stalls every barrier (split by units) or the end of the call
// (split by rows), and one thread alone is faster. So each shape keeps the recent cost per step of
// both choices and takes the cheaper, re-checking the other now and then (less and less often
// while it keeps losing). A team call that found the cores busy (crowded(), below) does not count
// as a cost at all: it says the cores are not free, and the shape's calls sit out a number of
// calls that doubles while that keeps happening, each running wholly on the calling thread (its
// library matmuls too: recurrence.cpp). The choice never changes results: a team of one walks the
// same parts (halves of the units, cut at vector-width boundaries, or of the rows; the matmuls'
// row blocks) one after the other, so every number is computed by the same code in the same order.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

namespace odyssey_kernel {

// A team whose barrier slept at more than one step in 16 (or at more than two at all, on short
// sequences) ran beside something else: one preemption now and then is noise, a pattern is not.
inline bool contended(int64_t slept, int64_t steps) { return slept > std::max<int64_t>(2, steps / 16); }

// Whether a team call ran on cores it did not have to itself. Split by units, its barrier says so
// (contended). Split by rows the members meet only at the start, so the barrier never sees it:
// there a member that spent over an eighth of the call off its core (descheduled, or asleep at the
// start for a partner that was) says so, beyond 100 us of wake-ups and interrupts. (Issue 27: two
// processes at once under torch's default OpenMP spinning, V at T = 100, B = 16, H = 115, split by
// rows, took 14.5x the time of one alone while nn.LSTM took 4.9x; the barrier never slept.)
inline bool crowded(int64_t slept, int64_t steps, double wall_ns, double most_off_core_ns) {
  return contended(slept, steps) || most_off_core_ns > std::max(wall_ns / 8, 100e3);
}

class TeamTuner {
 public:
  using Key = std::tuple<bool, int64_t, int64_t, int64_t>;  // backward, batch, hidden, recurrent width

  // The next call of this shape: 1 or 2 threads for its recurrence, and whether the cores were
  // found busy (then the whole call runs on the calling thread).
  struct Choice {
    int team;
    bool busy;
  };
  Choice choose(const Key& key) {
    std::lock_guard<std::mutex> lock(mutex_);
    Costs& c = costs_[key];
    ++c.calls;
    if (c.calls < c.benched_until) return {1, true};
    if (c.ns[1] == 0) return {2, false};
    if (c.ns[0] == 0) return {1, false};
    const int best = c.ns[1] <= c.ns[0] ? 2 : 1;
    if (c.calls < c.next_check) return {best, false};
    c.checking = true;
    return {3 - best, false};
  }

  void record(const Key& key, int team, double ns_per_step, bool crowded) {
    std::lock_guard<std::mutex> lock(mutex_);
    Costs& c = costs_[key];
    ++counts_[team == 2 ? (crowded ? 2 : 1) : 0];
    if (team == 2 && crowded) {  // not the team's cost on free cores: sit out, longer each time
      c.bench = std::clamp<int64_t>(c.bench * 2, kFirstCheck, kLastCheck);
      c.benched_until = c.calls + c.bench;
      c.checking = false;
      return;
    }
    if (team == 2) c.bench = 0;
    double& cost = c.ns[team == 2];
    cost = cost == 0 ? ns_per_step : 0.7 * cost + 0.3 * ns_per_step;
    if (c.checking) {  // the other choice won: it is the choice now; it lost: look less often
      const double best = c.ns[team != 2];
      const bool won = cost < best;
      // Half as often, and rarer still the more a check costs: checks then take at most about
      // kExploring of the time (a team of one at H = 256 can be 4x slower than two).
      const auto costly = static_cast<int64_t>((ns_per_step / best - 1) / kExploring);
      c.interval = won ? kFirstCheck : std::min(std::max(c.interval * 2, costly), kLastCheck);
      c.next_check = c.calls + c.interval;
      c.checking = false;
    }
  }

 private:
  static constexpr int64_t kFirstCheck = 8, kLastCheck = 4096;
  static constexpr double kExploring = 0.02;
  struct Costs {
    double ns[2] = {0, 0};  // one thread, two threads
    int64_t calls = 0, interval = kFirstCheck, next_check = kFirstCheck;
    int64_t bench = 0, benched_until = 0;  // calls the team sits out after finding the cores busy
    bool checking = false;
  };
  std::mutex mutex_;
  std::map<Key, Costs> costs_;
  int64_t counts_[3] = {0, 0, 0};

 public:
  // Tuned calls so far: run by one thread, by two on free cores, by two that found them busy.
  std::vector<int64_t> counts() {
    std::lock_guard<std::mutex> lock(mutex_);
    return {counts_[0], counts_[1], counts_[2]};
  }
};

inline TeamTuner& team_tuner() {
  static TeamTuner tuner;
  return tuner;
}

// Nanoseconds since `start`.
inline double elapsed_ns(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace odyssey_kernel
