"""Camera perception: detection (our YOLO, COCO ONNX teachers), label formats, evaluation on
recorded video, auto-labelling, sign types, lanes, tracking and the perception node.

Modules: ``classes`` (our classes and label-set mappings), ``detector`` (the Detector
interface and factory), ``onnx_detector``, ``yolo_detector``, ``labels`` (YOLO / KITTI /
COCO files), ``frames`` (video or image-directory input), ``evaluation`` (pycocotools
metrics), ``video_eval`` (eval-video), ``autolabel``, ``detector_training``, ``signs`` and
``sign_training``, ``geometry`` (image to road plane), ``lanes``, ``tracker``, ``node``.
Shipped weights and their cards are in ``perception/models``.
"""
