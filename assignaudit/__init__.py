"""assignaudit: audit how 3D object detectors turn ground truth into training targets."""

__version__ = "0.1.0"
