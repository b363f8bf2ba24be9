"""Check a COCO-panoptic dataset and print every problem:

    python -m seem_hf.data.validate IMAGE_DIR PANOPTIC_DIR PANOPTIC_JSON [--grounding GROUNDING_JSON]

Exits 0 when the dataset is sound, 1 when it has problems (one line each, naming file and segment).
"""

from __future__ import annotations

import argparse
import sys

from seem_hf.data.coco_panoptic import validate_coco_panoptic


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image_dir")
    parser.add_argument("panoptic_dir")
    parser.add_argument("panoptic_json")
    parser.add_argument("--grounding", help="grounding JSON with sentences")
    arguments = parser.parse_args(argv)
    problems = validate_coco_panoptic(
        arguments.image_dir, arguments.panoptic_dir, arguments.panoptic_json, arguments.grounding
    )
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problem(s) found." if problems else "No problems found.", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
