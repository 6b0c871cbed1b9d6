"""The HTML export's player: plain JavaScript and CSS, embedded (the page loads nothing).

It reads the screen the way :class:`~.ansi.Screen` does (carriage return, backspace, tab,
erase-in-line; other escapes dropped), so the page shows what ``to_text`` prints. Pauses
longer than two seconds are shortened while playing, as asciinema's ``idle_time_limit``.
``window.clustercordPlayer`` (``seek(seconds)``, ``total``, ``markers``) is there for tests.
"""

PLAYER_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1f2328; }
table.meta th { text-align: left; padding-right: 1rem; font-weight: 600; }
.controls { margin: 1rem 0 0.5rem; display: flex; gap: 1rem; align-items: center; }
#screen, .transcript { background: #0d1117; color: #e6edf3; padding: 0.75rem;
  min-height: 20rem; max-height: 40rem; overflow: auto; white-space: pre-wrap;
  font: 13px/1.35 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
#commands button { font-family: ui-monospace, monospace; cursor: pointer; }
"""

PLAYER_SCRIPT = r"""
(() => {
  "use strict";
  const rec = JSON.parse(document.getElementById("recording").textContent);
  const screen = document.getElementById("screen");
  const clock = document.getElementById("clock");
  const playButton = document.getElementById("play");
  const speedSelect = document.getElementById("speed");
  const IDLE = 2;
  const ESC = new RegExp([
    "\\x1b\\[([0-?]*)[ -/]*([@-~])",  // CSI: the one kind interpreted
    "\\x9b[0-?]*[ -/]*[@-~]",
    "\\x1b[\\]PX^_][^\\x07\\x1b\\n]*(?:\\x07|\\x1b\\\\)",
    "\\x1b[ #%()*+\\-./][0-~]",
    "\\x1b[0-~]",
  ].join("|"), "g");
  const INVISIBLE = /[\x00-\x07\x0b\x0c\x0e-\x1f\x7f]/g;

  const times = [];
  let previous = 0, virtual = 0;
  for (const [t] of rec.events) {
    virtual += Math.max(0, Math.min(t - previous, IDLE));
    previous = t;
    times.push(virtual);
  }
  const total = times.length ? times[times.length - 1] : 0;
  const markers = times.filter((_, i) => rec.events[i][1] === "m");

  let done = [], cells = [], col = 0;
  function put(ch) {
    if (col < cells.length) cells[col] = ch;
    else { while (cells.length < col) cells.push(" "); cells.push(ch); }
    col++;
  }
  function write(text) {
    for (const ch of text.replace(INVISIBLE, "")) {
      if (ch === "\n") { done.push(cells.join("").trimEnd()); cells = []; col = 0; }
      else if (ch === "\r") col = 0;
      else if (ch === "\b") col = Math.max(0, col - 1);
      else if (ch === "\t") { for (let n = 8 - col % 8; n > 0; n--) put(" "); }
      else put(ch);
    }
  }
  function control(params, final) {
    const n = /^\d+$/.test(params) ? parseInt(params, 10) : 0;
    if (final === "K") {
      if (n === 0) cells.length = Math.min(cells.length, col);
      else if (n === 1) { for (let i = 0; i < Math.min(col, cells.length); i++) cells[i] = " "; }
      else cells = [];
    } else if (final === "C") col += Math.max(n, 1);
    else if (final === "D") col = Math.max(0, col - Math.max(n, 1));
    else if (final === "G") col = Math.max(n, 1) - 1;
  }
  function feed(text) {
    let at = 0, m;
    ESC.lastIndex = 0;
    while ((m = ESC.exec(text)) !== null) {
      write(text.slice(at, m.index));
      if (m[2] !== undefined) control(m[1], m[2]);
      at = ESC.lastIndex;
    }
    write(text.slice(at));
  }

  let index = 0, position = 0, playing = false, speed = 1, last = 0, timer = null;
  function mmss(s) {
    s = Math.floor(s);
    return String(Math.floor(s / 60)).padStart(2, "0") + ":" + String(s % 60).padStart(2, "0");
  }
  function render() {
    const lines = done.slice();
    const current = cells.join("").trimEnd();
    if (current) lines.push(current);
    screen.textContent = lines.join("\n");
    screen.scrollTop = screen.scrollHeight;
    clock.textContent = mmss(position) + " / " + mmss(total);
  }
  function seek(to) {
    if (to < position) { done = []; cells = []; col = 0; index = 0; }
    while (index < rec.events.length && times[index] <= to) {
      if (rec.events[index][1] === "o") feed(rec.events[index][2]);
      index++;
    }
    position = Math.max(0, to);
    render();
  }
  function tick() {
    const now = Date.now();
    seek(Math.min(total, position + (now - last) / 1000 * speed));
    last = now;
    if (position >= total) stop(); else timer = setTimeout(tick, 40);
  }
  function play() {
    if (position >= total) seek(-1);
    playing = true;
    last = Date.now();
    playButton.textContent = "Pause";
    timer = setTimeout(tick, 40);
  }
  function stop() {
    playing = false;
    clearTimeout(timer);
    playButton.textContent = "Play";
  }
  playButton.addEventListener("click", () => (playing ? stop() : play()));
  speedSelect.addEventListener("change", () => { speed = Number(speedSelect.value) || 1; });
  for (const button of document.querySelectorAll("[data-command]")) {
    button.addEventListener("click", () => seek(markers[Number(button.dataset.command)] || 0));
  }
  window.clustercordPlayer = { seek, total, markers };
  render();
})();
"""
