"""Every hook can be replaced by a plugin (the core's implementations are ``trylast``), and the suite
proves it for each one; the meta-test below fails when a hook is added without such a test."""

from __future__ import annotations

import inspect
import re

import pytest

from helpers import REPO, fake_command, live_group_members

from vlaunch import api, hookimpl, hookspecs
from vlaunch.plugins import get_host
from vlaunch.probes import Probe
from vlaunch.registry import JobRecord, Registry
from vlaunch.transport import LocalTransport


class SitePlugin:
    """Replaces every step of a job's life for the local backend, delegating to the backend and noting
    each call, as a site plugin wrapping a step (accounting, a site's own probe) would."""

    def __init__(self):
        self.calls: list[str] = []

    @hookimpl
    def vlaunch_submit(self, backend, job, script_path, transport):
        self.calls.append("submit")
        return backend.submit(job, script_path, transport)

    @hookimpl
    def vlaunch_poll(self, backend, jobs, transport):
        self.calls.append("poll")
        return backend.poll(jobs, transport)

    @hookimpl
    def vlaunch_cancel(self, backend, job, transport):
        self.calls.append("cancel")
        backend.cancel(job, transport)
        return True

    @hookimpl
    def vlaunch_check_health(self, job, stage):
        self.calls.append(f"check {stage}")
        return Probe(True, f"site probe of {stage}") if stage == "completion" else None

    @hookimpl
    def vlaunch_read_logs(self, job):
        self.calls.append("logs")
        return f"log of {job.name}, read by the site plugin\n".encode()


@pytest.fixture
def site_plugin():
    host, plugin = get_host(), SitePlugin()
    host.register(plugin, distribution="site-plugin")
    yield plugin
    host.unregister(plugin)


def test_a_plugin_replaces_submit_poll_health_logs_and_cancel(site_plugin):
    events = []
    overrides = api.Overrides(sets=[fake_command()], model="m")
    job = api.up("cpu-tiny", "local", overrides, name="hooked", check_flags=False, check_model=False,
                 progress=events.append)
    assert site_plugin.calls[0] == "submit" and "poll" in site_plugin.calls
    assert {"check health", "check models", "check completion"} <= set(site_plugin.calls)
    assert "check port" not in site_plugin.calls  # the transport answers that stage
    assert any(e.stage == "completion" and e.detail == "site probe of completion" for e in events)
    assert b"".join(api.logs("hooked")) == b"log of hooked, read by the site plugin\n"
    api.down("hooked")
    assert "cancel" in site_plugin.calls
    assert Registry().get("hooked").state.is_final and not live_group_members(job.native_id)


class RecordingLocal(LocalTransport):
    kind = "site-local"

    def __init__(self, seen: list):
        self.seen = seen

    def run(self, argv, **kwargs):
        self.seen.append(tuple(argv))
        return super().run(argv, **kwargs)


def test_a_plugin_provides_a_transport_kind(tmp_path):
    seen: list = []

    class TransportPlugin:
        @hookimpl
        def vlaunch_make_transport(self, spec):
            return RecordingLocal(seen) if spec.get("kind") == "site-local" else None

    host, plugin = get_host(), TransportPlugin()
    host.register(plugin, distribution="site-transport")
    try:
        Registry().create(JobRecord(name="far", backend="local", profile="cpu-tiny", run_dir=str(tmp_path / "far"),
                                    transport={"kind": "site-local"}, native_id="2147480000", state="RUNNING"))
        records, problems = api.status(["far"])
    finally:
        host.unregister(plugin)
    assert problems == [] and seen and seen[0][0] == "ps"  # the local backend's poll ran through it
    assert records[0].state.is_final  # no such process group: the job is over


def test_a_plugin_amends_the_profile_for_one_backend():
    class Amend:
        @hookimpl
        def vlaunch_amend_config(self, profile, backend):
            if backend == "slurm":
                profile.vllm.max_num_seqs = 96

    host, plugin = get_host(), Amend()
    host.register(plugin, distribution="site-amend")
    try:
        slurm = api.render("cpu-tiny", "slurm", api.Overrides(model="m"), run_root="/runs")
        local = api.render("cpu-tiny", "local", api.Overrides(model="m"), run_root="/runs")
    finally:
        host.unregister(plugin)
    assert "--max-num-seqs 96" in slurm and "--max-num-seqs 96" not in local


def test_every_hook_is_overridden_by_some_test():
    hooks = {name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("vlaunch_")}
    sources = [p.read_text() for p in REPO.glob("tests/**/*.py")]
    sources += [p.read_text() for p in REPO.glob("plugins/*/tests/*.py")]
    overridden = {name for text in sources for name in re.findall(r"def (vlaunch_\w+)\(", text)}
    assert hooks - overridden == set(), "hooks without a test that implements them"
