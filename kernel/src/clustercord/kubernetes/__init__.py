"""The kernel's Kubernetes service: clusters, clients, identities, events."""
