"""The detection classes of the stack and the mappings of public label sets onto them.

Class ids are indices into :data:`CLASS_NAMES`; YOLO datasets, detections on the bus and the
evaluation all use these ids. COCO category ids in files we write are ``class_id + 1``.
"""

from __future__ import annotations

CLASS_NAMES: tuple[str, ...] = ("car", "truck", "pedestrian", "traffic_sign", "lane_line")
"""Our classes; the index is the class id."""

CLASS_IDS: dict[str, int] = {name: index for index, name in enumerate(CLASS_NAMES)}

BOX_CLASS_NAMES: tuple[str, ...] = CLASS_NAMES[:4]
"""Classes detected as boxes (lane lines are polylines, see the lane estimate)."""

COCO80_NAMES: tuple[str, ...] = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)
"""The 80 COCO classes in the contiguous order detectors trained on COCO output."""

COCO_TO_OURS: dict[str, str] = {
    "car": "car",
    "bus": "truck",
    "truck": "truck",
    "person": "pedestrian",
    "stop sign": "traffic_sign",
    "traffic light": "traffic_sign",
}
"""COCO class name -> our class name; COCO classes absent here are dropped."""

COCO80_TO_CLASS_ID: dict[int, int] = {
    COCO80_NAMES.index(coco): CLASS_IDS[ours] for coco, ours in COCO_TO_OURS.items()
}
"""Contiguous COCO-80 index -> our class id."""

KITTI_TO_OURS: dict[str, str | None] = {
    "Car": "car",
    "Van": "car",
    "Truck": "truck",
    "Pedestrian": "pedestrian",
    "Person_sitting": "pedestrian",
    "Cyclist": None,
    "Tram": None,
    "Misc": None,
    "DontCare": None,
}
"""KITTI label_2 type -> our class name, None for known KITTI types we do not detect."""

KITTI_IGNORE_TYPE = "DontCare"
"""KITTI regions where detections are neither rewarded nor penalised."""


def class_id(name: str, source: str = "class name") -> int:
    """Our class id of ``name``.

    :raises ValueError: listing the valid names when ``name`` is not one of ours.
    """
    try:
        return CLASS_IDS[name]
    except KeyError:
        raise ValueError(
            f"unknown {source} {name!r}; valid classes: {', '.join(CLASS_NAMES)}"
        ) from None


def map_class_name(name: str) -> int | None:
    """Our class id for a name that is ours or a COCO name; None for a COCO class we drop.

    :raises ValueError: when ``name`` is neither one of our classes nor a COCO class.
    """
    if name in CLASS_IDS:
        return CLASS_IDS[name]
    if name in COCO80_NAMES:
        ours = COCO_TO_OURS.get(name)
        return None if ours is None else CLASS_IDS[ours]
    raise ValueError(
        f"unknown class name {name!r}: neither one of ours ({', '.join(CLASS_NAMES)}) "
        "nor a COCO class"
    )
