"""ClusterCord marketplace publisher tools (marketplace/README.md)."""

__version__ = "0.1.0"
