"""The quick paths of recording give exactly what the plain ones give: Hyperscan telling
which lines redaction has work on (against Python's regex engine doing it), and numpy
telling a recording's distinct trigrams for the search index (against ``zip``)."""

from __future__ import annotations

import random
import shutil
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clustercord_builtins.terminal import formats, search_index
from clustercord_builtins.terminal.prefilter import FOLDED, KnownSecrets, load
from clustercord_builtins.terminal.redaction import StreamRedactor
from clustercord_builtins.terminal.rules import fold

from .conftest import recorder
from .corpus import benign_text, secret_cases, split_steps
from .test_formats import _full_screen
from .test_redaction import FRAGMENTS

hyperscan = pytest.importorskip("hyperscan", reason="hyperscan has wheels for Linux x86-64 only")


def redacted(chunks: list[str], *, quick: bool, known: list[str] = ()) -> tuple[str, list]:
    stream = StreamRedactor(prefilter=True if quick else None)
    stream.learn(known)
    out = "".join(stream.feed(chunk) for chunk in chunks) + stream.end()
    return out, stream.findings


def cut(text: str, rng: random.Random) -> list[str]:
    """``text`` in pieces of 1 byte to 40 KB, as frames cut it."""
    chunks, at = [], 0
    while at < len(text):
        size = rng.choice([1, 7, 200, 4096, 32768, 40000])
        chunks.append(text[at : at + size])
        at += size
    return chunks


def test_the_prefilter_is_there():
    assert load() is not None  # else every test below would compare the Python path to itself


def corpus() -> str:
    sessions = [case.text for case in secret_cases(seed=7, count=330)]
    sessions += [benign_text(seed) for seed in range(3)]
    return "".join(sessions)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_the_corpus_is_masked_the_same_either_way(newline):
    text = corpus().replace("\n", newline)
    rng = random.Random(3)
    quick = redacted(cut(text, rng), quick=True)
    plain = redacted(cut(text, rng), quick=False)
    assert quick == plain
    assert len(quick[1]) >= 150  # it did mask: the corpus is full of secrets


def test_colour_codes_are_judged_on_the_text_without_them():
    # A code splitting a word a rule looks for, a run of random characters or a known
    # secret: the line is still looked at (as the rules read it, the code removed).
    secret = "Zq8xW3vLp9RtY2mKa7Nc"
    lines = [
        "pass\x1b[0mword=hunter2hunter2\n",
        f"Zq8xW3vLp9\x1b[1m{secret[10:]}\n",
        "\x1b[32mINFO\x1b[0m all good\n",
        f"\x1b[31m{secret}\x1b[0m\n",
        "plain line\n",
    ]
    text = "".join(lines) * 50
    for known in ([], [secret]):
        assert redacted([text], quick=True, known=known) == redacted(
            [text], quick=False, known=known
        )
    out, _ = redacted([text], quick=True)
    assert "hunter2hunter2" not in out and "INFO\x1b[0m all good" in out


def test_a_secret_learned_mid_frame_is_masked_later_in_that_frame_even_coloured():
    # The frame is looked at once, before the secret is masked on its first line: the lines
    # after it that hold it (bare, coloured, or with a colour code inside it) are found
    # without looking again, and masked as the Python path masks them.
    secret = "hunter2hunter2"  # nothing but having been masked tells it: no rule takes it bare
    filler = "2024-05-01T12:00:00Z \x1b[32mINFO\x1b[0m request done\n" * 20
    text = (
        filler
        + f"DB_PASSWORD={secret}\n"
        + filler
        + f"\x1b[31m{secret}\x1b[0m\n"
        + f"{secret[:7]}\x1b[1m{secret[7:]}\x1b[0m\n"
        + f"echo {secret}\n"
        + filler
    )
    for chunks in ([text], cut(text, random.Random(4))):
        quick = redacted(chunks, quick=True)
        assert quick == redacted(chunks, quick=False)
        assert secret not in quick[0] and "2hunter2" not in quick[0]
        assert len(quick[1]) == 4  # the assignment, then three times as a known secret


