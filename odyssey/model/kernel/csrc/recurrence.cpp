// One direction of a variant LSTM over a whole sequence, forward and hand-written BPTT: the entry
// points Python calls (function.py), on the team schedule (team_schedule.h) or the library one
// (library_schedule.h). The input projection before the loop and every weight gradient after it
// are single ATen matmuls over all steps. Masked-off steps (finished sequences) keep their state,
// output zero and pass gradients straight through.
#include <torch/extension.h>
#include <ATen/ThreadLocalState.h>

#include <unistd.h>
#if defined(__linux__)
#include <dlfcn.h>
#endif

#include <algorithm>
#include <atomic>
#include <exception>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels.h"
#include "library_schedule.h"
#include "pool.h"
#include "sequence.h"
#include "team_schedule.h"

namespace odyssey_kernel {

Layout make_layout(const std::vector<int64_t>& v) {
  TORCH_CHECK(v.size() == 16, "odyssey kernel: layout needs 16 entries, got ", v.size());
  Layout L;
  L.H = v[0], L.G = v[1], L.S = v[2], L.K = v[0] * (1 + v[2]);
  int* index[] = {&L.bi, &L.bf, &L.bz, &L.bo, &L.pi, &L.pf, &L.po, &L.si, &L.sf, &L.so};
  for (int k = 0; k < 10; ++k) *index[k] = static_cast<int>(v[3 + k]);
  L.coupled = v[13], L.act_in = v[14], L.act_out = v[15];
  for (int g = 0; g < 4; ++g) L.gate_of_block[g] = g >= L.G || g == L.bz ? -1 : g - (g > L.bz);
  return L;
}

namespace {

// The float kernels in use: the widest instruction set this CPU has, unless use_isa chose another
// (tests run each one). Double always runs the generic code, which is what gradcheck checks.
struct FloatIsa {
  std::string name;
  Kernels<float> kernels;
};

std::vector<std::pair<std::string, Kernels<float> (*)()>> supported_isas() {
  std::vector<std::pair<std::string, Kernels<float> (*)()>> isas;
#if defined(__x86_64__) || defined(_M_X64)
  if (__builtin_cpu_supports("avx512f")) isas.emplace_back("avx512", &avx512::kernels_float);
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) isas.emplace_back("avx2", &avx2::kernels_float);
#endif
  isas.emplace_back("generic", &generic::kernels_float);
  return isas;
}

FloatIsa choose_isa(const std::string& wanted) {
  for (const auto& [name, make] : supported_isas())
    if (wanted == "auto" || wanted == name) return {name, make()};
  TORCH_CHECK(false, "odyssey kernel: instruction set '", wanted, "' is not available on this CPU");
}

FloatIsa& float_isa() {
  static FloatIsa chosen = choose_isa("auto");
  return chosen;
}

template <class T>
const Kernels<T>& kernels() {
  if constexpr (std::is_same_v<T, float>) {
    return float_isa().kernels;
  } else {
    static const Kernels<double> chosen = generic::kernels_double();
    return chosen;
  }
}

// For tests and benchmarks, between calls: "auto" or one of isas(). Returns the one now in use.
std::string use_isa(const std::string& name) {
  float_isa() = choose_isa(name);
  return float_isa().name;
}

std::vector<std::string> isas() {
  std::vector<std::string> names;
  for (const auto& isa : supported_isas()) names.push_back(isa.first);
  return names;
}

int64_t set_team(int64_t threads) {
  TORCH_CHECK(threads >= 0 && threads <= 2, "odyssey kernel: team size must be 0 (tuned), 1 or 2");
  return team_override.exchange(static_cast<int>(threads));
}

// Up to this many units per step the team schedule wins on any CPU (kernel-notes); above it only
// with AVX-512 on at most two threads (measured here), where more cores favour the library matmul.
constexpr int64_t kTeamLimit = 1024;
// The team splits by rows (team_schedule.h) from this many rows on, when all of R packed fits in
// half of a core's L2 cache (measured here: 5-16% faster from 8 rows, up to 30% slower at 4).
constexpr int64_t kRowsFrom = 8;

int64_t l2_bytes() {
  static const int64_t bytes = [] {
    long size = 0;
#ifdef _SC_LEVEL2_CACHE_SIZE
    size = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    return size > 0 ? static_cast<int64_t>(size) : int64_t{1} << 20;
  }();
  return bytes;
}

// The matmuls over all steps (input projections, every weight gradient) through oneDNN where this
// torch exports its fp32 entry point, else ATen's (MKL's) matmul. oneDNN is what nn.LSTM runs on;
// MKL takes its AVX2 code on AMD CPUs (measured on a Zen 5 EPYC, one core: 110-113 GFLOP/s
// against oneDNN's 235-257 at these shapes). Looked up at run time, so that a torch without
// it still loads this kernel. Double stays on ATen's: it is what gradcheck checks.
using DnnlMatmul = void (*)(const at::Tensor&, const at::Tensor&, const at::Tensor&, float, float);

DnnlMatmul dnnl_matmul() {
  static const DnnlMatmul found = []() -> DnnlMatmul {
#if defined(__linux__)
    void* torch_cpu = dlopen("libtorch_cpu.so", RTLD_NOW | RTLD_NOLOAD);
    auto fn = torch_cpu ? reinterpret_cast<DnnlMatmul>(dlsym(torch_cpu, "_ZN2at6native13mkldnn_matmulERKNS_6TensorES3_S3_ff"))
                        : nullptr;
    if (fn == nullptr) return nullptr;
    try {  // a torch whose oneDNN matmul refuses fp32, or strided operands, keeps ATen's
      const at::Tensor a = at::arange(12, at::kFloat).view({4, 3}), b = at::arange(20, at::kFloat).view({4, 5});
      const at::Tensor a_t = a.t(), b_cols = b.narrow(1, 1, 3);  // transposed and strided, as used below
      at::Tensor out = at::ones({3, 3}, at::kFloat);
      fn(a_t, b_cols, out, 1.0f, 1.0f);
      // A block of the sum, as gradient_blocks takes it: columns of a transposed operand, rows of b.
      const at::Tensor a_part = a_t.narrow(1, 1, 2), b_part = b_cols.narrow(0, 1, 2);
      at::Tensor block = at::zeros({3, 3}, at::kFloat);
      fn(a_part, b_part, block, 0.0f, 1.0f);
      return at::allclose(out, 1 + at::mm(a_t, b_cols)) && at::allclose(block, at::mm(a_part, b_part)) ? fn : nullptr;
    } catch (const std::exception&) {
      return nullptr;
    }
#else
    return nullptr;
#endif
  }();
  return found;
}

// out = a @ b + beta * out, out contiguous; returns out.
at::Tensor& product_into(at::Tensor& out, const at::Tensor& a, const at::Tensor& b, float beta = 0.0f) {
  if (out.scalar_type() == at::kFloat && dnnl_matmul() != nullptr && out.numel() > 0 && a.size(1) > 0) {
    dnnl_matmul()(a, b, out, beta, 1.0f);
    return out;
  }
  return beta == 0.0f ? at::mm_out(out, a, b) : out.addmm_(a, b);
}

at::Tensor product(const at::Tensor& a, const at::Tensor& b) {
  at::Tensor out = at::empty({a.size(0), b.size(1)}, a.options());
  return product_into(out, a, b);
}

// Runs block(i, begin, end) for the `blocks` row blocks [begin, end) of `rows`, each on one thread
// (OneThread: oneDNN and ATen run it inline), on a team of `team` threads; a team of one takes them
// in order. The blocks are the same whatever the team, so the bits are too. Throws what a block threw.
template <class F>
void in_blocks(int64_t rows, int blocks, int team, const F& block) {
  std::exception_ptr failed;
  std::atomic<bool> failing{false};
  const at::ThreadLocalState caller;  // grad mode and the like, as at::parallel_for hands them on
  run_team(team, [&](int rank, int size) {
    const at::ThreadLocalStateGuard as_caller(caller);
    OneThread one(true);
    for (int i = rank; i < blocks; i += size) {
      try {
        block(i, rows * i / blocks, rows * (i + 1) / blocks);
      } catch (...) {  // an exception may not leave an OpenMP region
        if (!failing.exchange(true)) failed = std::current_exception();
      }
    }
  });
  if (failed) std::rethrow_exception(failed);
}

// out = a @ b + beta * out, as product_into, in the call's row blocks of out (when it has them).
// Left to oneDNN's own threads, every such call wakes torch's second thread, which then spins for
// the core something else wants; blocked, a call that found the cores busy runs them all on its own
// thread, with the same bits. (Alone on busy cores at T = 100, B = 16, H = 115: 56 ms/step with the
// recurrence on one thread and these matmuls on two, 10-16 ms with both on one.)
at::Tensor& product_blocks(const CallThreads& call, at::Tensor& out, const at::Tensor& a, const at::Tensor& b,
                           float beta = 0.0f) {
  if (call.blocks == 0) return product_into(out, a, b, beta);
  in_blocks(out.size(0), call.blocks, call.lone ? 1 : call.blocks, [&](int, int64_t r0, int64_t r1) {
    at::Tensor rows = out.narrow(0, r0, r1 - r0);
    product_into(rows, a.narrow(0, r0, r1 - r0), b, beta);
  });
  return out;
}

// out = a @ b for a weight gradient (a a transposed view: a sum over every step's rows), in the
// call's blocks of that sum: each block's partial into a buffer of its own (the first into out),
// then added in order. Not blocks of out's rows: those would be rows of a transposed view, which
// at::native::mkldnn_matmul copies to contiguous first (2.4 ms of copies in a 9 ms step on one
// thread at T = 100, B = 16, H = 115).
at::Tensor& gradient_blocks(const CallThreads& call, at::Tensor& out, const at::Tensor& a, const at::Tensor& b) {
  if (call.blocks == 0) return product_into(out, a, b);
  std::vector<at::Tensor> partial{out};
  for (int i = 1; i < call.blocks; ++i) partial.push_back(at::empty_like(out));
  in_blocks(a.size(1), call.blocks, call.lone ? 1 : call.blocks, [&](int i, int64_t k0, int64_t k1) {
    product_into(partial[i], a.narrow(1, k0, k1 - k0), b.narrow(0, k0, k1 - k0));
  });
  for (int i = 1; i < call.blocks; ++i) out.add_(partial[i]);
  return out;
}

// How one call walks its sequence: the team (split by units or rows) or a library matmul per step.
struct Plan {
  bool team;
  Split split;
};

// schedule: 0 chooses; tests force 1 (team by units), 2 (library), 3 (team by rows).
template <class T>
Plan plan(int64_t schedule, int64_t batch, const Layout& L) {
  if (schedule != 0) return {schedule != 2, {schedule == 3 && batch >= 2, batch}};
  const bool wide = std::is_same_v<T, float> && float_isa().name == "avx512";
  const bool team = batch * L.H <= kTeamLimit || (wide && at::get_num_threads() <= 2);
  const bool rows = batch >= kRowsFrom && L.K * L.G * L.H * static_cast<int64_t>(sizeof(T)) <= l2_bytes() / 2;
  return {team, {rows, batch}};
}

// How this call uses the cores (CallThreads). Where the tuner chooses (or a test forces) the team
// size, the library matmuls run in row blocks of one thread each, so that a call the tuner found on
// busy cores can run wholly on its own thread and give the same bits: only through oneDNN, whose
// one-thread calls are what the blocks are (ATen's matmul may take MKL's own thread count, not ours).
template <class T>
CallThreads threads_for(bool backward, int64_t batch, const Layout& L, const Plan& how) {
  const int forced = team_override.load();
  const int threads = at::get_num_threads();
  const Halves halves{L.H, kernels<T>().width};
  const bool tuned = !forced && how.team && batch * L.H >= kTeamUnits && halves.size(0) > 0 && threads > 1;
  const TeamTuner::Key key{backward, batch, L.H, L.K};
  const TeamTuner::Choice choice = tuned ? team_tuner().choose(key) : TeamTuner::Choice{forced ? forced : 1, forced == 1};
  const bool blocked = std::is_same_v<T, float> && dnnl_matmul() != nullptr && how.team && (tuned || forced);
  return {tuned, choice.team, blocked && choice.busy, blocked ? threads : 0, key};
}

struct Shapes {
  Layout L;
  int64_t steps, batch;
};

Shapes check(const at::Tensor& x, const at::Tensor& w_ih, const std::optional<at::Tensor>& bias, const at::Tensor& whh,
             const std::optional<at::Tensor>& wgg, const std::optional<at::Tensor>& peep,
             const std::optional<at::Tensor>& mask, const std::vector<int64_t>& layout) {
  const Layout L = make_layout(layout);
  const int64_t GH = L.G * L.H;
  TORCH_CHECK(x.dim() == 3 && (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble) && x.is_contiguous(),
              "odyssey kernel: inputs must be a contiguous (T, B, I) float32 or float64 tensor, got ", x.sizes(), " ",
              x.scalar_type());
  // The Python side passes contiguous weights of the input's dtype; these say which one is not.
  auto expect = [&](const at::Tensor& t, const char* name, std::vector<int64_t> shape) {
    TORCH_CHECK(t.sizes() == at::IntArrayRef(shape) && t.is_contiguous() && t.scalar_type() == x.scalar_type(),
                "odyssey kernel: ", name, " must be a contiguous ", at::IntArrayRef(shape), " ", x.scalar_type(),
                " tensor, got ", t.sizes(), " ", t.scalar_type(), t.is_contiguous() ? "" : " (not contiguous)");
  };
  expect(w_ih, "W_ih", {GH, x.size(2)});
  if (bias) expect(*bias, "bias", {GH});
  expect(whh, "W_hh", {GH, L.H});
  TORCH_CHECK(L.S == 0 || wgg, "odyssey kernel: FGR needs W_gg");
  if (L.S) expect(*wgg, "W_gg", {wgg->size(0), L.S * L.H});
  if (peep) expect(*peep, "peepholes", {peep->size(0), L.H});
  TORCH_CHECK(!mask || (mask->scalar_type() == at::kBool && mask->is_contiguous() && mask->size(0) == x.size(0) &&
                        mask->size(1) == x.size(1)),
              "odyssey kernel: the mask must be a contiguous (T, B) bool tensor");
  return {L, x.size(0), x.size(1)};
}

template <class T>
Sequence<T> sequence(const Shapes& shape, const at::Tensor& whh, const std::optional<at::Tensor>& wgg,
                     const std::optional<at::Tensor>& peep, const std::optional<at::Tensor>& mask,
                     const at::Tensor& rs, const at::Tensor& cs, const at::Tensor& acts) {
  return {shape.L, shape.steps, shape.batch, whh.data_ptr<T>(), shape.L.S ? wgg->data_ptr<T>() : nullptr,
          peep ? peep->data_ptr<T>() : nullptr, mask ? mask->data_ptr<bool>() : nullptr, nullptr,
          rs.data_ptr<T>(), cs.data_ptr<T>(), acts.data_ptr<T>()};
}

// Returns out, h_T, c_T, gates_T, and what backward needs: rs, cs, acts. All steps' input
// projections are one matmul, into the buffer that then holds the activations. What the caller
// receives (out and the states) has storage of its own, never a pooled buffer: the caller may keep
// or save it.
std::vector<at::Tensor> forward(const at::Tensor& x, const at::Tensor& w_ih, const std::optional<at::Tensor>& bias,
                                const at::Tensor& whh, const std::optional<at::Tensor>& wgg,
                                const std::optional<at::Tensor>& peep, const at::Tensor& h0, const at::Tensor& c0,
                                const at::Tensor& g0, const std::optional<at::Tensor>& mask,
                                const std::vector<int64_t>& layout, int64_t schedule) {
  const Shapes shape = check(x, w_ih, bias, whh, wgg, peep, mask, layout);
  const Layout& L = shape.L;
  const int64_t T = shape.steps, B = shape.batch, H = L.H, GH = L.G * H;
  std::vector<at::Tensor> results;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "odyssey_forward", [&] {
    const Plan how = plan<scalar_t>(schedule, B, L);
    const CallThreads call = threads_for<scalar_t>(false, B, L, how);
    const OneThread lone(call.lone);
    BufferPool& pool = buffer_pool();
    at::Tensor acts = pool.get({T, B, GH}, x.options());
    at::Tensor projections = acts.view({T * B, GH});
    const at::Tensor inputs = x.reshape({T * B, x.size(2)}), w_ih_t = w_ih.t();
    if (call.blocks) {  // each block its own bias rows too: no parallel copy outside the blocks
      in_blocks(T * B, call.blocks, call.lone ? 1 : call.blocks, [&](int, int64_t r0, int64_t r1) {
        at::Tensor rows = projections.narrow(0, r0, r1 - r0);
        if (bias) rows.copy_(bias->expand({r1 - r0, GH}));
        product_into(rows, inputs.narrow(0, r0, r1 - r0), w_ih_t, bias ? 1.0f : 0.0f);
      });
    } else {
      if (bias) projections.copy_(bias->expand({T * B, GH}));
      product_into(projections, inputs, w_ih_t, bias ? 1.0f : 0.0f);
    }
    at::Tensor rs = pool.get({T + 1, B, L.K}, x.options());
    at::Tensor cs = pool.get({T + 1, B, H}, x.options());
    at::Tensor out = at::empty({T, B, H}, x.options());
    rs[0].narrow(1, 0, H).copy_(h0);
    rs[0].narrow(1, H, L.S * H).copy_(g0);
    cs[0].copy_(c0);
    Sequence<scalar_t> s = sequence<scalar_t>(shape, whh, wgg, peep, mask, rs, cs, acts);
    if (how.team) {
      s.xp = s.acts;  // each member adds the projection and overwrites it, unit by unit
      forward_team(call, s, kernels<scalar_t>(), how.split, out.data_ptr<scalar_t>());
    } else {
      forward_library(s, kernels<scalar_t>(), full_recurrent(whh, wgg, L), rs, acts, out.data_ptr<scalar_t>());
    }
    const at::Tensor last = rs[T];
    results = {out, last.narrow(1, 0, H).clone(), cs[T].clone(), last.narrow(1, H, L.S * H).clone(), rs, cs, acts};
  });
  return results;
}

