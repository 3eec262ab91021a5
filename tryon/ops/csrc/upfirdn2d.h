// upfirdn2d kernels: declarations shared by the bindings and the CPU / CUDA implementations.
#pragma once

#include <ATen/ATen.h>

namespace tryon {

struct Upfirdn2dArgs {
  int upx, upy;      // Upsampling factors.
  int downx, downy;  // Downsampling factors.
  int padx0, pady0;  // Leading padding of the upsampled image (negative crops); the trailing padding
                     // only sets the output size, which `y` already has.
};

// One pass with a 2D kernel. x: [N, C, H, W], contiguous or channels_last; fc: [fh, fw] float32
// correlation kernel (already flipped and scaled by the gain), on x's device; y: [N, C, OH, OW] with
// the same memory format and dtype as x.
void upfirdn2d_cpu(at::Tensor& y, const at::Tensor& x, const at::Tensor& fc, const Upfirdn2dArgs& args);
void upfirdn2d_cuda(at::Tensor& y, const at::Tensor& x, const at::Tensor& fc, const Upfirdn2dArgs& args);

}  // namespace tryon
