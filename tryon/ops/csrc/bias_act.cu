// bias_act on CUDA: one thread per element (grid-stride), math in float (double for double tensors).
// The activation is a warp-uniform switch rather than a template parameter, to keep the number of
// kernel instances (and the build time) small; the op is memory-bound either way.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "bias_act.h"
#include "common.h"

namespace tryon {
namespace {

template <int ORDER, typename T>
__device__ __forceinline__ T bias_act_any(int act, T z, T g1, T g2, const BiasActConsts<T>& k) {
  switch (act) {
    case kLinear: return bias_act_element<kLinear, ORDER>(z, g1, g2, k);
    case kRelu: return bias_act_element<kRelu, ORDER>(z, g1, g2, k);
    case kLrelu: return bias_act_element<kLrelu, ORDER>(z, g1, g2, k);
    case kTanh: return bias_act_element<kTanh, ORDER>(z, g1, g2, k);
    case kSigmoid: return bias_act_element<kSigmoid, ORDER>(z, g1, g2, k);
    case kElu: return bias_act_element<kElu, ORDER>(z, g1, g2, k);
    case kSelu: return bias_act_element<kSelu, ORDER>(z, g1, g2, k);
    case kSoftplus: return bias_act_element<kSoftplus, ORDER>(z, g1, g2, k);
    default: return bias_act_element<kSwish, ORDER>(z, g1, g2, k);
  }
}

// index_t: 32-bit when the tensor is small enough, to avoid 64-bit division for the bias index.
template <typename scalar_t, typename index_t, int ORDER>
__global__ void bias_act_kernel(scalar_t* __restrict__ y, const scalar_t* __restrict__ x,
                                const scalar_t* __restrict__ b, const scalar_t* __restrict__ g1,
                                const scalar_t* __restrict__ g2, int64_t numel, index_t channels,
                                index_t channel_stride, int act, BiasActConsts<at::opmath_type<scalar_t>> k) {
  using T = at::opmath_type<scalar_t>;
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < numel; i += step) {
    T z = static_cast<T>(x[i]);
    if (b != nullptr) z += static_cast<T>(b[(static_cast<index_t>(i) / channel_stride) % channels]);
    const T a = ORDER >= 1 ? static_cast<T>(g1[i]) : T(0);
    const T c = ORDER >= 2 ? static_cast<T>(g2[i]) : T(0);
    y[i] = static_cast<scalar_t>(bias_act_any<ORDER>(act, z, a, c, k));
  }
}

template <typename scalar_t, typename index_t>
void launch(at::Tensor& y, const at::Tensor& x, const at::Tensor& b, const at::Tensor& g1, const at::Tensor& g2,
            const BiasActArgs& args) {
  using T = at::opmath_type<scalar_t>;
  BiasActConsts<T> k;
  k.alpha = static_cast<T>(args.alpha);
  k.gain = static_cast<T>(args.gain);
  k.has_clamp = args.clamp >= 0;
  k.clamp = k.has_clamp ? static_cast<T>(args.clamp) : std::numeric_limits<T>::infinity();
  const int64_t numel = x.numel();
  const int threads = 256;
  const int64_t blocks = std::min<int64_t>((numel + threads - 1) / threads, int64_t(1) << 20);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  scalar_t* yp = y.data_ptr<scalar_t>();
  const scalar_t* xp = x.const_data_ptr<scalar_t>();
  const scalar_t* bp = b.defined() ? b.const_data_ptr<scalar_t>() : nullptr;
  const scalar_t* g1p = g1.defined() ? g1.const_data_ptr<scalar_t>() : nullptr;
  const scalar_t* g2p = g2.defined() ? g2.const_data_ptr<scalar_t>() : nullptr;
  const index_t channels = static_cast<index_t>(args.channels);
  const index_t stride = static_cast<index_t>(args.channel_stride);
  switch (args.order) {
    case 0:
      bias_act_kernel<scalar_t, index_t, 0><<<blocks, threads, 0, stream>>>(yp, xp, bp, g1p, g2p, numel, channels,
                                                                             stride, args.act, k);
      break;
    case 1:
      bias_act_kernel<scalar_t, index_t, 1><<<blocks, threads, 0, stream>>>(yp, xp, bp, g1p, g2p, numel, channels,
                                                                             stride, args.act, k);
      break;
    default:
      bias_act_kernel<scalar_t, index_t, 2><<<blocks, threads, 0, stream>>>(yp, xp, bp, g1p, g2p, numel, channels,
                                                                             stride, args.act, k);
      break;
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

void bias_act_cuda(at::Tensor& y, const at::Tensor& x, const at::Tensor& b, const at::Tensor& g1,
                   const at::Tensor& g2, const BiasActArgs& args) {
  const c10::cuda::CUDAGuard guard(x.device());
  const bool small = x.numel() <= std::numeric_limits<int32_t>::max();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "tryon_bias_act_cuda", [&] {
    if (small) {
      launch<scalar_t, int32_t>(y, x, b, g1, g2, args);
    } else {
      launch<scalar_t, int64_t>(y, x, b, g1, g2, args);
    }
  });
}

}  // namespace tryon
