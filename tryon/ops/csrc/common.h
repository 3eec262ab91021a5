// Math shared by the C++ (CPU) and CUDA kernels of tryon.ops. Header-only, no torch includes, so the
// CPU and GPU code compute exactly the same formulas.
#pragma once

#include <math.h>

#if defined(__CUDACC__)
#define TRYON_HD __host__ __device__ __forceinline__
#else
#define TRYON_HD inline
#endif

namespace tryon {

// Precision-matched wrappers: the float overloads call the float functions (vectorisable on the CPU,
// fast on the GPU), the double ones the double functions.
TRYON_HD float t_exp(float v) { return expf(v); }
TRYON_HD double t_exp(double v) { return exp(v); }
TRYON_HD float t_expm1(float v) { return expm1f(v); }
TRYON_HD double t_expm1(double v) { return expm1(v); }
TRYON_HD float t_log1p(float v) { return log1pf(v); }
TRYON_HD double t_log1p(double v) { return log1p(v); }
TRYON_HD float t_tanh(float v) { return tanhf(v); }
TRYON_HD double t_tanh(double v) { return tanh(v); }

// ---------------------------------------------------------------------------------------------------
// bias_act

// Activation codes: the `cuda_idx` of tryon.ops.bias_act.activation_funcs.
enum Act : int {
  kLinear = 1,
  kRelu = 2,
  kLrelu = 3,
  kTanh = 4,
  kSigmoid = 5,
  kElu = 6,
  kSelu = 7,
  kSoftplus = 8,
  kSwish = 9,
};

constexpr double kSeluScale = 1.0507009873554804934193349852946;
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSoftplusThreshold = 20.0;  // torch.nn.functional.softplus' default.

template <typename T>
TRYON_HD T sigmoid(T z) {
  return T(1) / (T(1) + t_exp(-z));
}

// The K-th derivative (K = 0, 1, 2) of activation A at z. Branches follow PyTorch's own kernels at
// the kinks (e.g. relu'(0) = 0, lrelu'(0) = alpha, elu uses its exponential branch at z <= 0).
template <int A, int K, typename T>
TRYON_HD T act_derivative(T z, T alpha) {
  if constexpr (A == kLinear) {
    return K == 0 ? z : (K == 1 ? T(1) : T(0));
  } else if constexpr (A == kRelu) {
    if constexpr (K == 0) return z < T(0) ? T(0) : z;  // Keeps NaN, like torch.relu.
    else if constexpr (K == 1) return z <= T(0) ? T(0) : T(1);
    else return T(0);
  } else if constexpr (A == kLrelu) {
    if constexpr (K == 0) return z > T(0) ? z : z * alpha;
    else if constexpr (K == 1) return z > T(0) ? T(1) : alpha;
    else return T(0);
  } else if constexpr (A == kTanh) {
    T y = t_tanh(z);
    if constexpr (K == 0) return y;
    else if constexpr (K == 1) return T(1) - y * y;
    else return T(-2) * y * (T(1) - y * y);
  } else if constexpr (A == kSigmoid) {
    T s = sigmoid(z);
    if constexpr (K == 0) return s;
    else if constexpr (K == 1) return s * (T(1) - s);
    else return s * (T(1) - s) * (T(1) - T(2) * s);
  } else if constexpr (A == kElu) {
    if constexpr (K == 0) return z <= T(0) ? t_expm1(z) : z;
    else if constexpr (K == 1) return z <= T(0) ? t_exp(z) : T(1);
    else return z <= T(0) ? t_exp(z) : T(0);
  } else if constexpr (A == kSelu) {
    const T scale = T(kSeluScale), sa = T(kSeluScale * kSeluAlpha);
    if constexpr (K == 0) return z <= T(0) ? sa * t_expm1(z) : scale * z;
    else if constexpr (K == 1) return z <= T(0) ? sa * t_exp(z) : scale;
    else return z <= T(0) ? sa * t_exp(z) : T(0);
  } else if constexpr (A == kSoftplus) {
    const bool linear = z > T(kSoftplusThreshold);
    if constexpr (K == 0) return linear ? z : t_log1p(t_exp(z));
    T s = sigmoid(z);
    if constexpr (K == 1) return linear ? T(1) : s;
    else return linear ? T(0) : s * (T(1) - s);
  } else {
    static_assert(A == kSwish, "unknown activation");
    T s = sigmoid(z);
    if constexpr (K == 0) return s * z;
    else if constexpr (K == 1) return s * (T(1) + z * (T(1) - s));
    else return s * (T(1) - s) * (T(2) + z * (T(1) - T(2) * s));
  }
}

// Per-call constants of bias_act, in the kernel's math type T.
template <typename T>
struct BiasActConsts {
  T alpha;
  T gain;
  T clamp;         // +inf when there is no clamping.
  bool has_clamp;  // Whether the gradient is masked where the output was clamped.
};

// One element of bias_act, ORDER 0: clamp(act(z) * gain); ORDER 1: g1 * d/dz of that;
// ORDER 2: g1 * g2 * d2/dz2 of that. The clamp's derivative is 1 where |act(z) * gain| <= clamp,
// 0 elsewhere (as torch.clamp's backward: NaN gets 0).
template <int A, int ORDER, typename T>
TRYON_HD T bias_act_element(T z, T g1, T g2, const BiasActConsts<T>& k) {
  if constexpr (ORDER == 0) {
    T v = act_derivative<A, 0>(z, k.alpha) * k.gain;
    return v < -k.clamp ? -k.clamp : (v > k.clamp ? k.clamp : v);
  } else {
    T g = ORDER == 1 ? g1 : g1 * g2;
    T d = act_derivative<A, ORDER>(z, k.alpha) * k.gain;
    if (k.has_clamp) {
      T v = act_derivative<A, 0>(z, k.alpha) * k.gain;
      if (!(v >= -k.clamp && v <= k.clamp)) return T(0);
    }
    return g * d;
  }
}

// ---------------------------------------------------------------------------------------------------
// upfirdn2d

// The input samples and filter taps that one output sample reads along one axis.
struct AxisTaps {
  int in0;   // First input index.
  int tap0;  // Its filter tap; tap t reads input in0 + t, filter tap tap0 + t * up.
  int count; // Number of taps (0 when the output only sees padding).
};

TRYON_HD int floor_mod(int a, int m) {
  int r = a % m;
  return r < 0 ? r + m : r;
}

// Output `o` covers positions o * down + j (j in [0, flen)) of the upsampled, padded signal; position
// u holds input (u - pad0) / up when that divides exactly and lies in [0, insize), zero otherwise.
TRYON_HD AxisTaps axis_taps(int o, int up, int down, int pad0, int flen, int insize) {
  const int u0 = o * down - pad0;     // Upsampled coordinate of tap 0.
  int tap = floor_mod(-u0, up);        // First tap that lands on an input sample.
  int in = (u0 + tap) / up;            // Exact division.
  if (in < 0) {
    tap += -in * up;
    in = 0;
  }
  int count = 0;
  if (tap < flen && in < insize) {
    count = (flen - 1 - tap) / up + 1;
    if (count > insize - in) count = insize - in;
  }
  return AxisTaps{in, tap, count};
}

}  // namespace tryon
