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


@dataclass(frozen=True)
class WithFactory:
    inner: Inner = field(default_factory=lambda: Inner(voxel_size=0.5, steps=7))
    other: Inner | None = field(default_factory=lambda: Inner(mode="b"))


def test_a_section_merges_into_the_default_factory_instead_of_replacing_it():
    cfg = from_dict(WithFactory, {"inner": {"mode": "b"}, "other": {"steps": 1}})
    assert cfg.inner == Inner(voxel_size=0.5, mode="b", steps=7)
    assert cfg.other == Inner(mode="b", steps=1)
    # An explicit null still switches an optional section off.
    assert from_dict(WithFactory, {"other": None}).other is None


def _leaves(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_every_shipped_preset_differs_from_the_defaults_only_where_it_sets_a_key():
    from pipelines.config import PRESET_DIR, load_yaml, preset_names
    from pipelines.scene_config import SceneConfig

    defaults = _leaves(to_dict(SceneConfig()))
    assert preset_names(), "no shipped preset found"
    for name in preset_names():
        resolved = _leaves(to_dict(resolve(SceneConfig, preset=name)))
        set_by_preset = set(_leaves(load_yaml(PRESET_DIR / f"{name}.yaml")))
        assert set(resolved) == set(defaults), name
        changed = {k for k in defaults if resolved[k] != defaults[k]}
        assert changed <= set_by_preset, (name, changed - set_by_preset)


def test_the_default_preset_keeps_the_shape_correction():
    from pipelines.scene_config import SceneConfig

    cfg = resolve(SceneConfig, preset="default")
    assert cfg.align.refine is not None and cfg.align.refine.smooth
    assert cfg.align.fallback == "skip"
