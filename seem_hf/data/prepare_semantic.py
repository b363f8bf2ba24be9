"""Write semantic PNGs (contiguous label ids, void and crowd as 255) from a COCO-panoptic annotation, as the
original SEEM data preparation does:

    python -m seem_hf.data.prepare_semantic PANOPTIC_DIR PANOPTIC_JSON OUT_DIR [--ignore-index 255]
"""

from __future__ import annotations

import argparse

from seem_hf.data.coco_panoptic import write_semantic_maps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("panoptic_dir")
    parser.add_argument("panoptic_json")
    parser.add_argument("out_dir")
    parser.add_argument("--ignore-index", type=int, default=255)
    arguments = parser.parse_args(argv)
    written = write_semantic_maps(arguments.panoptic_dir, arguments.panoptic_json, arguments.out_dir,
                                  arguments.ignore_index)
    print(f"Wrote {len(written)} semantic maps to {arguments.out_dir}")


if __name__ == "__main__":
    main()
