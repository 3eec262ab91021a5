"""`tryon` verbs that live in the core package (each module exposes `register(subparsers)`).

Modules here import torch and the networks inside their handlers only, so that building the
parser (`tryon --help`) stays fast.
"""
