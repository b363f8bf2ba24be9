"""Check a COCO-panoptic dataset and print every problem, one line each naming the file, the image and the
segment (the rules: `seem_hf.data.validation`). Exits 0 when the dataset is sound, 1 when it has problems.

    python -m seem_hf.data.validate IMAGE_DIR PANOPTIC_DIR PANOPTIC_JSON [--grounding GROUNDING_JSON]
"""

from __future__ import annotations

import argparse
import sys

from seem_hf.data.validation import plural, validate_coco_panoptic


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m seem_hf.data.validate",
        description="Check a COCO-panoptic dataset and print every problem, one line each naming the file, the "
        "image and the segment. Exits 0 when the dataset is sound, 1 when it has problems.",
    )
    parser.add_argument("image_dir", help="folder of the images (the JSON's images[].file_name)")
    parser.add_argument("panoptic_dir", help="folder of the panoptic PNGs (the JSON's annotations[].file_name)")
    parser.add_argument("panoptic_json", help="the COCO-panoptic JSON (images, annotations, categories)")
    parser.add_argument("--grounding", metavar="GROUNDING_JSON",
                        help="grounding JSON with referring sentences (annotations with image_id, segmentation, "
                        "sentences)")
    arguments = parser.parse_args(argv)
    problems = validate_coco_panoptic(
        arguments.image_dir, arguments.panoptic_dir, arguments.panoptic_json, arguments.grounding
    )
    for problem in problems:
        print(problem)
    print(f"{plural(len(problems), 'problem')} found." if problems else "No problems found.", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
