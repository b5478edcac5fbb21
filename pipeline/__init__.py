"""dmt-avsl: Dual Mean-Teacher for semi-supervised audio-visual source localization."""

__version__ = "0.1.0"
