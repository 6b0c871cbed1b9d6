"""The hook contract is typed with the SDK's own classes, and the invocation moved below
context and services without breaking a single import."""

from __future__ import annotations

import inspect
import typing

import pluggy
import pytest

import clustercord_sdk
from clustercord_sdk import context, hookspecs, invocation, services

HOOKS = [
    getattr(hookspecs, name)
    for name in dir(hookspecs)
    if hasattr(getattr(hookspecs, name), "clustercord_spec")
]


def test_invocation_is_the_same_class_wherever_it_is_imported_from():
    assert context.Invocation is invocation.Invocation is clustercord_sdk.Invocation
    assert "Invocation" in context.__all__


@pytest.mark.parametrize(
    "function", HOOKS + list(hookspecs.HANDLER_CONVENTIONS), ids=lambda f: f.__name__
)
def test_every_parameter_is_typed_and_no_type_is_any_but_config_values(function):
    hints = typing.get_type_hints(function)
    for name in inspect.signature(function).parameters:
        assert name in hints, f"{function.__name__}({name}) has no type"
        if hints[name] is typing.Any:
            # Config values are whatever the manifest's schema declares; a button's value
            # is whatever the plugin put in it.
            assert (function.__name__, name) in {
                ("on_config_changed", "old"),
                ("on_config_changed", "new"),
                ("component_action", "value"),
            }, f"{function.__name__}({name}) is typed Any"
    if "ctx" in hints:
        assert hints["ctx"] in (context.PluginContext, context.CommandContext)


def test_the_handler_conventions_are_not_hooks_of_the_plugin_manager():
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    registered = {name for name in dir(manager.hook) if not name.startswith("_")}
    assert registered == {f.__name__ for f in HOOKS}
    for convention in hookspecs.HANDLER_CONVENTIONS:
        assert convention.__name__ not in registered
        with pytest.raises(NotImplementedError):
            convention(*[None] * len(inspect.signature(convention).parameters))


def test_hooks_and_services_see_the_same_invocation_type():
    hints = typing.get_type_hints(services.Conversations.open)
    assert hints["for_invocation"] is invocation.Invocation
    assert typing.get_type_hints(hookspecs.check_access)["invocation"] is invocation.Invocation
