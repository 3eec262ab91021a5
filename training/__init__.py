"""Training of the conditional StyleGAN2 (imports `tryon`, never the reverse)."""
