"""Training: typed stage configs, LightningModules, and the resumable runner behind ``syncammaster train``."""

from .config import TrainConfig, load_config
from .modules import FlowMatchingModule, FlowSchedule, VAEModule
from .stages import train

__all__ = ["FlowMatchingModule", "FlowSchedule", "TrainConfig", "VAEModule", "load_config", "train"]
