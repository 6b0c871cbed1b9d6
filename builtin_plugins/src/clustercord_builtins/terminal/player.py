"""The HTML export's player: asciinema-player, the one people know from asciinema.org,
vendored (``vendor/asciinema_player``, its version and licence next to it) and embedded, so
the page is one file that loads nothing.

The page carries the recording as asciicast v2 text in a JSON script element; the player
reads it as ``{data: ...}``. Pauses longer than two seconds play as two
(``idleTimeLimit``, as the chat replay does), each command is a marker on the progress bar,
and the page's list of commands seeks to them. ``window.clustercordPlayer`` is the player
object (``seek``, ``getCurrentTime``, ``getDuration``), for tests.
"""

from __future__ import annotations

from pathlib import Path

PLAYER_VERSION = "3.18.0"
VENDOR = Path(__file__).with_name("vendor") / "asciinema_player"


def player_script() -> str:
    """asciinema-player's monolithic bundle, with nothing that could end its script element."""
    return _inline((VENDOR / "asciinema-player.min.js").read_text("utf-8"))


def player_style() -> str:
    return (VENDOR / "asciinema-player.css").read_text("utf-8").replace("</", "<\\/")


def _inline(script: str) -> str:
    # In a script element only "</script" (any case) and "<!--" change how HTML reads it;
    # a backslash before "/" or "!" means the same to JavaScript in strings and regexps.
    return script.replace("</", "<\\/").replace("<!--", "<\\!--")


PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1f2328; }
table.meta th { text-align: left; padding-right: 1rem; font-weight: 600; }
#player { margin: 1rem 0; max-width: 70rem; }
.transcript { background: #0d1117; color: #e6edf3; padding: 0.75rem; white-space: pre-wrap;
  font: 13px/1.35 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
#commands button { font-family: ui-monospace, monospace; cursor: pointer; }
"""

START_SCRIPT = """
(() => {
  "use strict";
  const cast = JSON.parse(document.getElementById("recording").textContent);
  const player = AsciinemaPlayer.create({data: cast}, document.getElementById("player"), {
    idleTimeLimit: 2, fit: "width", terminalFontSize: "small", preload: true,
  });
  for (const button of document.querySelectorAll("#commands button")) {
    button.addEventListener("click", async () => {
      await player.seek({marker: Number(button.dataset.command)});
      player.play();
    });
  }
  window.clustercordPlayer = player;
})();
"""
