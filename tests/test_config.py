from dataclasses import dataclass, field
from typing import Literal

import pytest

from pipelines.config import dump_yaml, from_dict, parse_overrides, resolve, to_dict
from recon.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    voxel_size: float | None = None
    mode: Literal["a", "b"] = "a"
    steps: int = 3

    def __post_init__(self):
        if self.steps < 0:
            raise ValueError("steps must be >= 0")


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    inner: Inner = field(default_factory=Inner)
    formats: tuple[str, ...] = ("ply",)


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(ConfigError, match="did you mean 'voxel_size'"):
        from_dict(Outer, {"inner": {"voxel_sise": 0.1}})


def test_types_are_checked_and_ints_become_floats():
    cfg = from_dict(Outer, {"inner": {"voxel_size": 1, "mode": "b"}})
    assert cfg.inner.voxel_size == 1.0 and isinstance(cfg.inner.voxel_size, float)
    with pytest.raises(ConfigError, match="inner.steps"):
        from_dict(Outer, {"inner": {"steps": "many"}})
    with pytest.raises(ConfigError, match="use one of"):
        from_dict(Outer, {"inner": {"mode": "c"}})
    with pytest.raises(ConfigError, match="steps must be >= 0"):
        from_dict(Outer, {"inner": {"steps": -1}})


def test_dotted_overrides_are_yaml_typed():
    assert parse_overrides(["inner.voxel_size=0.01", "name=room", "formats=[ply, glb]"]) == {
        "inner": {"voxel_size": 0.01},
        "name": "room",
        "formats": ["ply", "glb"],
    }
    with pytest.raises(ConfigError, match="no '='"):
        parse_overrides(["inner.voxel_size"])


def test_round_trip_through_yaml(tmp_path):
    cfg = from_dict(Outer, {"inner": {"voxel_size": 0.02}, "formats": ["ply", "obj"]})
    path = tmp_path / "c.yaml"
    path.write_text(dump_yaml(cfg))
    again = resolve(Outer, config_file=path, overrides=["inner.steps=5"])
    assert to_dict(again) == {**to_dict(cfg), "inner": {**to_dict(cfg.inner), "steps": 5}}


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown preset"):
        resolve(Outer, preset="no-such-preset")