// Where backward writes the gradients of x, W_ih, the bias, W_hh, W_gg and the peepholes, in that
// order: a contiguous tensor of that gradient's size, or none (or fewer entries) for one of its own.
// backward_pack passes a full-size trial's slice of the padded gradients, so that it needs neither a
// zero-filled pack nor a copy; function.py passes none.
using Into = std::vector<std::optional<at::Tensor>>;

at::Tensor into_or_new(const Into& into, size_t which, at::IntArrayRef shape, const at::TensorOptions& options) {
  if (which >= into.size() || !into[which]) return at::empty(shape, options);
  const at::Tensor& buffer = *into[which];
  TORCH_CHECK(buffer.is_contiguous() && buffer.numel() == c10::multiply_integers(shape),
              "odyssey kernel: a gradient's buffer must be contiguous with ", shape, " entries");
  return buffer.view(shape);
}

// dR = sum_t da_t^T [h, gates]_{t-1}, as matmuls over all steps at once: W_hh's gradient takes
// every block and h, W_gg's (FGR) the gate blocks and the fed-back gates, each straight into its
// rows. Gradients are the caller's (autograd may make them a parameter's .grad): never pooled.
std::vector<at::Tensor> recurrent_grads(const CallThreads& call, const at::Tensor& da, const at::Tensor& rs,
                                        const Layout& L, const Into& into) {
  const int64_t T = da.size(0), B = da.size(1), H = L.H, SH = L.S * H;
  const at::Tensor da2 = da.view({T * B, L.G * H}), inputs = rs.narrow(0, 0, T).view({T * B, L.K});
  at::Tensor dwhh = into_or_new(into, 3, {L.G * H, H}, da.options());
  gradient_blocks(call, dwhh, da2.t(), inputs.narrow(1, 0, H));
  if (L.S == 0) return {dwhh, at::Tensor()};
  int64_t gates = 0;
  for (int64_t g = 0; g < L.G; ++g) gates += L.gate_of_block[g] >= 0;
  at::Tensor dwgg = into_or_new(into, 4, {gates * H, SH}, da.options());
  for (int64_t g = 0; g < L.G; ++g)
    if (L.gate_of_block[g] >= 0) {
      at::Tensor rows = dwgg.narrow(0, L.gate_of_block[g] * H, H);
      gradient_blocks(call, rows, da2.narrow(1, g * H, H).t(), inputs.narrow(1, H, SH));
    }
  return {dwhh, dwgg};
}

