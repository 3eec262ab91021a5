"""Conditional StyleGAN2: mapping, synthesis, generator and discriminator.

Parameter names, buffers, constructor keyword arguments and math follow NVlabs'
stylegan2-ada-pytorch (training/networks.py), so that its trained weights load with
`load_state_dict(strict=True)` and give the same images. The layers build on each other in one
direction: FC layer -> mapping; modulated conv layer -> block -> synthesis -> generator;
conv layer -> block -> epilogue -> discriminator.

Conventions: images are [N, C, H, W] in [-1, 1]; latents `z` [N, z_dim]; labels `c` [N, c_dim]
(float vectors, e.g. concatenated one-hots); intermediate latents `ws` [N, num_ws, w_dim] (W+).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from tryon.nn.layer_groups import layer_groups
from tryon.nn.misc import assert_shape, normalize_2nd_moment
from tryon.ops import bias_act, conv2d_resample, setup_filter, upsample2d
from tryon.ops.activations import activation_funcs
from tryon.ops.upfirdn2d import downsample2d

NOISE_MODES = ("random", "const", "none")
_DEFAULT_FILTER = (1, 3, 3, 1)

# ----------------------------------------------------------------------------------------------------
# Functional modulated convolution.


def modulated_conv2d(
    x: torch.Tensor,                        # Input activations: [N, in_channels, H, W].
    weight: torch.Tensor,                   # Weight: [out_channels, in_channels, kh, kw].
    styles: torch.Tensor,                   # Per-sample input channel scales: [N, in_channels].
    noise: torch.Tensor | None = None,      # Noise added after the conv: broadcastable to the output.
    up: int = 1,                            # Integer upsampling factor.
    down: int = 1,                          # Integer downsampling factor.
    padding: int = 0,                       # Padding with respect to the upsampled image.
    resample_filter: torch.Tensor | None = None,  # Low-pass filter for resampling (`setup_filter`).
    demodulate: bool = True,                # Normalise each output channel to unit expected variance.
    flip_weight: bool = True,               # False = convolution, True = correlation.
    fused_modconv: bool = True,             # One grouped conv with per-sample weights (vs scaling x).
) -> torch.Tensor:
    """StyleGAN2 modulated (and demodulated) convolution. Returns [N, out_channels, H', W']."""
    batch_size = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    assert_shape(weight, [out_channels, in_channels, kh, kw])
    assert_shape(x, [None, in_channels, None, None])
    assert_shape(styles, [batch_size, in_channels])

    # Keep fp16 activations in range: pre-normalise the weight and styles (demodulation undoes it).
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (
            1 / np.sqrt(in_channels * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True)
        )
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    # Per-sample weights (fused only) and demodulation coefficients. sum_{i,k} (weight[o,i,k] * s[n,i])^2
    # = sum_i s[n,i]^2 * sum_k weight[o,i,k]^2: a [N, I] x [I, O] product instead of the [N, O, I, k, k]
    # per-sample weights (the same value, 9x less work and memory for 3x3 kernels, forward and backward).
    w = None
    dcoefs = None
    if fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(batch_size, 1, -1, 1, 1)  # [NOIkk]
    if demodulate:
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()  # [NO]
    if demodulate and fused_modconv:
        assert w is not None and dcoefs is not None
        w = w * dcoefs.reshape(batch_size, -1, 1, 1, 1)  # [NOIkk]

    # Unfused: scale the activations before and after a shared conv.
    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch_size, -1, 1, 1)
        x = conv2d_resample(
            x, weight.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding, flip_weight=flip_weight
        )
        if demodulate and noise is not None:
            assert dcoefs is not None
            x = torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1))
        elif demodulate:
            assert dcoefs is not None
            x = x * dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1)
        elif noise is not None:
            x = x.add_(noise.to(x.dtype))
        return x

    # Fused: one grouped conv with a weight per sample.
    assert w is not None
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw)
    x = conv2d_resample(
        x, w.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding, groups=batch_size,
        flip_weight=flip_weight,
    )
    x = x.reshape(batch_size, -1, *x.shape[2:])
    if noise is not None:
        x = x.add_(noise)
    return x


# ----------------------------------------------------------------------------------------------------
# Mixed precision.


def block_dtype(
    use_fp16: bool,                         # The block is one of the `num_fp16_res` highest resolutions.
    device: torch.device,                   # Where it runs.
    force_fp32: bool = False,               # Run it in fp32 regardless.
    half_dtype: torch.dtype | None = None,  # Its reduced precision; None = fp16 on CUDA, fp32 elsewhere.
) -> torch.dtype:
    """The dtype a synthesis or discriminator block computes in.

    As NVlabs, the `use_fp16` blocks run in fp16 on CUDA by default. `half_dtype=torch.bfloat16` runs
    them in bf16 on any device: on CPUs with bf16 instructions (avx512_bf16, AMX) that doubles the
    convolutions' speed, and bf16 has fp32's range, so no extra scaling is needed. Whatever the blocks
    compute in, the mapping network, the styles, the demodulation coefficients, the ToRGB image sum
    and the discriminator's epilogue stay fp32.
    """
    if not use_fp16 or force_fp32:
        return torch.float32
    if half_dtype is not None:
        return half_dtype
    return torch.float16 if device.type == "cuda" else torch.float32


# ----------------------------------------------------------------------------------------------------
# Basic layers.


class FullyConnectedLayer(torch.nn.Module):
    """Dense layer with equalised learning rate: weights stored unit-variance, scaled in forward."""

    def __init__(
        self,
        in_features: int,           # Number of input features.
        out_features: int,          # Number of output features.
        bias: bool = True,          # Apply an additive bias before the activation?
        activation: str = "linear", # Activation function name (see tryon.ops.activation_funcs).
        lr_multiplier: float = 1,   # Learning rate multiplier (0.01 in the mapping networks).
        bias_init: float = 0,       # Initial value of the bias.
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = torch.nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / np.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert_shape(x, [None, self.in_features])
        w = self.weight.to(x.dtype) * self.weight_gain
        b: torch.Tensor | None = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class Conv2dLayer(torch.nn.Module):
    """Conv layer with equalised learning rate, optional FIR up/downsampling, bias, act and clamp."""

    resample_filter: torch.Tensor

    def __init__(
        self,
        in_channels: int,                   # Number of input channels.
        out_channels: int,                  # Number of output channels.
        kernel_size: int,                   # Width and height of the convolution kernel.
        bias: bool = True,                  # Apply an additive bias before the activation?
        activation: str = "linear",         # Activation function name.
        up: int = 1,                        # Integer upsampling factor.
        down: int = 1,                      # Integer downsampling factor.
        resample_filter: Sequence[float] = _DEFAULT_FILTER,  # Low-pass filter taps for resampling.
        conv_clamp: float | None = None,    # Clamp the output to +-X, None = no clamping.
        channels_last: bool = False,        # Store the weight in channels_last memory format?
        trainable: bool = True,             # Parameters (True) or frozen buffers (False)?
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / np.sqrt(in_channels * (kernel_size**2))
        self.act_gain = activation_funcs[activation].def_gain

        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(
            memory_format=memory_format
        )
        bias_t = torch.zeros([out_channels]) if bias else None
        self.weight: torch.Tensor
        self.bias: torch.Tensor | None
        if trainable:
            self.weight = torch.nn.Parameter(weight)
            self.bias = torch.nn.Parameter(bias_t) if bias_t is not None else None
        else:
            self.register_buffer("weight", weight)
            if bias_t is not None:
                self.register_buffer("bias", bias_t)
            else:
                self.bias = None

    def forward(self, x: torch.Tensor, gain: float = 1) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        flip_weight = self.up == 1  # Slightly faster.
        x = conv2d_resample(
            x, w.to(x.dtype), f=self.resample_filter, up=self.up, down=self.down, padding=self.padding,
            flip_weight=flip_weight,
        )
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=act_gain, clamp=act_clamp)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
            f"kernel_size={self.kernel_size}, activation={self.activation}, up={self.up}, down={self.down}"
        )


# ----------------------------------------------------------------------------------------------------
# Mapping network.


class MappingNetwork(torch.nn.Module):
    """z (and label c) -> w, broadcast to `num_ws` copies; tracks the running average `w_avg`."""

    w_avg: torch.Tensor

    def __init__(
        self,
        z_dim: int,                             # Input latent (Z) dimensionality, 0 = no latent.
        c_dim: int,                             # Conditioning label (C) dimensionality, 0 = no label.
        w_dim: int,                             # Intermediate latent (W) dimensionality.
        num_ws: int | None,                     # Number of ws to output, None = do not broadcast.
        num_layers: int = 8,                    # Number of mapping layers.
        embed_features: int | None = None,      # Label embedding dimensionality, None = same as w_dim.
        layer_features: int | None = None,      # Hidden layer width, None = same as w_dim.
        activation: str = "lrelu",              # Activation function name.
        lr_multiplier: float = 0.01,            # Learning rate multiplier of the mapping layers.
        w_avg_beta: float | None = 0.995,       # Decay of the w_avg running average, None = no tracking.
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta

        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features_list = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]

        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(
                features_list[idx], features_list[idx + 1], activation=activation, lr_multiplier=lr_multiplier
            )
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(
        self,
        z: torch.Tensor | None,                 # [N, z_dim], or None when z_dim == 0.
        c: torch.Tensor | None,                 # [N, c_dim], or None when c_dim == 0.
        truncation_psi: float = 1,              # Pull towards w_avg: 1 = none, 0 = all the way.
        truncation_cutoff: int | None = None,   # Truncate only the first `cutoff` ws, None = all.
        skip_w_avg_update: bool = False,        # Do not update w_avg even in training mode.
    ) -> torch.Tensor:
        """Returns ws [N, num_ws, w_dim] (or w [N, w_dim] when num_ws is None)."""
        x = None
        if self.z_dim > 0:
            if z is None:
                raise ValueError("this mapping network needs a latent z")
            assert_shape(z, [None, self.z_dim])
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"this network is conditional: it needs a label c of size {self.c_dim}")
            assert_shape(c, [None, self.c_dim])
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y
        if x is None:
            raise ValueError("mapping network has neither z nor c inputs")

        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)

        if self.w_avg_beta is not None and self.training and not skip_w_avg_update:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])

        if truncation_psi != 1:
            if self.w_avg_beta is None:
                raise ValueError("truncation needs a mapping network that tracks w_avg")
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"


# ----------------------------------------------------------------------------------------------------
# Synthesis network.


class SynthesisLayer(torch.nn.Module):
    """Modulated 3x3 conv (optionally 2x upsampling) + noise + bias + activation."""

    resample_filter: torch.Tensor
    noise_const: torch.Tensor

    def __init__(
        self,
        in_channels: int,                   # Number of input channels.
        out_channels: int,                  # Number of output channels.
        w_dim: int,                         # Intermediate latent (W) dimensionality.
        resolution: int,                    # Resolution of this layer's output.
        kernel_size: int = 3,               # Convolution kernel size.
        up: int = 1,                        # Integer upsampling factor.
        use_noise: bool = True,             # Enable noise input?
        activation: str = "lrelu",          # Activation function name.
        resample_filter: Sequence[float] = _DEFAULT_FILTER,  # Low-pass filter taps for upsampling.
        conv_clamp: float | None = None,    # Clamp the output to +-X, None = no clamping.
        channels_last: bool = False,        # Store the weight in channels_last memory format?
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = activation_funcs[activation].def_gain

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = torch.nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        )
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    def forward(
        self,
        x: torch.Tensor,                    # [N, in_channels, resolution / up, resolution / up].
        w: torch.Tensor,                    # [N, w_dim].
        noise_mode: str = "random",         # "random", "const" (the stored noise_const) or "none".
        fused_modconv: bool = True,         # See `modulated_conv2d`.
        gain: float = 1,                    # Extra gain on the output (and on the clamp).
        noise: torch.Tensor | None = None,  # Explicit noise [N or 1, 1, res, res]; overrides noise_mode.
    ) -> torch.Tensor:
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        in_resolution = self.resolution // self.up
        assert_shape(x, [None, self.in_channels, in_resolution, in_resolution])
        styles = self.affine(w)

        noise_term = None
        if self.use_noise:
            if noise is not None:
                noise_term = noise.to(x.dtype) * self.noise_strength
            elif noise_mode == "random":
                noise_term = (
                    torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device)
                    * self.noise_strength
                )
            elif noise_mode == "const":
                noise_term = self.noise_const * self.noise_strength

        flip_weight = self.up == 1  # Slightly faster.
        x = modulated_conv2d(
            x, self.weight, styles, noise=noise_term, up=self.up, padding=self.padding,
            resample_filter=self.resample_filter, flip_weight=flip_weight, fused_modconv=fused_modconv,
        )
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=act_gain, clamp=act_clamp)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, w_dim={self.w_dim}, "
            f"resolution={self.resolution}, up={self.up}, activation={self.activation}"
        )


class ToRGBLayer(torch.nn.Module):
    """Modulated 1x1 conv to image channels (no demodulation, no noise)."""

    def __init__(
        self,
        in_channels: int,                   # Number of input channels.
        out_channels: int,                  # Number of image channels.
        w_dim: int,                         # Intermediate latent (W) dimensionality.
        kernel_size: int = 1,               # Convolution kernel size.
        conv_clamp: float | None = None,    # Clamp the output to +-X, None = no clamping.
        channels_last: bool = False,        # Store the weight in channels_last memory format?
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = torch.nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        )
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / np.sqrt(in_channels * (kernel_size**2))

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, out_channels={self.out_channels}, w_dim={self.w_dim}"


class SynthesisBlock(torch.nn.Module):
    """One resolution of the synthesis network: [conv0 (up 2x)], conv1, ToRGB (+ resnet skip)."""

    resample_filter: torch.Tensor

    def __init__(
        self,
        in_channels: int,                   # Number of input channels, 0 = first block (learned const).
        out_channels: int,                  # Number of output channels.
        w_dim: int,                         # Intermediate latent (W) dimensionality.
        resolution: int,                    # Resolution of this block.
        img_channels: int,                  # Number of output image channels.
        is_last: bool,                      # Is this the last block?
        architecture: str = "skip",         # "orig", "skip" or "resnet".
        resample_filter: Sequence[float] = _DEFAULT_FILTER,  # Low-pass filter taps for resampling.
        conv_clamp: float | None = None,    # Clamp the conv outputs to +-X, None = no clamping.
        use_fp16: bool = False,             # Run this block in fp16 (on CUDA)?
        fp16_channels_last: bool = False,   # Use channels_last memory format with fp16?
        **layer_kwargs: Any,                # Arguments for SynthesisLayer.
    ) -> None:
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"architecture must be 'orig', 'skip' or 'resnet', got {architecture!r}")
        super().__init__()
        self.in_channels = in_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.is_last = is_last
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.num_conv = 0
        self.num_torgb = 0

        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        if in_channels != 0:
            self.conv0 = SynthesisLayer(
                in_channels, out_channels, w_dim=w_dim, resolution=resolution, up=2,
                resample_filter=resample_filter, conv_clamp=conv_clamp, channels_last=self.channels_last,
                **layer_kwargs,
            )
            self.num_conv += 1
        self.conv1 = SynthesisLayer(
            out_channels, out_channels, w_dim=w_dim, resolution=resolution, conv_clamp=conv_clamp,
            channels_last=self.channels_last, **layer_kwargs,
        )
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(
                out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp, channels_last=self.channels_last
            )
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(
                in_channels, out_channels, kernel_size=1, bias=False, up=2, resample_filter=resample_filter,
                channels_last=self.channels_last,
            )

    def forward(
        self,
        x: torch.Tensor | None,             # Features from the previous block, None for the first.
        img: torch.Tensor | None,           # Image so far (skip architecture), None for the first.
        ws: torch.Tensor,                   # [N, num_conv + num_torgb, w_dim].
        force_fp32: bool = False,           # Ignore use_fp16.
        half_dtype: torch.dtype | None = None,  # Dtype of a use_fp16 block, None = see `block_dtype`.
        fused_modconv: bool | None = None,  # None = fused in eval mode (fp32 or batch 1).
        noise: Sequence[torch.Tensor | None] | None = None,  # Explicit noise for conv0/conv1.
        **layer_kwargs: Any,                # noise_mode etc. for SynthesisLayer.
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        assert_shape(ws, [None, self.num_conv + self.num_torgb, self.w_dim])
        w_iter = iter(ws.unbind(dim=1))
        on_cuda = ws.device.type == "cuda"
        dtype = block_dtype(self.use_fp16, ws.device, force_fp32, half_dtype)
        memory_format = torch.channels_last if self.channels_last and not force_fp32 else torch.contiguous_format
        if fused_modconv is None:
            # As NVlabs on CUDA. On CPU one grouped conv per sample loses to a shared conv once the
            # batch is > 1 (benchmarks/bench_generator.py --modconv); the two differ by rounding only.
            batch = int(ws.shape[0])
            fused_modconv = (not self.training) and (dtype == torch.float32 or batch == 1)
            fused_modconv = fused_modconv and (on_cuda or batch == 1)
        noise_iter = iter(noise if noise is not None else [None] * self.num_conv)

        # Input.
        if self.in_channels == 0:
            x = self.const.to(dtype=dtype, memory_format=memory_format)
            x = x.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
        else:
            assert x is not None
            assert_shape(x, [None, self.in_channels, self.resolution // 2, self.resolution // 2])
            x = x.to(dtype=dtype, memory_format=memory_format)

        # Main layers.
        if self.in_channels == 0:
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, noise=next(noise_iter), **layer_kwargs)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, noise=next(noise_iter), **layer_kwargs)
            x = self.conv1(
                x, next(w_iter), fused_modconv=fused_modconv, gain=np.sqrt(0.5), noise=next(noise_iter),
                **layer_kwargs,
            )
            x = y.add_(x)
        else:
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, noise=next(noise_iter), **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, noise=next(noise_iter), **layer_kwargs)

        # ToRGB.
        if img is not None:
            assert_shape(img, [None, self.img_channels, self.resolution // 2, self.resolution // 2])
            img = upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)
            y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            img = img.add_(y) if img is not None else y
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}, use_fp16={self.use_fp16}"


class SynthesisNetwork(torch.nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, img_channels, img_resolution, img_resolution]."""

    def __init__(
        self,
        w_dim: int,                         # Intermediate latent (W) dimensionality.
        img_resolution: int,                # Output image resolution (a power of 2, 4..1024).
        img_channels: int,                  # Number of color channels.
        channel_base: int = 32768,          # Overall multiplier for the number of channels.
        channel_max: int = 512,             # Maximum number of channels in any layer.
        num_fp16_res: int = 0,              # Use fp16 (on CUDA) for the N highest resolutions.
        **block_kwargs: Any,                # Arguments for SynthesisBlock.
    ) -> None:
        if img_resolution < 4 or img_resolution & (img_resolution - 1) != 0:
            raise ValueError(f"img_resolution must be a power of 2 and >= 4, got {img_resolution}")
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.img_channels = img_channels
        self.block_resolutions = [2**i for i in range(2, self.img_resolution_log2 + 1)]
        channels_dict = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)

        self.num_ws = 0
        for res in self.block_resolutions:
            in_channels = channels_dict[res // 2] if res > 4 else 0
            out_channels = channels_dict[res]
            use_fp16 = res >= fp16_resolution
            is_last = res == self.img_resolution
            block = SynthesisBlock(
                in_channels, out_channels, w_dim=w_dim, resolution=res, img_channels=img_channels,
                is_last=is_last, use_fp16=use_fp16, **block_kwargs,
            )
            self.num_ws += block.num_conv
            if is_last:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)

    def block_ws_ranges(self) -> dict[int, tuple[int, int]]:
        """{resolution: (first ws index, count)} — a block's ToRGB shares its w with the next conv0."""
        ranges = {}
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            ranges[res] = (w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
        return ranges

    def layer_groups(self) -> dict[str, tuple[int, int]]:
        """{"coarse" | "middle" | "fine": (start, stop)} ws index ranges (tryon.nn.layer_groups)."""
        return layer_groups(self.num_ws)

    def num_noise_layers(self) -> int:
        """Number of noise inputs (one per SynthesisLayer), in the order of `noise_shapes`."""
        return len(self.noise_shapes())

    def noise_shapes(self) -> list[tuple[int, int]]:
        """(res, res) of every noise input, from the lowest resolution up (conv0 before conv1)."""
        shapes = []
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            shapes += [(res, res)] * block.num_conv
        return shapes

    def forward(
        self,
        ws: torch.Tensor,                   # [N, num_ws, w_dim] (W+).
        noise: Sequence[torch.Tensor | None] | None = None,  # One per noise input (see noise_shapes).
        **block_kwargs: Any,                # noise_mode, fused_modconv, force_fp32.
    ) -> torch.Tensor:
        assert_shape(ws, [None, self.num_ws, self.w_dim])
        ws = ws.to(torch.float32)
        if noise is not None and len(noise) != self.num_noise_layers():
            raise ValueError(f"expected {self.num_noise_layers()} noise tensors, got {len(noise)}")
        x = img = None
        n_idx = 0
        for res, (w_start, w_count) in self.block_ws_ranges().items():
            block = getattr(self, f"b{res}")
            block_noise = None
            if noise is not None:
                block_noise = noise[n_idx : n_idx + block.num_conv]
            n_idx += block.num_conv
            x, img = block(x, img, ws.narrow(1, w_start, w_count), noise=block_noise, **block_kwargs)
        assert img is not None
        return img

    def extra_repr(self) -> str:
        return (
            f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}, "
            f"img_channels={self.img_channels}"
        )


