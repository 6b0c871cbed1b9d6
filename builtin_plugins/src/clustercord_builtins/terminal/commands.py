"""Handlers of ``/terminal``: run and record, then replay, search, export and expire.

A recording is its owner's and the admins': anyone else asking for one is told it does not
exist for them, and every view is written down (who, which, how, when).
"""

from __future__ import annotations

import json
import shlex
from bisect import bisect_left
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from clustercord_builtins.terminal import console_keys, formats, known_secrets
from clustercord_builtins.terminal.ansi import strip_ansi
from clustercord_builtins.terminal.console_keys import steered_by_keys
from clustercord_builtins.terminal.known_secrets import KnownSecrets
from clustercord_builtins.terminal.recording import Recorder, Recording, new_session_id
from clustercord_builtins.terminal.session import (
    IDLE_LIMIT,
    Replay,
    run_command,
    run_shell,
)
from clustercord_builtins.terminal.storage import Recordings, Summary
from clustercord_sdk import Button, CommandContext, File, Progress, Reply, Table
from clustercord_sdk.errors import CommandError, PermissionDenied
from clustercord_sdk.kubernetes import default_container
from clustercord_sdk.reply import code_block

INLINE_OUTPUT = 1800
"""Characters of command output shown in the reply; more comes as a file."""

PAGE_LINES = 20
"""Transcript lines per playback page (a page is one message of at most 2,000 characters)."""

REWIND = 10.0
"""Seconds of the recording the ⏪ button goes back."""

LIVE_LINES, LIVE_CHARS = 15, 1500
"""What a live replay's message shows: its last lines, within one chat message."""

EXPORTS: dict[str, tuple[str, str, Any]] = {
    # format: (file extension, MIME type, writer)
    "json": ("json", "application/json", lambda r: json.dumps(formats.to_json(r), indent=2)),
    "tty": ("cast", "application/x-asciicast", formats.to_asciicast_v2),
    "text": ("txt", "text/plain", formats.to_text),
    "html": ("html", "text/html", formats.to_html),
}


# -- running --------------------------------------------------------------------------
async def exec_command(ctx: CommandContext) -> Reply:
    target, pod = await _target(ctx)
    known = await _known_secrets(ctx, target, pod)
    line = ctx.options["command"]
    shell = ctx.config.get("shell") or ""
    try:
        argv = [shell, "-c", line] if shell else shlex.split(line)
    except ValueError as exc:
        raise CommandError(f"command: {exc}") from None
    recorder = _recorder(ctx, target, argv, known)
    recorder.input(line + "\n")  # what was asked, so search and jump find it
    timeout = float(ctx.config.get("exec_timeout", 300))
    recording, timed_out = await run_command(ctx.kubernetes, recorder, target, timeout)
    summary = Recordings(ctx.store).save(recording)
    output = strip_ansi("".join(d for _, code, d in recording.events if code == "o"))
    outcome = f"stopped after {timeout:g} s" if timed_out else f"exit {recording.exit_code}"
    header = f"🎥 `{recording.id}` · {_place(summary)} · {outcome} · {recording.duration:.1f} s"
    if known.note():
        header += f"\n🔒 {known.note()}"
    data = {"session": recording.id, "exit_code": recording.exit_code, "output": output}
    buttons = [_replay_button(recording.id)]
    if not output.strip():
        return Reply(text=f"{header}\n(no output)", buttons=buttons, data=data)
    if len(output) <= INLINE_OUTPUT:
        return Reply(text=f"{header}\n{code_block(output.rstrip())}", buttons=buttons, data=data)
    preview = code_block(output[-INLINE_OUTPUT:].split("\n", 1)[-1].rstrip())
    attachment = File(f"{recording.id}.txt", output.encode(), "command output", "text/plain")
    return Reply(
        text=f"{header} (last lines; the whole output is attached)\n{preview}",
        files=[attachment],
        buttons=buttons,
        data=data,
    )


