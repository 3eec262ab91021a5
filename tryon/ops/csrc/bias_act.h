// bias_act kernels: declarations shared by the bindings and the CPU / CUDA implementations.
#pragma once

#include <ATen/ATen.h>

namespace tryon {

struct BiasActArgs {
  int act;                 // Activation code (tryon::Act).
  int order;               // 0: forward, 1: first derivative times g1, 2: second derivative times g1 * g2.
  double alpha;            // Activation shape parameter (lrelu slope).
  double gain;             // Output scale.
  double clamp;            // Clamp bound; negative for no clamping.
  int64_t channels;        // Length of the bias (1 when there is none).
  int64_t channel_stride;  // Memory stride of the bias dimension in x.
};

// x, g1, g2 and y are dense tensors with identical strides and dtype; b is contiguous [channels] of the
// same dtype, or undefined. g1 / g2 are undefined where `order` does not read them.
void bias_act_cpu(at::Tensor& y, const at::Tensor& x, const at::Tensor& b, const at::Tensor& g1,
                  const at::Tensor& g2, const BiasActArgs& args);
void bias_act_cuda(at::Tensor& y, const at::Tensor& x, const at::Tensor& b, const at::Tensor& g1,
                   const at::Tensor& g2, const BiasActArgs& args);

}  // namespace tryon
