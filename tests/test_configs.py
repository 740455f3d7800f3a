"""dphelpers.configs: strict dict -> settings, and the per-field difference of two settings."""
from dataclasses import asdict, dataclass, field

import pytest

from dphelpers.augment import AugmentConfig
from dphelpers.configs import UnknownSetting, config_diff, from_dict
from dphelpers.diffusion import DiffPoseConfig
from dphelpers.heatmaps import HeatmapConfig
from dphelpers.lifter import LifterConfig
from dphelpers.training.train import TrainConfig


@dataclass(frozen=True)
class Inner:
    k: int = 1


@dataclass(frozen=True)
class Outer:
    sizes: tuple[int, ...] = (1, 2)
    maybe: tuple[float, float] | None = None
    names: list = field(default_factory=list)
    inner: Inner = field(default_factory=Inner)


def test_from_dict_refuses_unknown_keys_naming_key_class_and_fields():
    with pytest.raises(UnknownSetting) as info:
        from_dict(Outer, {"sizes": [3], "sise": 1})
    text = str(info.value)
    assert text == ("Outer has no field(s) ['sise'] (unknown key(s)); "
                    "known: ['inner', 'maybe', 'names', 'sizes']")
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    with pytest.raises(UnknownSetting, match=r"Inner has no field\(s\) \['j'\]"):
        from_dict(Outer, {"inner": {"j": 2}}, nested={"inner": Inner})
    with pytest.raises(TypeError, match="expected a dict"):
        from_dict(Outer, [("sizes", (1,))])


def test_from_dict_turns_lists_into_tuples_only_where_the_field_is_a_tuple():
    got = from_dict(Outer, {"sizes": [3, 4], "maybe": [0.5, 1.0], "names": ["a"],
                            "inner": {"k": 5}}, nested={"inner": Inner})
    assert got == Outer(sizes=(3, 4), maybe=(0.5, 1.0), names=["a"], inner=Inner(5))
    assert isinstance(got.names, list)


@pytest.mark.parametrize("cls, value", [
    (DiffPoseConfig, DiffPoseConfig.ablation("no_argmax")),
    (LifterConfig, LifterConfig(hidden=8, max_norm=None)),
    (AugmentConfig, AugmentConfig(enabled=True, proportion_range=(0.9, 1.1))),
    (TrainConfig, TrainConfig(precision="fp32", hold_out=("boxing",))),
    (HeatmapConfig, HeatmapConfig.preset("v1")),
])
def test_every_settings_class_reads_its_own_dict_back_through_the_one_helper(cls, value):
    d = asdict(value)
    back = cls.from_dict(d) if hasattr(cls, "from_dict") else from_dict(cls, d)
    assert back == value
    with pytest.raises(UnknownSetting, match=rf"{cls.__name__} has no field\(s\) \['bogus'\]"):
        cls.from_dict({**d, "bogus": 1}) if hasattr(cls, "from_dict") else from_dict(cls, {"bogus": 1})


def test_the_other_strict_readers_name_the_unknown_field():
    with pytest.raises(UnknownSetting, match=r"HeatmapConfig has no field\(s\) \['p_inversion'\]"):
        HeatmapConfig.preset("v2", p_inversion=0.1)
    with pytest.raises(UnknownSetting, match=r"TrainConfig has no field\(s\) \['nope'\]"):
        TrainConfig(precision="fp32").replace(nope=1)


def test_config_diff_names_every_nested_field():
    a = DiffPoseConfig().to_dict()
    b = DiffPoseConfig.ablation("argmax_only").to_dict()
    assert config_diff(a, b) == ["sampling.n_samples: 32 != 1"]
    assert config_diff({"x": 1}, {"y": 1}) == ["x: 1 != '<missing>'", "y: '<missing>' != 1"]
