"""Test settings: offline, quiet, deterministic."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# No label-embedding disk cache (seem_hf.label_embeddings) unless a test sets one: no file in the user's cache home,
# and no test reads what an earlier run wrote.
os.environ.setdefault("SEEM_HF_LABEL_EMBEDDINGS_CACHE", "off")
os.environ.setdefault("SEEM_HF_VALIDATION_CACHE", "off")  # likewise for the datasets that passed validation
# pytest-xdist runs one worker per core: each worker (and the example scripts it starts) gets its share of the cores,
# since torch's default of one thread per core in every worker oversubscribes them (steps ran ~10x slower).
_threads = max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
os.environ.setdefault("OMP_NUM_THREADS", str(_threads))

import pytest  # noqa: E402
import torch  # noqa: E402

from seem_hf.testing import FIXTURES  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


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


# The longest files first: `./run test` hands whole files to the two workers (`--dist loadfile`, so module fixtures,
# such as the learning tests' one SEEM training, run once), and a long file started last leaves a core idle.
SLOW_FIRST = ("test_learning.py", "tests/examples/", "test_docs.py", "test_robustness.py", "test_app.py",
              "test_model_card_and_hub.py", "test_pipelines.py", "test_image_inputs.py")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        path = item.nodeid.split("::")[0]
        return next((index for index, slow in enumerate(SLOW_FIRST) if slow in path), len(SLOW_FIRST))

    items.sort(key=rank)  # stable: the order within a file is kept
