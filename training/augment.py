"""Adaptive discriminator augmentation (ADA, Karras et al. 2020, "Training GANs with limited data").

`AugmentPipe` applies a random chain of transforms to a batch of images, each one with probability
`multiplier * p`, in the order of the paper: pixel blitting (x-flip, 90° rotations, integer
translation), general geometric transforms (isotropic scaling, rotation, anisotropic scaling,
fractional translation), colour transforms (brightness, contrast, luma flip, hue rotation,
saturation), image-space filtering, additive noise and cutout. Everything is differentiable with
respect to the images (R1 takes gradients through it), and `p == 0` is the exact identity.

Geometric transforms are one resampling: the inverse 2D transform of every sample is accumulated as
a 3x3 matrix, the image is reflect-padded, upsampled 2x with an orthogonal wavelet low-pass filter
(`tryon.ops.upsample2d`), sampled bilinearly at the transformed grid, and downsampled 2x with the
same filter. Colour transforms are accumulated as one 4x4 matrix on homogeneous RGB.

`AdaController` adjusts `p` so that the discriminator's overfitting heuristic
r_t = E[sign(D(real))] stays near a target (0.6 in the paper).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tryon.ops import downsample2d, setup_filter, upsample2d

# Low-pass filters of wavelet decompositions (Daubechies 'sym2', 'sym6').
_SYM2 = (-0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025)
_SYM6 = (
    0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
    0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
    -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148,
)

_LUMA_AXIS = (1 / math.sqrt(3), 1 / math.sqrt(3), 1 / math.sqrt(3))

# Named pipelines (which probability multipliers are 1), as in the paper's ablations.
AUGPIPES: dict[str, dict[str, float]] = {
    "blit": dict(xflip=1, rotate90=1, xint=1),
    "geom": dict(scale=1, rotate=1, aniso=1, xfrac=1),
    "color": dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1),
    "filter": dict(imgfilter=1),
    "noise": dict(noise=1),
    "cutout": dict(cutout=1),
    "bg": dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1),
    "bgc": dict(
        xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1,
        brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1,
    ),
    "bgcf": dict(
        xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1,
        brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1, imgfilter=1,
    ),
    "bgcfn": dict(
        xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1,
        brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1, imgfilter=1, noise=1,
    ),
    "bgcfnc": dict(
        xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1,
        brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1, imgfilter=1, noise=1, cutout=1,
    ),
}

# ----------------------------------------------------------------------------------------------------
# Batched homogeneous matrices. Each entry is a Python number or a [N] tensor; the result is [N, R, C].


def _matrix(rows: Sequence[Sequence[Any]], batch: int, device: torch.device) -> torch.Tensor:
    entries = []
    for row in rows:
        for e in row:
            entries.append(e if isinstance(e, torch.Tensor) else torch.full([batch], float(e), device=device))
    return torch.stack(entries, dim=-1).reshape(batch, len(rows), len(rows[0]))


def _translate2d(tx: Any, ty: Any, batch: int, device: torch.device) -> torch.Tensor:
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], batch, device)


def _scale2d(sx: Any, sy: Any, batch: int, device: torch.device) -> torch.Tensor:
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], batch, device)


def _rotate2d(theta: torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    c, s = torch.cos(theta), torch.sin(theta)
    return _matrix([[c, -s, 0], [s, c, 0], [0, 0, 1]], batch, device)


def _translate3d(t: torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    return _matrix([[1, 0, 0, t], [0, 1, 0, t], [0, 0, 1, t], [0, 0, 0, 1]], batch, device)


def _scale3d(s: torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    return _matrix([[s, 0, 0, 0], [0, s, 0, 0], [0, 0, s, 0], [0, 0, 0, 1]], batch, device)


def _rotate3d(axis: tuple[float, float, float], theta: torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    """Rotation by `theta` [N] about the unit vector `axis` — Rodrigues' formula."""
    vx, vy, vz = axis
    s, c = torch.sin(theta), torch.cos(theta)
    cc = 1 - c
    return _matrix(
        [
            [vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s, 0],
            [vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s, 0],
            [vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c, 0],
            [0, 0, 0, 1],
        ],
        batch,
        device,
    )


