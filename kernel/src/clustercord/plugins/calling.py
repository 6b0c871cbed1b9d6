"""How a plugin function is called: with only the arguments it declares.

One rule for every kind of handler (command, component action, form, job), shared by the
kernel's door and by an isolated plugin's own process, which must not import the door.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any


def declared_arguments(
    function: Callable[..., Any], available: Mapping[str, Any], *, positional: str | None = None
) -> tuple[Callable[..., Any], dict[str, Any]]:
    """``function`` ready to call with the keyword arguments it declares, out of
    ``available``: a handler takes ``ctx``, ``value``, ``fields``, ``job``… only if it names
    them. ``positional`` names the argument a handler gets first whatever it calls it (a
    command handler is ``handler(ctx)``)."""
    wanted = inspect.signature(function).parameters
    kwargs = {name: value for name, value in available.items() if name in wanted}
    if positional is not None and positional not in wanted and wanted:
        kwargs.pop(positional, None)
        return functools.partial(function, available[positional]), kwargs
    return function, kwargs
