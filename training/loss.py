"""StyleGAN2 losses: non-saturating logistic loss, lazy R1 and path-length regularisation, style mixing.

The four training phases of StyleGAN2 (each run with its own minibatch, see training/loop.py):

    Gmain  softplus(-D(G(z, c), c))                                       every step
    Greg   pl_weight * (|J_w^T y| - pl_mean)^2 on a batch / pl_batch_shrink  every G_reg_interval steps
    Dmain  softplus(D(G(z, c), c)) + softplus(-D(x, c))                   every step
    Dreg   gamma / 2 * |grad_x D(x, c)|^2 on reals                        every D_reg_interval steps

Lazy regularisation multiplies the regulariser by its interval (the caller passes it in `gain`).
The discriminator always sees images through the augmentation pipe (ADA), reals and fakes alike, and
R1 takes its gradient through the augmentation.

One deliberate difference from NVlabs: the path-length penalty uses the running mean `pl_mean` as it
was before the step, and `pl_mean` is updated once per Greg phase from the mean path length over all
rounds and processes (`finish_pl_phase`). That keeps the result independent of how the batch is split
over rounds and GPUs (NVlabs updates it per round and per GPU).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from training import dist
from training.augment import AugmentPipe
from tryon.nn import Discriminator, Generator

PHASES = ("Gmain", "Greg", "Dmain", "Dreg")


class GeneratorForTraining(torch.nn.Module):
    """G(z, c) with style mixing and the ws returned, as one forward (one DDP forward per backward).

    With `autocast_dtype` (bf16 mixed precision) the synthesis network runs under torch.autocast; the
    mapping network stays in fp32 (it is cheap, and its running average w_avg is an fp32 buffer).
    """

    def __init__(self, G: Generator, autocast_dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.G = G
        self.autocast_dtype = autocast_dtype

    def forward(
        self,
        z: torch.Tensor,                    # [N, z_dim] latents.
        c: torch.Tensor,                    # [N, c_dim] labels.
        mix_z: torch.Tensor | None,         # [N, z_dim] second latents for style mixing, or None.
        mix_cutoff: int,                    # ws[:, cutoff:] come from mix_z (cutoff == num_ws: no mixing).
        force_fp32: bool = False,           # Run the fp16 blocks in fp32.
        half_dtype: torch.dtype | None = None,  # Dtype of the fp16 blocks (tryon.nn.networks.block_dtype).
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (img [N, C, H, W], ws [N, num_ws, w_dim])."""
        ws = self.G.mapping(z, c)
        if mix_z is not None and mix_cutoff < ws.shape[1]:
            ws_mix = self.G.mapping(mix_z, c, skip_w_avg_update=True)
            ws = torch.cat([ws[:, :mix_cutoff], ws_mix[:, mix_cutoff:]], dim=1)
        with _autocast(z.device, self.autocast_dtype):
            img = self.G.synthesis(ws, force_fp32=force_fp32, half_dtype=half_dtype)
        return img.float(), ws


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def ddp_sync(module: torch.nn.Module, sync: bool) -> Iterator[None]:
    """Forward passes in this context all-reduce gradients in their backward only if `sync`."""
    if isinstance(module, DistributedDataParallel) and not sync:
        with module.no_sync():
            yield
    else:
        yield


