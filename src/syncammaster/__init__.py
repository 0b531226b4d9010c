"""SynCamMaster: N synchronized, 3D-consistent videos from a text prompt and N cameras.

The names below load on first use, so that ``import syncammaster`` (and ``syncammaster --help``) does not pay for
torch and diffusers until a model, a pipeline or a camera rig is actually needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .cameras import CameraError, CameraRig, Intrinsics
    from .models import CheckpointError, SynCamMasterTransformer3DModel
    from .pipeline import SynCamMasterPipeline, SynCamMasterPipelineOutput

_WHERE = {
    "CameraError": ".cameras",
    "CameraRig": ".cameras",
    "Intrinsics": ".cameras",
    "CheckpointError": ".models",
    "SynCamMasterTransformer3DModel": ".models",
    "SynCamMasterPipeline": ".pipeline",
    "SynCamMasterPipelineOutput": ".pipeline",
}

__all__ = [
    "CameraError",
    "CameraRig",
    "CheckpointError",
    "Intrinsics",
    "SynCamMasterPipeline",
    "SynCamMasterPipelineOutput",
    "SynCamMasterTransformer3DModel",
]


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name], __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
