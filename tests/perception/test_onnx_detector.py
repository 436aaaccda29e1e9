"""The pretrained COCO ONNX detectors, decoded and mapped onto our classes, find the
labelled cars of a real KITTI frame."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from perception.classes import CLASS_IDS
from perception.detector import box_iou, load_detector
from perception.labels import read_kitti_label

MODELS = ("yolox_nano/yolox_nano.onnx", "fastestdet/FastestDet.onnx")
MIN_IOU = 0.5


@pytest.mark.parametrize("model", MODELS)
def test_teacher_finds_the_kitti_cars(shared_dir, model):
    kitti = shared_dir / "data/images/kitti_object"
    image = cv2.cvtColor(cv2.imread(str(kitti / "image_2/000008.png")), cv2.COLOR_BGR2RGB)
    truth = read_kitti_label(kitti / "label_2/000008.txt")
    cars = truth.boxes_xyxy[truth.class_ids == CLASS_IDS["car"]]
    detector = load_detector(shared_dir / "models" / model, conf=0.3)

    detections = detector.detect(image)

    found = detections.select(detections.class_ids == CLASS_IDS["car"])
    assert len(found) >= len(cars)
    best_iou = box_iou(cars, found.boxes_xyxy).max(axis=1)
    assert np.all(best_iou >= MIN_IOU), best_iou
    assert detections.boxes_xyxy.min() >= 0
    assert detections.boxes_xyxy[:, 2].max() <= image.shape[1]
    assert detections.scores.min() >= 0.3


def test_onnx_of_unknown_layout_is_rejected(tmp_path, shared_dir):
    from perception.onnx_detector import _recognise_layout

    class Shape:
        def __init__(self, shape):
            self.shape = shape

    class Session:
        def get_inputs(self):
            return [Shape([1, 3, 224, 224])]

        def get_outputs(self):
            return [Shape([1, 1000])]

    with pytest.raises(ValueError, match="classifier.onnx.*neither a YOLOX"):
        _recognise_layout(Session(), tmp_path / "classifier.onnx")
