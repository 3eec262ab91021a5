// Python bindings of the tryon.ops kernels: argument checks, memory-layout preparation, and the call of
// the CPU kernels ("cpp" build) or the CUDA kernels ("cuda" build, compiled with TRYON_WITH_CUDA).
// Autograd lives in Python (tryon/ops/_fused.py); these functions are plain forward computations.
#include <torch/extension.h>

#include <cmath>
#include <optional>
#include <vector>

#include "bias_act.h"
#include "upfirdn2d.h"

namespace tryon {
namespace {

#ifdef TRYON_WITH_CUDA
constexpr const char* kBuild = "cuda";
bool on_kernel_device(const at::Tensor& t) { return t.is_cuda(); }
#else
constexpr const char* kBuild = "cpp";
bool on_kernel_device(const at::Tensor& t) { return t.is_cpu(); }
#endif

void check_device(const at::Tensor& t, const char* what, const at::Tensor& x) {
  TORCH_CHECK(on_kernel_device(t), "tryon.ops (", kBuild, " build): ", what, " is on ", t.device(),
              ", which this build has no kernels for");
  TORCH_CHECK(t.device() == x.device(), "tryon.ops: ", what, " is on ", t.device(), " but x is on ", x.device());
}

// `t` laid out with exactly the strides of the dense tensor `x`.
at::Tensor with_layout_of(const at::Tensor& t, const at::Tensor& x) {
  if (t.strides() == x.strides()) return t;
  at::Tensor r = at::empty_like(x);
  r.copy_(t);
  return r;
}

at::Tensor bias_act(const at::Tensor& x_in, const std::optional<at::Tensor>& b_in,
                    const std::optional<at::Tensor>& g1_in, const std::optional<at::Tensor>& g2_in, int64_t dim,
                    int64_t act, int64_t order, double alpha, double gain, double clamp) {
  check_device(x_in, "x", x_in);
  TORCH_CHECK(x_in.is_floating_point(), "bias_act: x must be a floating-point tensor, got ", x_in.scalar_type());
  TORCH_CHECK(act >= 1 && act <= 9, "bias_act: unknown activation code ", act);
  TORCH_CHECK(order >= 0 && order <= 2, "bias_act: order must be 0, 1 or 2, got ", order);
  const at::Tensor x = x_in.is_non_overlapping_and_dense() ? x_in : x_in.contiguous();
  BiasActArgs args{static_cast<int>(act), static_cast<int>(order), alpha, gain, clamp, 1, 1};
  at::Tensor b;
  if (b_in.has_value() && b_in->defined()) {
    check_device(*b_in, "b", x);
    TORCH_CHECK(dim >= 0 && dim < x.dim(), "bias_act: dim ", dim, " out of range for x of ", x.dim(), " dims");
    TORCH_CHECK(b_in->dim() == 1 && b_in->size(0) == x.size(dim), "bias_act: b of shape ", b_in->sizes(),
                " does not fit dim ", dim, " of x of shape ", x.sizes());
    b = b_in->to(x.scalar_type()).contiguous();
    args.channels = b.numel();
    args.channel_stride = args.channels > 1 ? x.stride(dim) : 1;
  }
  at::Tensor grads[2];
  const std::optional<at::Tensor>* grads_in[2] = {&g1_in, &g2_in};
  for (int i = 0; i < order; ++i) {
    const std::optional<at::Tensor>& g = *grads_in[i];
    TORCH_CHECK(g.has_value() && g->defined(), "bias_act: order ", order, " needs gradient ", i + 1);
    check_device(*g, "a gradient", x);
    TORCH_CHECK(g->sizes() == x.sizes(), "bias_act: gradient of shape ", g->sizes(), " does not match x ",
                x.sizes());
    grads[i] = with_layout_of(g->to(x.scalar_type()), x);
  }
  at::Tensor y = at::empty_like(x);
  if (x.numel() == 0) return y;
#ifdef TRYON_WITH_CUDA
  bias_act_cuda(y, x, b, grads[0], grads[1], args);
#else
  bias_act_cpu(y, x, b, grads[0], grads[1], args);
#endif
  return y;
}

int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

// One kernel pass with the 2D correlation kernel fc [fh, fw].
at::Tensor upfirdn2d_pass(const at::Tensor& x, const at::Tensor& fc, int64_t upx, int64_t upy, int64_t downx,
                          int64_t downy, int64_t px0, int64_t px1, int64_t py0, int64_t py1) {
  const int64_t fh = fc.size(0), fw = fc.size(1);
  const int64_t OW = floor_div(x.size(3) * upx + px0 + px1 - fw, downx) + 1;
  const int64_t OH = floor_div(x.size(2) * upy + py0 + py1 - fh, downy) + 1;
  TORCH_CHECK(OW >= 1 && OH >= 1, "upfirdn2d: the output would be empty for input ", x.sizes(),
              " and these settings");
  const auto format = x.is_contiguous() ? at::MemoryFormat::Contiguous : at::MemoryFormat::ChannelsLast;
  at::Tensor y = at::empty({x.size(0), x.size(1), OH, OW}, x.options().memory_format(format));
  if (y.numel() == 0) return y;
  const Upfirdn2dArgs args{static_cast<int>(upx),   static_cast<int>(upy), static_cast<int>(downx),
                           static_cast<int>(downy), static_cast<int>(px0), static_cast<int>(py0)};
#ifdef TRYON_WITH_CUDA
  upfirdn2d_cuda(y, x, fc, args);
#else
  upfirdn2d_cpu(y, x, fc, args);
#endif
  return y;
}

at::Tensor upfirdn2d(const at::Tensor& x_in, const at::Tensor& f, int64_t upx, int64_t upy, int64_t downx,
                     int64_t downy, int64_t px0, int64_t px1, int64_t py0, int64_t py1, bool flip_filter,
                     double gain) {
  check_device(x_in, "x", x_in);
  check_device(f, "f", x_in);
  TORCH_CHECK(x_in.dim() == 4, "upfirdn2d: x must be [N, C, H, W], got shape ", x_in.sizes());
  TORCH_CHECK(x_in.is_floating_point(), "upfirdn2d: x must be a floating-point tensor, got ", x_in.scalar_type());
  TORCH_CHECK(f.scalar_type() == at::kFloat && (f.dim() == 1 || f.dim() == 2) && f.numel() > 0,
              "upfirdn2d: f must be a non-empty 1D or 2D float32 tensor, got ", f.scalar_type(), " ", f.sizes());
  TORCH_CHECK(upx >= 1 && upy >= 1 && downx >= 1 && downy >= 1, "upfirdn2d: up/down factors must be >= 1");
  at::Tensor x = x_in;
  if (!x.is_contiguous() && !x.is_contiguous(at::MemoryFormat::ChannelsLast)) x = x.contiguous();

  // As the reference: scale in float32 by gain (2D) or sqrt(gain) per axis (separable), then flip the
  // convolution kernel into the correlation kernel the passes apply.
  at::Tensor fs = f * std::pow(gain, f.dim() / 2.0);
  if (!flip_filter) fs = fs.flip(f.dim() == 2 ? std::vector<int64_t>{0, 1} : std::vector<int64_t>{0});
  if (f.dim() == 2) {
    return upfirdn2d_pass(x, fs.contiguous(), upx, upy, downx, downy, px0, px1, py0, py1);
  }
  const int64_t taps = fs.size(0);
  const at::Tensor t = upfirdn2d_pass(x, fs.reshape({1, taps}).contiguous(), upx, 1, downx, 1, px0, px1, 0, 0);
  return upfirdn2d_pass(t, fs.reshape({taps, 1}).contiguous(), 1, upy, 1, downy, 0, 0, py0, py1);
}

}  // namespace
}  // namespace tryon

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Compiled kernels of tryon.ops (see tryon/ops/_fused.py for the autograd wrappers).";
  m.def("bias_act", &tryon::bias_act,
        "y = clamp(act(x + b) * gain) (order 0), or g1 times its first derivative (order 1), or g1 * g2 "
        "times its second derivative (order 2), elementwise.",
        py::arg("x"), py::arg("b"), py::arg("g1"), py::arg("g2"), py::arg("dim"), py::arg("act"), py::arg("order"),
        py::arg("alpha"), py::arg("gain"), py::arg("clamp"));
  m.def("upfirdn2d", &tryon::upfirdn2d, "Upsample, pad, FIR-filter and downsample a batch of 2D images.",
        py::arg("x"), py::arg("f"), py::arg("upx"), py::arg("upy"), py::arg("downx"), py::arg("downy"),
        py::arg("px0"), py::arg("px1"), py::arg("py0"), py::arg("py1"), py::arg("flip_filter"), py::arg("gain"));
  m.attr("build") = tryon::kBuild;
}
