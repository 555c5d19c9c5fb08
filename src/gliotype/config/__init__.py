"""Configuration as typed data: presets ``paper``, ``cpu``, ``tiny`` + YAML + overrides."""

from gliotype.config.loader import PRESETS, config_hash, load_config, parse_override, save_config
from gliotype.config.schema import GliotypeConfig

__all__ = ["PRESETS", "GliotypeConfig", "config_hash", "load_config", "parse_override", "save_config"]