class Generator(torch.nn.Module):
    """Conditional StyleGAN2 generator: `G(z, c)` = `G.synthesis(G.mapping(z, c))`."""

    def __init__(
        self,
        z_dim: int,                         # Input latent (Z) dimensionality.
        c_dim: int,                         # Conditioning label (C) dimensionality, 0 = unconditional.
        w_dim: int,                         # Intermediate latent (W) dimensionality.
        img_resolution: int,                # Output resolution.
        img_channels: int,                  # Number of output color channels.
        mapping_kwargs: dict[str, Any] | None = None,    # Arguments for MappingNetwork.
        synthesis_kwargs: dict[str, Any] | None = None,  # Arguments for SynthesisNetwork.
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = SynthesisNetwork(
            w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels, **(synthesis_kwargs or {})
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **(mapping_kwargs or {})
        )

    def forward(
        self,
        z: torch.Tensor,                        # [N, z_dim].
        c: torch.Tensor | None,                 # [N, c_dim], None when unconditional.
        truncation_psi: float = 1,              # Truncation towards w_avg (1 = none).
        truncation_cutoff: int | None = None,   # Truncate only the first ws.
        **synthesis_kwargs: Any,                # noise_mode, noise, fused_modconv, force_fp32.
    ) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, **synthesis_kwargs)

    def extra_repr(self) -> str:
        return (
            f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}, "
            f"img_resolution={self.img_resolution}"
        )


