"""Parse a typed command line the way Discord presents slash commands.

``/plugin config name:minecraft key:backup_interval value:"12 h"`` reads as the
command path ``("plugin", "config")`` and the options ``name``, ``key`` and
``value``. The console uses the same shape as Discord so that what users learn in
one front end works in the other, and so help texts can show one syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from clustercord_sdk.errors import UsageError

_OPTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
# Characters a backslash may escape inside double quotes (POSIX shell / shlex rules).
_DQUOTE_ESCAPES = frozenset('\\"$`\n')


@dataclass(frozen=True)
class Word:
    """One shell-like word: its text with quotes removed, and whether any part was quoted.

    ``quoted`` tells ``opt:""`` (a deliberate empty value) from ``opt:`` (a typo).
    ``closed`` is False for the last word of a partial line whose quote is still open,
    which completion needs to know.
    """

    text: str
    quoted: bool = False
    closed: bool = True


def tokenize(text: str, *, partial: bool = False) -> list[Word]:
    """Split ``text`` into words with shlex (POSIX) quoting rules.

    With ``partial`` (for completion while typing) an open quote or a trailing
    backslash is accepted instead of raising :class:`UsageError`.
    """
    words: list[Word] = []
    buf: list[str] = []
    in_word = quoted = False
    quote: str | None = None
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if quote is None:
            if ch.isspace():
                if in_word:
                    words.append(Word("".join(buf), quoted))
                    buf, in_word, quoted = [], False, False
            elif ch in "'\"":
                quote, in_word, quoted = ch, True, True
            elif ch == "\\":
                if i + 1 >= n:
                    if not partial:
                        raise UsageError("the command line ends with a lone backslash '\\'")
                else:
                    i += 1
                    buf.append(text[i])
                in_word = True
            else:
                buf.append(ch)
                in_word = True
        elif ch == quote:
            quote = None
        elif quote == '"' and ch == "\\" and i + 1 < n and text[i + 1] in _DQUOTE_ESCAPES:
            i += 1
            buf.append(text[i])
        else:
            buf.append(ch)
        i += 1
    if quote is not None and not partial:
        raise UsageError(
            f"unbalanced quotes: a {quote} quote is opened but never closed "
            "(close it, or escape it with a backslash)"
        )
    if in_word:
        words.append(Word("".join(buf), quoted, closed=quote is None))
    return words


def split_option(word: str) -> tuple[str, str] | None:
    """``("name", "value")`` when ``word`` is an option (``name:value``), else None.

    Only the first colon separates, so values such as URLs or ``ns:pod`` survive.
    """
    name, sep, value = word.partition(":")
    if not sep or not _OPTION_NAME.match(name):
        return None
    return name, value


def parse_command_line(text: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """Parse one typed line into a command path and its options (all values are strings).

    The leading ``/`` is optional. Path words come first, options after; typing
    a path word after an option is almost always a forgotten ``name:`` and is
    refused rather than guessed at.
    """
    stripped = text.strip()
    if stripped.startswith("/"):
        stripped = stripped[1:]
    words = tokenize(stripped)
    if not words:
        raise UsageError("no command given (try: help)")

    path: list[str] = []
    options: dict[str, str] = {}
    for word in words:
        if word.text.startswith(":"):
            raise UsageError(f"option name missing before ':' in {word.text!r}")
        option = split_option(word.text)
        if option is None:
            if options:
                raise UsageError(
                    f"unexpected word {word.text!r} after options: command words come "
                    "first, and every option needs a name (name:value)"
                )
            path.append(word.text)
            continue
        name, value = option
        if name in options:
            raise UsageError(f"option {name!r} is given more than once")
        if value == "" and not word.quoted:
            raise UsageError(f'option {name!r} has no value (write {name}:"" for an empty one)')
        options[name] = value
    if not path:
        raise UsageError("no command given before the options (e.g. /plugin config name:...)")
    return tuple(path), options
