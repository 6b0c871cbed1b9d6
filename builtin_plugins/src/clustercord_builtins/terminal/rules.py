"""What a secret looks like on one line of terminal output.

Each detector returns :class:`Hit` spans over the line's text (escape sequences already
removed). The rules follow gitleaks and detect-secrets: vendor token formats, secrets
named by the text around them (``Authorization: Bearer``, ``password=``, URL credentials),
and high-entropy strings, with the usual non-secrets (digests, commit ids, UUIDs, paths)
left alone. Secrets spread over several lines (private keys, ``kind: Secret`` data) are
the engine's business (:mod:`.redaction`); this module is line-local and stateless.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

# Merging overlapping hits keeps the most telling rule: a Stripe key assigned to
# ``token=`` reads better as ``sk_live_***`` than as a bare mask.
PRIORITY = {
    "private-key": 0,
    "kubernetes-secret": 1,
    "secret-block": 1,
    "jwt": 2,
    "github-token": 2,
    "stripe-key": 2,
    "slack-token": 2,
    "slack-webhook": 2,
    "google-api-key": 2,
    "aws-access-key-id": 2,
    "discord-token": 2,
    "aws-secret-key": 3,
    "authorization": 3,
    "bearer-token": 3,
    "url-credentials": 3,
    "cli-flag": 3,
    "mysql-password": 3,
    "command-output": 3,
    "known-secret": 3,
    "bare-secret": 3,
    "held-token": 4,
    "cookie": 3,
    "keyword": 4,
    "high-entropy-base64": 5,
    "high-entropy-hex": 5,
}

BASE64_ENTROPY = 4.5
BASE64_MIN = 20
HEX_ENTROPY = 3.0
HEX_MIN = 32
GIT_ID = 40


@dataclass(frozen=True)
class Hit:
    rule: str
    start: int
    end: int
    keep: str = ""
    """The start of the secret left visible to say what it was (``sk_live_``, ``eyJ``)."""
    group: int | None = None
    """Hits of one multi-line secret (a private key) share a group and one finding."""

    @property
    def priority(self) -> int:
        return PRIORITY[self.rule]


# A token's recognisable start is the group ``keep``; the whole match is the secret. Each
# pattern comes with literals a match cannot do without (one of them, in lower case): see
# :func:`_needs`.
_TOKENS = [
    (
        "jwt",
        r"(?<![\w-])(?P<keep>eyJ)[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*",
        ("eyj",),
    ),
    (
        "github-token",
        r"(?<![\w-])(?P<keep>gh[pousr]_|github_pat_)[A-Za-z0-9_]{22,255}",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    (
        "stripe-key",
        r"(?<![\w-])(?P<keep>[sr]k_(?:live|test)_)[A-Za-z0-9]{10,247}",
        ("k_live_", "k_test_"),
    ),
    ("slack-token", r"(?<![\w-])(?P<keep>xox[abeoprs]-)[A-Za-z0-9-]{10,250}", ("xox",)),
    (
        "slack-webhook",
        r"(?P<keep>https://hooks\.slack\.com/services/)[A-Za-z0-9_/]{20,}",
        ("hooks.slack.com",),
    ),
    ("google-api-key", r"(?<![\w-])(?P<keep>AIza)[A-Za-z0-9_-]{35}(?![\w-])", ("aiza",)),
    (
        "aws-access-key-id",
        r"(?<![A-Za-z0-9])(?P<keep>A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])",
        ("a3t", "akia", "asia", "abia", "acca"),
    ),
    (
        "discord-token",
        r"(?<![\w-])[MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,40}(?![\w-])",
        (),  # no literal: its first part is a run (see RUN)
    ),
]
_TOKEN_RULES = [(rule, re.compile(pattern), needs) for rule, pattern, needs in _TOKENS]

# For the kernel's audit log, which masks whole matches (``secret_patterns``): it stores each
# ``/terminal exec`` command line, and ``PGPASSWORD=... psql`` must not reach it in clear.
AUDIT_PATTERNS = [
    *(pattern for _, pattern, _ in _TOKENS),
    r"(?i)[\w.-]*(?:passw(?:or)?d|passphrase|secret|token|api[_-]?key)[\w.-]*[\"']?\s*[:=]\s*"
    r"(?:\"[^\"]*\"|'[^']*'|[^\s\"'&,;]+)",
    r"(?i)--(?:password|passwd|token|client-secret|api-key|access-token|auth-token|secret-key)"
    r"(?:=|\s+)\S+",
    r"\b[A-Za-z][A-Za-z0-9+.-]{1,20}://[^/\s:@\"']{1,128}:[^/\s\"']{1,256}@",
]

# A value: double-quoted, single-quoted, or a bare run. The secret is whichever matched.
_VALUE = r"""(?:"(?P<dq>(?:[^"\\]|\\.)*)"|'(?P<sq>[^']*)'|(?P<bare>[^\s"'&,;)}\]]+))"""
_VALUE_GROUPS = ("secret", "dq", "sq", "bare")
_CONTEXT = [
    (
        "aws-secret-key",
        r"(?i)aws_?secret_?(?:access_?)?key[\"']?\s*[:=]\s*[\"']?"
        r"(?P<secret>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])",
        ("aws",),
    ),
    (
        "authorization",
        r"(?i)\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?"
        r"(?:bearer|basic|token|bot|digest|negotiate|apikey)\s+(?P<secret>[^\s\"',;]+)",
        ("authorization",),
    ),
    ("bearer-token", r"(?i)\bbearer\s+(?P<secret>[A-Za-z0-9._~+/=-]{16,})", ("bearer",)),
    # Only the password: ``postgres://app:***@db:5432``. Greedy, so a password with an
    # unescaped ``@`` is masked up to the last one.
    (
        "url-credentials",
        r"\b[A-Za-z][A-Za-z0-9+.-]{1,20}://[^/\s:@\"']{1,128}:(?P<secret>[^/\s\"']{1,256})@"
        r"(?=[^\s@/])",
        ("://",),
    ),
    (
        "cli-flag",
        r"(?<![\w-])--(?:password|passwd|token|client-secret|api-key|access-token"
        r"|auth-token|secret-key)(?:=|\s+)" + _VALUE,
        ("--",),
    ),
    ("mysql-password", r"\bmysql\w*\b.{0,200}?\s-p(?P<secret>[^\s-]\S*)", ("mysql",)),
    (
        "cli-flag",
        r"\b(?:docker|podman|buildah|skopeo|helm|oras)\b.{0,100}?\blogin\b.{0,200}?\s-p[= ]?"
        + _VALUE,
        ("login",),
    ),
    ("cli-flag", r"\bredis-cli\b.{0,200}?\s-a\s+" + _VALUE, ("redis-cli",)),
]
_CONTEXT_RULES = [(rule, re.compile(pattern), needs) for rule, pattern, needs in _CONTEXT]