def _imgfilter_bank() -> np.ndarray:
    """[4, taps] filters that split an image into 4 octave bands (lowest first) and sum to identity."""
    lo = np.asarray(_SYM2)
    hi = lo * ((-1) ** np.arange(lo.size))          # H(-z)
    lo2 = np.convolve(lo, lo[::-1]) / 2             # H(z) H(z^-1) / 2
    hi2 = np.convolve(hi, hi[::-1]) / 2             # H(-z) H(-z^-1) / 2
    bank = np.eye(4, 1)                             # Band i starts as a unit impulse in row i only.
    for i in range(1, bank.shape[0]):
        # Upsample every row by 2 (insert zeros), low-pass it, then add the high-pass of band i.
        up = np.zeros([bank.shape[0], bank.shape[1] * 2 - 1])
        up[:, ::2] = bank
        bank = np.stack([np.convolve(row, lo2) for row in up])
        start = (bank.shape[1] - hi2.size) // 2
        bank[i, start : start + hi2.size] += hi2
    return bank


class AugmentPipe(torch.nn.Module):
    """Differentiable augmentation of a batch of images [N, C, H, W] in [-1, 1] (C = 1 or 3).

    Each transform happens with probability `multiplier * p`; multipliers are 0 (off) or 1 (on) in the
    named pipelines (`AUGPIPES`). `p` is a plain float that the training loop (or `AdaController`)
    sets; it is saved with the resume state, not in the state dict.
    """

    Hz_geom: torch.Tensor
    Hz_fbank: torch.Tensor

    def __init__(
        self,
        xflip: float = 0,               # Probability multiplier for x-flip.
        rotate90: float = 0,            # ... for rotations by multiples of 90 degrees.
        xint: float = 0,                # ... for integer translation.
        xint_max: float = 0.125,        # Range of integer translation, relative to the image size.
        scale: float = 0,               # ... for isotropic scaling.
        rotate: float = 0,              # ... for arbitrary rotation.
        aniso: float = 0,               # ... for anisotropic scaling.
        xfrac: float = 0,               # ... for fractional translation.
        scale_std: float = 0.2,         # Log2 standard deviation of isotropic scaling.
        rotate_max: float = 1,          # Range of arbitrary rotation, 1 = full circle.
        aniso_std: float = 0.2,         # Log2 standard deviation of anisotropic scaling.
        xfrac_std: float = 0.125,       # Standard deviation of fractional translation, relative to size.
        brightness: float = 0,          # ... for brightness.
        contrast: float = 0,            # ... for contrast.
        lumaflip: float = 0,            # ... for luma flip.
        hue: float = 0,                 # ... for hue rotation.
        saturation: float = 0,          # ... for saturation.
        brightness_std: float = 0.2,    # Standard deviation of brightness.
        contrast_std: float = 0.5,      # Log2 standard deviation of contrast.
        hue_max: float = 1,             # Range of hue rotation, 1 = full circle.
        saturation_std: float = 1,      # Log2 standard deviation of saturation.
        imgfilter: float = 0,           # ... for image-space filtering.
        imgfilter_bands: Sequence[float] = (1, 1, 1, 1),  # Multipliers of the 4 frequency bands.
        imgfilter_std: float = 1,       # Log2 standard deviation of the band amplification.
        noise: float = 0,               # ... for additive RGB noise.
        cutout: float = 0,              # ... for cutout.
        noise_std: float = 0.1,         # Standard deviation of the additive noise.
        cutout_size: float = 0.5,       # Size of the cutout square, relative to the image size.
    ) -> None:
        super().__init__()
        self.p = 0.0  # Overall probability multiplier; set by the training loop.
        self.xflip, self.rotate90, self.xint, self.xint_max = float(xflip), float(rotate90), float(xint), xint_max
        self.scale, self.rotate, self.aniso, self.xfrac = float(scale), float(rotate), float(aniso), float(xfrac)
        self.scale_std, self.rotate_max, self.aniso_std, self.xfrac_std = scale_std, rotate_max, aniso_std, xfrac_std
        self.brightness, self.contrast, self.lumaflip = float(brightness), float(contrast), float(lumaflip)
        self.hue, self.saturation = float(hue), float(saturation)
        self.brightness_std, self.contrast_std = brightness_std, contrast_std
        self.hue_max, self.saturation_std = hue_max, saturation_std
        self.imgfilter, self.imgfilter_std = float(imgfilter), imgfilter_std
        self.imgfilter_bands = list(imgfilter_bands)
        self.noise, self.cutout, self.noise_std, self.cutout_size = float(noise), float(cutout), noise_std, cutout_size
        if len(self.imgfilter_bands) != 4:
            raise ValueError("imgfilter_bands needs 4 multipliers")
        self.register_buffer("Hz_geom", setup_filter(list(_SYM6)), persistent=False)
        self.register_buffer("Hz_fbank", torch.as_tensor(_imgfilter_bank(), dtype=torch.float32), persistent=False)

    @classmethod
    def from_name(cls, name: str) -> AugmentPipe:
        """One of the named pipelines of `AUGPIPES` ("bgc" is the paper's default)."""
        if name not in AUGPIPES:
            raise ValueError(f"unknown augmentation pipeline {name!r}; choose one of {', '.join(AUGPIPES)}")
        return cls(**AUGPIPES[name])  # type: ignore[arg-type]  # All entries are float multipliers.

    def extra_repr(self) -> str:
        on = [k for k in AUGPIPES["bgcfnc"] if getattr(self, k) > 0]
        return f"p={self.p:.4f}, transforms=[{', '.join(on)}]"

    def _chance(self, multiplier: float, shape: Sequence[int], device: torch.device) -> torch.Tensor:
        """Bool mask [shape]: which samples get a transform with probability multiplier * p."""
        return torch.rand(list(shape), device=device) < multiplier * self.p

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"expected images [N, 1 or 3, H, W], got {list(images.shape)}")
        if self.p <= 0:
            return images
        N, C, H, W = images.shape
        dev = images.device
        images = self._geometric(images)
        images = self._color(images)
        N, C, H, W = images.shape
        if self.imgfilter > 0:
            images = self._filter(images)
        if self.noise > 0:
            sigma = torch.randn([N, 1, 1, 1], device=dev).abs() * self.noise_std
            sigma = torch.where(self._chance(self.noise, [N, 1, 1, 1], dev), sigma, torch.zeros_like(sigma))
            images = images + torch.randn([N, C, H, W], device=dev) * sigma
        if self.cutout > 0:
            size = torch.full([N, 2, 1, 1, 1], self.cutout_size, device=dev)
            size = torch.where(self._chance(self.cutout, [N, 1, 1, 1, 1], dev), size, torch.zeros_like(size))
            center = torch.rand([N, 2, 1, 1, 1], device=dev)
            coord_x = torch.arange(W, device=dev).reshape([1, 1, 1, -1])
            coord_y = torch.arange(H, device=dev).reshape([1, 1, -1, 1])
            outside_x = ((coord_x + 0.5) / W - center[:, 0]).abs() >= size[:, 0] / 2
            outside_y = ((coord_y + 0.5) / H - center[:, 1]).abs() >= size[:, 1] / 2
            images = images * torch.logical_or(outside_x, outside_y).to(images.dtype)
        return images

    # ------------------------------------------------------------------------------------------------

    def _geometric(self, images: torch.Tensor) -> torch.Tensor:
        N, C, H, W = images.shape
        dev = images.device
        enabled = [self.xflip, self.rotate90, self.xint, self.scale, self.rotate, self.aniso, self.xfrac]
        if not any(m > 0 for m in enabled):
            return images
        # G_inv maps output pixel coordinates (origin at the image centre) to input coordinates.
        G_inv = torch.eye(3, device=dev).repeat(N, 1, 1)

        if self.xflip > 0:
            i = torch.floor(torch.rand([N], device=dev) * 2)
            i = torch.where(self._chance(self.xflip, [N], dev), i, torch.zeros_like(i))
            G_inv = G_inv @ _scale2d(1 - 2 * i, 1, N, dev)  # Self-inverse.
        if self.rotate90 > 0:
            i = torch.floor(torch.rand([N], device=dev) * 4)
            i = torch.where(self._chance(self.rotate90, [N], dev), i, torch.zeros_like(i))
            G_inv = G_inv @ _rotate2d(math.pi / 2 * i, N, dev)  # Inverse of a rotation by -90° * i.
        if self.xint > 0:
            t = (torch.rand([N, 2], device=dev) * 2 - 1) * self.xint_max
            t = torch.where(self._chance(self.xint, [N, 1], dev), t, torch.zeros_like(t))
            G_inv = G_inv @ _translate2d(-torch.round(t[:, 0] * W), -torch.round(t[:, 1] * H), N, dev)

        if self.scale > 0:
            s = torch.exp2(torch.randn([N], device=dev) * self.scale_std)
            s = torch.where(self._chance(self.scale, [N], dev), s, torch.ones_like(s))
            G_inv = G_inv @ _scale2d(1 / s, 1 / s, N, dev)
        # Rotation happens before and/or after the anisotropic scaling, each with a probability such
        # that P(either) = rotate * p.
        p_rot = 1 - math.sqrt(min(max(1 - self.rotate * self.p, 0.0), 1.0))
        if self.rotate > 0:
            theta = (torch.rand([N], device=dev) * 2 - 1) * math.pi * self.rotate_max
            theta = torch.where(torch.rand([N], device=dev) < p_rot, theta, torch.zeros_like(theta))
            G_inv = G_inv @ _rotate2d(theta, N, dev)  # Inverse of a rotation by -theta.
        if self.aniso > 0:
            s = torch.exp2(torch.randn([N], device=dev) * self.aniso_std)
            s = torch.where(self._chance(self.aniso, [N], dev), s, torch.ones_like(s))
            G_inv = G_inv @ _scale2d(1 / s, s, N, dev)
        if self.rotate > 0:
            theta = (torch.rand([N], device=dev) * 2 - 1) * math.pi * self.rotate_max
            theta = torch.where(torch.rand([N], device=dev) < p_rot, theta, torch.zeros_like(theta))
            G_inv = G_inv @ _rotate2d(theta, N, dev)
        if self.xfrac > 0:
            t = torch.randn([N, 2], device=dev) * self.xfrac_std
            t = torch.where(self._chance(self.xfrac, [N, 1], dev), t, torch.zeros_like(t))
            G_inv = G_inv @ _translate2d(-t[:, 0] * W, -t[:, 1] * H, N, dev)

        # Reflect-pad enough that the transformed image corners (plus the filter support) are inside.
        cx, cy = (W - 1) / 2, (H - 1) / 2
        corners = torch.tensor([[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]], device=dev)  # [4, 3]
        src = G_inv @ corners.t()  # [N, 3, 4]
        hz_pad = self.Hz_geom.shape[0] // 4
        xy = src[:, :2, :].permute(1, 0, 2).flatten(1)  # [2, N * 4]
        margin = torch.cat([-xy, xy]).max(dim=1).values  # [x0, y0, x1, y1]
        margin = margin + torch.tensor([hz_pad * 2 - cx, hz_pad * 2 - cy] * 2, device=dev)
        margin = margin.clamp(min=0)
        margin = torch.minimum(margin, torch.tensor([W - 1, H - 1] * 2, device=dev, dtype=margin.dtype))
        mx0, my0, mx1, my1 = (int(v) for v in margin.ceil().to(torch.int64).tolist())
        images = F.pad(images, [mx0, mx1, my0, my1], mode="reflect")
        G_inv = _translate2d((mx0 - mx1) / 2, (my0 - my1) / 2, N, dev) @ G_inv

        # Upsample 2x; express the transform in the upsampled pixel grid (pixel centres at +0.5).
        images = upsample2d(images, self.Hz_geom, up=2)
        G_inv = _scale2d(2, 2, N, dev) @ G_inv @ _scale2d(0.5, 0.5, N, dev)
        G_inv = _translate2d(-0.5, -0.5, N, dev) @ G_inv @ _translate2d(0.5, 0.5, N, dev)

        # Sample; affine_grid works in normalised [-1, 1] coordinates of input and output.
        out_shape = [N, C, (H + hz_pad * 2) * 2, (W + hz_pad * 2) * 2]
        G_inv = (
            _scale2d(2 / images.shape[3], 2 / images.shape[2], N, dev)
            @ G_inv
            @ _scale2d(out_shape[3] / 2, out_shape[2] / 2, N, dev)
        )
        grid = F.affine_grid(G_inv[:, :2, :], out_shape, align_corners=False)
        images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

        # Downsample 2x and crop the filter margin.
        return downsample2d(images, self.Hz_geom, down=2, padding=-hz_pad * 2, flip_filter=True)

    def _color(self, images: torch.Tensor) -> torch.Tensor:
        N, C, H, W = images.shape
        dev = images.device
        enabled = [self.brightness, self.contrast, self.lumaflip, self.hue, self.saturation]
        if not any(m > 0 for m in enabled):
            return images
        I_4 = torch.eye(4, device=dev)
        M = I_4.repeat(N, 1, 1)  # color_out = M @ [r, g, b, 1].
        luma = torch.tensor([1, 1, 1, 0], dtype=torch.float32, device=dev) / math.sqrt(3)  # Luma axis.
        luma_proj = torch.outer(luma, luma)

        if self.brightness > 0:
            b = torch.randn([N], device=dev) * self.brightness_std
            b = torch.where(self._chance(self.brightness, [N], dev), b, torch.zeros_like(b))
            M = _translate3d(b, N, dev) @ M
        if self.contrast > 0:
            c = torch.exp2(torch.randn([N], device=dev) * self.contrast_std)
            c = torch.where(self._chance(self.contrast, [N], dev), c, torch.ones_like(c))
            M = _scale3d(c, N, dev) @ M
        if self.lumaflip > 0:
            i = torch.floor(torch.rand([N, 1, 1], device=dev) * 2)
            i = torch.where(self._chance(self.lumaflip, [N, 1, 1], dev), i, torch.zeros_like(i))
            M = (I_4 - 2 * luma_proj * i) @ M  # Householder reflection about the luma plane.
        if self.hue > 0 and C > 1:
            theta = (torch.rand([N], device=dev) * 2 - 1) * math.pi * self.hue_max
            theta = torch.where(self._chance(self.hue, [N], dev), theta, torch.zeros_like(theta))
            M = _rotate3d(_LUMA_AXIS, theta, N, dev) @ M
        if self.saturation > 0 and C > 1:
            s = torch.exp2(torch.randn([N, 1, 1], device=dev) * self.saturation_std)
            s = torch.where(self._chance(self.saturation, [N, 1, 1], dev), s, torch.ones_like(s))
            M = (luma_proj + (I_4 - luma_proj) * s) @ M

        x = images.reshape(N, C, H * W)
        if C == 3:
            x = M[:, :3, :3] @ x + M[:, :3, 3:]
        else:  # Grayscale: the mean of the RGB rows, applied to a gray image (r = g = b).
            m = M[:, :3, :].mean(dim=1, keepdim=True)
            x = x * m[:, :, :3].sum(dim=2, keepdim=True) + m[:, :, 3:]
        return x.reshape(N, C, H, W)

    def _filter(self, images: torch.Tensor) -> torch.Tensor:
        N, C, H, W = images.shape
        dev = images.device
        num_bands = self.Hz_fbank.shape[0]
        expected_power = torch.tensor([10, 1, 1, 1], dtype=torch.float32, device=dev) / 13  # ~1/f spectrum.
        gains = torch.ones([N, num_bands], device=dev)
        for i, band_strength in enumerate(self.imgfilter_bands):
            t_i = torch.exp2(torch.randn([N], device=dev) * self.imgfilter_std)
            t_i = torch.where(self._chance(self.imgfilter * band_strength, [N], dev), t_i, torch.ones_like(t_i))
            t = torch.ones([N, num_bands], device=dev)
            t[:, i] = t_i
            t = t / (expected_power * t.square()).sum(dim=-1, keepdim=True).sqrt()  # Keep the power.
            gains = gains * t
        taps = gains @ self.Hz_fbank  # [N, taps]
        taps = taps.unsqueeze(1).repeat([1, C, 1]).reshape(N * C, 1, -1)
        pad = self.Hz_fbank.shape[1] // 2
        x = images.reshape(1, N * C, H, W)
        x = F.pad(x, [pad, pad, pad, pad], mode="reflect")
        x = F.conv2d(x, taps.unsqueeze(2).to(x.dtype), groups=N * C)  # Horizontal.
        x = F.conv2d(x, taps.unsqueeze(3).to(x.dtype), groups=N * C)  # Vertical.
        return x.reshape(N, C, H, W)