def test_a_known_secret_of_lower_case_letters_and_digits_is_found_on_a_path_like_line():
    # Such a value is a run of base64's alphabet the prefilter does not take for random: a
    # line holding it is told by asking the known secrets holding a run, not the rules.
    secret = "x9k2p7q4w8r3t6z1m5n0b2v8"
    filler = "GET /api/v1/orders/1234567 200 \x1b[32mok\x1b[0m\n" * 30
    text = (
        f"DB_PASSWORD={secret}\n"
        + filler
        + f"cache /blobs/{secret}/v2 rotated\n"  # the run: longer than the secret
        + f"\x1b[31m{secret}\x1b[0m\n"
        + filler
    )
    for chunks in ([text], cut(text, random.Random(2)), [text[:40], text[40:]]):
        quick = redacted(chunks, quick=True)
        assert quick == redacted(chunks, quick=False)
        assert secret not in quick[0] and len(quick[1]) == 3


@pytest.mark.parametrize(
    "secret",
    [
        "Xk9pQ2Lw7Rt5Zm3Nb8Vc4Hj6",  # 24 characters of base64: the shortest the rule masks
        "x9k2p7q4w8r3t6z1m5n0b2v8c4h6j1l3kk7Fab",  # one upper-case letter, late
        "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs",  # Discord's shape
        "9f86d081884c7d659a2feaa0c55ad015",  # 32 hex digits, the hex rule's shortest
    ],
)
def test_a_bare_random_string_is_found_in_a_block_of_ordinary_lines(secret):
    # Nothing names it: only the prefilter's run and hex patterns bring its line to the rules.
    text = "ordinary line\n" * 40 + f"value {secret} here\n" + "ordinary line\n" * 40
    quick = redacted([text], quick=True)
    assert quick == redacted([text], quick=False)
    assert secret not in quick[0]


@pytest.mark.parametrize(
    "word", ["pa\u017f\u017fword", "ap\u0131_key", "ap\u0130_key", "to\u212aen"], ids=repr
)
def test_letters_python_folds_to_ascii_leave_the_block_to_python(word):
    # ``(?i)s`` matches ``ſ``: Hyperscan's ASCII case folding would not see "paſſword".
    text = ("ordinary line\n" * 40 + f"{word}=Xy7Qp2Lm9Wz4Rt\n") * 3
    assert redacted([text], quick=True) == redacted([text], quick=False)


def test_thousands_of_known_secrets_are_found_as_one_by_one():
    rng = random.Random(5)
    alphabet = "abcdefghijKLMNOP0123456789-_+/é漢"
    values = [
        "".join(rng.choice(alphabet) for _ in range(rng.randrange(6, 40))) for _ in range(3000)
    ]
    finder = KnownSecrets()
    for value in values:
        finder.add(value)
    for _ in range(30):
        planted = rng.sample(values, 5)
        filler = "".join(rng.choice(alphabet + " \n") for _ in range(2000))
        text = filler + "".join(f" {v} " for v in planted)
        assert sorted(set(finder.held_in(text))) == sorted(v for v in set(values) if v in text)
    # Values added after the last compile are tested one by one, and found too.
    finder.add("late-arrival-secret")
    assert "late-arrival-secret" in finder.held_in("x late-arrival-secret y")


def test_secrets_learned_one_after_another_are_all_found_wherever_they_are_kept():
    """Values come a few at a time, as a stream learns them: in any of the databases
    (compiled in batches, merged as they grow) or among the newest tested one by one, each
    is found, and only those the text holds."""
    rng = random.Random(6)
    alphabet = "abcdefghijKLMNOP0123456789-_+/é漢"
    finder, values = KnownSecrets(), []
    kept = set()
    for _round in range(120):
        for _ in range(rng.randrange(1, 9)):
            value = "".join(rng.choice(alphabet) for _ in range(rng.randrange(8, 30)))
            finder.add(value)
            values.append(value)
        planted = rng.sample(values, min(4, len(values))) + values[-2:]  # old and newest
        text = "".join(rng.choice(alphabet + " \n") for _ in range(300))
        text += "".join(f" {v} " for v in planted)
        assert sorted(set(finder.held_in(text))) == sorted(v for v in set(values) if v in text)
        kept.add((len(finder._dbs) > 1, finder._compiled < len(finder)))
    assert (True, True) in kept and (True, False) in kept  # several databases, with or
    # without values not compiled yet


