// upfirdn2d on the CPU: one pass with a 2D correlation kernel, touching only the taps that land on
// input samples (no zero-filled upsampled image, no full-resolution convolution before downsampling).
//
// NCHW: per output row, per polyphase component of the row (outputs ox = ph + upx * q), each filter
// tap is a strided AXPY over q, accumulated in a row buffer; the loops vectorise over q.
// NHWC (channels_last): per output pixel, each tap is an AXPY over the channels.
// Half and bfloat16 tensors are read and written as they are; taps and sums are float32 (opmath).
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "common.h"
#include "upfirdn2d.h"

namespace tryon {
namespace {

// acc[q] += w * src[q * stride] for q < n; STRIDE > 0 fixes the stride at compile time.
template <int STRIDE, typename T, typename scalar_t>
inline void strided_axpy(T* __restrict__ acc, const scalar_t* __restrict__ src, T w, int n, int stride) {
  const int s = STRIDE > 0 ? STRIDE : stride;
  for (int q = 0; q < n; ++q) acc[q] += w * static_cast<T>(src[q * s]);
}

template <typename T, typename scalar_t>
inline void axpy_any_stride(T* acc, const scalar_t* src, T w, int n, int stride) {
  switch (stride) {
    case 1: strided_axpy<1>(acc, src, w, n, 1); break;
    case 2: strided_axpy<2>(acc, src, w, n, 2); break;
    default: strided_axpy<0>(acc, src, w, n, stride); break;
  }
}

// at::parallel_for, but a single item runs inline (no parallel region for one thread's work).
template <typename F>
void parallel_items(int64_t n, int64_t grain, const F& f) {
  if (n == 1) {
    f(int64_t(0), int64_t(1));
  } else {
    at::parallel_for(0, n, grain, f);
  }
}

// How many work items (rows, blocks) one thread takes at least, so that small calls stay on one thread
// (a parallel region costs more than they do) and large ones split into chunks of >= 32k MACs.
int64_t grain_for(int64_t work_per_item) {
  return std::max<int64_t>(1, at::internal::GRAIN_SIZE / std::max<int64_t>(1, work_per_item));
}

template <typename scalar_t, typename T = at::opmath_type<scalar_t>>
void upfirdn2d_nchw(scalar_t* y, const scalar_t* x, const std::vector<T>& f, int64_t planes, int H,
                    int W, int OH, int OW, int fh, int fw, const Upfirdn2dArgs& a) {
  const int upx = a.upx, dx = a.downx;
  const int Q = (OW + upx - 1) / upx;  // Outputs per polyphase component (the first is the longest).
  std::vector<AxisTaps> rows(OH);
  for (int oy = 0; oy < OH; ++oy) rows[oy] = axis_taps(oy, a.upy, a.downy, a.pady0, fh, H);
  const int64_t taps_per_output = std::max(1, (fh / a.upy) * (fw / upx));
  const int64_t grain = grain_for(static_cast<int64_t>(OW) * taps_per_output);

  parallel_items(planes * OH, grain, [&](int64_t begin, int64_t end) {
    std::vector<T> acc(static_cast<size_t>(upx) * Q);
    for (int64_t r = begin; r < end; ++r) {
      const int64_t plane = r / OH;
      const int oy = static_cast<int>(r % OH);
      const scalar_t* xp = x + plane * H * W;
      scalar_t* yp = y + (plane * OH + oy) * OW;
      std::fill(acc.begin(), acc.end(), T(0));
      const AxisTaps ry = rows[oy];
      for (int t = 0; t < ry.count; ++t) {
        const scalar_t* row = xp + static_cast<int64_t>(ry.in0 + t) * W;
        const T* frow = f.data() + (ry.tap0 + t * a.upy) * fw;
        for (int ph = 0; ph < upx && ph < OW; ++ph) {
          // Output ox = ph + upx * q reads taps tap0 + s * upx at inputs q * dx + base + s.
          const int tap0 = floor_mod(a.padx0 - ph * dx, upx);
          const int base = (ph * dx - a.padx0 + tap0) / upx;
          const int nq = (OW - ph + upx - 1) / upx;
          T* accp = acc.data() + static_cast<int64_t>(ph) * Q;
          for (int j = tap0, s = 0; j < fw; j += upx, ++s) {
            const int off = base + s;  // Input index of q = 0.
            const int lo = off >= 0 ? 0 : (-off + dx - 1) / dx;
            const int hi = off <= W - 1 ? std::min(nq, (W - 1 - off) / dx + 1) : 0;
            if (hi > lo) axpy_any_stride(accp + lo, row + static_cast<int64_t>(lo) * dx + off, frow[j], hi - lo, dx);
          }
        }
      }
      for (int ph = 0; ph < upx && ph < OW; ++ph) {  // Interleave the polyphase components.
        const T* accp = acc.data() + static_cast<int64_t>(ph) * Q;
        const int nq = (OW - ph + upx - 1) / upx;
        for (int q = 0; q < nq; ++q) yp[ph + q * upx] = static_cast<scalar_t>(accp[q]);
      }
    }
  });
}

// Output rows [oy0, oy1) of one channels-last image: in [H, W, C], out [OH, OW, C]; acc holds C values.
template <typename scalar_t, typename T>
void filter_rows_cl(scalar_t* __restrict__ out, const scalar_t* __restrict__ in, int64_t C, int W, int OW, int oy0,
                    int oy1, const AxisTaps* rows, const AxisTaps* cols, const T* f, int fw,
                    const Upfirdn2dArgs& a, T* __restrict__ acc) {
  for (int oy = oy0; oy < oy1; ++oy) {
    const AxisTaps ry = rows[oy];
    for (int ox = 0; ox < OW; ++ox) {
      const AxisTaps rx = cols[ox];
      std::fill(acc, acc + C, T(0));
      for (int t = 0; t < ry.count; ++t) {
        const T* frow = f + (ry.tap0 + t * a.upy) * fw;
        const scalar_t* pixel = in + (static_cast<int64_t>(ry.in0 + t) * W + rx.in0) * C;
        for (int s = 0; s < rx.count; ++s) {
          strided_axpy<1>(acc, pixel + s * C, frow[rx.tap0 + s * a.upx], static_cast<int>(C), 1);
        }
      }
      scalar_t* o = out + (static_cast<int64_t>(oy) * OW + ox) * C;
      for (int64_t c = 0; c < C; ++c) o[c] = static_cast<scalar_t>(acc[c]);
    }
  }
}

struct TapTables {
  std::vector<AxisTaps> rows, cols;
  TapTables(int H, int W, int OH, int OW, int fh, int fw, const Upfirdn2dArgs& a) : rows(OH), cols(OW) {
    for (int oy = 0; oy < OH; ++oy) rows[oy] = axis_taps(oy, a.upy, a.downy, a.pady0, fh, H);
    for (int ox = 0; ox < OW; ++ox) cols[ox] = axis_taps(ox, a.upx, a.downx, a.padx0, fw, W);
  }
};

template <typename scalar_t, typename T = at::opmath_type<scalar_t>>
void upfirdn2d_nhwc(scalar_t* y, const scalar_t* x, const std::vector<T>& f, int64_t N, int64_t C,
                    int H, int W, int OH, int OW, int fh, int fw, const Upfirdn2dArgs& a) {
  const TapTables taps(H, W, OH, OW, fh, fw, a);
  const int64_t taps_per_output = std::max(1, (fh / a.upy) * (fw / a.upx));
  const int64_t grain = grain_for(static_cast<int64_t>(OW) * C * taps_per_output);
  parallel_items(N * OH, grain, [&](int64_t begin, int64_t end) {
    std::vector<T> acc(C);
    for (int64_t r = begin; r < end; ++r) {
      const int64_t n = r / OH;
      const int oy = static_cast<int>(r % OH);
      filter_rows_cl(y + n * OH * OW * C, x + n * H * W * C, C, W, OW, oy, oy + 1, taps.rows.data(),
                     taps.cols.data(), f.data(), fw, a, acc.data());
    }
  });
}

// NCHW with small planes, where rows are too short to vectorise along: transpose blocks of planes
// into a channels-last scratch (in cache), filter it along the planes, transpose back.
// Planes per block: as many as keep the scratch within ~256 KiB (L2), between 16 and 64.
int64_t planes_per_block(int64_t in_size, int64_t out_size) {
  const int64_t fit = (int64_t(1) << 16) / std::max<int64_t>(1, std::max(in_size, out_size));
  return std::min<int64_t>(64, std::max<int64_t>(16, fit / 16 * 16));
}
constexpr int kBlockedMaxWidth = 32;  // Input width up to which NCHW goes through the blocked path.

// dst[p * dp + i * di] = src[p * sp + i * si] for p < P, i < n, in tiles that stay in L1.
template <typename scalar_t>
void transpose_tiled(scalar_t* __restrict__ dst, const scalar_t* __restrict__ src, int64_t P, int64_t n,
                     int64_t di, int64_t dp, int64_t si, int64_t sp) {
  constexpr int64_t kTile = 64;
  for (int64_t i0 = 0; i0 < n; i0 += kTile) {
    const int64_t i1 = std::min(n, i0 + kTile);
    for (int64_t p = 0; p < P; ++p) {
      for (int64_t i = i0; i < i1; ++i) dst[p * dp + i * di] = src[p * sp + i * si];
    }
  }
}

template <typename scalar_t, typename T = at::opmath_type<scalar_t>>
void upfirdn2d_nchw_blocked(scalar_t* y, const scalar_t* x, const std::vector<T>& f, int64_t planes,
                            int H, int W, int OH, int OW, int fh, int fw, const Upfirdn2dArgs& a) {
  const TapTables taps(H, W, OH, OW, fh, fw, a);
  const int64_t in_size = static_cast<int64_t>(H) * W, out_size = static_cast<int64_t>(OH) * OW;
  const int64_t block = planes_per_block(in_size, out_size);
  const int64_t blocks = (planes + block - 1) / block;
  const int64_t taps_per_output = std::max(1, (fh / a.upy) * (fw / a.upx));
  const int64_t grain = grain_for((in_size + out_size * taps_per_output) * block);
  parallel_items(blocks, grain, [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> in(in_size * block), out(out_size * block);
    std::vector<T> acc(block);
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t p0 = blk * block;
      const int64_t P = std::min(block, planes - p0);
      transpose_tiled(in.data(), x + p0 * in_size, P, in_size, P, 1, 1, in_size);
      filter_rows_cl(out.data(), in.data(), P, W, OW, 0, OH, taps.rows.data(), taps.cols.data(), f.data(), fw,
                     a, acc.data());
      transpose_tiled(y + p0 * out_size, out.data(), P, out_size, 1, out_size, P, 1);
    }
  });
}

}  // namespace

