"""How a weighted layer's weights are stored in C: one encoder per format, in a registry.

A format turns the integer weight matrix ``(out, in)`` into a few C arrays and back. The
kernel that reads them is ``templates/c/kernels/dense_<format>.c.j2``; a new format is one
more ``StorageFormat`` in ``FORMATS`` plus that template, and the ``auto`` policy starts
considering it. dense and csr live in ``core`` (with the registry and the choice of a format for a
layer; ``choose`` picks one for every layer of a graph, weighing ``cost``'s cycles);
bitmask, rel and rice in ``mask``, nm and unrolled in ``nm``, csr8 in ``csr8`` and the
conv-only csro in ``csro`` (docs/kernels.md). Importing the package registers them all,
in that order. A conv layer is stored as its
filter matrix ``(out_channels, kh*kw*cin)`` (``WeightedLayer.filter_matrix``), read by
``kernels/conv_<format>.c.j2``; a format without that template is not chosen for convs.

The figure of merit is ``bits_per_nonzero``: every byte spent on weights (values,
indices, pointers) per nonzero weight, to compare with ``entropy_bits``, the information
bound of the mask (log2 C(n, k) bits for k nonzeros among n).

The bias is stored already cast to the accumulator type (the kernel's first step), in
the narrowest C integer that holds it, and not at all when it is zero everywhere.
"""

from hwprune.backends.c.formats.core import (  # noqa: F401  (the formats' API)
    ROLES, C_BYTES, EncodedArray, LayerStorage, log2_binomial, c_type_range, narrowest_unsigned,
    narrowest_holding, FormatNotApplicable, StorageFormat, FORMATS, register_format, POLICIES, policies,
    kernel_family, formats_for, encode, encode_matrix, decode_weights, usable_formats, candidates,
    choose_format, FormatSpec, OPTIMIZE, window_of,
)
from hwprune.backends.c.formats import mask, nm, csr8, csro  # noqa: F401,E402,I001  (registration order: csr8, csro last)
from hwprune.backends.c.formats.choose import choose_formats  # noqa: F401,E402  (the formats' API)
