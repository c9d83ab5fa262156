"""The progress bar: on for a terminal only, off in CI and with --no-progress; Caffe's log
lines written while it shows stay whole (the bar is cleared before each line and drawn
again after it), with tqdm and with the fallback bar."""

from __future__ import annotations

import io
import re
import sys

import pytest

from caffe2torch.solver.progress import ProgressBar, progress_wanted
from caffe2torch.solver.solver import get_solver

GLOG = re.compile(r"^I\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ [\w.]+:\d+\] (.*)$")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_wanted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    assert progress_wanted(None, Terminal())
    assert not progress_wanted(None, io.StringIO())  # a log file stays clean
    assert not progress_wanted(False, Terminal())  # --no-progress
    assert progress_wanted(True, io.StringIO())
    monkeypatch.setenv("CI", "true")
    assert not progress_wanted(None, Terminal())


def _log_lines(text: str) -> list[str]:
    """What a terminal keeps: each carriage return or clear starts the line over."""
    kept = []
    for line in text.split("\n"):
        last = line.split("\r")[-1].replace("\x1b[K", "")
        kept.append(last)
    return kept


@pytest.mark.parametrize("use_tqdm", [False, True], ids=["fallback", "tqdm"])
def test_solver_log_lines_stay_whole_under_the_bar(tiny_case, monkeypatch,
                                                   use_tqdm: bool) -> None:
    if use_tqdm:
        pytest.importorskip("tqdm")
    else:
        monkeypatch.setitem(sys.modules, "tqdm", None)  # not installed: the fallback
    tiny_case(batch=6, max_iter=6, test_interval=3)
    out = Terminal()
    solver = get_solver("solver.prototxt", log=out)
    solver.progress = True
    solver.solve()
    solver.close()
    text = out.getvalue()
    lines = [ln for ln in _log_lines(text) if ln.strip()]
    messages = [m.group(1) for ln in lines if (m := GLOG.match(ln))]
    # every line the terminal shows is a whole glog line (the bar itself was cleared)
    assert len(messages) == len(lines), [ln for ln in lines if not GLOG.match(ln)]
    for it in range(7):
        assert any(re.fullmatch(rf"Iteration {it} \(.*\), loss = [\d.e+-]+", m)
                   or m.startswith(f"Iteration {it}, loss = ") for m in messages), it
    assert any(re.fullmatch(r"    Test net output #0: accuracy = [\d.]+", m) for m in messages)
    if not use_tqdm:
        assert "6/6 100%" in text  # the bar was drawn
    assert solver.log.stream is out  # the log stream is given back after solve


def test_fallback_bar_text() -> None:
    out = io.StringIO()
    bar = ProgressBar(10, out=out, use_tqdm=False)
    bar.update(3, 0.5)
    assert re.fullmatch(r"\[#{7}\.{17}\] 3/10  30%  .* iter/s  loss 0\.5", bar.text())
    bar.stream.write("I0101 line one\npartial")
    # cleared, the whole line, then the bar again; the partial line waits for its end
    assert re.search(r"\r\x1b\[KI0101 line one\n\r\x1b\[K\[#{7}\.{17}\] 3/10 [^\n]*$",
                     out.getvalue())
    assert "partial" not in out.getvalue()
    bar.close()
