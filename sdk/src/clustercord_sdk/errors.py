"""Errors a plugin raises or receives. Each carries a message meant for a person."""

from __future__ import annotations


class ClusterCordError(Exception):
    """Base of every error the kernel shows to a user as-is."""


class CommandError(ClusterCordError):
    """The command ran and failed in a way the user should read (exit code 1)."""


class UsageError(ClusterCordError):
    """The command line or an option value is wrong (exit code 2)."""


class PermissionDenied(CommandError):
    """The user or the plugin may not do this; the message names what is missing."""


class ManifestError(ClusterCordError):
    """A plugin manifest is invalid. ``errors`` lists ``(path, message)`` pairs."""

    def __init__(self, errors: list[tuple[str, str]], source: str = "manifest") -> None:
        self.errors = errors
        self.source = source
        lines = "; ".join(f"{path or '<root>'}: {message}" for path, message in errors)
        super().__init__(f"{source} is invalid: {lines}")


class HookTimeout(BaseException):
    """Raised inside a hook implementation that overran its time budget.

    A BaseException so that a plugin's ``except Exception`` cannot swallow it.
    """
