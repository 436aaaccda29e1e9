"""``drivestack make-dataset``: a YOLO detection dataset and lane labels from the front camera.

Layout under ``--out``::

    data.yaml                      YOLO detection dataset (names: car truck pedestrian
                                   traffic_sign lane_line; boxes use the first four)
    images/{train,val}/NAME.jpg    camera frames
    labels/{train,val}/NAME.txt    YOLO boxes "class cx cy w h", normalised
    annotations/{train,val}/NAME.json
                                   exact labels: boxes with ids, visible fraction, truncation,
                                   distance, sign type and speed-limit number; lane lines
                                   as image and ego-frame polylines
    coco/{train,val}.json          COCO ground truth of the boxes; those left out of the YOLO
                                   labels (--min-height-px, --min-visible) are iscrowd
                                   ignore regions
    lane_seg/data.yaml             YOLO segmentation dataset of the lane lines (class 4):
    lane_seg/images/{train,val}/NAME.jpg   hard links to the images above (copies where links
    lane_seg/labels/{train,val}/NAME.txt   are impossible), polygons around each lane line
    episodes/SEED.json             per finished episode: split, camera calibration, frames
    dataset.json                   summary: counts per split and class

NAME is ``e{episode seed:06d}_{frame:04d}``; frames are ``--interval-s`` of simulated time
apart (by default one per control step), starting with the episode's first state. Episodes
are split into train and val as a whole, so no episode is in both. A rerun with the same
arguments skips finished episodes and frames.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import cv2

from bus.atomic import atomic_path, check_writable_dir, write_json, write_text
from bus.messages.camera import DETECTION_CLASSES, FrameLabels, Image
from sim.camera import CameraConfig, image_array
from sim.camera.labels import labels_to_json, yolo_box_rows, yolo_segment_rows
from sim.camera.model import CameraModel
from sim.commands.args import add_env_argument, nonnegative_int, positive_float, positive_int
from sim.commands.coco_export import write_coco_splits
from sim.envs import check_env_id
from sim.loop import ClosedLoop
from sim.simulator import SimConfig

logger = logging.getLogger(__name__)

SPLITS = ("train", "val")
JPEG_QUALITY = 95


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "make-dataset",
        help="render a YOLO detection dataset and lane labels from the simulated front camera",
        description=(
            "Drive episodes with the rule planner and save the front camera's frames with exact "
            "labels: YOLO boxes (car, truck, pedestrian, traffic_sign), per-frame JSON (boxes "
            "with ids and visible fraction, lane lines as image and road polylines) and YOLO "
            "segmentation polygons of the lane lines, and COCO ground truth (coco/SPLIT.json) "
            "in which the boxes too small or hidden to train on are ignore regions. Whole "
            "episodes go to train or val. "
            "Rerunning with the same arguments resumes."
        ),
    )
    add_env_argument(parser)
    parser.add_argument(
        "--frames",
        type=positive_int,
        default=1000,
        help="total frames to produce (default: %(default)s)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="dataset directory")
    parser.add_argument(
        "--seed",
        type=nonnegative_int,
        default=0,
        help="seed of the first episode; episode i uses SEED+i (default: %(default)s)",
    )
    parser.add_argument(
        "--val-fraction",
        type=_fraction,
        default=0.2,
        help="share of episodes in the val split (default: %(default)s)",
    )
    parser.add_argument(
        "--frames-per-episode",
        type=nonnegative_int,
        default=0,
        metavar="K",
        help="at most K frames per episode, 0 for every control step (default: %(default)s)",
    )
    parser.add_argument(
        "--interval-s",
        type=positive_float,
        default=1.0,
        metavar="S",
        help="simulated time between saved frames, rounded to whole simulation "
        "frames; 1 s saves one frame per control step of highway-env "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--width", type=positive_int, default=640, help="image width [px] (default: %(default)s)"
    )
    parser.add_argument(
        "--height", type=positive_int, default=360, help="image height [px] (default: %(default)s)"
    )
    parser.add_argument(
        "--hfov-deg",
        type=float,
        default=CameraConfig.hfov_deg,
        help="horizontal field of view [deg] (default: %(default)s)",
    )
    parser.add_argument(
        "--min-visible",
        type=_fraction,
        default=0.25,
        help="boxes less visible than this are left out of the YOLO labels "
        "(the JSON keeps them) (default: %(default)s)",
    )
    parser.add_argument(
        "--min-height-px",
        type=float,
        default=4.0,
        help="boxes lower than this are left out of the YOLO labels (default: %(default)s)",
    )
    parser.add_argument(
        "--only-with",
        type=_class_list,
        default=(),
        metavar="CLASSES",
        help="save only frames holding a labelled box of one of these comma-separated "
        "classes (e.g. pedestrian,traffic_sign) at least --only-with-height-px tall: mines "
        "rare classes (default: every frame)",
    )
    parser.add_argument(
        "--only-with-height-px",
        type=float,
        default=12.0,
        metavar="H",
        help="least box height for --only-with [px] (default: %(default)s)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(handler=run)


def _class_list(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in DETECTION_CLASSES[:4]]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated classes among {', '.join(DETECTION_CLASSES[:4])}, "
            f"got {text!r}"
        )
    return tuple(sorted(set(names), key=DETECTION_CLASSES.index))  # one spelling per set


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text!r}")
    return value


def split_of(episode: int, val_fraction: float) -> str:
    """``val`` for an evenly spread ``val_fraction`` of episode indices, else ``train``."""
    is_val = math.floor((episode + 1) * val_fraction) > math.floor(episode * val_fraction)
    return "val" if is_val else "train"


class _Enough(Exception):
    """Raised from the step callback when the dataset has all its frames."""


class DatasetWriter:
    """Writes frames of one episode; every file goes through a temporary name."""

    def __init__(self, out: Path, args: argparse.Namespace, camera: CameraModel | None = None):
        self.out = out
        self.args = args
        self.camera = camera
        self.class_counts: Counter[str] = Counter()

    def frame_paths(self, split: str, name: str) -> dict[str, Path]:
        return {
            "image": self.out / "images" / split / f"{name}.jpg",
            "boxes": self.out / "labels" / split / f"{name}.txt",
            "json": self.out / "annotations" / split / f"{name}.json",
            "lanes": self.out / "lane_seg" / "labels" / split / f"{name}.txt",
            "lane_image": self.out / "lane_seg" / "images" / split / f"{name}.jpg",
        }

    def exists(self, split: str, name: str) -> bool:
        return all(path.exists() for path in self.frame_paths(split, name).values())

    def write(self, split: str, name: str, image: Image, labels: FrameLabels) -> None:
        """Write the frame's files; the image last, so a listed image has its labels."""
        assert self.camera is not None
        paths = self.frame_paths(split, name)
        rows = yolo_box_rows(labels, self.args.min_visible, self.args.min_height_px)
        write_text(paths["boxes"], "".join(row + "\n" for row in rows))
        segments = yolo_segment_rows(labels, self.camera)
        write_text(paths["lanes"], "".join(row + "\n" for row in segments))
        write_json(paths["json"], labels_to_json(labels))
        pixels = cv2.cvtColor(image_array(image), cv2.COLOR_RGB2BGR)
        with atomic_path(paths["image"]) as tmp:
            if not cv2.imwrite(str(tmp), pixels, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
                raise OSError(f"cannot write image {paths['image']}")
        _link_or_copy(paths["image"], paths["lane_image"])
        self.class_counts.update(DETECTION_CLASSES[int(row.split()[0])] for row in rows)


RESUME_SETTINGS = (
    "env",
    "seed",
    "val_fraction",
    "frames_per_episode",
    "interval_s",
    "width",
    "height",
    "hfov_deg",
    "min_visible",
    "min_height_px",
    "only_with",
    "only_with_height_px",
)
"""Arguments that must match for a rerun to resume (``--frames`` may grow)."""
ADDED_SETTINGS = {"only_with": [], "only_with_height_px": 12.0}
"""Settings newer than some datasets, with the value those datasets were made with."""


def _check_same_settings(out: Path, args: argparse.Namespace) -> None:
    """Refuse to mix datasets: a rerun into ``out`` must use the settings it was made with."""
    settings_path = out / "settings.json"
    settings = {key: _plain(getattr(args, key)) for key in RESUME_SETTINGS}
    if settings_path.exists():
        try:
            previous = json.loads(settings_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ValueError(f"{settings_path}: unreadable ({error})") from None
        differing = [
            f"--{key.replace('_', '-')} {previous.get(key)!r} (now {value!r})"
            for key, value in settings.items()
            if previous.get(key, ADDED_SETTINGS.get(key)) != value
        ]
        if differing:
            raise ValueError(
                f"{out} holds a dataset made with other settings: {', '.join(differing)}; "
                "rerun with those settings to resume, or choose another --out"
            )
    elif any(out.iterdir()):
        raise ValueError(
            f"{out} is not empty and holds no drivestack dataset; choose another --out"
        )
    write_json(settings_path, settings)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def holds_class(rows: list[str], classes: tuple[str, ...], min_height: float) -> bool:
    """Whether YOLO rows (``class cx cy w h``, heights as fractions of the image height
    ``min_height`` is given in) hold a box of ``classes`` at least that tall."""
    wanted = {DETECTION_CLASSES.index(name) for name in classes}
    return any(
        int(fields[0]) in wanted and float(fields[4]) >= min_height
        for fields in (row.split() for row in rows)
    )


def run(args: argparse.Namespace) -> int:
    from planning.rule import RulePlanner
    from sim.progress import progress_bar

    check_env_id(args.env)
    out = check_writable_dir(args.out)
    _check_same_settings(out, args)
    camera = CameraConfig(width_px=args.width, height_px=args.height, hfov_deg=args.hfov_deg)
    _write_layout(out)
    loop = ClosedLoop(SimConfig(env_id=args.env, camera=camera), RulePlanner())
    writer = DatasetWriter(out, args)
    done = _finished_frames(out)
    produced = min(sum(done.values()), args.frames)
    episode = 0
    try:
        with progress_bar(
            not args.no_progress,
            total=args.frames,
            initial=produced,
            unit="frame",
            desc=f"make-dataset {args.env}",
        ) as bar:
            while produced < args.frames:
                seed = args.seed + episode
                if seed in done:
                    episode += 1
                    continue
                produced += _episode(loop, writer, args, episode, seed, args.frames - produced, bar)
                episode += 1
    finally:
        loop.close()
    summary = _summary(out, args)
    write_coco_splits(out, SPLITS, args.min_visible, args.min_height_px)
    write_json(out / "dataset.json", summary)
    for split in ("train", "val"):
        if not summary["splits"][split]["frames"]:
            logger.warning(
                "the %s split is empty: episodes are never divided between splits, so ask "
                "for more frames (or fewer --frames-per-episode)",
                split,
            )
    print(
        f"{summary['frames']} frames ({summary['splits']['train']['frames']} train, "
        f"{summary['splits']['val']['frames']} val) in {out}; data.yaml: {out / 'data.yaml'}"
    )
    return 0


def _episode(
    loop: ClosedLoop, writer: DatasetWriter, args, episode: int, seed: int, budget: int, bar
) -> int:
    """Drive one episode until it holds ``budget`` frames (frames left by an interrupted run
    count, and are not rewritten); returns how many frames it holds."""
    simulator = loop.simulator
    camera = simulator.camera
    assert camera is not None, "make-dataset builds its simulator with a camera"
    split = split_of(episode, args.val_fraction)
    every = max(1, round(args.interval_s * simulator.simulation_rate_hz))
    limit = args.frames_per_episode or None
    state: dict[str, Any] = {"sim_frames": 0, "frames": []}

    def on_sim_frame(stamp_ns: int) -> None:
        sim_frame = state["sim_frames"]
        state["sim_frames"] += 1
        if sim_frame % every:
            return
        index = len(state["frames"])
        if limit is not None and index >= limit:
            raise _Enough
        name = f"e{seed:06d}_{index:04d}"
        writer.camera = camera.model
        frame = None
        if args.only_with:
            frame = simulator.camera_frame(stamp_ns)
            rows = yolo_box_rows(frame.labels, args.min_visible, args.min_height_px)
            if not holds_class(rows, args.only_with, args.only_with_height_px / args.height):
                return
        if not writer.exists(split, name):
            frame = frame or simulator.camera_frame(stamp_ns)
            writer.write(split, name, frame.image, frame.labels)
        bar.update(1)
        state["frames"].append(name)
        if len(state["frames"]) >= budget:
            raise _Enough

    complete = True
    simulator.sim_frame_hook = on_sim_frame
    try:
        loop.run_episode(episode, seed)
    except _Enough:
        complete = limit is not None and len(state["frames"]) >= limit
    finally:
        simulator.sim_frame_hook = None
    write_json(
        writer.out / "episodes" / f"{seed:06d}.json",
        {
            "seed": seed,
            "episode": episode,
            "split": split,
            "env": args.env,
            "complete": complete,
            "frame_interval_s": every / simulator.simulation_rate_hz,
            "frames": state["frames"],
            "camera_info": json.loads(_encode(camera.info())),
        },
    )
    return len(state["frames"])


def _encode(message) -> str:
    import msgspec

    return msgspec.json.encode(message).decode()


def _finished_frames(out: Path) -> dict[int, int]:
    """Seed -> frame count of the episodes finished by an earlier run."""
    finished: dict[int, int] = {}
    for path in sorted((out / "episodes").glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if record.get("complete"):
                finished[int(record["seed"])] = len(record["frames"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            logger.warning("ignoring unreadable episode record %s: %s", path, error)
    return finished


def _write_layout(out: Path) -> None:
    names = "".join(f"  {index}: {name}\n" for index, name in enumerate(DETECTION_CLASSES))
    for split in SPLITS:
        for folder in ("images", "labels", "annotations", "lane_seg/images", "lane_seg/labels"):
            (out / folder / split).mkdir(parents=True, exist_ok=True)
    write_text(
        out / "data.yaml",
        f"path: {out.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}",
    )
    write_text(
        out / "lane_seg" / "data.yaml",
        f"path: {(out / 'lane_seg').resolve()}\ntrain: images/train\nval: images/val\n"
        f"names:\n{names}",
    )


def _link_or_copy(source: Path, target: Path) -> None:
    """Make ``target`` the same file as ``source`` (hard link, else a copy), atomically.

    A link, not a symbolic link: ultralytics resolves symbolic links and would then look for
    the labels beside the detection dataset's images."""
    with atomic_path(target) as tmp:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)


def _summary(out: Path, args: argparse.Namespace) -> dict[str, Any]:
    splits: dict[str, Any] = {}
    for split in SPLITS:
        counts: Counter[str] = Counter()
        labels = sorted((out / "labels" / split).glob("*.txt"))
        for path in labels:
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    counts[DETECTION_CLASSES[int(line.split()[0])]] += 1
        splits[split] = {"frames": len(labels), "boxes": dict(sorted(counts.items()))}
    return {
        "command": "make-dataset",
        "env": args.env,
        "seed": args.seed,
        "frames_requested": args.frames,
        "frames": sum(s["frames"] for s in splits.values()),
        "splits": splits,
        "classes": list(DETECTION_CLASSES),
        "min_visible_fraction": args.min_visible,
        "min_height_px": args.min_height_px,
        "only_with": list(args.only_with),
        "only_with_height_px": args.only_with_height_px,
    }
