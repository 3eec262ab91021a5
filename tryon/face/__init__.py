"""Faces: alignment (`tryon.face.align`), projection into the face generator, and edits.

    from tryon.face import load_face_models, project_face, render_face, FaceLatent

Importing this package loads nothing: models are loaded by `load_face_models`.
"""

from tryon.face.edits import EDIT_NAMES, EDIT_RANGES, edit_latent, face_directions, parse_instruction  # noqa: F401
from tryon.face.latent import FaceLatent
from tryon.face.models import FaceModels, load_face_models, render_face
from tryon.face.project import ProjectionOptions, ProjectionResult, project_face

__all__ = [
    "FaceLatent",
    "FaceModels",
    "ProjectionOptions",
    "ProjectionResult",
    "load_face_models",
    "project_face",
    "render_face",
]
