"""tryon: virtual try-on built on a conditional StyleGAN2.

Importing this package has no side effects: no compiling, no model loading, no settings instance.
"""

__version__ = "0.1.0"