# ----------------------------------------------------------------------------------------------------
# Discriminator.


class DiscriminatorBlock(torch.nn.Module):
    """One resolution of the discriminator: [fromrgb], conv0, conv1 (down 2x) (+ resnet skip)."""

    resample_filter: torch.Tensor

    def __init__(
        self,
        in_channels: int,                   # Number of input channels, 0 = first block.
        tmp_channels: int,                  # Number of intermediate channels.
        out_channels: int,                  # Number of output channels.
        resolution: int,                    # Resolution of this block.
        img_channels: int,                  # Number of input color channels.
        first_layer_idx: int,               # Index of the first layer (for freeze_layers).
        architecture: str = "resnet",       # "orig", "skip" or "resnet".
        activation: str = "lrelu",          # Activation function name.
        resample_filter: Sequence[float] = _DEFAULT_FILTER,  # Low-pass filter taps for resampling.
        conv_clamp: float | None = None,    # Clamp the conv outputs to +-X, None = no clamping.
        use_fp16: bool = False,             # Run this block in fp16 (on CUDA)?
        fp16_channels_last: bool = False,   # Use channels_last memory format with fp16?
        freeze_layers: int = 0,             # Freeze-D: number of layers to freeze.
    ) -> None:
        if in_channels not in (0, tmp_channels):
            raise ValueError("in_channels must be 0 or tmp_channels")
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"architecture must be 'orig', 'skip' or 'resnet', got {architecture!r}")
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.first_layer_idx = first_layer_idx
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer("resample_filter", setup_filter(resample_filter))

        self.num_layers = 0

        def next_trainable() -> bool:
            layer_idx = self.first_layer_idx + self.num_layers
            self.num_layers += 1
            return layer_idx >= freeze_layers

        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2dLayer(
                img_channels, tmp_channels, kernel_size=1, activation=activation, trainable=next_trainable(),
                conv_clamp=conv_clamp, channels_last=self.channels_last,
            )
        self.conv0 = Conv2dLayer(
            tmp_channels, tmp_channels, kernel_size=3, activation=activation, trainable=next_trainable(),
            conv_clamp=conv_clamp, channels_last=self.channels_last,
        )
        self.conv1 = Conv2dLayer(
            tmp_channels, out_channels, kernel_size=3, activation=activation, down=2,
            trainable=next_trainable(), resample_filter=resample_filter, conv_clamp=conv_clamp,
            channels_last=self.channels_last,
        )
        if architecture == "resnet":
            self.skip = Conv2dLayer(
                tmp_channels, out_channels, kernel_size=1, bias=False, down=2, trainable=next_trainable(),
                resample_filter=resample_filter, channels_last=self.channels_last,
            )

    def forward(
        self,
        x: torch.Tensor | None,             # Features from the previous block, None for the first.
        img: torch.Tensor | None,           # Image at this resolution (first block / skip), else None.
        force_fp32: bool = False,           # Ignore use_fp16.
        half_dtype: torch.dtype | None = None,  # Dtype of a use_fp16 block, None = see `block_dtype`.
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        device = (x if x is not None else img).device  # type: ignore[union-attr]
        dtype = block_dtype(self.use_fp16, device, force_fp32, half_dtype)
        memory_format = torch.channels_last if self.channels_last and not force_fp32 else torch.contiguous_format

        # Input.
        if x is not None:
            assert_shape(x, [None, self.in_channels, self.resolution, self.resolution])
            x = x.to(dtype=dtype, memory_format=memory_format)

        # FromRGB.
        if self.in_channels == 0 or self.architecture == "skip":
            assert img is not None
            assert_shape(img, [None, self.img_channels, self.resolution, self.resolution])
            img = img.to(dtype=dtype, memory_format=memory_format)
            y = self.fromrgb(img)
            x = x + y if x is not None else y
            img = downsample2d(img, self.resample_filter) if self.architecture == "skip" else None

        # Main layers.
        assert x is not None
        if self.architecture == "resnet":
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x)
            x = self.conv1(x, gain=np.sqrt(0.5))
            x = y.add_(x)
        else:
            x = self.conv0(x)
            x = self.conv1(x)
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}, use_fp16={self.use_fp16}"


