"""The Discord front end (hikari + hikari-lightbulb 3).

- :mod:`.commands`: plugin manifests → application-command payloads, checked against
  Discord's rules, and the lightbulb command classes that register and receive them;
- :mod:`.render`: the SDK's :class:`~clustercord_sdk.reply.Reply` → Discord messages
  within every limit;
- :mod:`.components`: buttons, selects and modals routed back to plugins by namespaced
  custom ids whose state lives in the kernel's database;
- :mod:`.responder`: one interaction's answer: direct, deferred, follow-ups, and the
  bot-owned message once the interaction token has expired;
- :mod:`.app`: the front end proper, an adapter: interactions in, the kernel's
  dispatcher (commands, component actions, modal submissions) in the middle, answers out;
- :mod:`.server`: ``clustercord serve`` in gateway or interaction-server mode;
- :mod:`.settings`: ``[discord]`` and the ``DISCORD_*`` environment;
- :mod:`.notifications`: delivery of the plugins' queued notifications.
"""
