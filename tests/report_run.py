"""The views of the shared sample run (tests/conftest.py: sample, scene_run)."""

from tests.cli_helpers import room_names

VIEWS = room_names(6)
