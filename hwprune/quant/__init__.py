"""Post-training calibration: the fixed-point types of a float graph (``calibrate``), their
widths per layer (``precision``), exact fixed-point models read from files (``exact``) and
TFLite's int8 quantization (``tflite_int8``). The types themselves live in ``ir.fixed`` and
``ir.int8_types``; quantization-aware training in ``qat/``."""