# ``password=``, ``DB_PASSWORD:``, ``"apiKey": "..."``, ``client_secret = ...``: the key
# ends with a secret word; ``password_file`` or ``secretName`` do not.
_SECRET_WORD = r"(?:passw(?:or)?d|passphrase|secret|token|api[_-]?key|apikey|(?<![a-z])auth)"
_STRONG_KEY = re.compile(rf"(?i){_SECRET_WORD}$")
_WEAK_KEY = re.compile(r"(?i)[a-z0-9][_-]key$")  # ``signing_key``: if its value looks random
# The key is taken whole (possessive): a long run of word characters costs one pass.
_KEYWORD = re.compile(
    r"(?<![A-Za-z0-9_.-])(?P<q>[\"']?)(?P<key>[A-Za-z0-9_.-]++)(?P=q)\s*(?P<sep>=>|:=|[:=])[ \t]*"
)
_BLOCK_HEADER = re.compile(r"[|>][-+]?\d*")
# Values that are not secrets: empty, booleans, references, templates, kubectl's sizes,
# nested structures, and what masking already produced.
_PLACEHOLDER = re.compile(
    r"""(?ix)^(?:
      true|false|yes|no|on|off|null|nil|none|undefined|~
    | \$\{?[A-Za-z_][A-Za-z0-9_]*\}?
    | \$\(.*\) | \{\{.*\}\} | <[^<>]*>(?:\s.*)? | %\(?\w*\)?s | \[\]
    | [|>][-+]?\d*
    | [\[{].*
    | \d+\ bytes
    | [^*\s]{0,12}\*{6,}
    | \*+ | x+ | \.+ | -+
    )$"""
)
_COOKIE = re.compile(r"(?i)\b(?P<set>set-)?cookie:\s*")
_COOKIE_PAIR = re.compile(r"[^=;\s]+=(?P<value>[^;\s]*)")
_LINE_START = re.compile(r"^\s*(?:export\s+|set\s+|-\s+|ENV\s+)?[\"']?$")

