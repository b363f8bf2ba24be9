"""The tiny checkpoints under tests/fixtures/ are what scripts/make_tiny_checkpoints.py makes.

Regenerating a fixture repeats seeded draws and, for LSeg and SEEM, a least-squares fit of the text projection. What
must be equal is compared exactly: file names, config and processor settings (less the library version that wrote
them), weight names, shapes and dtypes. Weight values get a tolerance, since the same seeded draw and the same solve
can differ in their last bits between machines: torch picks vectorised kernels by CPU kind (AVX2, AVX-512, NEON) and
a BLAS solve sums in an order set by its thread count (measured: 4.1e-5 between two machines for the fitted
projection, whose entries are of order 1)."""

import importlib.util
import json

import pytest
import torch
from safetensors.torch import load_file

from seem_hf.testing import FIXTURES

SETTINGS = ("config.json", "processor_config.json", "tokenizer_config.json", "preprocessor_config.json")


def _script():
    spec = importlib.util.spec_from_file_location("make_tiny", FIXTURES.parents[1] / "scripts" / "make_tiny_checkpoints.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def _settings(path):
    def drop_versions(value):
        if isinstance(value, dict):
            return {key: drop_versions(item) for key, item in value.items() if not key.endswith("_version")}
        return value

    return drop_versions(json.loads(path.read_text()))


@pytest.mark.parametrize("name", ["detr_panoptic", "lseg", "seem"])
def test_fixture_matches_its_script(tmp_path, name):
    shipped_folder = FIXTURES / f"tiny-random-{name}"
    folder = getattr(_script(), f"make_tiny_{name}")(tmp_path)
    assert sorted(path.name for path in folder.iterdir()) == sorted(path.name for path in shipped_folder.iterdir())
    assert not list(folder.glob("*.py"))  # fixtures carry no bundled code (STYLE.md); saving for sharing writes it
    for file in SETTINGS:
        if (shipped_folder / file).exists():
            assert _settings(folder / file) == _settings(shipped_folder / file), f"{file} differs: rerun the script"
    fresh, shipped = load_file(folder / "model.safetensors"), load_file(shipped_folder / "model.safetensors")
    assert fresh.keys() == shipped.keys()
    for key in shipped:
        assert fresh[key].shape == shipped[key].shape and fresh[key].dtype == shipped[key].dtype, key
        # 1e-4: the fitted projection's cross-machine spread (4.1e-5) with margin; seeded draws agree far closer
        torch.testing.assert_close(fresh[key], shipped[key], rtol=1e-4, atol=1e-4, msg=f"{key}: rerun the script")

