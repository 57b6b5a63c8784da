"""Every hook can be replaced by a plugin (the core's implementations are ``trylast``), and the suite
proves it for each one; the meta-test below fails when a hook is added without such a test."""

from __future__ import annotations

import inspect
import re

import pytest

from helpers import REPO, fake_command, live_group_members

from pydantic import BaseModel, ConfigDict

from vlaunch import TransportKind, api, hookimpl, hookspecs
from vlaunch.errors import PluginError, TransportError
from vlaunch.plugins import get_host
from vlaunch.probes import Probe
from vlaunch.registry import JobRecord, Registry
from vlaunch.transport import LocalTransport


#: A decorated hook implementation in a test's source.
IMPLEMENTATION = re.compile(r"@hookimpl(?:\([^)]*\))?\s+def (vlaunch_\w+)\(")


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
    assert any(e.stage == "completion" and e.detail == "site probe of completion" for e in events)
    # the plugin was asked about "port" too and left it (None) to the transport
    assert "check port" in site_plugin.calls
    assert any(e.stage == "port" and e.status == "passed" and e.detail == "accepting connections" for e in events)
    assert b"".join(api.logs("hooked")) == b"log of hooked, read by the site plugin\n"
    api.down("hooked")
    assert "cancel" in site_plugin.calls
    assert Registry().get("hooked").state.is_final and not live_group_members(job.native_id)


class SiteSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str


class RecordingLocal(LocalTransport):
    """This machine, under another kind: records what it runs."""

    kind = "site-local"

    def __init__(self, spec: SiteSpec, seen: list):
        self.spec, self.seen = spec, seen

    def run(self, argv, **kwargs):
        self.seen.append((self.spec.label, *argv))
        return super().run(argv, **kwargs)

    def describe(self):
        return {"kind": self.kind, "label": self.spec.label}


def test_a_plugin_registers_a_transport_kind_whose_spec_is_validated(tmp_path):
    seen: list = []

    class TransportPlugin:
        @hookimpl
        def vlaunch_register_transports(self, register):
            register(TransportKind("site-local", SiteSpec, lambda spec: RecordingLocal(spec, seen), "a test kind"))

    host, plugin = get_host(), TransportPlugin()
    host.register(plugin, distribution="site-transport")
    try:
        assert host.transports["site-local"].distribution == "site-transport"
        Registry().create(JobRecord(name="far", backend="local", profile="cpu-tiny", run_dir=str(tmp_path / "far"),
                                    transport={"kind": "site-local", "label": "n1"}, native_id="2147480000",
                                    state="RUNNING"))
        records, problems = api.status(["far"])
        with pytest.raises(TransportError, match=r"invalid site-local transport .*: labl: Extra inputs"):
            host.transport({"kind": "site-local", "label": "n1", "labl": "typo"})
    finally:
        host.unregister(plugin)
    assert problems == [] and seen and seen[0][:2] == ("n1", "ps")  # the local backend's poll ran through it
    assert records[0].state.is_final  # no such process group: the job is over
    with pytest.raises(TransportError, match="no plugin provides a 'site-local' transport"):
        get_host().transport({"kind": "site-local", "label": "n1"})


def test_a_plugin_on_the_deprecated_transport_hook_still_works_and_is_warned():
    class Legacy:
        @hookimpl
        def vlaunch_make_transport(self, spec):
            return RecordingLocal(SiteSpec(label="old"), []) if spec.get("kind") == "legacy" else None

    host, plugin = get_host(), Legacy()
    with pytest.warns(DeprecationWarning, match="register a TransportKind"):
        host.register(plugin, distribution="legacy-transport")
    try:
        assert host.transport({"kind": "legacy"}).spec.label == "old"
        assert type(host.transport({"kind": "local"})) is LocalTransport  # it answered None for "local"
    finally:
        host.unregister(plugin)


def test_two_plugins_registering_one_transport_kind_is_an_error_naming_both():
    class Again:
        @hookimpl
        def vlaunch_register_transports(self, register):
            register(TransportKind("local", SiteSpec, lambda spec: LocalTransport(), "another local"))

    with pytest.raises(PluginError, match="transport 'local' is registered twice: by vlaunch and by dup-transport"):
        get_host().register(Again(), distribution="dup-transport")


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
    overridden = {name for text in sources for name in IMPLEMENTATION.findall(text)}
    assert hooks - overridden == set(), "hooks without a test that implements them"