_B64 = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{20,}={0,2}(?![A-Za-z0-9+/_-])")
_HEX = re.compile(r"(?<![0-9A-Za-z])[0-9a-fA-F]{32,}(?![0-9A-Za-z])")
# Hashes and ids are high-entropy hex but not secrets: a digest, a commit, a container id.
_DIGEST_BEFORE = re.compile(
    r"(?i)(?:(?:\b|_)(?:sha(?:1|224|256|384|512)?|md5|blake2b?|digest|checksum|hash|commit"
    r"|merge|tree|parent|object|revision|id|uid|uuid|traceparent)|@|://|\#)[\s:=\"'(]*(?:00-)?$"
)
# ``sha512-<base64>`` (npm's integrity) and ``sha256:<base64>`` digests
_DIGEST_NAME = re.compile(r"(?i)(?:sha(?:1|224|256|384|512)|md5)-")
_DIGEST_NAME_BEFORE = re.compile(r"(?i)(?:sha(?:1|224|256|384|512)|md5)[-:]$")
_PATH_SEGMENT = re.compile(r"[a-z0-9._-]{6,}")
_HEX_WORD = re.compile(r"[0-9a-fA-F]+")
_HEX_LETTER = re.compile(r"[a-fA-F]")
_LOWER = re.compile(r"[a-z]")
_UPPER = re.compile(r"[A-Z]")
_DIGIT = re.compile(r"\d")
_MASKED = re.compile(r"[^*\s]{0,12}\*{12,}")

# Characters that case-insensitive patterns match to an ASCII letter which ``str.lower``
# does not make one: ``(?i)s`` matches ``ſ``, and ``(?i)i`` matches ``ı`` and ``İ`` (which
# lowers to two characters, ``i`` and a combining dot: the only one to change length).
_FOLD = (("\u0130", "i"), ("\u0131", "i"), ("\u017f", "s"))
# A key the keyword rule reads as naming a secret holds one of these (see _SECRET_WORD).
_KEY_WORDS = ("pass", "secret", "token", "auth", "key")


def any_of(words: Iterable[str]) -> str:
    """A pattern matching where any of ``words`` starts, their common starts factored out:
    Python's engine tries alternatives one by one, and ``a(?:uth|ws)`` is quicker to fail
    than ``auth|aws``."""
    rests: dict[str, set[str]] = {}
    for word in words:
        rests.setdefault(word[:1], set()).add(word[1:])
    ends = "" in rests  # a word ends here: what follows is optional
    branches = [re.escape(first) + any_of(rest) for first, rest in sorted(rests.items()) if first]
    if not branches:
        return ""
    pattern = branches[0] if len(branches) == 1 and not ends else f"(?:{'|'.join(branches)})"
    return pattern + "?" if ends else pattern


# What any rule matches holds, folded, one of the rules' literals or a run of 20 characters
# of base64's alphabet (high-entropy strings, and tokens without a telling start): a line
# without either has nothing to mask. Two searches, over a line or many lines at once, cost
# less than a combined one.
NEEDED = [
    *(s for _, _, needs in _TOKEN_RULES + _CONTEXT_RULES for s in needs),
    *_KEY_WORDS,
    "cookie",
]
LITERALS = re.compile(any_of(NEEDED))
RUN = re.compile(r"[a-z0-9+/_-]{20}")


def entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    if not text:
        return 0.0
    total = len(text)
    return -sum(n / total * math.log2(n / total) for n in Counter(text).values())


def is_mask(value: str) -> bool:
    """Whether ``value`` is what masking produced (so masking twice changes nothing)."""
    return bool(_MASKED.fullmatch(value))


