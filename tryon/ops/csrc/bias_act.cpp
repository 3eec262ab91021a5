// bias_act on the CPU: one fused pass over memory, parallel over chunks, with loops the compiler can
// vectorise (the activation and derivative order are template parameters, the bias is constant or
// contiguous inside each inner loop). Half and bfloat16 tensors are read and written as they are and
// computed in float32 (at::opmath_type), so no converted copy of the tensor is made.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <type_traits>

#include "bias_act.h"
#include "common.h"

namespace tryon {
namespace {

// One run of n elements. BIAS: 0 none, 1 one bias value per element (bias[i]), 2 one bias value for
// the whole run (bias[0]). Pointers are restrict and the constants local, so the compiler can
// if-convert the activation's branches and vectorise. T is the math type (float for half/bfloat16).
template <int BIAS, int A, int ORDER, typename scalar_t, typename T = at::opmath_type<scalar_t>>
void bias_act_run(scalar_t* __restrict__ y, const scalar_t* __restrict__ x, const scalar_t* __restrict__ bias,
                  const scalar_t* __restrict__ g1, const scalar_t* __restrict__ g2, int64_t n,
                  const BiasActConsts<T> k) {
  const T b0 = BIAS == 2 ? static_cast<T>(bias[0]) : T(0);
  for (int64_t i = 0; i < n; ++i) {
    T z = static_cast<T>(x[i]);
    if constexpr (BIAS == 1) z += static_cast<T>(bias[i]);
    if constexpr (BIAS == 2) z += b0;
    const T a = ORDER >= 1 ? static_cast<T>(g1[i]) : T(0);
    const T c = ORDER >= 2 ? static_cast<T>(g2[i]) : T(0);
    y[i] = static_cast<scalar_t>(bias_act_element<A, ORDER>(z, a, c, k));
  }
}

template <typename scalar_t, int A, int ORDER>
void bias_act_loop(scalar_t* y, const scalar_t* x, const scalar_t* b, const scalar_t* g1, const scalar_t* g2,
                   int64_t numel, int64_t channels, int64_t channel_stride,
                   const BiasActConsts<at::opmath_type<scalar_t>>& k) {
  // Element i of the dense tensor sits at channel (i / channel_stride) % channels.
  auto run = [&](auto bias_mode, int64_t i0, int64_t i1, const scalar_t* bias) {
    constexpr int BIAS = decltype(bias_mode)::value;
    bias_act_run<BIAS, A, ORDER>(y + i0, x + i0, bias, ORDER >= 1 ? g1 + i0 : nullptr,
                                 ORDER >= 2 ? g2 + i0 : nullptr, i1 - i0, k);
  };
  using NoBias = std::integral_constant<int, 0>;
  using BiasRun = std::integral_constant<int, 1>;
  using BiasConst = std::integral_constant<int, 2>;
  at::parallel_for(0, numel, at::internal::GRAIN_SIZE, [&](int64_t begin, int64_t end) {
    if (b == nullptr) {
      run(NoBias{}, begin, end, nullptr);
    } else if (channel_stride == 1) {
      // Channels innermost (e.g. channels_last with dim=1, or [N, C] with dim=1): runs over the bias.
      for (int64_t i = begin; i < end;) {
        const int64_t c = i % channels;
        const int64_t stop = std::min(end, i + (channels - c));
        run(BiasRun{}, i, stop, b + c);
        i = stop;
      }
    } else {
      // Runs of channel_stride elements share one bias value.
      for (int64_t i = begin; i < end;) {
        const int64_t block = i / channel_stride;
        const int64_t stop = std::min(end, (block + 1) * channel_stride);
        run(BiasConst{}, i, stop, b + block % channels);
        i = stop;
      }
    }
  });
}

template <typename scalar_t, int ORDER>
void bias_act_dispatch_act(scalar_t* y, const scalar_t* x, const scalar_t* b, const scalar_t* g1,
                           const scalar_t* g2, int64_t numel, const BiasActArgs& a,
                           const BiasActConsts<at::opmath_type<scalar_t>>& k) {
#define TRYON_ACT_CASE(A)                                                                          \
  case A:                                                                                          \
    bias_act_loop<scalar_t, A, ORDER>(y, x, b, g1, g2, numel, a.channels, a.channel_stride, k);    \
    return;
  switch (a.act) {
    TRYON_ACT_CASE(kLinear)
    TRYON_ACT_CASE(kRelu)
    TRYON_ACT_CASE(kLrelu)
    TRYON_ACT_CASE(kTanh)
    TRYON_ACT_CASE(kSigmoid)
    TRYON_ACT_CASE(kElu)
    TRYON_ACT_CASE(kSelu)
    TRYON_ACT_CASE(kSoftplus)
    TRYON_ACT_CASE(kSwish)
  }
#undef TRYON_ACT_CASE
  TORCH_CHECK(false, "bias_act: unknown activation code ", a.act);
}

}  // namespace

void bias_act_cpu(at::Tensor& y, const at::Tensor& x, const at::Tensor& b, const at::Tensor& g1,
                  const at::Tensor& g2, const BiasActArgs& args) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "tryon_bias_act_cpu", [&] {
    using T = at::opmath_type<scalar_t>;
    BiasActConsts<T> k;
    k.alpha = static_cast<T>(args.alpha);
    k.gain = static_cast<T>(args.gain);
    k.has_clamp = args.clamp >= 0;
    k.clamp = k.has_clamp ? static_cast<T>(args.clamp) : std::numeric_limits<T>::infinity();
    scalar_t* yp = y.data_ptr<scalar_t>();
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* bp = b.defined() ? b.const_data_ptr<scalar_t>() : nullptr;
    const scalar_t* g1p = g1.defined() ? g1.const_data_ptr<scalar_t>() : nullptr;
    const scalar_t* g2p = g2.defined() ? g2.const_data_ptr<scalar_t>() : nullptr;
    const int64_t n = x.numel();
    switch (args.order) {
      case 0: bias_act_dispatch_act<scalar_t, 0>(yp, xp, bp, g1p, g2p, n, args, k); break;
      case 1: bias_act_dispatch_act<scalar_t, 1>(yp, xp, bp, g1p, g2p, n, args, k); break;
      case 2: bias_act_dispatch_act<scalar_t, 2>(yp, xp, bp, g1p, g2p, n, args, k); break;
      default: TORCH_CHECK(false, "bias_act: order must be 0, 1 or 2, got ", args.order);
    }
  });
}

}  // namespace tryon
