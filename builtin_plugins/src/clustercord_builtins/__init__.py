"""ClusterCord's builtin plugins. Each subpackage is one plugin, loaded by the kernel
exactly like a third-party plugin (never imported through this package)."""

__version__ = "0.1.0"
