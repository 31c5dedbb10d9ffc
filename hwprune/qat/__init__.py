"""Quantization-aware training whose forward pass is the fixed-point model, exactly.

- ``model``: ``prepare_qat``, ``recalibrate_qat``, ``qat_graph``, ``convert_qat`` on a
  sequential torch model, a traced ``GraphTwin`` or a float IR graph;
- ``core``: ``fake_quant`` and the quantized weighted layers' shared forward pass;
- ``spatial``: the QAT convs and pooling;
- ``graph``: ``QATGraphTwin``, QAT on a graph with branches.
"""
