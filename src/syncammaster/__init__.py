"""SynCamMaster: N synchronized, 3D-consistent videos from a text prompt and N cameras."""

from .cameras import CameraError, CameraRig, Intrinsics
from .models import CheckpointError, SynCamMasterTransformer3DModel
from .pipeline import SynCamMasterPipeline, SynCamMasterPipelineOutput

__all__ = [
    "CameraError",
    "CameraRig",
    "CheckpointError",
    "Intrinsics",
    "SynCamMasterPipeline",
    "SynCamMasterPipelineOutput",
    "SynCamMasterTransformer3DModel",
]
