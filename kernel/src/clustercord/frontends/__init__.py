"""Front ends: the ways a person reaches the kernel (the console here, Discord elsewhere).

A front end turns what a person types or clicks into an Invocation and renders
the Reply it gets back; it holds no command logic of its own: policy, guard and audit
are the kernel's (:mod:`clustercord.door`). :class:`~.console.ConsoleFrontend` is the
console's façade (``clustercord run``, the REPL, the testing kit's harness);
:class:`~.discord.app.DiscordFrontend` is Discord's.
"""
