"""An example ClusterCord plugin for Minecraft servers run as StatefulSets: status over the
Server List Ping protocol, restart with an RCON warning first, backup through RCON."""
