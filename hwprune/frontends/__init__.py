"""Frontends: a trained model from some framework -> a float ``ir.Graph``."""
