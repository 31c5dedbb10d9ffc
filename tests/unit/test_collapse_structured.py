"""Dead units are what structured pruning is for: they are not reported as a collapse then."""

import torch
from torch import nn

from hwprune.prune import apply_masks, compute_masks
from hwprune.prune.collapse import check_collapse, worth_reporting


def test_dead_units_are_news_for_magnitude_pruning_only():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 3))
    apply_masks(model, compute_masks(model, 0.5, method="filters", scope="layer"))
    findings = check_collapse(model)
    assert [f.kind for f in findings] == ["dead_units"]  # 4 of 8 filters removed on purpose
    assert worth_reporting(findings, "filters") == ()
    assert worth_reporting(findings, "magnitude") == tuple(findings)
