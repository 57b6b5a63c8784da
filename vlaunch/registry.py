"""The job registry: one JSON record per job under the user's state directory.

Writes are atomic (temporary file + rename) and serialised by an exclusive lock, so parallel
``vlaunch up`` runs never lose or corrupt a record. A record that cannot be read is reported and
left in place; the other jobs are still listed.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import JobNotFound, RegistryError
from .paths import job_names, state_dir
from .states import JobState

__all__ = ["JobRecord", "Registry", "now_iso"]


def now_iso() -> str:
    """The current time as an ISO 8601 UTC string."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class JobRecord(BaseModel):
    """Everything vlaunch knows about one job; enough to find, reach and stop it from a new process."""

    model_config = ConfigDict(defer_build=True)

    name: str
    backend: str
    profile: str
    transport: dict = Field(default_factory=lambda: {"kind": "local"})
    run_dir: str
    config: dict = Field(default_factory=dict, description="The resolved profile.")
    command: str = Field("", description="The vLLM command line as rendered.")
    native_id: str | None = None
    state: JobState = JobState.PENDING
    reason: str | None = None
    exit_code: int | None = None
    node: str | None = None
    host: str | None = None
    port: int | None = None
    served_model_name: str | None = None
    ready_at: str | None = None
    cancel_requested: bool = False
    cancel_cause: str | None = Field(None, description="Who cancelled the job and why, once vlaunch did.")
    group: str | None = Field(None, description="The replica group the job serves in, if any.")
    serves: str | None = Field(None, description="The program the job serves instead of vLLM (a group's router).")
    created_at: str = Field(default_factory=now_iso)
    updated_at: str = Field(default_factory=now_iso)

    def path(self, leaf: str) -> str:
        """A file in the job's run directory on the target."""
        return f"{self.run_dir.rstrip('/')}/{leaf}"

    @property
    def log_path(self) -> str:
        """The server's real-time log on the target."""
        return self.path("server.log")

    @property
    def endpoint(self) -> str | None:
        """``http://host:port`` as the target sees it, once the job has published where it listens."""
        return f"http://{self.host}:{self.port}" if self.host and self.port else None


class Registry:
    """Job records in ``<state dir>/jobs/<name>.json`` and API keys in ``<name>.key`` (mode 0600)."""

    #: The folder under the state directory, the record's model and what users call one.
    folder, record_type, noun = "jobs", JobRecord, "job"

    def __init__(self, root: Path | None = None):
        self.root = (root or state_dir()) / self.folder

    def _ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self._ensure()
        with open(self.root / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _file(self, name: str) -> Path:
        return self.root / f"{name}.json"

    def _write(self, path: Path, text: str, mode: int = 0o600) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{path.name}.")
        try:
            os.fchmod(fd, mode)
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def new_name(self, prefix: str) -> str:
        """A job name ``prefix-xxxxxx`` that no record uses yet."""
        while True:
            name = f"{prefix}-{secrets.token_hex(3)}"
            if not self._file(name).exists():
                return name

    def create(self, record: JobRecord) -> None:
        """Store a new record; fail if the name is taken."""
        with self._locked():
            if self._file(record.name).exists():
                raise RegistryError(f"a {self.noun} named {record.name!r} already exists")
            self._write(self._file(record.name), record.model_dump_json(indent=2))

    def save(self, record: JobRecord) -> None:
        """Replace a record (its ``updated_at`` is refreshed)."""
        record.updated_at = now_iso()
        with self._locked():
            self._write(self._file(record.name), record.model_dump_json(indent=2))

    def update(self, name: str, change: Callable[[JobRecord], object]) -> JobRecord:
        """Read record ``name``, apply ``change`` to it and write it back, all under the lock, so that no
        other process's change made in the meantime is lost; the changed record."""
        with self._locked():
            record = self.get(name)
            change(record)
            record.updated_at = now_iso()
            self._write(self._file(name), record.model_dump_json(indent=2))
        return record

    def get(self, name: str) -> JobRecord:
        """The record of job ``name``."""
        path = self._file(name)
        if not name or "/" in name or not path.is_file():
            known = ", ".join(self.names()) or "none"
            raise JobNotFound(f"no {self.noun} named {name!r} (known {self.noun}s: {known})")
        return self._load(path)

    def has(self, name: str) -> bool:
        """Whether a record named ``name`` is stored (nothing is parsed)."""
        return bool(name) and "/" not in name and self._file(name).is_file()

    def reload(self, record: JobRecord) -> JobRecord:
        """Refresh ``record`` in place from its stored version (kept as is when none is stored)."""
        path = self._file(record.name)
        if path.is_file():
            stored = self._load(path)
            for key in self.record_type.model_fields:
                setattr(record, key, getattr(stored, key))
        return record

    def _load(self, path: Path) -> JobRecord:
        try:
            return self.record_type.model_validate(json.loads(path.read_text()))
        except (OSError, ValueError, ValidationError) as exc:
            reason = str(exc).splitlines()[0]
            raise RegistryError(f"{path}: unreadable {self.noun} record, left in place ({reason})") from None

    def names(self) -> list[str]:
        """Names of all stored records."""
        return job_names(self.root)

    def all(self) -> tuple[list[JobRecord], list[str]]:
        """Every readable record, newest first, and one problem line per unreadable one."""
        records, problems = [], []
        for name in self.names():
            try:
                records.append(self._load(self._file(name)))
            except RegistryError as exc:
                problems.append(str(exc))
        records.sort(key=lambda r: r.created_at, reverse=True)
        return records, problems

    def remove(self, name: str) -> None:
        """Forget job ``name`` (its record and key)."""
        with self._locked():
            self._file(name).unlink(missing_ok=True)
            (self.root / f"{name}.key").unlink(missing_ok=True)

    def store_key(self, name: str, key: str) -> Path:
        """Keep a job's API key in a file only the user can read."""
        with self._locked():
            path = self.root / f"{name}.key"
            self._write(path, key + "\n", mode=0o600)
        return path

    def key(self, name: str) -> str | None:
        """A job's API key, if it has one."""
        path = self.root / f"{name}.key"
        return path.read_text().strip() if path.is_file() else None