void upfirdn2d_cpu(at::Tensor& y, const at::Tensor& x, const at::Tensor& fc, const Upfirdn2dArgs& args) {
  const int64_t N = x.size(0), C = x.size(1);
  const int H = static_cast<int>(x.size(2)), W = static_cast<int>(x.size(3));
  const int OH = static_cast<int>(y.size(2)), OW = static_cast<int>(y.size(3));
  const int fh = static_cast<int>(fc.size(0)), fw = static_cast<int>(fc.size(1));
  const bool nhwc = !x.is_contiguous();  // The bindings pass NCHW-contiguous or channels_last tensors.
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "tryon_upfirdn2d_cpu", [&] {
    using T = at::opmath_type<scalar_t>;
    const float* fp = fc.const_data_ptr<float>();
    const std::vector<T> f(fp, fp + fh * fw);
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    scalar_t* yp = y.data_ptr<scalar_t>();
    if (nhwc) {
      upfirdn2d_nhwc<scalar_t>(yp, xp, f, N, C, H, W, OH, OW, fh, fw, args);
    } else if (W <= kBlockedMaxWidth && N * C >= 16) {
      upfirdn2d_nchw_blocked<scalar_t>(yp, xp, f, N * C, H, W, OH, OW, fh, fw, args);
    } else {
      upfirdn2d_nchw<scalar_t>(yp, xp, f, N * C, H, W, OH, OW, fh, fw, args);
    }
  });
}

}  // namespace tryon
