"""Plugin discovery: an out-of-tree backend through entry points, duplicates, broken plugins, deprecations."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import REPO, assert_one_line_error, fake_command, live_group_members, vlaunch

from vlaunch.errors import PluginError
from vlaunch.plugins import get_host, hookimpl


@pytest.fixture(scope="module")
def nohup_plugin():
    """Install the example third-party plugin into this environment, as a user would (pip)."""
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e",
                    str(REPO / "examples" / "vlaunch-nohup")], check=True, capture_output=True, timeout=300)
    return "nohup"


def test_example_plugin_is_discovered_through_entry_points(nohup_plugin):
    listing = json.loads(vlaunch("backends", "--json").stdout)
    nohup = next(b for b in listing["backends"] if b["name"] == "nohup")
    assert nohup["distribution"] == "vlaunch-nohup" and nohup["version"] == "0.1.0"
    assert nohup["options"]["additionalProperties"] is False
    assert "stop_timeout" in nohup["options"]["properties"]
    assert {b["name"] for b in listing["backends"]} >= {"local", "nohup"}
    kinds = {t["kind"]: t for t in listing["transports"]}
    assert kinds["local"]["distribution"] == "vlaunch" and kinds["ssh"]["distribution"] == "vlaunch"
    assert "host" in kinds["ssh"]["spec"]["required"] and kinds["ssh"]["spec"]["additionalProperties"] is False


def test_example_plugin_drives_up_and_down(nohup_plugin, isolated):
    args = ["-p", "cpu-tiny", "--model", "m", "--set", fake_command(), "--no-check-flags"]
    rendered = vlaunch("render", "--backend", "nohup", *args[:-1]).stdout
    assert "export VLAUNCH_BACKEND_NOHUP=1" in rendered  # its vlaunch_amend_config hook ran
    up = vlaunch("up", "--backend", "nohup", "--name", "viaplugin", *args, timeout=120)
    assert up.returncode == 0, up.stderr
    assert "job viaplugin is ready" in up.stdout
    job = json.loads(vlaunch("status", "viaplugin", "--json").stdout)[0]
    assert job["backend"] == "nohup" and job["state"] == "RUNNING"
    assert vlaunch("down", "viaplugin").returncode == 0
    assert json.loads(vlaunch("status", "viaplugin", "--json").stdout)[0]["state"] == "CANCELLED"
    assert not live_group_members(job["native_id"])


def test_unknown_option_of_plugin_backend(nohup_plugin):
    result = vlaunch("render", "--backend", "nohup", "-p", "cpu-tiny", "--model", "m", "--set",
                     "backend.nohup.stop_timout=3")
    assert_one_line_error(result, "backend.nohup.stop_timout: unknown key (did you mean 'stop_timeout'?)")


def _fake_distribution(root, dist, module, source, backend_entry="x"):
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"  # dist-info names use underscores
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[vlaunch]\n{backend_entry} = {module}\n")
    (root / f"{module}.py").write_text(source)


def test_broken_plugin_is_reported_not_fatal(tmp_path):
    _fake_distribution(tmp_path / "site", "vlaunch-broken", "vlaunch_broken", "raise ImportError('no lsf here')\n")
    env = {"PYTHONPATH": str(tmp_path / "site")}
    listing = vlaunch("backends", env=env)
    assert listing.returncode == 0
    assert "failed to load plugin 'x' from vlaunch-broken: ImportError: no lsf here" in listing.stderr
    assert "local" in listing.stdout
    assert vlaunch("render", "-p", "turbo", "--model", "m", env=env).returncode == 0


def test_duplicate_backend_name_names_both_distributions(tmp_path):
    source = ("from vlaunch import hookimpl\nfrom vlaunch_local import LocalBackend\n"
              "@hookimpl\ndef vlaunch_register_backends(register):\n    register(LocalBackend)\n")
    _fake_distribution(tmp_path / "site", "vlaunch-impostor", "vlaunch_impostor", source)
    result = vlaunch("render", "-p", "turbo", "--model", "m", env={"PYTHONPATH": str(tmp_path / "site")})
    assert_one_line_error(result, "backend 'local' is registered twice", "vlaunch", "vlaunch-impostor")


def test_a_plugin_can_replace_one_step():
    class Override:
        @hookimpl
        def vlaunch_render_script(self, backend, job):
            return f"# rendered by a site plugin for {job.name}\n"

    host = get_host()
    plugin = Override()
    host.register(plugin, distribution="site-plugin")
    from vlaunch import api

    assert api.render("turbo", "local", api.Overrides(model="m"), name="x") == "# rendered by a site plugin for x\n"
    host.unregister(plugin)
    assert api.render("turbo", "local", api.Overrides(model="m"), name="x").startswith("#!/bin/bash")


def test_in_process_duplicate_registration_raises():
    from vlaunch_local import LocalBackend

    class Again:
        @hookimpl
        def vlaunch_register_backends(self, register):
            register(LocalBackend)

    with pytest.raises(PluginError, match="registered twice: by vlaunch and by dup-dist"):
        get_host().register(Again(), distribution="dup-dist")


def test_tracing_writes_to_stderr_so_a_rendered_script_stays_clean():
    args = ("render", "-p", "turbo", "--model", "m", "--run-root", "/runs")
    plain, traced = vlaunch(*args), vlaunch(*args, env={"VLAUNCH_TRACE_HOOKS": "1"})
    assert traced.returncode == 0 and traced.stdout == plain.stdout
    assert "vlaunch_register_backends" in traced.stderr and "vlaunch_render_script" in traced.stderr


def test_a_backend_still_passing_native_state_works_and_is_warned():
    from dataclasses import fields

    from vlaunch.states import JobState, JobStatus

    with pytest.warns(DeprecationWarning, match="native_state"):
        status = JobStatus(JobState.RUNNING, None, None, ("n1",), "R")
    assert status == JobStatus(JobState.RUNNING, nodes=("n1",))
    assert [f.name for f in fields(status)] == ["state", "reason", "exit_code", "nodes"]