async def open_session(ctx: CommandContext) -> Reply:
    target, pod = await _target(ctx)
    known = await _known_secrets(ctx, target, pod)
    shell = ctx.config.get("shell") or "/bin/sh"
    recorder = _recorder(ctx, target, [shell], known)
    conversations = ctx.plugin.require("conversations")
    where = f"{target['namespace']}/{target['pod']}"
    chat = await conversations.open(
        f"🎥 {where} · {recorder.id}",
        for_invocation=ctx.invocation,
        private=bool(ctx.config.get("private_threads", True)),  # the opener (and moderators)
    )
    idle = float(ctx.config.get("idle_timeout", 600))
    await chat.send(
        f"Shell `{shell}` in {where} (container {target['container']}) on {target['cluster']}, "
        f"recorded as `{recorder.id}` with secrets masked. Each message you write here is a "
        "line typed; `^C` interrupts, `exit` ends. The session ends after "
        f"{idle:g} s without a message." + (f"\n🔒 {known.note()}" if known.note() else "")
    )
    try:
        recording, ended = await run_shell(
            ctx.kubernetes, recorder, target, chat, owner=ctx.user_id, idle_timeout=idle
        )
    except CommandError as exc:  # the connection broke: what was recorded is still kept
        recording, ended = recorder.finish(None), f"error: {exc}"
    summary = Recordings(ctx.store).save(recording)
    await chat.send(f"Session `{recording.id}` ended: {ended}.")
    await chat.close()
    return Reply(
        text=(
            f"🎥 Session `{recording.id}` in {_place(summary)} ended ({ended}): "
            f"{len(recording.commands)} commands, {recording.duration:.0f} s, "
            f"exit {recording.exit_code}."
        ),
        buttons=[_replay_button(recording.id)],
        data={"session": recording.id, "thread": chat.id, "exit_code": recording.exit_code},
    )


# -- reading recordings ---------------------------------------------------------------
def list_sessions(ctx: CommandContext) -> Reply:
    user = ctx.options.get("user")
    if user and user != ctx.user_id and not ctx.invocation.admin:
        raise PermissionDenied("only admins list other people's sessions")
    if not ctx.invocation.admin:
        user = ctx.user_id
    found = Recordings(ctx.store).list(
        user=user, cluster=ctx.options.get("cluster"), namespace=ctx.options.get("namespace")
    )
    rows = [
        [
            s.id,
            f"<@{s.user}>",
            f"{s.namespace}/{s.pod}",
            _when(s.started),
            _duration(s.duration),
            s.commands_count,
            "" if s.exit_code is None else s.exit_code,
        ]
        for s in found
    ]
    table = Table(
        ["SESSION", "USER", "POD", "STARTED", "DURATION", "COMMANDS", "EXIT"],
        rows,
        title=f"{len(rows)} recorded sessions" + ("" if ctx.invocation.admin else " of yours"),
    )
    return Reply(tables=[table], data={"sessions": [asdict(s) for s in found]})


async def playback(ctx: CommandContext) -> Reply:
    """The transcript in pages; with ``speed``, a live replay the viewer can steer."""
    speed = ctx.options.get("speed")
    recording = _readable(ctx, "replay" if speed else "playback")
    lines = _transcript(recording)
    first = _jump_line(ctx, recording, lines)
    if not speed:
        return _pages(recording, [text for _, text, _ in lines], first)
    return await _live(ctx, recording, [(t, text) for t, text, _ in lines[first:]], float(speed))


def _transcript(recording: Recording) -> list[tuple[float, str, int | None]]:
    """The session's lines as shown: ``[mm:ss]`` first, each with its command's index."""
    return [(t, f"[{_clock(t)}] {text}", n) for t, text, n in formats.timeline(recording)]


def _jump_line(
    ctx: CommandContext, recording: Recording, lines: list[tuple[float, str, int | None]]
) -> int:
    """The transcript line of the command ``jump:`` asks for (0 without one)."""
    jump = ctx.options.get("jump")
    if jump is None:
        return 0
    if jump > len(recording.commands):
        raise CommandError(f"jump: the session has {len(recording.commands)} commands, not {jump}")
    return next((i for i, (_, _, n) in enumerate(lines) if n == jump - 1), 0)


def _pages(recording: Recording, lines: list[str], first: int) -> Reply:
    lines = lines or ["(the session printed nothing)"]
    header = _header(recording)
    pages = [
        Reply(text=f"{header}\n{code_block(chr(10).join(lines[i : i + PAGE_LINES]))}")
        for i in range(0, len(lines), PAGE_LINES)
    ]
    # The page holding the wanted command comes first; ◀ still reaches the earlier ones.
    opening = first // PAGE_LINES
    pages = pages[opening:] + pages[:opening] if opening else pages
    if len(pages) == 1:
        return Reply(text=pages[0].text, data={"session": recording.id, "lines": lines})
    return Reply(pages=pages, data={"session": recording.id, "lines": lines, "page": opening})


