import pytest
import torch

from dphelpers.data import load_mocap, split_clips


@pytest.fixture(scope="session")
def splits():
    """The embedded data's (train_poses_m, test_poses_m)."""
    return split_clips(load_mocap())


@pytest.fixture(autouse=True)
def _two_threads():
    torch.set_num_threads(2)
