// upfirdn2d on CUDA: one thread per output sample (grid-stride, in the output's memory order so that
// neighbouring threads read neighbouring inputs), visiting only the filter taps that land on input
// samples. Accumulates in float (double for double tensors).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "common.h"
#include "upfirdn2d.h"

namespace tryon {
namespace {

struct Geometry {
  int C, H, W, OH, OW, fh, fw;
  int upx, upy, downx, downy, padx0, pady0;
};

// NHWC: x and y are channels_last (else NCHW-contiguous). index_t: 32-bit when y and x are small.
template <typename scalar_t, typename index_t, bool NHWC>
__global__ void upfirdn2d_kernel(scalar_t* __restrict__ y, const scalar_t* __restrict__ x,
                                 const float* __restrict__ fc, int64_t total, Geometry g) {
  using T = at::opmath_type<scalar_t>;
  const index_t C = g.C, H = g.H, W = g.W, OH = g.OH, OW = g.OW;
  const index_t sW = NHWC ? C : 1;
  const index_t sH = W * sW;
  const index_t sC = NHWC ? 1 : H * W;
  const index_t sN = C * H * W;
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    index_t r = static_cast<index_t>(i);
    index_t c, ox, oy, n;
    if (NHWC) {
      c = r % C; r /= C;
      ox = r % OW; r /= OW;
      oy = r % OH; n = r / OH;
    } else {
      ox = r % OW; r /= OW;
      oy = r % OH; r /= OH;
      c = r % C; n = r / C;
    }
    const AxisTaps ry = axis_taps(static_cast<int>(oy), g.upy, g.downy, g.pady0, g.fh, g.H);
    const AxisTaps rx = axis_taps(static_cast<int>(ox), g.upx, g.downx, g.padx0, g.fw, g.W);
    const scalar_t* xp = x + n * sN + c * sC + static_cast<index_t>(rx.in0) * sW;
    T acc = T(0);
    for (int t = 0; t < ry.count; ++t) {
      const scalar_t* row = xp + static_cast<index_t>(ry.in0 + t) * sH;
      const float* frow = fc + (ry.tap0 + t * g.upy) * g.fw + rx.tap0;
      for (int s = 0; s < rx.count; ++s) {
        acc += static_cast<T>(__ldg(frow + s * g.upx)) * static_cast<T>(row[static_cast<index_t>(s) * sW]);
      }
    }
    y[i] = static_cast<scalar_t>(acc);
  }
}

template <typename scalar_t, typename index_t>
void launch(at::Tensor& y, const at::Tensor& x, const at::Tensor& fc, const Geometry& g, bool nhwc) {
  const int64_t total = y.numel();
  const int threads = 256;
  const int64_t blocks = std::min<int64_t>((total + threads - 1) / threads, int64_t(1) << 20);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  scalar_t* yp = y.data_ptr<scalar_t>();
  const scalar_t* xp = x.const_data_ptr<scalar_t>();
  const float* fp = fc.const_data_ptr<float>();
  if (nhwc) {
    upfirdn2d_kernel<scalar_t, index_t, true><<<blocks, threads, 0, stream>>>(yp, xp, fp, total, g);
  } else {
    upfirdn2d_kernel<scalar_t, index_t, false><<<blocks, threads, 0, stream>>>(yp, xp, fp, total, g);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

void upfirdn2d_cuda(at::Tensor& y, const at::Tensor& x, const at::Tensor& fc, const Upfirdn2dArgs& args) {
  const c10::cuda::CUDAGuard guard(x.device());
  Geometry g;
  g.C = static_cast<int>(x.size(1));
  g.H = static_cast<int>(x.size(2));
  g.W = static_cast<int>(x.size(3));
  g.OH = static_cast<int>(y.size(2));
  g.OW = static_cast<int>(y.size(3));
  g.fh = static_cast<int>(fc.size(0));
  g.fw = static_cast<int>(fc.size(1));
  g.upx = args.upx;
  g.upy = args.upy;
  g.downx = args.downx;
  g.downy = args.downy;
  g.padx0 = args.padx0;
  g.pady0 = args.pady0;
  const bool nhwc = !x.is_contiguous();  // The bindings pass NCHW-contiguous or channels_last tensors.
  const bool small = std::max(x.numel(), y.numel()) <= std::numeric_limits<int32_t>::max();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "tryon_upfirdn2d_cuda", [&] {
    if (small) {
      launch<scalar_t, int32_t>(y, x, fc, g, nhwc);
    } else {
      launch<scalar_t, int64_t>(y, x, fc, g, nhwc);
    }
  });
}

}  // namespace tryon
