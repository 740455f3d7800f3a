import pytest
import torch

from dphelpers.pipeline import TrainStream, make_test_set


def test_test_set_deterministic_and_consistent(splits):
    a = make_test_set(splits[1], 40, seed=5)
    b = make_test_set(splits[1], 40, seed=5)
    c = make_test_set(splits[1], 40, seed=6)
    assert len(a) == 40
    assert torch.equal(a.heatmaps, b.heatmaps) and not torch.equal(a.heatmaps, c.heatmaps)
    assert a.heatmaps.shape == (40, 16, 64, 64) and a.poses_3d_mm.shape == (40, 17, 3)
    # the heatmap argmax sits near the true joint for most joints
    flat = a.heatmaps.flatten(2).argmax(-1)
    arg = torch.stack([flat % 64, flat // 64], -1).float()
    close = ((arg - a.joints_hm).norm(dim=-1) < 3).float().mean()
    assert close > 0.85
    # people are in front of the camera, a few metres away
    assert (a.poses_3d_mm[..., 2] > 2000).all()
    assert 0.1 < a.ambiguous.float().mean() < 0.7


def test_stream_batches_and_errors(splits):
    s = TrainStream(splits[0], seed=0)
    b1, b2 = s.next_batch(8), s.next_batch(8)
    assert not torch.equal(b1.heatmaps, b2.heatmaps)
    assert torch.equal(TrainStream(splits[0], seed=0).next_batch(8).heatmaps, b1.heatmaps)
    assert b1.subset(slice(0, 3)).heatmaps.shape[0] == 3
    with pytest.raises(ValueError, match=r"\(n>0, 17, 3\)"):
        TrainStream(splits[0][:, :16])