async def _live(
    ctx: CommandContext, recording: Recording, lines: list[tuple[float, str]], speed: float
) -> Reply:
    """Each line when its time comes (pauses of the recording cut to ``IDLE_LIMIT``). In
    chat one message is edited, with buttons that go back, pause, speed up or stop it; a
    terminal (the console) prints the lines as they come, and its keys do what the buttons
    do (see :mod:`.console_keys`), each change shown with where the replay is."""
    header = _header(recording)
    total = max(recording.duration, lines[-1][0] if lines else 0.0) or None
    console = ctx.invocation.frontend == "console"
    shown: list[str] = []

    def view(t: float) -> Reply:
        state = f"{replay.speed:g}x" + (", paused" if replay.paused else "")
        return Reply(
            text=f"{header}\n{code_block(_window(shown))}",
            progress=Progress(t, total, f"Replay {state}"),
            buttons=_controls(replay),
        )

    times = [t for t, _ in lines]

    def state(t: float) -> Reply:
        """On the console: what the viewer changed, and where the replay is."""
        where = f"at [{_clock(t)}] of [{_clock(total or 0.0)}]"
        if replay.stopped:
            said = f"🛑 Stopping {where}."
        elif replay.paused:
            said = f"⏸️ Paused {where}: space resumes."
        else:
            said = f"▶️ Playing {where}, {replay.speed:g}x: space pauses."
        label = f"Replay {replay.speed:g}x" + (", paused" if replay.paused else "")
        return Reply(text=said, progress=Progress(round(t, 1), total, label))

    async def show(reply: Reply) -> None:
        if not console or reply.progress is None:
            await ctx.send(reply)

    async def changed(t: float) -> None:  # paused, resumed, faster or back: show it now
        await (ctx.send(state(t)) if console else show(view(t)))

    with Replay(ctx.user_id, speed) as replay, steered_by_keys(replay) as keys:
        if console and keys:
            await ctx.send(Reply(text=console_keys.HELP))
        i, at = 0, (times[0] if times else 0.0)
        while i < len(lines):
            t, text = lines[i]
            left: float | None = min(max(t - at, 0.0), IDLE_LIMIT)
            while (left := await replay.wait(left)) is not None and not replay.rewound:
                await changed(at)
            if replay.stopped:
                break
            if replay.rewound:  # back REWIND seconds: those lines play again
                replay.rewound = False
                i = bisect_left(times, at - REWIND)
                at = times[i]
                del shown[i:]
                await changed(at)
                continue
            at = t
            shown.append(text)
            i += 1
            await show(Reply(text=text) if console else view(t))
    ending = "⏹️ Replay stopped." if replay.stopped else "⏹️ Replay finished."
    data = {"session": recording.id, "lines": shown, "stopped": replay.stopped}
    if console:
        return Reply(text=ending, data=data)
    return Reply(text=f"{header}\n{code_block(_window(shown))}\n{ending}", data=data)


def _window(shown: list[str]) -> str:
    """The last lines of a live replay, as many as fit one chat message."""
    text = "\n".join(shown[-LIVE_LINES:]) or " "
    return text[-LIVE_CHARS:]


def _controls(replay: Replay) -> list[Button]:
    def control(label: str, op: str, emoji: str) -> Button:
        return Button(label, action="commands:steer", value=f"{replay.id}:{op}", emoji=emoji)

    return [
        control("Back 10 s", "rewind", "⏪"),
        control("Resume", "resume", "▶️") if replay.paused else control("Pause", "pause", "⏸️"),
        control("Faster", "faster", "⏩"),
        control("Stop", "stop", "🛑"),
    ]


def steer(ctx: CommandContext, value: str) -> Reply:
    """A button of a live replay: pause, resume, faster or stop it."""
    replay_id, _, op = value.partition(":")
    replay = Replay.running(replay_id)
    if replay is None:
        return Reply(text="This replay has ended.", ephemeral=True)
    if replay.viewer != ctx.user_id:
        return Reply.fail("Only the one watching this replay can steer it.", ephemeral=True)
    getattr(replay, op)()
    said = {
        "pause": "⏸️ Paused.",
        "resume": "▶️ Playing.",
        "stop": "🛑 Stopping.",
        "rewind": f"⏪ Back {REWIND:g} s.",
    }
    return Reply(text=said.get(op, f"⏩ {replay.speed:g}x."), ephemeral=True)


