"""The edge profile of the in-domain loss (docs/scripts/edge_loss.py): distances to the label's edge and
the share of the loss near it, on masks whose answer is known by construction."""

import importlib.util
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("edge_loss", REPO / "docs" / "scripts" / "edge_loss.py")
edge_loss = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(edge_loss)


def _half_plane(width: int = 32, edge: int = 16) -> np.ndarray:
    """One 8 x ``width`` mask: columns >= ``edge`` are the particle."""
    mask = np.zeros((1, 8, width), np.uint8)
    mask[..., edge:] = 1
    return mask


def test_edge_distance_counts_pixels_from_the_edge_on_both_sides():
    dist = edge_loss.edge_distance_px(_half_plane())[0, 4]
    assert dist[15] == 1 and dist[16] == 1          # the two pixels touching the edge
    assert dist[12] == 4 and dist[19] == 4          # 4 columns out on either side
    assert dist[0] == 16 and dist[31] == 16


def test_edge_profile_puts_edge_errors_in_the_first_ring_and_far_errors_beyond():
    masks = _half_plane()
    loss = np.zeros(masks.shape)
    loss[..., 15] = 0.3   # an uncertain edge
    loss[..., 2] = 0.1    # a false positive far out in the background
    pred = masks.copy()
    pred[..., 2] = 1
    prof = edge_loss.edge_profile(loss, pred, masks)
    assert prof["within_1px"] == (round(2 / 32, 3), 0.75)   # 2 of 32 columns, 0.3 of 0.4 of the loss
    assert prof["within_8px"][1] == 0.75
    assert prof["loss_beyond_5px"] == round(0.1 / 32, 4)
    assert prof["pixel_error"] == round(1 / 32, 4)
    assert prof["mask_fraction"] == 0.5
