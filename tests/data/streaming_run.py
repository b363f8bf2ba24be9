"""Run by tests/data/test_streaming.py under torchrun (`python -m tests.data.streaming_run OUT_DIR ARGS...`): the LSeg
example trains on ARGS in each process, and each process writes the image ids its training data loader read, in
order, to OUT_DIR/seen-RANK.json."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from seem_hf.data.streaming import StreamedPanopticDataset
from tests.helpers import load_example

SEEN: list[int] = []
_READ = StreamedPanopticDataset.__iter__


def _recorded(self):
    for item in _READ(self):
        SEEN.append(int(item["image_id"]))
        yield item


if __name__ == "__main__":
    StreamedPanopticDataset.__iter__ = _recorded
    load_example("finetune_lseg").main(sys.argv[2:])
    Path(sys.argv[1], f"seen-{os.environ['RANK']}.json").write_text(json.dumps(SEEN))
