"""edgecnn: train, compress, export and deploy CNNs to edge devices."""

__version__ = "0.1.0"
