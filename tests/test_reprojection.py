"""The weak-perspective fit and the photo-against-test-split check built on it."""
import json

import numpy as np
import pytest
import torch

from dphelpers.cameras import CameraConfig
from dphelpers.evaluation.reprojection import weak_perspective_fit
from dphelpers.pipeline import make_test_set
from dphelpers.skeleton import H36M_TO_MPII


def _pose(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(17, 3, generator=g) * 200.0


def test_an_exact_weak_perspective_image_is_fitted_exactly():
    pose = _pose()
    joints = 0.04 * pose[list(H36M_TO_MPII), :2] + torch.tensor([31.0, 29.5])
    fit = weak_perspective_fit(pose, joints)
    assert float(fit.rms) < 1e-4
    assert float(fit.scale) == pytest.approx(0.04, rel=1e-5)
    assert torch.allclose(fit.shift, torch.tensor([31.0, 29.5]), atol=1e-4)


def test_residuals_are_what_the_fit_leaves_and_a_wrong_pose_fits_worse():
    pose, other = _pose(0), _pose(1)
    g = torch.Generator().manual_seed(2)
    joints = 0.05 * pose[list(H36M_TO_MPII), :2] + 32 + 0.5 * torch.randn(16, 2, generator=g)
    fit, wrong = weak_perspective_fit(pose, joints), weak_perspective_fit(other, joints)
    assert float(fit.rms) == pytest.approx(float(fit.residuals.pow(2).sum(-1).mean().sqrt()))
    assert float(fit.rms) < 0.8 < float(wrong.rms)
    # the least-squares optimum: moving the scale or the shift makes it worse
    xy = pose[list(H36M_TO_MPII), :2]
    for ds, dt in ((1e-3, 0.0), (-1e-3, 0.0), (0.0, 0.1)):
        res = joints - ((fit.scale + ds) * xy + fit.shift + dt)
        assert float(res.pow(2).sum(-1).mean().sqrt()) > float(fit.rms)


def test_an_upside_down_pose_gets_scale_zero_not_a_negative_scale():
    pose = _pose()
    joints = -0.05 * pose[list(H36M_TO_MPII), :2] + 32
    fit = weak_perspective_fit(pose, joints)
    assert float(fit.scale) == 0.0
    centred = joints - joints.mean(0)
    assert float(fit.rms) == pytest.approx(float(centred.pow(2).sum(-1).mean().sqrt()), rel=1e-5)


def test_hypotheses_broadcast_against_their_image_and_perspective_test_views_fit_well(splits):
    test = make_test_set(splits[1], 6, camera_config=CameraConfig())
    # the true camera-frame poses against their own true 2D joints: perspective, not weak
    # perspective, so not exact, but far better than another sample's pose
    own = weak_perspective_fit(test.poses_3d_mm, test.joints_hm)
    swapped = weak_perspective_fit(test.poses_3d_mm.roll(1, 0), test.joints_hm)
    assert own.rms.shape == (6,)
    assert (own.rms < 1.5).all() and (own.rms < swapped.rms).all()
    hyps = test.poses_3d_mm[:, None].expand(6, 5, 17, 3)
    fit = weak_perspective_fit(hyps, test.joints_hm[:, None])
    assert fit.rms.shape == (6, 5) and torch.allclose(fit.rms, own.rms[:, None].expand(6, 5))


@pytest.mark.parametrize("poses, joints, message", [
    (torch.zeros(16, 3), torch.zeros(16, 2), "poses_mm must be a tensor of shape (..., 17, 3)"),
    (torch.zeros(17, 3), torch.zeros(17, 2), "joints_2d must be a tensor of shape (..., 16, 2)"),
    (np.zeros((17, 3)), torch.zeros(16, 2), "got ndarray"),
    (torch.zeros(17, 3), torch.full((16, 2), float("nan")), "joints_2d holds non-finite"),
])
def test_bad_input_names_the_argument(poses, joints, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace(".", r"\.")):
        weak_perspective_fit(poses, joints)


def test_realcheck_writes_photo_and_test_numbers(tmp_path, capsys):
    from dphelpers.denoiser import DenoiserConfig
    from dphelpers.diffusion import DiffPose, DiffPoseConfig
    from dphelpers.embedding import EmbeddingConfig
    from dphelpers.models.checkpoint import save_model
    from dphelpers.tools.cli import main
    tiny = DiffPoseConfig(embedding=EmbeddingConfig(n_channels=16, d_model=32, n_heads=2,
                                                    n_layers=1, d_ff=64, cond_dim=64),
                          denoiser=DenoiserConfig(cond_dim=64, hidden=64))
    torch.manual_seed(0)
    path = save_model(tmp_path / "tiny.pt", DiffPose(tiny), step=3)
    out = tmp_path / "realcheck.json"
    assert main(["realcheck", "--models", f"full={path}", "--n-hypo", "6", "--n-test", "4", "--quiet",
                 "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    (row,) = res["models"].values()
    assert row["trained_steps"] == 3 and row["test"]["n"] == 4
    assert row["photo"]["medoid_rms_px"] > 0 and row["photo"]["spread_mm_mean"] > 0
    assert len(row["photo"]["spread_mm"]) == 17
    q = row["test"]["medoid_rms_px_vs_argmax"]
    assert q["q25"] <= q["median"] <= q["q75"]
    assert row["photo_over_test"] == pytest.approx(row["photo"]["medoid_rms_px"] / q["median"])
    assert "photo medoid reprojection RMS" in capsys.readouterr().out
