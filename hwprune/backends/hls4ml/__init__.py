"""The hls4ml backend: a quantized graph -> an hls4ml project whose C simulation equals
the integer reference bit for bit (``export_hls4ml``); ``harness/hls4ml_engine.py`` runs it."""

import hwprune.backends.hls4ml.activations  # noqa: F401 (registers the activation mappers)
from hwprune.backends.hls4ml.project import SUMMARY, export_hls4ml, read_summary

__all__ = ["SUMMARY", "export_hls4ml", "read_summary"]
