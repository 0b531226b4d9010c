"""SynCamMaster: N synchronized, 3D-consistent videos from a text prompt and N cameras."""

from .models import CheckpointError, SynCamMasterTransformer3DModel

__all__ = ["CheckpointError", "SynCamMasterTransformer3DModel"]