def is_secret_key(key: str) -> bool:
    """Whether a YAML/JSON/env key names a secret whatever its value (``db_password``)."""
    return bool(_STRONG_KEY.search(key))


def is_block_header(value: str) -> bool:
    """A YAML block scalar (``|``, ``>-``): the value is on the following, deeper lines."""
    return bool(_BLOCK_HEADER.fullmatch(value))


def detect(line: str, *, entropy_rules: bool = True) -> list[Hit]:
    """Every secret on ``line`` (no line terminator), possibly overlapping."""
    folded = fold(line)
    run, literal = RUN.search(folded), LITERALS.search(folded)
    if not run and not literal:
        return []  # most lines: nothing any rule could match
    hits = [
        _token_hit(rule, m)
        for rule, regex, needs in _TOKEN_RULES
        if not needs or (literal and _needs(folded, needs))
        for m in regex.finditer(line)
    ]
    if literal:
        hits += [
            _value_hit(rule, m)
            for rule, regex, needs in _CONTEXT_RULES
            if _needs(folded, needs)
            for m in regex.finditer(line)
        ]
        if _needs(folded, _KEY_WORDS):
            hits += _keywords(line)
        if "cookie" in folded:
            hits += _cookies(line)
    if entropy_rules and run:
        hits += _high_entropy(line)
    return [h for h in hits if h.end > h.start and not is_mask(line[h.start : h.end])]


def fold(text: str) -> str:
    """``text`` in lower case, as long as ``text``, for :data:`LITERALS`, :data:`RUN` and
    :func:`_needs`: where a pattern matches, ignoring case or not, the folded text holds the
    pattern's literals in lower case."""
    if not text.isascii():
        for char, letter in _FOLD:
            text = text.replace(char, letter)  # each a quick scan (str.translate is slow)
    return text.lower()


def _needs(folded: str, literals: tuple[str, ...]) -> bool:
    """Whether the folded line holds one of ``literals``, without which a rule cannot match:
    a substring test costs a fraction of a pattern's scan."""
    return any(literal in folded for literal in literals)


def _token_hit(rule: str, match: re.Match[str]) -> Hit:
    return Hit(rule, match.start(), match.end(), keep=match.groupdict().get("keep") or "")


def _value_hit(rule: str, match: re.Match[str]) -> Hit:
    for name in _VALUE_GROUPS:
        if name in match.re.groupindex and match.group(name) is not None:
            return Hit(rule, match.start(name), match.end(name))
    raise AssertionError(f"{rule}: no value group matched")


def _keywords(line: str) -> list[Hit]:
    hits = []
    for match in _KEYWORD.finditer(line):
        key = match.group("key")
        strong = is_secret_key(key)
        if not strong and not _WEAK_KEY.search(key):
            continue
        start, end = _keyword_value(line, match)
        host = line.rfind("@", start, end)
        if host > start and line[: match.start()].endswith("://"):
            # ``https://x-access-token:ghp_...@github.com/org/repo``: the key is a URL's user
            # name; its password ends at the last ``@`` (the host and path are not secret).
            end = host
        value = line[start:end]
        if not value or _PLACEHOLDER.match(value) or (not strong and not _looks_random(value)):
            continue
        if _MASKED.match(value):
            # Masked already: a secret learned with what followed it (``token=ghp_x'`` at a
            # line's start is ``ghp_x'``) was masked where it met more text, ``ghp_***'pass``
            # then reads as one word: masking it again would hide more on every pass.
            continue
        hits.append(Hit("keyword", start, end))
    return hits


def _keyword_value(line: str, match: re.Match[str]) -> tuple[int, int]:
    """Where the value after ``key:`` or ``key=`` is: inside quotes; for a key opening the
    line, the rest of it after ``:`` (YAML, headers, ``kubectl describe``) or everything up
    to a space after ``=`` (``env``, ``.env``, ``PGPASSWORD=x psql``); else one word."""
    at = match.end()
    if at < len(line) and line[at] in "\"'":
        quote = line[at]
        close = line.find(quote, at + 1)
        return (at + 1, close if close > 0 else len(line))
    if _LINE_START.match(line[: match.start("key")]):
        if match.group("sep") != "=":
            return at, max(at, len(line.rstrip().rstrip(",")))
        word = re.match(r"\S*", line[at:])
    else:
        word = re.match(r"[^\s\"'&,;)}\]]*", line[at:])
    return at, at + (word.end() if word else 0)


