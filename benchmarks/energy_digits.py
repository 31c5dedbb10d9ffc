"""The energy proxy of the digits MLP: dense float32 against 90 %-pruned 8-bit and 4-bit exports.

    python benchmarks/energy_digits.py

Trains the demo's 64-128-64-10 MLP (same recipe and seed as ``hwprune demo``), prunes it
to 90 % (global magnitude) and fine-tunes it, quantizes it with 8-bit and with 4-bit
weights (8-bit activations, and 4-bit both), stores every layer as csr, and prints the
proxy's parts per layer (``hwprune.energy``: a 45 nm proxy for comparing models, not a
measurement of a chip) with the ratio of the dense float32 model's figure to each.
The result is copied into docs/energy.md.
"""

from __future__ import annotations

import numpy as np


def main() -> None:
    import torch

    from hwprune import reference
    from hwprune.data import load_dataset
    from hwprune.demo import DemoConfig
    from hwprune.energy import export_proxy, float_proxy
    from hwprune.frontends.torch import from_torch
    from hwprune.prune import apply_masks, compute_masks, evaluate, fit, make_mlp, strip_masks
    from hwprune.quant.calibrate import QuantConfig, calibrate

    c = DemoConfig()
    torch.manual_seed(c.seed)
    data = load_dataset("digits", seed=c.seed)
    model = make_mlp(c.sizes, seed=c.seed)
    fit(model, data.x_train, data.y_train, c.train_epochs, lr=c.lr, seed=c.seed)
    dense = from_torch(model, name="digits_mlp")
    rows = [("dense float32", evaluate(model, data.x_test, data.y_test), float_proxy(dense))]
    apply_masks(model, compute_masks(model, c.sparsity, method="magnitude", scope=c.scope, min_density=c.min_density))
    fit(model, data.x_train, data.y_train, c.finetune_epochs, lr=c.lr / 2, seed=c.seed + 1)
    pruned = from_torch(strip_masks(model), name="digits_mlp")
    rows.append(("90 % pruned float32 csr", evaluate(model, data.x_test, data.y_test), float_proxy(pruned, sparse=True)))
    for weight_bits, activation_bits in ((8, 8), (4, 8), (4, 4)):
        q = calibrate(pruned, data.x_train, QuantConfig(weight_bits, activation_bits))
        accuracy = float(np.mean(reference.predict(q, data.x_test).argmax(axis=1) == data.y_test))
        proxy = export_proxy(q, {l.name: "csr" for l in q.dense_layers()})
        rows.append((f"90 % pruned w{weight_bits}a{activation_bits} csr", accuracy, proxy))

    base = rows[0][2]
    print(f"| model | accuracy | weight B | weights in | compute pJ | weight reads pJ | activation pJ | total pJ | "
          f"dense float32 / this |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    for name, accuracy, p in rows:
        weight_bytes = sum(l.work.stored_bytes for l in p.layers)
        print(f"| {name} | {accuracy * 100:.2f} % | {weight_bytes} | {p.weight_memory.name} | "
              f"{p.total('compute_pj'):.1f} | {p.total('weight_read_pj'):.1f} | {p.total('activation_pj'):.1f} | "
              f"{p.total():.1f} | {base.total() / p.total():.1f}x |")
    print()
    print("Per layer (pJ: compute / weight reads / activation traffic = total; ratio dense float32 / this):")
    print()
    print("| layer | " + " | ".join(name for name, _, _ in rows) + " |")
    print("|---|" + "---:|" * len(rows))
    base_layers = {l.work.name: l for l in base.layers}
    for index, layer in enumerate(base.layers):
        cells = []
        for _, _, p in rows:
            mine = p.layers[index]
            cells.append(f"{mine.compute_pj:.1f} / {mine.weight_read_pj:.1f} / {mine.activation_pj:.1f} = "
                         f"{mine.total_pj:.1f} ({base_layers[layer.work.name].total_pj / max(mine.total_pj, 1e-9):.1f}x)")
        print(f"| {layer.work.name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