def test_a_long_stream_learning_many_secrets_is_masked_the_same_either_way():
    rng = random.Random(9)
    lines = []
    for n in range(6000):
        if n % 5 == 0:
            value = "".join(rng.choice("ABCdef0123456789") for _ in range(18))
            lines.append(f"DB_PASSWORD={value}\n")
            lines.append(f"echo {value}\n")  # bare, later: masked as a known secret
        else:
            lines.append(f"2024-05-01T12:00:{n % 60:02d}Z INFO request {n} done\n")
    text = "".join(lines)
    quick = redacted(cut(text, rng), quick=True)
    assert quick == redacted(cut(text, rng), quick=False)
    assert len(quick[1]) == 2 * 1200


@st.composite
def mixed_text(draw):
    pieces = st.sampled_from(
        [*FRAGMENTS, "\x1b[31m", "\x1b[0m", "\x1b]0;PGPASSWORD=s3cretValue\x07", "\x9b1m"]
    )
    parts = draw(st.lists(pieces | st.text(alphabet=" :=\"'aZ9\n-{}ſıK", max_size=8), max_size=40))
    text = "".join(parts)
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=8)))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mixed_text())
def test_any_text_is_masked_the_same_either_way(chunks):
    assert redacted(chunks, quick=True) == redacted(chunks, quick=False)


# -- the search index's trigrams ------------------------------------------------------------
def per_line(lines: list[str]) -> set[str]:
    """The index's trigrams as first defined: of each line lower-cased, one by one."""
    grams: set[str] = set()
    for line in lines:
        low = line.lower()
        grams |= {low[i : i + 3] for i in range(len(low) - 2)}
    return grams


@pytest.mark.parametrize(
    "lines",
    [
        corpus().splitlines(),
        ["İstanbul ΣΑΣ ΟΔΟΣ", "ſecret Kelvin", "x" * 5000 + "ÄÖ✓🎉", "", "ab", "\t\x1b[0m"] * 3,
        ["αβγδεζ" * 2000],
        [chr(0x4E00 + i) * 3 for i in range(600)],  # more characters than the table takes
    ],
    ids=["corpus", "unicode", "greek", "large-alphabet"],
)
def test_distinct_trigrams_are_the_line_by_line_ones(lines, monkeypatch):
    quick = search_index.distinct_grams(lines)
    monkeypatch.setattr(search_index, "_np", None)
    assert quick == search_index.distinct_grams(lines) == per_line(lines)


def test_fold_and_the_prefilter_agree_on_which_letters_fold_to_ascii():
    # FOLDED must be every character whose folding (what the Python path matches) holds
    # an ASCII letter; one missed would let Hyperscan pass over a line Python acts on.
    folding = [chr(c) for c in range(128, 0x110000) if any(ch.isascii() for ch in fold(chr(c)))]
    assert sorted(folding) == sorted(FOLDED)


def indexed(rec) -> set[str]:
    return search_index.distinct_grams(formats.searchable_text(rec))


def transcript(rec) -> set[str]:
    return per_line([line for _, line, _ in formats.timeline(rec)])


