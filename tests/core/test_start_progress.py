"""A start says what it is doing and how long it usually takes, and a job started with --no-wait becomes
ready (docs/lifecycle.md, "Starting"): the phases on a recorded real log, the history unit by unit, then
the real CLI against the stand-in server, held in "loading weights" until the test opens its gate."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import time
from pathlib import Path

from helpers import BIN, fake_command, vlaunch, wait_until
from vlaunch.start_history import StartKey, record_start, slower_than_usual, usual, usual_words
from vlaunch.start_phase import PHASES, gpu_kind, phases, vllm_version

LOG = (Path(__file__).parents[1] / "fixtures" / "vllm-logs" / "cpu-tiny-start.server.log").read_text()
FAKE = ["-p", "cpu-tiny", "-m", "fake-model", "--set", fake_command(), "--no-check-flags"]


def test_a_recorded_start_goes_through_its_phases_in_order():
    found = phases(LOG)
    assert [p.name for p in found] == ["starting Python", "starting the engine", "loading weights", "profiling memory",
                                       "starting the API server", "ready"]
    assert found[0].began == 1796686094  # the job script's epoch
    assert all(a.began <= b.began for a, b in zip(found, found[1:]))
    assert found[-1].began - found[0].began < 120
    assert vllm_version(LOG) == "0.32.0" and gpu_kind(LOG) == "none"


def test_the_gpus_the_job_saw_and_a_log_without_the_start_line():
    assert gpu_kind("vlaunch: GPUs: NVIDIA H100 80GB HBM3,NVIDIA H100 80GB HBM3\n") == "NVIDIA H100 80GB HBM3 x2"
    assert phases("vlaunch: job starting on n1 at Mon Dec  7 21:23:06 UTC 2026\nINFO 12-07 21:23:12 [x] y\n") == []
    assert set(PHASES) >= {"torch.compile", "capturing CUDA graphs"}


def test_history_gives_the_median_of_earlier_starts_of_the_same_kind(isolated):
    class Record:
        backend, profile, served_model_name, name = "local", "cpu-tiny", "tiny", "j"
        config = {"server": {"model": "/models/tiny"}}

    start = phases(LOG)[0].began
    before_ready = LOG[:LOG.index("INFO:     Application startup complete")]  # ready when the look saw it
    key = StartKey("local", "cpu-tiny", "/models/tiny", "0.32.0", "none")
    assert usual(key) is None and usual_words(None) == ""
    assert usual(StartKey("local", "cpu-tiny", "/models/tiny", None, None)) is None
    for ready_after in (80, 100, 90):
        record_start(Record(), before_ready, start + ready_after)
    found = usual(key)
    assert found.starts == 3 and found.ready == 90
    assert usual_words(found) == "usually ready in ~90 s, from 3 earlier starts"
    assert usual(StartKey("slurm", "cpu-tiny", "/models/tiny", "0.32.0", "none")) is None
    assert usual(StartKey("local", "cpu-tiny", "/models/tiny", "0.33.0", "none")) is None
    assert usual(StartKey("local", "cpu-tiny", "/models/tiny", None, None)).starts == 3  # before the log names them
    typical = found.phases["loading weights"]
    assert slower_than_usual("loading weights", typical + 1, found) == ""
    assert slower_than_usual("loading weights", typical * 2 + 30, found) == f"usually {typical:.0f} s"
    record_start(Record(), LOG, start + 86400)  # looked at a day later: ready when vLLM said so
    with (isolated / "state" / "starts.jsonl").open("a") as history:
        history.write('[1]\n{"ready": 1}\nnot json\n')  # not starts: skipped, not fatal
    assert usual(key).starts == 4 and usual(key).ready < 90


def reason(name: str) -> dict:
    return json.loads(vlaunch("status", "--json", name).stdout)[0]


def test_a_job_started_without_waiting_becomes_ready_in_status_and_wait_returns(isolated):
    gate = isolated / "gate"
    env = {"FAKE_START_GATE": str(gate)}
    up = vlaunch("up", *FAKE, "--name", "w1", "--no-wait", env=env)
    assert up.returncode == 0, up.stderr
    held = wait_until(lambda: (job := reason("w1")) and "loading weights" in (job["reason"] or "") and job, 60)
    assert held and held["state"] == "RUNNING" and not held["ready_at"], held
    assert held["reason"].startswith("starting: ") and "vLLM: loading weights for " in held["reason"], held
    early = vlaunch("watch", "w1", "--once")
    assert early.returncode != 0 and "vlaunch wait w1" in early.stderr, early.stderr
    again = vlaunch("up", *FAKE, "--name", "w1", env=env)
    assert again.returncode != 0 and "job w1 is already RUNNING, not ready yet: `vlaunch wait w1`" in again.stderr
    gate.touch()
    ready = wait_until(lambda: (job := reason("w1"))["ready_at"] and job, 60)
    assert ready and ready["state"] == "RUNNING" and ready["reason"] is None, ready
    waited = vlaunch("wait", "w1", "--timeout", "30")
    assert waited.returncode == 0 and "job w1 is ready: http://127.0.0.1:" in waited.stdout, waited.stderr
    assert vlaunch("env", "w1").stdout.startswith("export OPENAI_BASE_URL=http://127.0.0.1:")
    assert vlaunch("down", "w1").returncode == 0
    ended = vlaunch("wait", "w1")
    assert ended.returncode == 1 and "job w1 has ended (CANCELLED" in ended.stderr


def _lines_until(process: subprocess.Popen, text: str) -> str:
    """The lines ``process`` writes on stderr up to the first holding ``text`` (or to its end)."""
    seen = ""
    for line in process.stderr:
        seen += line
        if text in line:
            break
    return seen


def test_wait_establishes_readiness_itself_and_a_second_start_says_how_long_they_usually_take(isolated):
    gate = isolated / "gate"
    env = {"FAKE_START_GATE": str(gate)}
    assert vlaunch("up", *FAKE, "--name", "first", "--no-wait", env=env).returncode == 0
    waiting = subprocess.Popen([str(BIN / "vlaunch"), "wait", "first"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, **env})
    err = _lines_until(waiting, "vLLM: loading weights")
    gate.touch()
    out, rest = waiting.communicate(timeout=60)
    err += rest
    assert waiting.returncode == 0, err
    assert "vLLM: loading weights" in err and "job first is ready" in out, err
    assert "usually" not in err  # no earlier start of this kind
    gate.unlink()
    second = subprocess.Popen([str(BIN / "vlaunch"), "up", *FAKE, "--name", "second"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, **env})
    err = _lines_until(second, "vLLM: loading weights")
    gate.touch()
    _, rest = second.communicate(timeout=60)
    err += rest
    assert second.returncode == 0, err
    assert re.search(r"vLLM: loading weights \(usually ready in ~\d+ s, from 1 earlier start\)", err), err
    starts = [json.loads(line) for line in (isolated / "state" / "starts.jsonl").read_text().splitlines()]
    assert [s["job"] for s in starts] == ["first", "second"] and starts[0]["vllm"] == "0.32.0"
    assert list(starts[0]["phases"]) == ["starting Python", "starting the engine", "loading weights",
                                         "profiling memory", "starting the API server", "ready"]
    assert vlaunch("down", "first", "second").returncode == 0


def _read_pty(fd: int, until_text: str, seconds: float) -> str:
    """What the terminal shows (raw bytes as text) until ``until_text`` appears or ``seconds`` pass."""
    seen, deadline = "", time.monotonic() + seconds
    while until_text not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 4096).decode(errors="replace")
            except OSError:
                break
    return seen


def _up_on_a_terminal(isolated, name: str) -> tuple[subprocess.Popen, int]:
    main, child = pty.openpty()
    env = {**os.environ, "FAKE_START_GATE": str(isolated / "never")}
    process = subprocess.Popen([str(BIN / "vlaunch"), "up", *FAKE, "--name", name], stdin=child, stdout=child,
                               stderr=child, env=env, start_new_session=True)
    os.close(child)
    return process, main


def test_on_a_terminal_the_waiting_line_ticks_and_an_error_starts_on_a_line_of_its_own(isolated):
    process, screen = _up_on_a_terminal(isolated, "tty")
    try:
        shown = _read_pty(screen, "vLLM: loading weights", 60)
        shown += _read_pty(screen, "\x00", 3.5)  # more redraws of the same waiting line
        redraws = re.findall(r"\r\x1b\[K  health +waiting +(\d+\.\d)s", shown)
        assert len(redraws) >= 2 and float(redraws[-1]) > float(redraws[0]), shown
        pid = json.loads((isolated / "state" / "runs" / "tty" / "rendezvous.json").read_text())["pid"]
        os.kill(pid, signal.SIGKILL)
        shown += _read_pty(screen, "error:", 30)
        assert re.search(r"(^|\n)error: server ended before it was ready", shown.replace("\r", "")), shown
        assert not re.search(r"[^\n]error:", shown.replace("\r\x1b[K", "").replace("\r", "")), shown
    finally:
        process.wait(timeout=30)
        os.close(screen)


def test_on_a_terminal_an_interrupt_starts_on_a_line_of_its_own(isolated):
    process, screen = _up_on_a_terminal(isolated, "tty2")
    try:
        _read_pty(screen, "vLLM: loading weights", 60)
        process.send_signal(signal.SIGINT)
        shown = _read_pty(screen, "cancelled", 30)
        assert "\nerror: interrupted: job tty2 cancelled" in shown.replace("\r", ""), shown
    finally:
        process.wait(timeout=30)
        os.close(screen)


def test_status_watch_on_a_terminal_keeps_each_row_to_its_width(isolated):
    """A starting job's reason is long; a wrapped row would be left behind by each redraw."""
    assert vlaunch("up", *FAKE, "--name", "narrow", "--no-wait", env={"FAKE_START_GATE": str(isolated / "gate")}).returncode == 0
    main, child = pty.openpty()
    watch = subprocess.Popen([str(BIN / "vlaunch"), "status", "--watch"], stdin=child, stdout=child, stderr=child,
                             env={**os.environ, "COLUMNS": "80", "LINES": "24"}, start_new_session=True)
    os.close(child)
    try:
        shown = _read_pty(main, "...", 60)  # the starting job's row, cut to the width
        shown += _read_pty(main, "\x00", 3)  # a few redraws
        rows = re.split(r"\x1b\[\d+F\x1b\[J|\r?\n", shown.replace("\r\n", "\n"))
        assert any(row.startswith("narrow ") and row.endswith("...") for row in rows), shown
        assert all(len(row) < 80 for row in rows), [row for row in rows if len(row) >= 80]
    finally:
        watch.send_signal(signal.SIGINT)
        watch.wait(timeout=30)
        os.close(main)
        assert vlaunch("down", "narrow").returncode == 0
