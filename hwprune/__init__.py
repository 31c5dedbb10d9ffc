"""hwprune: prune, quantize and lower neural networks to bit-exact sparse C."""

__version__ = "0.1.0"
