"""Style-mixing layer groups of a StyleGAN2 W+ latent: the one definition of coarse / middle / fine.

Grouped by the resolution of the layers each w drives (as in the StyleGAN paper): coarse 4²–8² (pose,
silhouette, face shape), middle 16²–32² (features, shape details), fine 64² and up (colour, texture).
"""

from __future__ import annotations

from typing import Literal, get_args

from tryon.errors import InputError

LayerGroup = Literal["coarse", "middle", "fine"]
LAYER_GROUPS: tuple[LayerGroup, ...] = get_args(LayerGroup)


def resolution_of(num_ws: int) -> int:
    """Output resolution of an NVlabs StyleGAN2 synthesis network with `num_ws` ws (2·log2(res) − 2)."""
    log2 = (num_ws + 2) / 2
    if num_ws < 2 or log2 != int(log2):
        raise InputError(f"a latent with {num_ws} ws does not come from a StyleGAN2 generator (expected 2·log2(res)−2)")
    return 2 ** int(log2)


def layer_groups(num_ws: int) -> dict[str, tuple[int, int]]:
    """{"coarse" | "middle" | "fine": (start, stop)} ws index ranges of a StyleGAN2 W+ latent.

    ws[0] drives the 4² conv; then two per resolution (conv0, conv1); the last w drives the final
    ToRGB. For 64² (10 ws): coarse [0, 3), middle [3, 7), fine [7, 10). Below 64² the fine group is
    the final ToRGB w alone (32²: middle [3, 7), fine [7, 8)); at 8² the middle group is empty.
    """
    res = resolution_of(num_ws)
    # ws index of the first conv at each resolution: 4² -> 0, 8² -> 1, 16² -> 3, ...
    first = {4: 0}
    r, i = 8, 1
    while r <= res:
        first[r] = i
        r, i = r * 2, i + 2
    coarse_stop = first.get(16, num_ws - 1)
    middle_stop = first.get(64, num_ws - 1)
    return {
        "coarse": (0, coarse_stop),
        "middle": (coarse_stop, max(coarse_stop, middle_stop)),
        "fine": (max(coarse_stop, middle_stop), num_ws),
    }
