"""Front camera: pinhole model, OpenCV renderer, exact labels, appearance randomisation."""

from sim.camera.camera import CameraFrame, FrontCamera, image_array
from sim.camera.model import CameraConfig, CameraModel
from sim.camera.randomize import RandomizationConfig
from sim.camera.renderer import OpenCVRenderer, Renderer, RenderResult, SceneInput

__all__ = [
    "CameraConfig",
    "CameraFrame",
    "CameraModel",
    "FrontCamera",
    "OpenCVRenderer",
    "RandomizationConfig",
    "RenderResult",
    "Renderer",
    "SceneInput",
    "image_array",
]