def _cookies(line: str) -> list[Hit]:
    """Cookie values are session credentials: all of a request's ``Cookie:``, the first
    pair of a ``Set-Cookie:`` (the others are attributes such as ``Path=/``)."""
    header = _COOKIE.search(line)
    if not header:
        return []
    pairs = list(_COOKIE_PAIR.finditer(line, header.end()))
    if header.group("set"):
        pairs = pairs[:1]
    return [Hit("cookie", p.start("value"), p.end("value")) for p in pairs if p.group("value")]


def _looks_random(value: str) -> bool:
    return len(value) >= 12 and entropy(value) >= 3.0 and bool(_DIGIT.search(value))


def _high_entropy(line: str) -> list[Hit]:
    hits = []
    for match in _B64.finditer(line):
        word = match.group()
        if _random_base64(word) and not (
            _DIGEST_NAME.match(word) or _DIGEST_NAME_BEFORE.search(line[: match.start()])
        ):
            hits.append(Hit("high-entropy-base64", match.start(), match.end()))
    for match in _HEX.finditer(line):
        if _random_hex(match.group()) and not _is_digest(line, match):
            hits.append(Hit("high-entropy-hex", match.start(), match.end()))
    return hits


def _random_base64(word: str) -> bool:
    core = word.rstrip("=")
    if len(core) < BASE64_MIN or _HEX_WORD.fullmatch(core):
        return False  # hex is judged by the hex rule
    if not (_LOWER.search(core) and _UPPER.search(core) and _DIGIT.search(core)):
        return False  # words, names and paths lack one of the three; random text has all
    if "/" in core and any(_PATH_SEGMENT.fullmatch(s) for s in core.split("/")):
        return False  # a path such as ReplicaSet/nginx-deployment-66b6c48dd5
    return entropy(core) >= BASE64_ENTROPY


def _random_hex(word: str) -> bool:
    return (
        len(word) >= HEX_MIN
        and entropy(word) >= HEX_ENTROPY
        and bool(_HEX_LETTER.search(word) and _DIGIT.search(word))
    )


def _is_digest(line: str, match: re.Match[str]) -> bool:
    if _DIGEST_BEFORE.search(line[max(0, match.start() - 40) : match.start()]):
        return True
    # 40 hex digits alone on a line is a git object id (``git log -1 --format=%H``,
    # ``git rev-parse HEAD``); a secret of that shape is told by its context instead: the
    # command that printed it (:func:`reveals_secret`), or a key or assignment before it.
    if len(match.group()) == GIT_ID and not line[: match.start()].strip():
        return not line[match.end() :].strip()
    # ``sha256sum`` and ``git log --format='%H %s'`` list a hash first, then what it is of.
    return not line[: match.start()].strip() and bool(line[match.end() :].strip())


# Commands whose output is a secret with nothing around it to recognise it by: a decoded
# Secret value, a mounted secret file, an environment variable named like a secret.
_REVEALING = re.compile(
    r"""(?ix)
      \bbase64\s+(?:-\w*d\w*|--decode)\b
    | \bget\s+secrets?\b.*(?:jsonpath|go-template|template=)
    | \bview-secret\b
    | \b(?:vault|bao)\s+(?:kv\s+get|read)\b.*-field
    | \bprintenv\s+\w*(?:pass(?:wd|word)?|token|secret|api_?key|private_?key)
    | \b(?:echo|printf)\b.*\$\{?\w*(?:pass(?:wd|word)?|token|secret|api_?key|private_?key)
    | \b(?:cat|head|tail|less|more|xxd|strings)\b\s+\S*secret
    | \bopenssl\s+rand\b | \bpwgen\b | \bhead\b.*/dev/u?random
    """
)


def reveals_secret(command: str) -> bool:
    """Whether ``command`` likely prints a bare secret (``kubectl get secret db -o
    jsonpath='{.data.password}' | base64 -d``), so its whole output is to be masked."""
    return bool(_REVEALING.search(command))