// A gradient as a contiguous tensor of this shape: zeros where autograd passed none (an unused
// output), a pooled copy where it is strided (the expanded ones of a sum()).
at::Tensor given(const std::optional<at::Tensor>& grad, at::IntArrayRef shape, const at::TensorOptions& options) {
  if (!grad) return at::zeros(shape, options);
  if (grad->is_contiguous()) return *grad;
  return buffer_pool().get(shape, options).copy_(*grad);
}

// Returns the gradients of x, W_ih, bias, W_hh, W_gg, the peepholes, h0, c0 and gates0; `needs`
// says whether x, the input weights and the recurrent weights want theirs (undefined if not).
// Only da is pooled scratch; every gradient returned has storage of its own, or is `into`'s.
std::vector<at::Tensor> backward(const std::optional<at::Tensor>& d_out, const std::optional<at::Tensor>& d_h,
                                 const std::optional<at::Tensor>& d_c, const std::optional<at::Tensor>& d_g,
                                 const at::Tensor& x, const at::Tensor& w_ih, const at::Tensor& rs,
                                 const at::Tensor& cs, const at::Tensor& acts, const at::Tensor& whh,
                                 const std::optional<at::Tensor>& wgg, const std::optional<at::Tensor>& peep,
                                 const std::optional<at::Tensor>& mask, const std::vector<int64_t>& layout,
                                 bool has_bias, const std::vector<bool>& needs, int64_t schedule, const Into& into) {
  const Layout L = make_layout(layout);
  const int64_t T = acts.size(0), B = acts.size(1), H = L.H, GH = L.G * H, I = x.size(2);
  const Shapes shape{L, T, B};
  const at::TensorOptions options = acts.options();
  TORCH_CHECK(needs.size() == 3, "odyssey kernel: needs says (x, input weights, recurrent weights)");
  CallThreads call{};
  Plan how{};
  AT_DISPATCH_FLOATING_TYPES(acts.scalar_type(), "odyssey_backward_threads", [&] {
    how = plan<scalar_t>(schedule, B, L);
    call = threads_for<scalar_t>(true, B, L, how);
  });
  const OneThread lone(call.lone);
  const at::Tensor dout = given(d_out, {T, B, H}, options);
  at::Tensor da = buffer_pool().get({T, B, GH}, options);
  at::Tensor dr = at::empty({B, L.K}, options);
  dr.narrow(1, 0, H).copy_(given(d_h, {B, H}, options));
  dr.narrow(1, H, L.S * H).copy_(given(d_g, {B, L.S * H}, options));
  at::Tensor dc = given(d_c, {B, H}, options).clone(at::MemoryFormat::Contiguous);
  at::Tensor dpeep = peep ? into_or_new(into, 5, peep->sizes(), options).zero_() : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(acts.scalar_type(), "odyssey_backward", [&] {
    const Sequence<scalar_t> s = sequence<scalar_t>(shape, whh, wgg, peep, mask, rs, cs, acts);
    scalar_t* dpeep_ptr = peep ? dpeep.data_ptr<scalar_t>() : nullptr;
    if (how.team) {
      backward_team(call, s, kernels<scalar_t>(), how.split, dout.data_ptr<scalar_t>(), da.data_ptr<scalar_t>(),
                    dr.data_ptr<scalar_t>(), dc.data_ptr<scalar_t>(), dpeep_ptr);
    } else {
      backward_library(s, kernels<scalar_t>(), dout.data_ptr<scalar_t>(), da, full_recurrent(whh, wgg, L), dr,
                       dc.data_ptr<scalar_t>(), dpeep_ptr);
    }
  });
  // After the loop, every step at once: dx = da W_ih, dW_ih = da^T x, db = sum da, dR = da^T [h, g].
  const at::Tensor da2 = da.view({T * B, GH});
  at::Tensor dx, dw_ih, db;
  if (needs[0]) {
    dx = into_or_new(into, 0, {T * B, I}, options);
    product_blocks(call, dx, da2, w_ih);
    dx = dx.view({T, B, I});
  }
  if (needs[1]) {
    dw_ih = into_or_new(into, 1, {GH, I}, options);
    gradient_blocks(call, dw_ih, da2.t(), x.reshape({T * B, I}));
  }
  if (needs[1] && has_bias) db = into_or_new(into, 2, {GH}, options);
  if (needs[1] && has_bias && call.blocks) {  // summed in blocks of units, each on one thread: the same bits either way
    in_blocks(GH, call.blocks, call.lone ? 1 : call.blocks, [&](int, int64_t u0, int64_t u1) {
      at::Tensor part = db.narrow(0, u0, u1 - u0);
      at::sum_out(part, da2.narrow(1, u0, u1 - u0), 0);
    });
  } else if (needs[1] && has_bias) {
    at::sum_out(db, da2, 0);
  }
  std::vector<at::Tensor> recurrent = needs[2] ? recurrent_grads(call, da, rs, L, into) : std::vector<at::Tensor>(2);
  if (L.S == 0) return {dx, dw_ih, db, recurrent[0], recurrent[1], dpeep, dr, dc, at::Tensor()};
  return {dx, dw_ih, db, recurrent[0], recurrent[1], dpeep, dr.narrow(1, 0, H).clone(), dc,
          dr.narrow(1, H, L.S * H).clone()};
}

