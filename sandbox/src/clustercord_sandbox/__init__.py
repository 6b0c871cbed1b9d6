"""The ClusterCord sandbox: a Kubernetes API server for demos and tests.

It is not a Kubernetes distribution (no container image runs; what is exec'd in a pod runs in
that pod's own Linux namespaces, see `isolation`); it is faithful enough at the API that the
real `kubectl` and the official Python client work against it.

It is a distribution of its own, `clustercord-sandbox`, not part of the kernel: it depends on
the SDK only (its RBAC library and label selectors), the kernel reaches it only behind its
`clustercord sandbox` command line when it is installed (the `clustercord[sandbox]` extra),
and the testing kit (`clustercord-testing`) starts it for tests.
"""

__version__ = "0.1.0"

# Nothing heavy is imported here: `clustercord --help` builds the sandbox's parser, and
# the CLI must not pay for aiohttp unless the sandbox runs.
BANNER = "ClusterCord sandbox: a Kubernetes API for demos and tests, not a Kubernetes distribution."