class MinibatchStdLayer(torch.nn.Module):
    """Appends the stddev over groups of samples as extra feature maps (strided groups, as NVlabs)."""

    def __init__(self, group_size: int | None, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, C, H, W = x.shape
        G = min(self.group_size, N) if self.group_size is not None else N
        if N % G != 0:
            raise ValueError(f"batch size {N} must be divisible by the minibatch-stddev group size {G}")
        F = self.num_channels
        c = C // F
        y = x.reshape(G, -1, F, c, H, W)  # [GnFcHW] Split the batch into n groups of G, channels into F.
        y = y - y.mean(dim=0)  # [GnFcHW] Subtract the mean over the group.
        y = y.square().mean(dim=0)  # [nFcHW] Variance over the group.
        y = (y + 1e-8).sqrt()  # [nFcHW] Stddev over the group.
        y = y.mean(dim=[2, 3, 4])  # [nF] Average over channels and pixels.
        y = y.reshape(-1, F, 1, 1)  # [nF11]
        y = y.repeat(G, 1, H, W)  # [NFHW] Replicate over the group and pixels.
        return torch.cat([x, y], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


class DiscriminatorEpilogue(torch.nn.Module):
    """The 4x4 head: [fromrgb], minibatch stddev, conv, fc, out (+ projection onto the label embedding)."""

    def __init__(
        self,
        in_channels: int,                   # Number of input channels.
        cmap_dim: int,                      # Label embedding dimensionality, 0 = unconditional.
        resolution: int,                    # Resolution of this block (4).
        img_channels: int,                  # Number of input color channels.
        architecture: str = "resnet",       # "orig", "skip" or "resnet".
        mbstd_group_size: int | None = 4,   # Group size of the minibatch stddev, None = whole batch.
        mbstd_num_channels: int = 1,        # Number of features for the minibatch stddev, 0 = off.
        activation: str = "lrelu",          # Activation function name.
        conv_clamp: float | None = None,    # Clamp the conv output to +-X, None = no clamping.
    ) -> None:
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"architecture must be 'orig', 'skip' or 'resnet', got {architecture!r}")
        super().__init__()
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.architecture = architecture

        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
        self.mbstd = (
            MinibatchStdLayer(group_size=mbstd_group_size, num_channels=mbstd_num_channels)
            if mbstd_num_channels > 0
            else None
        )
        self.conv = Conv2dLayer(
            in_channels + mbstd_num_channels, in_channels, kernel_size=3, activation=activation,
            conv_clamp=conv_clamp,
        )
        self.fc = FullyConnectedLayer(in_channels * (resolution**2), in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(
        self,
        x: torch.Tensor | None,             # Features [N, in_channels, 4, 4]; None when D is 4x4 only.
        img: torch.Tensor | None,           # Image at 4x4 (skip architecture), else None.
        cmap: torch.Tensor | None,          # Label embedding [N, cmap_dim], None when unconditional.
        force_fp32: bool = False,
    ) -> torch.Tensor:
        if x is not None:
            assert_shape(x, [None, self.in_channels, self.resolution, self.resolution])
            x = x.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        if self.architecture == "skip":
            assert img is not None
            assert_shape(img, [None, self.img_channels, self.resolution, self.resolution])
            y = self.fromrgb(img.to(torch.float32))
            x = x + y if x is not None else y
        assert x is not None
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        x = self.out(x)
        if self.cmap_dim > 0:
            assert cmap is not None
            assert_shape(cmap, [None, self.cmap_dim])
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / np.sqrt(self.cmap_dim))
        assert_shape(x, [None, 1])
        return x

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}"


