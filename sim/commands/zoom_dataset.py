"""``drivestack zoom-dataset``: training images of the zoom window, cut from YOLO datasets."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bus.atomic import check_writable_dir, write_text
from bus.messages.camera import DETECTION_CLASSES
from sim.commands.args import positive_int, zoom_window

logger = logging.getLogger(__name__)

DEFAULT_WINDOW = "0.36,0.40,0.70,0.58"
MAX_STACK = 32
"""Most windows in one image (JPEG images end at 65,500 px a side)."""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "zoom-dataset",
        help="cut the zoom window out of YOLO datasets, to train the second look on",
        description=(
            "Cut the zoom window (the band around the horizon ahead, where distant objects "
            "are; see eval-video --zoom) out of every frame of YOLO datasets, stack --stack "
            "windows of consecutive frames into one image, and write them with their boxes "
            "(clipped to the window, kept when at least half inside) as a YOLO dataset: "
            "OUT/images/SPLIT, OUT/labels/SPLIT, OUT/data.yaml. Trained on next to the full "
            "frames (list both in a data.yaml), the detector learns objects at the scale the "
            "second look shows them. data.yaml is written last: a dataset without it is "
            "unfinished."
        ),
    )
    parser.add_argument(
        "data", nargs="+", metavar="DIR", help="YOLO datasets (images/SPLIT, labels/SPLIT)"
    )
    parser.add_argument(
        "--zoom",
        type=zoom_window,
        default=DEFAULT_WINDOW,
        metavar="X0,Y0,X1,Y1",
        help="the window, as fractions of width and height (default: %(default)s)",
    )
    parser.add_argument(
        "--stack",
        type=positive_int,
        default=3,
        help=f"windows per image, at most {MAX_STACK} (default: %(default)s)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="dataset directory")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from perception.zoom import write_zoom_dataset

    sources = [Path(d) for d in args.data]
    if args.stack > MAX_STACK:
        raise ValueError(f"--stack must be at most {MAX_STACK}, got {args.stack}")
    for source in sources:
        if not (source / "images").is_dir():
            raise OSError(f"dataset {str(source)!r} has no images/ folder (a YOLO dataset)")
        if not (source / "labels").is_dir():
            logger.warning("dataset %s has no labels/ folder: its windows hold no boxes", source)
        if Path(args.out).resolve().is_relative_to(source.resolve()):
            raise ValueError(f"--out {args.out!r} lies inside the source dataset {str(source)!r}")
    out = check_writable_dir(args.out)
    counts = {}
    for split in ("train", "val"):
        written = 0
        for index, source in enumerate(sources):
            images = source / "images" / split
            if not images.is_dir() or not any(images.iterdir()):
                continue
            written += write_zoom_dataset(
                images,
                source / "labels" / split,
                out / "images" / split,
                args.zoom,
                stack=args.stack,
                prefix=f"zoom{index}_",
            )
        counts[split] = written
    if not counts["train"]:
        raise OSError(
            f"no training images were written: {', '.join(args.data)} hold no images/train"
        )
    names = "".join(f"  {index}: {name}\n" for index, name in enumerate(DETECTION_CLASSES))
    write_text(
        out / "data.yaml",
        f"path: {out.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}",
    )
    print(f"{counts['train']} train and {counts['val']} val images in {out}")
    return 0
