"""What the training loop trains on: the dataset zip, the real minibatches by step, and the sample grid.

The real minibatches are a function of the run seed and the step (`derive_seed`), so a resumed run
draws the same real images at each step as the run it continues; the sample grid's latents come from
fixed per-cell seeds (as in NVlabs' generate.py).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from tryon.errors import CheckpointError, InputError

PRELOAD_AUTO_MAX_BYTES = 4 << 30       # --preload auto: decode datasets up to this size into memory.
PRELOAD_GPU_MAX_BYTES = 2 << 30        # ... and keep them on the GPU up to this size.


def open_dataset(path: str | os.PathLike[str], mirror: bool = False, use_labels: bool = True) -> Any:
    """Open a dataset zip with `datasets.ImageZipDataset` (which raises InputError when it is unusable)."""
    from datasets import ImageZipDataset

    return ImageZipDataset(str(path), xflip=mirror, use_labels=use_labels)


def derive_seed(*values: int) -> int:
    """A 63-bit seed mixed from integers (numpy's SeedSequence: distinct inputs, independent streams)."""
    state = np.random.SeedSequence([int(v) & 0xFFFFFFFFFFFFFFFF for v in values]).generate_state(2, np.uint32)
    return (int(state[0]) << 31 | int(state[1]) >> 1) & 0x7FFFFFFFFFFFFFFF


# Stream tags mixed into derive_seed: distinct streams for the reals, the latents and each round.
TAG_REALS, TAG_LATENTS, TAG_ROUND = 0x5EA1, 0x1A7E, 0x0D0D


class RealImages:
    """Real minibatches by step number: deterministic, resumable, split over processes.

    The global order is an endless sequence of permutations of the dataset (one per epoch, seeded by
    (seed, epoch)); step `s` takes positions [s * batch, (s + 1) * batch) and process `rank` the
    `rank`-th slice of it. Images are decoded up front (`preload`) or streamed by a DataLoader.
    """

    def __init__(
        self,
        dataset: Any,                   # ImageZipDataset-like: ds[i] -> (uint8 [C, H, W], float32 [L]).
        batch: int,                     # Global batch size.
        rank: int,                      # This process.
        world_size: int,                # Number of processes.
        seed: int,                      # Run seed.
        device: torch.device,           # Where batches are returned.
        preload: str = "auto",          # "auto" / "on" / "off".
        workers: int = 2,               # DataLoader processes.
        c_dim: int | None = None,       # Keep the first c_dim label entries (0 = unconditional).
    ) -> None:
        self.dataset = dataset
        self.num_images = len(dataset)
        self.batch = batch
        self.local_batch = batch // world_size
        self.rank = rank
        self.seed = seed
        self.device = device
        self.workers = workers
        labels = np.stack([np.asarray(dataset.get_label(i), dtype=np.float32) for i in range(self.num_images)])
        labels = labels.reshape(self.num_images, -1)
        if c_dim is not None:
            labels = labels[:, :c_dim]
        self.labels = torch.from_numpy(np.ascontiguousarray(labels))  # [N, c_dim], CPU.
        C, H, W = int(dataset.num_channels), int(dataset.resolution), int(dataset.resolution)
        nbytes = self.num_images * C * H * W
        self.preloaded = preload == "on" or (preload == "auto" and nbytes <= PRELOAD_AUTO_MAX_BYTES)
        self._images: torch.Tensor | None = None
        self.labels_device = self.labels.to(device)
        self._perms: dict[int, np.ndarray] = {}
        self._iter: Iterator[Any] | None = None
        self._next_step = -1
        if self.preloaded:
            images = self._decode_all()
            on_gpu = device.type == "cuda" and nbytes <= PRELOAD_GPU_MAX_BYTES
            self._images = images.to(device) if on_gpu else (images.pin_memory() if device.type == "cuda" else images)

    def _decode_all(self) -> torch.Tensor:
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=256, shuffle=False, num_workers=self.workers, drop_last=False
        )
        chunks = [img for img, _ in loader]
        return torch.cat(chunks).contiguous()

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) > 4:
                self._perms.pop(min(self._perms))
            rng = np.random.default_rng(derive_seed(self.seed, TAG_REALS, epoch))
            self._perms[epoch] = rng.permutation(self.num_images)
        return self._perms[epoch]

    def global_indices(self, step: int) -> np.ndarray:
        """Dataset indices of the whole global batch of `step`: [batch]."""
        pos = np.arange(step * self.batch, (step + 1) * self.batch, dtype=np.int64)
        epochs = pos // self.num_images
        out = np.empty_like(pos)
        for e in np.unique(epochs):
            sel = epochs == e
            out[sel] = self._perm(int(e))[pos[sel] % self.num_images]
        return out

    def local_indices(self, step: int) -> np.ndarray:
        """This process's slice of the global batch of `step`: [batch / world_size]."""
        return self.global_indices(step)[self.rank * self.local_batch : (self.rank + 1) * self.local_batch]

    def get(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(images uint8 [B_local, C, H, W], labels float32 [B_local, c_dim]) on the device."""
        idx = self.local_indices(step)
        labels = self.labels_device[torch.from_numpy(idx).to(self.labels_device.device)]
        if self._images is not None:
            sel = torch.from_numpy(idx).to(self._images.device)
            return self._images[sel].to(self.device, non_blocking=True), labels
        if self._iter is None or step != self._next_step:
            self._iter = iter(self._loader(step))
        self._next_step = step + 1
        img, _ = next(self._iter)
        return img.to(self.device, non_blocking=True), labels

    def _loader(self, start_step: int) -> torch.utils.data.DataLoader[Any]:
        source = self

        class _StepSampler(torch.utils.data.Sampler[list[int]]):
            def __iter__(self) -> Iterator[list[int]]:
                step = start_step
                while True:
                    yield source.local_indices(step).tolist()
                    step += 1

        return torch.utils.data.DataLoader(
            self.dataset, batch_sampler=_StepSampler(), num_workers=self.workers,
            pin_memory=self.device.type == "cuda", prefetch_factor=4 if self.workers > 0 else None,
        )

    def images_at(self, indices: Sequence[int]) -> torch.Tensor:
        """uint8 [len(indices), C, H, W] on the CPU (for the grid of reals)."""
        if self._images is not None:
            return self._images[torch.as_tensor(list(indices), device=self._images.device)].cpu()
        return torch.stack([torch.as_tensor(self.dataset[i][0]) for i in indices])


# ----------------------------------------------------------------------------------------------------
# Sample grid.


@dataclasses.dataclass
class SampleGrid:
    """Fixed seeds (columns) x label combinations (rows) for the snapshot sample grids."""

    seeds: list[int]                    # One per cell, row-major.
    labels: torch.Tensor                # [cells, c_dim].
    cols: int
    row_names: list[str]                # What each row is conditioned on.
    real_indices: list[int | None]      # A real image with the row's label per cell (None = none left).

    @classmethod
    def build(cls, labels: torch.Tensor, rows: int, cols: int, label_schema: Mapping[str, Any] | None) -> SampleGrid:
        c_dim = labels.shape[1]
        if c_dim == 0:
            n = rows * cols
            return cls(
                seeds=list(range(n)), labels=torch.zeros([n, 0]), cols=cols, row_names=["unconditional"] * rows,
                real_indices=list(range(min(n, labels.shape[0]))) + [None] * max(n - labels.shape[0], 0),
            )
        # The most frequent label combinations in the data, most frequent first.
        uniq, inverse, counts = np.unique(labels.numpy(), axis=0, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        first = np.array([np.flatnonzero(inverse == k)[0] for k in range(len(uniq))])
        order = sorted(range(len(uniq)), key=lambda k: (-counts[k], first[k]))[:rows]
        seeds, cell_labels, names, reals = [], [], [], []
        for k in order:
            members = np.flatnonzero(inverse == k).tolist()
            names.append(_describe_label(uniq[k], label_schema))
            for j in range(cols):
                seeds.append(j)
                cell_labels.append(torch.from_numpy(uniq[k].copy()))
                reals.append(members[j] if j < len(members) else None)
        return cls(seeds=seeds, labels=torch.stack(cell_labels), cols=cols, row_names=names, real_indices=reals)

    def latents(self, z_dim: int) -> torch.Tensor:
        """z per cell as NVlabs' generate.py: np.random.RandomState(seed).randn(z_dim)."""
        return torch.from_numpy(np.stack([np.random.RandomState(s).randn(z_dim) for s in self.seeds])).float()

    def to_json(self) -> dict[str, Any]:
        return {"cols": self.cols, "seeds": self.seeds[: self.cols], "rows": self.row_names}


# Label combinations kept in a snapshot's training record (the rest are rare: a few images each).
LABEL_DISTRIBUTION_TOP = 200


def label_distribution(labels: torch.Tensor, label_schema: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The training set's label combinations with their counts (tryon.labels.LabelDistribution as
    JSON, the most frequent LABEL_DISTRIBUTION_TOP), or None without named labels."""
    if label_schema is None or labels.ndim != 2 or labels.shape[1] == 0:
        return None
    from tryon.labels import LabelDistribution, LabelSchema

    schema = LabelSchema.from_json(label_schema)
    return LabelDistribution.from_vectors(schema, labels.numpy()).to_json(top=LABEL_DISTRIBUTION_TOP)


def _describe_label(c: np.ndarray, label_schema: Mapping[str, Any] | None) -> str:
    if label_schema is not None:
        try:
            from tryon.labels import LabelSchema

            schema = LabelSchema.from_json(label_schema)
            parts = []
            for col in schema.columns:
                block = c[col.offset : col.offset + len(col.values)]
                if block.size and block.max() > 0:
                    parts.append(f"{col.name}={col.values[int(block.argmax())]}")
            if parts:
                return ", ".join(parts)
        except (CheckpointError, InputError, ValueError):
            pass
    return "c=" + ",".join(str(i) for i in np.flatnonzero(c)[:8])

