from .transformer_syncammaster import CheckpointError, SynCamMasterTransformer3DModel

__all__ = ["CheckpointError", "SynCamMasterTransformer3DModel"]