class StyleGAN2Loss:
    """Accumulates the gradients of one phase on one round (a slice of the batch)."""

    def __init__(
        self,
        G_train: torch.nn.Module,               # GeneratorForTraining, possibly wrapped in DDP.
        D: torch.nn.Module,                     # Discriminator, possibly wrapped in DDP.
        num_ws: int,                            # G.num_ws.
        augment_pipe: AugmentPipe | None = None,  # Augmentation applied before every D call.
        r1_gamma: float = 10,                   # R1 weight gamma.
        style_mixing_prob: float = 0.9,         # Probability of style mixing per round.
        pl_weight: float = 2,                   # Path-length regularisation weight, 0 = off.
        pl_batch_shrink: int = 2,               # Path-length batch = round batch // this.
        pl_decay: float = 0.01,                 # Decay of the running mean path length.
        force_fp32: bool = False,               # Run the networks' fp16 blocks in fp32.
        half_dtype: torch.dtype | None = None,  # Dtype of the fp16 blocks (bf16 on CPU), None = NVlabs'.
        autocast_dtype: torch.dtype | None = None,  # torch.autocast dtype around D (bf16); G: see above.
        device: torch.device | str = "cpu",
    ) -> None:
        self.G_train = G_train
        self.D = D
        self.num_ws = num_ws
        self.augment_pipe = augment_pipe
        self.r1_gamma = r1_gamma
        self.style_mixing_prob = style_mixing_prob
        self.pl_weight = pl_weight
        self.pl_batch_shrink = pl_batch_shrink
        self.pl_decay = pl_decay
        self.force_fp32 = force_fp32
        self.half_dtype = half_dtype
        self.autocast_dtype = autocast_dtype
        self.device = torch.device(device)
        self.pl_mean = torch.zeros([], device=self.device)
        self._pl_sum = torch.zeros([], device=self.device)
        self._pl_count = 0

    def run_G(self, z: torch.Tensor, c: torch.Tensor, sync: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Generate with style mixing; the randomness comes from the global torch RNG."""
        cutoff = self.num_ws
        mix_z = None
        if self.style_mixing_prob > 0:
            # Drawn on the CPU generator so that no device sync is needed to slice ws.
            cand = int(torch.randint(1, self.num_ws, []).item()) if self.num_ws > 1 else self.num_ws
            if float(torch.rand([]).item()) < self.style_mixing_prob:
                cutoff = cand
            mix_z = torch.randn_like(z)
        with ddp_sync(self.G_train, sync):
            img, ws = self.G_train(z, c, mix_z, cutoff, force_fp32=self.force_fp32, half_dtype=self.half_dtype)
        return img, ws

    def run_D(self, img: torch.Tensor, c: torch.Tensor, sync: bool) -> torch.Tensor:
        if self.augment_pipe is not None:
            img = self.augment_pipe(img)
        with ddp_sync(self.D, sync), _autocast(self.device, self.autocast_dtype):
            logits = self.D(img, c, force_fp32=self.force_fp32, half_dtype=self.half_dtype)
        return logits.float()

    def accumulate_gradients(
        self,
        phase: str,                 # One of PHASES.
        real_img: torch.Tensor,     # [N, C, H, W] reals in [-1, 1].
        real_c: torch.Tensor,       # [N, c_dim] labels of the reals.
        gen_z: torch.Tensor,        # [N, z_dim] latents.
        gen_c: torch.Tensor,        # [N, c_dim] labels to generate.
        gain: float,                # Multiplies the loss (lazy-reg interval / rounds per process).
        sync: bool,                 # All-reduce gradients in this round's backward (last round).
    ) -> dict[str, torch.Tensor]:
        """Backpropagate one phase's loss on one round; returns detached statistics {name: [k]}."""
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}")
        stats: dict[str, torch.Tensor] = {}

        if phase == "Gmain":
            gen_img, _ = self.run_G(gen_z, gen_c, sync=sync)
            gen_logits = self.run_D(gen_img, gen_c, sync=False)
            loss_G = F.softplus(-gen_logits)
            loss_G.mean().mul(gain).backward()
            stats["Loss/scores/fake"] = gen_logits.detach().flatten()
            stats["Loss/G/loss"] = loss_G.detach().flatten()

        elif phase == "Greg" and self.pl_weight != 0:
            n = max(gen_z.shape[0] // self.pl_batch_shrink, 1)
            gen_img, gen_ws = self.run_G(gen_z[:n], gen_c[:n], sync=sync)
            pl_noise = torch.randn_like(gen_img) / np.sqrt(gen_img.shape[2] * gen_img.shape[3])
            (pl_grads,) = torch.autograd.grad(
                outputs=[(gen_img * pl_noise).sum()], inputs=[gen_ws], create_graph=True, only_inputs=True
            )
            pl_lengths = pl_grads.float().square().sum(2).mean(1).sqrt()
            pl_penalty = (pl_lengths - self.pl_mean).square()
            loss_pl = pl_penalty * self.pl_weight
            # gen_img * 0 keeps every synthesis parameter in the graph (DDP expects all gradients).
            (gen_img[:, 0, 0, 0] * 0 + loss_pl).mean().mul(gain).backward()
            self._pl_sum += pl_lengths.detach().sum()
            self._pl_count += int(pl_lengths.shape[0])
            stats["Loss/pl_penalty"] = pl_penalty.detach()
            stats["Loss/G/reg"] = loss_pl.detach()

        elif phase == "Dmain":
            gen_img, _ = self.run_G(gen_z, gen_c, sync=False)
            gen_logits = self.run_D(gen_img.detach(), gen_c, sync=False)
            loss_Dgen = F.softplus(gen_logits)
            loss_Dgen.mean().mul(gain).backward()
            real_logits = self.run_D(real_img.detach(), real_c, sync=sync)
            loss_Dreal = F.softplus(-real_logits)
            loss_Dreal.mean().mul(gain).backward()
            stats["Loss/scores/fake"] = gen_logits.detach().flatten()
            stats["Loss/scores/real"] = real_logits.detach().flatten()
            stats["Loss/signs/real"] = real_logits.detach().sign().flatten()
            stats["Loss/D/loss"] = (loss_Dgen + loss_Dreal).detach().flatten()

        elif phase == "Dreg" and self.r1_gamma != 0:
            real_img_tmp = real_img.detach().requires_grad_(True)
            real_logits = self.run_D(real_img_tmp, real_c, sync=sync)
            (r1_grads,) = torch.autograd.grad(
                outputs=[real_logits.sum()], inputs=[real_img_tmp], create_graph=True, only_inputs=True
            )
            r1_penalty = r1_grads.float().square().sum([1, 2, 3])
            loss_r1 = r1_penalty * (self.r1_gamma / 2)
            (real_logits[:, 0] * 0 + loss_r1).mean().mul(gain).backward()
            stats["Loss/r1_penalty"] = r1_penalty.detach()
            stats["Loss/D/reg"] = loss_r1.detach()
            stats["Loss/signs/real"] = real_logits.detach().sign().flatten()
        return stats

    def finish_pl_phase(self) -> None:
        """Update the running mean path length from this phase's rounds on all processes."""
        if self._pl_count == 0:
            return
        total = torch.stack([self._pl_sum, torch.tensor(float(self._pl_count), device=self.device)])
        dist.all_reduce_sum(total)
        batch_mean = total[0] / total[1]
        self.pl_mean.copy_(self.pl_mean.lerp(batch_mean, self.pl_decay))
        self._pl_sum.zero_()
        self._pl_count = 0


def build_phases(
    G: Generator,
    D: Discriminator,
    glr: float,                # Learning rate of G (before the lazy-regularisation correction).
    dlr: float,                # Learning rate of D.
    betas: tuple[float, float], # Adam betas.
    eps: float,                 # Adam epsilon.
    G_reg_interval: int | None, # Greg every this many steps, None = no path-length reg.
    D_reg_interval: int | None, # Dreg every this many steps, None = no R1.
) -> tuple[list[tuple[str, torch.nn.Module, int]], torch.optim.Adam, torch.optim.Adam]:
    """The phases [(name, module, interval)] and the two Adam optimisers.

    With lazy regularisation every `I` steps, the optimiser's lr and betas are corrected as in NVlabs:
    lr * r and beta ** r with r = I / (I + 1), since the optimiser steps I + 1 times per I main steps.
    """
    phases: list[tuple[str, torch.nn.Module, int]] = []
    opts = []
    for name, module, lr, reg_interval in (("G", G, glr, G_reg_interval), ("D", D, dlr, D_reg_interval)):
        ratio = 1.0 if reg_interval is None else reg_interval / (reg_interval + 1)
        on_cuda = next(module.parameters()).device.type == "cuda"
        opt = torch.optim.Adam(
            module.parameters(), lr=lr * ratio, betas=(betas[0] ** ratio, betas[1] ** ratio), eps=eps,
            fused=True if on_cuda else None,  # One kernel for all parameters on a GPU.
        )
        opts.append(opt)
        phases.append((f"{name}main", module, 1))
        if reg_interval is not None:
            phases.append((f"{name}reg", module, reg_interval))
    return phases, opts[0], opts[1]