class Discriminator(torch.nn.Module):
    """Conditional StyleGAN2 discriminator: `D(img, c)` -> logits [N, 1] (projection conditioning)."""

    def __init__(
        self,
        c_dim: int,                         # Conditioning label (C) dimensionality, 0 = unconditional.
        img_resolution: int,                # Input resolution.
        img_channels: int,                  # Number of input color channels.
        architecture: str = "resnet",       # "orig", "skip" or "resnet".
        channel_base: int = 32768,          # Overall multiplier for the number of channels.
        channel_max: int = 512,             # Maximum number of channels in any layer.
        num_fp16_res: int = 0,              # Use fp16 (on CUDA) for the N highest resolutions.
        conv_clamp: float | None = None,    # Clamp the conv outputs to +-X, None = no clamping.
        cmap_dim: int | None = None,        # Label embedding dimensionality, None = channels at 4x4.
        block_kwargs: dict[str, Any] | None = None,     # Arguments for DiscriminatorBlock.
        mapping_kwargs: dict[str, Any] | None = None,   # Arguments for MappingNetwork (label embedding).
        epilogue_kwargs: dict[str, Any] | None = None,  # Arguments for DiscriminatorEpilogue.
    ) -> None:
        if img_resolution < 4 or img_resolution & (img_resolution - 1) != 0:
            raise ValueError(f"img_resolution must be a power of 2 and >= 4, got {img_resolution}")
        super().__init__()
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.img_channels = img_channels
        self.block_resolutions = [2**i for i in range(self.img_resolution_log2, 2, -1)]
        channels_dict = {res: min(channel_base // res, channel_max) for res in [*self.block_resolutions, 4]}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)

        if cmap_dim is None:
            cmap_dim = channels_dict[4]
        if c_dim == 0:
            cmap_dim = 0
        self.cmap_dim = cmap_dim

        common_kwargs = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        cur_layer_idx = 0
        for res in self.block_resolutions:
            in_channels = channels_dict[res] if res < img_resolution else 0
            tmp_channels = channels_dict[res]
            out_channels = channels_dict[res // 2]
            use_fp16 = res >= fp16_resolution
            block = DiscriminatorBlock(
                in_channels, tmp_channels, out_channels, resolution=res, first_layer_idx=cur_layer_idx,
                use_fp16=use_fp16, **(block_kwargs or {}), **common_kwargs,  # type: ignore[arg-type]
            )
            setattr(self, f"b{res}", block)
            cur_layer_idx += block.num_layers
        if c_dim > 0:
            self.mapping = MappingNetwork(
                z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None, **(mapping_kwargs or {})
            )
        if not self.block_resolutions:
            common_kwargs["architecture"] = "skip"  # A 4x4 discriminator reads the image in its epilogue.
        self.b4 = DiscriminatorEpilogue(
            channels_dict[4], cmap_dim=cmap_dim, resolution=4, **(epilogue_kwargs or {}),
            **common_kwargs,  # type: ignore[arg-type]
        )

    def forward(
        self,
        img: torch.Tensor,                  # [N, img_channels, img_resolution, img_resolution].
        c: torch.Tensor | None,             # [N, c_dim], None when unconditional.
        **block_kwargs: Any,                # force_fp32.
    ) -> torch.Tensor:
        assert_shape(img, [None, self.img_channels, self.img_resolution, self.img_resolution])
        x = None
        img_: torch.Tensor | None = img
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            x, img_ = block(x, img_, **block_kwargs)
        cmap = None
        if self.c_dim > 0:
            cmap = self.mapping(None, c)
        return self.b4(x, img_, cmap)

    def features(self, img: torch.Tensor, **block_kwargs: Any) -> list[torch.Tensor]:
        """Activations after each block (highest resolution first): multi-scale features for
        perceptual losses and metrics that work without pretrained weights."""
        assert_shape(img, [None, self.img_channels, self.img_resolution, self.img_resolution])
        feats = []
        x = None
        img_: torch.Tensor | None = img
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            x, img_ = block(x, img_, **block_kwargs)
            feats.append(x)
        return feats

    def extra_repr(self) -> str:
        return f"c_dim={self.c_dim}, img_resolution={self.img_resolution}, img_channels={self.img_channels}"
