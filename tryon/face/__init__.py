"""Faces: alignment (`tryon.face.align`), and later projection, directions and edits."""
