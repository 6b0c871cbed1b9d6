"""The ClusterCord plugin SDK: the only contract a plugin sees.

A plugin is a Python package whose folder holds ``manifest.json`` (validated by
:mod:`clustercord_sdk.manifest`) and module-level hook implementations marked with
:data:`hookimpl`. Command handlers are plain functions named in the manifest;
they receive a :class:`~clustercord_sdk.context.CommandContext` and return a
:class:`~clustercord_sdk.reply.Reply`.
"""

from clustercord_sdk.context import CommandContext, HookContext, PluginContext
from clustercord_sdk.errors import CommandError, ManifestError, PermissionDenied, UsageError
from clustercord_sdk.events import Event
from clustercord_sdk.hookspecs import hookimpl
from clustercord_sdk.invocation import Invocation
from clustercord_sdk.reply import (
    Button,
    Card,
    Confirmation,
    Field,
    File,
    Modal,
    Progress,
    Reply,
    Select,
    SelectOption,
    Table,
    TextInput,
)

__version__ = "0.1.0"

#: The kernel API this SDK describes. A manifest's ``api`` range is checked against it.
API_VERSION = "1.0"

__all__ = [
    "API_VERSION",
    "Button",
    "Card",
    "CommandContext",
    "CommandError",
    "Confirmation",
    "Event",
    "Field",
    "File",
    "HookContext",
    "Invocation",
    "ManifestError",
    "Modal",
    "PermissionDenied",
    "PluginContext",
    "Progress",
    "Reply",
    "Select",
    "SelectOption",
    "Table",
    "TextInput",
    "UsageError",
    "__version__",
    "hookimpl",
]