def download(ctx: CommandContext) -> Reply:
    recording = _readable(ctx, "download")
    version = ctx.options.get("version") or 2
    writer = formats.to_asciicast_v3 if version == 3 else formats.to_asciicast_v2
    cast = File(
        f"{recording.id}.cast",
        writer(recording).encode(),
        f"asciicast v{version}: asciinema play {recording.id}.cast",
        "application/x-asciicast",
    )
    return Reply(
        text=f"🎥 `{recording.id}` as asciicast v{version} (`asciinema play {recording.id}.cast`)",
        files=[cast],
    )


def export(ctx: CommandContext) -> Reply:
    kind = ctx.options["format"]
    recording = _readable(ctx, f"export {kind}")
    extension, mime, writer = EXPORTS[kind]
    file = File(f"{recording.id}.{extension}", writer(recording).encode(), None, mime)
    return Reply(text=f"🎥 `{recording.id}` exported as {kind}", files=[file])


def search(ctx: CommandContext) -> Reply:
    recordings = Recordings(ctx.store)
    session = ctx.options.get("session")
    if session:
        _readable(ctx, "search", recordings)
    owner = None if ctx.invocation.admin else ctx.user_id
    matches = recordings.search(ctx.options["query"], session=session, user=owner)
    rows = [
        [
            m.session,
            _clock(m.time),
            "" if m.command_index is None else m.command_index + 1,
            m.text[:120],
        ]
        for m in matches
    ]
    table = Table(
        ["SESSION", "AT", "COMMAND", "LINE"],
        rows,
        title=f"{len(rows)} matches for {ctx.options['query']!r}",
    )
    return Reply(tables=[table], data={"matches": [asdict(m) for m in matches]})


def views(ctx: CommandContext) -> Reply:
    recordings = Recordings(ctx.store)
    summary = _owned(ctx, recordings)
    seen = recordings.views(summary.id)
    rows = [[_when(v["at"]), f"<@{v['user']}>", v["action"]] for v in seen]
    table = Table(["WHEN", "WHO", "WHAT"], rows, title=f"{len(rows)} views of `{summary.id}`")
    return Reply(tables=[table], data={"views": seen})


def delete(ctx: CommandContext) -> Reply:
    recordings = Recordings(ctx.store)
    summary = _owned(ctx, recordings)
    recordings.delete(summary.id)
    recordings.record_view(summary.id, ctx.user_id, "delete")
    return Reply(text=f"🗑️ Recording `{summary.id}` deleted.")


# -- retention ------------------------------------------------------------------------
def set_retention(ctx: CommandContext) -> Reply:
    days = ctx.options["days"]
    cluster, namespace = ctx.options.get("cluster"), ctx.options.get("namespace")
    recordings = Recordings(ctx.store)
    recordings.set_retention(days, cluster=cluster, namespace=namespace, by=ctx.user_id)
    expired = recordings.expire(default_days=_default_days(ctx))
    scope = " ".join(f"{k} {v}" for k, v in (("cluster", cluster), ("namespace", namespace)) if v)
    return Reply(
        text=f"Recordings of {scope or 'every cluster'} are kept {days} days"
        + (f"; {expired} older ones deleted." if expired else "."),
        data={"expired": expired},
    )


def show_retention(ctx: CommandContext) -> Reply:
    rules = Recordings(ctx.store).retention()
    rows = [[r.get("cluster") or "*", r.get("namespace") or "*", r["days"]] for r in rules]
    rows.append(["(default)", "", _default_days(ctx)])
    return Reply(tables=[Table(["CLUSTER", "NAMESPACE", "DAYS"], rows, title="Retention")])


def set_input_recording(ctx: CommandContext) -> Reply:
    record = ctx.options["record"]
    cluster, namespace = ctx.options.get("cluster"), ctx.options.get("namespace")
    Recordings(ctx.store).set_input_recording(
        record, cluster=cluster, namespace=namespace, by=ctx.user_id
    )
    scope = " ".join(f"{k} {v}" for k, v in (("cluster", cluster), ("namespace", namespace)) if v)
    what = "recorded" if record else "not recorded (output only)"
    return Reply(text=f"What users type in sessions of {scope or 'every cluster'} is {what}.")


