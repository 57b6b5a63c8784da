"""How the commands that wait for a server show its readiness stages as they pass (up, wait, bench --compare)."""

from __future__ import annotations

import shutil
import sys

import click

__all__ = ["Progress"]


class Progress:
    """Prints readiness stages as they pass, one line each, with what vLLM is doing while a stage waits. On a
    terminal the waiting line is redrawn in place as its timers tick; elsewhere a waiting line is printed
    when what it says changes (not its timers). :meth:`close` ends a waiting line, so that what follows (an
    error, an interrupt) starts on a line of its own."""

    def __init__(self):
        self.tty = sys.stderr.isatty()
        self.pending = False
        self._said = None

    def __call__(self, event):
        phase = f"  vLLM: {event.phase}" + (f" {event.phase_seconds:.0f}s" if self.tty else "") if event.phase else ""
        expect = f" ({event.expect})" if event.expect else ""
        text = f"  {event.stage:<10} {event.status:<8} {event.seconds:6.1f}s  {event.detail}{phase}{expect}".rstrip()
        if not self.tty:
            said = (event.stage, event.status, event.detail, event.phase, event.expect)
            if event.status != "waiting" or said != self._said:
                click.echo(text, err=True)
            self._said = said
            return
        if event.status == "waiting":  # one row, or the redraw would leave the wrapped rows behind
            width = shutil.get_terminal_size().columns - 1
            text = text if len(text) <= width else text[:max(0, width - 3)] + "..."
        click.echo("\r\033[K" if self.pending else "", nl=False, err=True)
        click.echo(text, nl=event.status != "waiting", err=True)
        self.pending = event.status == "waiting"

    def close(self) -> None:
        """End a waiting line left open on a terminal."""
        if self.pending:
            click.echo("", err=True)
            self.pending = False
