"""Faces: alignment (`tryon.face.align`), projection into the face generator, and edits.

    from tryon.face import load_face_models, project_face, render_face, FaceLatent

Importing this package loads nothing, not even torch: the names below are imported from their
modules on first use (`tryon.face.align` stays light for the dataset tools), and models are
loaded by `load_face_models`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tryon.face.edits import EDIT_NAMES, EDIT_RANGES, edit_latent, face_directions, parse_instruction
    from tryon.face.latent import FaceLatent
    from tryon.face.models import FaceModels, load_face_models, render_face
    from tryon.face.project import ProjectionOptions, ProjectionResult, project_face

# Public name -> the module that defines it.
_EXPORTS = {
    "EDIT_NAMES": "tryon.face.edits",
    "EDIT_RANGES": "tryon.face.edits",
    "edit_latent": "tryon.face.edits",
    "face_directions": "tryon.face.edits",
    "parse_instruction": "tryon.face.edits",
    "FaceLatent": "tryon.face.latent",
    "FaceModels": "tryon.face.models",
    "load_face_models": "tryon.face.models",
    "render_face": "tryon.face.models",
    "ProjectionOptions": "tryon.face.project",
    "ProjectionResult": "tryon.face.project",
    "project_face": "tryon.face.project",
}

__all__ = [
    "EDIT_NAMES",
    "EDIT_RANGES",
    "FaceLatent",
    "FaceModels",
    "ProjectionOptions",
    "ProjectionResult",
    "edit_latent",
    "face_directions",
    "load_face_models",
    "parse_instruction",
    "project_face",
    "render_face",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tryon.face' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # Next time without __getattr__.
    return value
