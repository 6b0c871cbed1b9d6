"""ClusterCord's kernel: services, plugin manager, dispatcher and front ends.

Plugins never import this package; they see only :mod:`clustercord_sdk`.
"""

__version__ = "0.1.0"