def test_the_index_reads_every_trigram_of_the_transcript():
    # Read in blocks (no split per line), the index still holds each transcript line's
    # trigrams: carriage returns, colours, frames cut mid-line, a full-screen program.
    rec = recorder()
    rec.input("ls --color\n")
    for chunk in [
        "\x1b[01;34mconfig\x1b[0m  data\r\n10%\r50%\r100% done\r\n",
        "a line cut ",
        "between frames\r\nbacksp\bace and über ✓\r\n",
        "\x1b[?1049h\x1b[2;5Hfull-screen text\x1b[10;1Hstatus line",
        "\x1b[?1049l",
        "after the program\r\nno newline at the end",
    ]:
        rec.output(chunk.encode())
    rec.input("echo done\n")
    rec.output(b"done\r\n")
    rec = rec.finish(0)
    grams = indexed(rec)
    assert transcript(rec) <= grams
    assert {"100", "bet", "n f", "übe", "$ e"} <= grams


@pytest.mark.skipif(not shutil.which("vim"), reason="vim is not installed")
def test_the_index_reads_every_trigram_of_a_vim_session(tmp_path):
    (tmp_path / "app.conf").write_text("port = 8080\nworkers = 4\n")
    keys = [b"Goworkers_max = 16\x1b", b":wq\r"]
    rec = _full_screen(["vim", "-u", "NONE", "-N", "app.conf"], keys, tmp_path)
    assert transcript(rec) <= indexed(rec)
    assert "x =" in indexed(rec)


def test_the_corpus_index_holds_its_transcript():
    rec = recorder()
    for command, output in split_steps(corpus()):
        if command:
            rec.input(command + "\n")
        rec.output(output.replace("\n", "\r\n").encode())
    rec = rec.finish(0)
    assert transcript(rec) <= indexed(rec)


def test_trigrams_across_the_blocks_numpy_reads_are_all_there(monkeypatch):
    lines = corpus().splitlines()
    monkeypatch.setattr(search_index, "_BLOCK", 4099)  # hundreds of blocks, cut anywhere
    assert search_index.distinct_grams(lines) == per_line(lines)


def test_an_alphabet_growing_from_block_to_block_keeps_every_trigram(monkeypatch):
    # Characters are ranked as they are met: a later block with new ones widens the table
    # (past 64, past 128), one beyond 0xFFFF or a lone surrogate is read as UTF-32.
    rng = random.Random(8)
    alphabets = [
        "abc def\t",
        string.ascii_letters + string.digits + string.punctuation + " ",
        "".join(chr(c) for c in range(0x391, 0x3A9) if c not in (0x3A2, 0x3A3)),  # Greek capitals
        "".join(chr(c) for c in range(0x410, 0x450)),  # Cyrillic, both cases
        "\ud83d\ude00ab",  # lone surrogates side by side: two characters, not one
        "🎉✓\ud800x",
    ]
    lines = []
    for alphabet in alphabets:
        lines += ["".join(rng.choice(alphabet) for _ in range(80)) for _ in range(60)]
        lines.append("".join(rng.choice(alphabet) for _ in range(9000)))  # read in blocks
        lines += ["", "ab", "x"]  # no trigram of their own
    monkeypatch.setattr(search_index, "_BLOCK", 4099)
    assert search_index.distinct_grams(lines) == per_line(lines)


def test_a_lone_surrogate_is_read_as_any_character():
    # Typed text from a chat can hold one; UTF-8 cannot, and the Python path never encodes.
    secret = "Zq8xW3vLp9\ud800RtY2mKa7Nc"
    text = ("ordinary \ud83d line\n" * 30 + f"password={secret}\n" + f"echo {secret}\n") * 2
    for known in ([], [secret]):
        quick = redacted(cut(text, random.Random(1)), quick=True, known=known)
        assert quick == redacted([text], quick=False, known=known)
        assert secret not in quick[0]


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="a ✓\n\r\t\x00\x07\x1b\x1f\x7f\x80\x85\x9f\xa0\xc2é\ud800🎉", max_size=60))
def test_the_quick_control_test_of_the_index_reader_is_the_regex_one(text):
    # The index reads most output without the terminal model when it holds no control
    # character: told from its UTF-8 bytes, it must be exactly what the pattern says.
    from clustercord_builtins.terminal import vt

    assert vt._has_control(text) == bool(vt._CONTROL.search(text))
    assert vt._has_control(text * 600) == bool(vt._CONTROL.search(text))  # a frame's size
