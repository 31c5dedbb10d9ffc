"""The integer reference: THE definition of a quantized model's output.

Everything after the input cast is int64 arithmetic; no float touches a value. Every
engine (host C, Cortex-M emulation, hls4ml C simulation) must equal this bit for bit.
Kernels are looked up by layer ``kind`` in ``KERNELS``; a new layer kind adds one. A
one-input layer's kernel takes ``(layer, x, in_t)``; a layer that reads several tensors
(``Layer.arity != 1``) takes the list of operands and the list of their types. The
graph runs in its topological order, every layer reading its inputs by name.

Modules: ``core`` (the registry ``KERNELS``, ``run``, Dense and the pass-through kinds),
``spatial`` (convolution and pooling), ``merge`` (Add, Multiply, Concatenate, Clip,
Reshape), ``activations`` (LeakyReLU, PReLU, HardSigmoid, Sigmoid, Tanh, Selu, BatchNorm, Quantize) and ``int8``
(TFLite's int8 dialect, TFLite Micro's reference kernels). Importing the package registers
every kernel.
"""

from hwprune.reference.core import (  # noqa: F401  (the reference's API)
    KERNELS, DenseSum, Kernel, dense_integers, dense_sum, kernel, predict, quantize_input, run, run_layer,
)
from hwprune.reference import activations, int8, merge, spatial  # noqa: F401,E402  (register their kernels)