// Idle pooled buffers back to the system (torch.cuda.empty_cache's counterpart); returns the bytes
// still pooled, all of them in use.
int64_t empty_cache() { return buffer_pool().release_idle(); }

int64_t pooled_bytes() { return buffer_pool().bytes(); }

#include "pack.inc"

}  // namespace
}  // namespace odyssey_kernel

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &odyssey_kernel::forward, "a variant LSTM direction over a whole sequence");
  m.def("backward", &odyssey_kernel::backward, "its gradients by backpropagation through time");
  m.def("forward_pack", &odyssey_kernel::forward_pack, "forward for a pack of trials, each on its own entries");
  m.def("backward_pack", &odyssey_kernel::backward_pack, "backward for a pack of trials, into the padded layout");
  m.def("isas", &odyssey_kernel::isas, "the instruction sets this CPU can run, widest first");
  m.def("use_isa", &odyssey_kernel::use_isa, "choose the float kernels' instruction set (\"auto\": the widest)");
  m.def("empty_cache", &odyssey_kernel::empty_cache, "free the idle pooled buffers; returns the bytes still pooled");
  m.def("pooled_bytes", &odyssey_kernel::pooled_bytes, "bytes the buffer pool holds, idle or in use");
  m.def("set_team", &odyssey_kernel::set_team, "fix the team size (1 or 2) or let it be tuned (0); returns the old");
  m.def("team_counts", [] { return odyssey_kernel::team_tuner().counts(); }, "tuned calls: by one, by two, by two on busy cores");
  // The tuner's decisions without timing (tests): a fresh tuner, and the verdict on one team call.
  using odyssey_kernel::TeamTuner;
  // Local to this module: another build loaded into the same process (sources edited meanwhile) has a
  // class of the same C++ name, which pybind11 would otherwise refuse to register twice.
  pybind11::class_<TeamTuner>(m, "Tuner", "a tuner of its own, as every kernel call consults the process's one",
                              pybind11::module_local())
      .def(pybind11::init<>())
      .def("choose", [](TeamTuner& t, const TeamTuner::Key& key) {
             const TeamTuner::Choice c = t.choose(key);
             return std::make_pair(c.team, c.busy);
           }, "(threads, busy) for the next call of the shape (backward, batch, hidden, recurrent width)")
      .def("record", &TeamTuner::record, "what a call of that shape cost per step on `team` threads, and whether it was crowded")
      .def("counts", &TeamTuner::counts);
  m.def("crowded", &odyssey_kernel::crowded,
        "whether a team call ran on busy cores: (barrier waits that slept, steps, wall ns, the most ns a member spent off its core)");
}
