"""Image I/O (`tryon.vision.io`), similarity warps (`tryon.vision.warp`) and the mediapipe wrappers
(`tryon.vision.detectors`). Importing this package loads nothing heavy; mediapipe is imported on the
first detector call."""
