"""Write semantic PNGs (contiguous label ids, void and crowd as 255) from a COCO-panoptic annotation, as the
original SEEM data preparation does. The annotation and its PNGs are checked first; a dataset with problems is
refused with the list (exit status 1), and nothing is written.

    python -m seem_hf.data.prepare_semantic PANOPTIC_DIR PANOPTIC_JSON OUT_DIR [--ignore-index 255]
"""

from __future__ import annotations

import argparse
import sys

from seem_hf.data.coco_panoptic import write_semantic_maps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m seem_hf.data.prepare_semantic",
        description="Write semantic PNGs (contiguous label ids, void and crowd as the ignore index) from a "
        "COCO-panoptic annotation, as the original SEEM data preparation does. The annotation and its PNGs are "
        "checked first; a dataset with problems is refused with the list and nothing is written.",
    )
    parser.add_argument("panoptic_dir", help="folder of the panoptic PNGs (the JSON's annotations[].file_name)")
    parser.add_argument("panoptic_json", help="the COCO-panoptic JSON (images, annotations, categories)")
    parser.add_argument("out_dir", help="folder for the semantic PNGs (same file names as the panoptic PNGs)")
    parser.add_argument("--ignore-index", type=int, default=255,
                        help="value of void and crowd pixels (default 255; above 255 writes 16-bit PNGs)")
    arguments = parser.parse_args(argv)
    try:
        written = write_semantic_maps(arguments.panoptic_dir, arguments.panoptic_json, arguments.out_dir,
                                      arguments.ignore_index)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"Wrote {len(written)} semantic maps to {arguments.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
