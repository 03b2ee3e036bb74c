"""GGLOps: distributed MLOps training platform for GGL-Net infrared small target detection."""

__version__ = "0.1.0"
