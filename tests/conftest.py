"""Test settings: offline, quiet, deterministic."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

from seem_hf.testing import FIXTURES  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def tiny_detr_panoptic_folder():
    return FIXTURES / "tiny-random-detr_panoptic"


@pytest.fixture
def tiny_lseg_folder():
    return FIXTURES / "tiny-random-lseg"


@pytest.fixture
def tiny_seem_folder():
    return FIXTURES / "tiny-random-seem"