# ----------------------------------------------------------------------------------------------------
# Adaptive p.


@dataclasses.dataclass
class AdaController:
    """Moves the augmentation probability p towards the value where E[sign(D(real))] == target.

    Every `interval` training steps: p += sign(r_t - target) * (batch * interval) / (speed_kimg * 1000),
    clamped to [0, 1], so p can go from 0 to 1 in `speed_kimg` thousand images.
    """

    target: float = 0.6             # Target of the overfitting heuristic r_t (paper: 0.6).
    interval: int = 4               # Adjust every this many steps.
    speed_kimg: float = 500         # p can change by 1 within this many thousand images.
    batch_size: int = 64            # Global batch size (images per step).
    sign_sum: float = 0.0           # Accumulated sum of sign(D(real)) since the last adjustment.
    sign_count: float = 0.0         # Number of logits accumulated.
    last_rt: float | None = None    # r_t at the last adjustment (for logging).

    def accumulate(self, sign_sum: float, count: float) -> None:
        self.sign_sum += sign_sum
        self.sign_count += count

    def adjust(self, p: float) -> float:
        """The new p given the accumulated signs (of all processes); resets the accumulator."""
        if self.sign_count <= 0:
            return p
        rt = self.sign_sum / self.sign_count
        self.last_rt = rt
        step = np.sign(rt - self.target) * (self.batch_size * self.interval) / (self.speed_kimg * 1000)
        self.sign_sum = 0.0
        self.sign_count = 0.0
        return float(min(max(p + step, 0.0), 1.0))
