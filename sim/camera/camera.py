"""The front camera as used by the simulator: per-episode look and mount, per-frame image and
ground truth as bus messages."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bus.messages import Header
from bus.messages.camera import CameraInfo, FrameLabels, Image
from sim.camera.labels import frame_labels
from sim.camera.model import CameraConfig, CameraModel
from sim.camera.randomize import Appearance, RandomizationConfig, sample_appearance
from sim.camera.renderer import OpenCVRenderer, Renderer, RenderResult, SceneInput


@dataclass(frozen=True)
class CameraFrame:
    """One rendered frame: ``pixels`` HxWx3 uint8 RGB, its messages and the raw render."""

    pixels: np.ndarray
    image: Image
    labels: FrameLabels
    render: RenderResult


class FrontCamera:
    """Renders the scene seen by a camera on the ego vehicle.

    :param config: nominal camera; each episode jitters its height and pitch (see
        :class:`RandomizationConfig`), and :attr:`info` describes the jittered one.
    :param renderer: any :class:`Renderer`; the OpenCV rasteriser by default.
    """

    def __init__(
        self,
        config: CameraConfig | None = None,
        randomization: RandomizationConfig | None = None,
        renderer: Renderer | None = None,
    ) -> None:
        self.config = config or CameraConfig()
        self.randomization = randomization or RandomizationConfig()
        self.renderer: Renderer = renderer or OpenCVRenderer()
        self.appearance: Appearance = sample_appearance(0, self.randomization)
        self.model = CameraModel(self.config)
        self.frame_index = 0

    def reset(self, seed: int) -> CameraInfo:
        """Draw the episode's look and mount from ``seed``; returns the calibration."""
        self.appearance = sample_appearance(seed, self.randomization)
        self.model = CameraModel(
            self.config.jittered(
                self.config.height_m + self.appearance.height_offset_m,
                self.config.pitch_deg + self.appearance.pitch_offset_deg,
            )
        )
        self.frame_index = 0
        return self.info()

    def info(self, stamp_ns: int = 0) -> CameraInfo:
        return self.model.camera_info(stamp_ns)

    def render(
        self, scene: SceneInput, stamp_ns: int, seq: int = 0, frame_index: int | None = None
    ) -> CameraFrame:
        """Render the scene.

        :param frame_index: the key of this frame's sensor noise and flicker (with the
            episode seed): the same index gives the same noise, so a caller that renders
            extra frames (a video) does not change the others. None: the next value of the
            camera's own frame counter, which then advances.
        """
        if frame_index is None:
            frame_index = self.frame_index
            self.frame_index += 1
        result = self.renderer.render(scene, self.model, self.appearance, frame_index)
        header = Header(stamp_ns=stamp_ns, seq=seq, frame_id="camera")
        pixels = np.ascontiguousarray(result.image)
        height, width = pixels.shape[:2]
        image = Image(
            header=header, height=height, width=width, encoding="rgb8", data=pixels.tobytes()
        )
        labels = frame_labels(header, result, scene.lanes, self.model, scene.ego.pose)
        return CameraFrame(pixels, image, labels, result)


def image_array(image: Image) -> np.ndarray:
    """HxWx3 uint8 view of an ``rgb8`` :class:`Image` message.

    :raises ValueError: for another encoding or a data size that does not match.
    """
    if image.encoding != "rgb8":
        raise ValueError(f"image encoding {image.encoding!r} is not supported (expected rgb8)")
    expected = image.height * image.width * 3
    if len(image.data) != expected:
        raise ValueError(
            f"image data has {len(image.data)} bytes, expected {expected} "
            f"for {image.width}x{image.height} rgb8"
        )
    return np.frombuffer(image.data, dtype=np.uint8).reshape(image.height, image.width, 3)