def show_input_recording(ctx: CommandContext) -> Reply:
    rules = Recordings(ctx.store).input_rules()
    yes_no = {True: "yes", False: "no"}
    rows = [
        [r.get("cluster") or "*", r.get("namespace") or "*", yes_no[r["record"]]] for r in rules
    ]
    rows.append(["(default)", "", yes_no[bool(ctx.config.get("record_input", True))]])
    return Reply(tables=[Table(["CLUSTER", "NAMESPACE", "INPUT RECORDED"], rows, title="Input")])


def expire_recordings(ctx: Any) -> None:
    """The hourly job: delete what the retention rules no longer keep."""
    count = Recordings(ctx.store).expire(default_days=_default_days(ctx))
    if count:
        ctx.log.info("deleted %d expired recordings", count)


# -- helpers --------------------------------------------------------------------------
def _default_days(ctx: Any) -> int:
    return int(ctx.config.get("retention_days", 90))


async def _target(ctx: CommandContext) -> tuple[dict[str, Any], dict[str, Any]]:
    """Where the session runs; the pod is read first, so a wrong name or container is a
    clear error before anything starts."""
    cluster, namespace = ctx.kubernetes.target(
        ctx.options.get("cluster"), ctx.options.get("namespace")
    )
    pod = await ctx.kubernetes.get("pods", ctx.options["pod"], namespace=namespace, cluster=cluster)
    chosen, others = default_container(pod)
    container = ctx.options.get("container") or chosen
    if container not in [chosen, *others]:
        raise CommandError(
            f"pod {namespace}/{ctx.options['pod']} has no container {container!r} "
            f"(it has {', '.join([c for c in [chosen, *others] if c])})"
        )
    target = {
        "pod": ctx.options["pod"],
        "namespace": namespace,
        "cluster": cluster,
        "container": container,
    }
    return target, pod


async def _known_secrets(
    ctx: CommandContext, target: dict[str, Any], pod: dict[str, Any]
) -> KnownSecrets:
    if not known_secrets.enabled(ctx.config.get("known_secret_clusters"), target["cluster"]):
        return KnownSecrets()
    return await known_secrets.load(ctx.kubernetes, pod, target)


def _recorder(
    ctx: CommandContext, target: dict[str, Any], argv: list[str], known: KnownSecrets
) -> Recorder:
    return Recorder(
        known_secrets=known.values,
        id=new_session_id(),
        user=ctx.user_id,
        cluster=target["cluster"],
        namespace=target["namespace"],
        pod=target["pod"],
        container=target["container"],
        command=argv,
        record_input=Recordings(ctx.store).records_input(
            target["cluster"], target["namespace"], bool(ctx.config.get("record_input", True))
        ),
    )


def _owned(ctx: CommandContext, recordings: Recordings) -> Summary:
    """The asked-for recording if this user may see it; to others it does not exist."""
    session = ctx.options["session"]
    summary = recordings.summary(session)
    if summary is None or (summary.user != ctx.user_id and not ctx.invocation.admin):
        raise CommandError(f"no recording {session!r} of yours (/terminal list shows them)")
    return summary


def _readable(ctx: CommandContext, action: str, recordings: Recordings | None = None) -> Recording:
    recordings = recordings or Recordings(ctx.store)
    summary = _owned(ctx, recordings)
    recording = recordings.get(summary.id)
    assert recording is not None
    recordings.record_view(summary.id, ctx.user_id, action)
    return recording


def _replay_button(session: str) -> Button:
    return Button("Playback", action="commands:replay", value=session, emoji="▶️")


def replay(ctx: CommandContext, value: str) -> Reply:
    """The Playback button under a finished session."""
    ctx.options["session"] = value
    recording = _readable(ctx, "playback")
    reply = _pages(recording, [text for _, text, _ in _transcript(recording)], 0)
    reply.ephemeral = True  # like /terminal playback: for the one who pressed it
    return reply


def _header(recording: Recording) -> str:
    return (
        f"🎥 Replaying session `{recording.id}` · <@{recording.user}> · "
        f"{recording.namespace}/{recording.pod} on {recording.cluster} · "
        f"started {_when(recording.started)} · {_duration(recording.duration)}"
    )


def _place(summary: Summary) -> str:
    return f"{summary.namespace}/{summary.pod} ({summary.container}) on {summary.cluster}"


def _when(started: float) -> str:
    return datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:02d}:{secs:02d}"
