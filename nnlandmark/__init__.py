"""nnlandmark: self-configuring 3D landmark detection as an nnU-Net v2 extension."""
__version__ = "0.1.0"
