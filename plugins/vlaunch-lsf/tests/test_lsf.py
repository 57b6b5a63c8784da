"""The vlaunch conformance suite for the ``lsf`` backend, and a few parser checks of its own.

The scheduler outputs below are CONSTRUCTED from IBM Spectrum LSF 10.1's documented formats (the
bsub, bjobs -o and bkill man pages), not recorded from a live cluster: none was available. Replace
them with recorded output, saying where and when, once the backend has run on a real LSF site.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vlaunch import CommandResult, JobState, api
from vlaunch.errors import ConfigError
from vlaunch.testing import BatchConformance
from vlaunch_lsf.backend import LsfBackend, lsf_walltime

#: bsub's answer to an accepted job.
SUBMITTED = "Job <48213> is submitted to queue <gpu>.\n"

#: bjobs -a -noheader -o "jobid stat pend_reason exec_host exit_code exit_reason delimiter='|'" 48213 ...
BJOBS = """\
48213|PEND|Job slot limit reached|-|-|-
48214|RUN|-|4*gpu-a01|-|-
48215|DONE|-|4*gpu-a02|-|-
48216|EXIT|-|4*gpu-a03|3|-
48217|EXIT|-|4*gpu-a01|140|TERM_RUNLIMIT: job killed after reaching LSF run time limit
48218|EXIT|-|-|-|TERM_OWNER: job killed by owner
48219|PSUSP|The job was suspended by the user while pending|-|-|-
48220|USUSP|-|4*gpu-a02|-|-
48221|SSUSP|-|4*gpu-a03|-|-
48222|UNKWN|-|4*gpu-a04|-|-
48223|WAIT|-|-|-|-
48224|ZOMBI|-|4*gpu-a05|-|-
48225|RUN|-|8*gpu-b01:8*gpu-b02|-|-
"""


class TestLsfConformance(BatchConformance):
    backend_name = "lsf"
    golden_dir = Path(__file__).parent / "golden"
    submit_stdout = SUBMITTED
    submit_job_id = "48213"
    native_states = ["PEND", "PSUSP", "USUSP", "SSUSP", "RUN", "DONE", "EXIT", "UNKWN", "WAIT", "ZOMBI"]
    status_samples = [(BJOBS, {
        "48213": JobState.PENDING, "48214": JobState.RUNNING, "48215": JobState.COMPLETED,
        "48216": JobState.FAILED, "48217": JobState.TIMEOUT, "48218": JobState.CANCELLED,
        "48219": JobState.PENDING, "48220": JobState.RUNNING, "48221": JobState.RUNNING,
        "48222": JobState.UNKNOWN, "48223": JobState.PENDING, "48224": JobState.FAILED,
    })]
    pending_sample = (BJOBS, "48213", "Job slot limit reached")
    refusal_stderr = "gpux: No such queue. Job not submitted.\n"


@pytest.fixture
def backend():
    return LsfBackend()


@pytest.mark.parametrize(("walltime", "limit"), [("00:30:00", "0:30"), ("01:00:01", "1:01"), ("1-02:03:00", "26:03")])
def test_walltime_becomes_hour_minute(walltime, limit):
    assert lsf_walltime(walltime) == limit


def test_status_details(backend):
    parsed = backend.parse_status(BJOBS)
    assert parsed["48216"].exit_code == 3 and parsed["48216"].reason == "exited with status 3"
    assert parsed["48215"].exit_code == 0
    assert parsed["48225"].nodes == ("gpu-b01", "gpu-b02")
    assert "run time limit" in parsed["48217"].reason
    assert "suspended" in parsed["48220"].reason


@pytest.mark.parametrize(("stderr", "unknown"), [
    ("Job <48213> is not found\n", True),
    ("Job <48213> is not found\nJob <48214> is not found\n", True),
    ("LSF is down. Please wait ...\nJob <48213> is not found\n", False),
    ("", False),
])
def test_only_not_found_means_unknown(backend, stderr, unknown):
    assert backend.unknown_jobs(CommandResult(("bjobs",), 255, "", stderr)) is unknown


SITE = ["backend.lsf.queue=\"gpu\"", "backend.lsf.project=\"llm-serving\"",
        "backend.lsf.extra_directives=[\"-x\", \"-R 'select[mem>200000]'\"]",
        "resources.cpus_per_node=16", "resources.walltime=\"1-00:00:30\""]


def _prepared(sets):
    return api.prepare("turbo", "lsf", api.Overrides(sets=sets, model="org/model"))


def test_argv_and_script_carry_the_same_options(vlaunch_home):
    prepared = _prepared(SITE)
    job = prepared.job("site", "/srv/vlaunch/runs/site")
    argv, script = prepared.backend.submit_command(job, "/srv/my runs/job.sh"), prepared.script(job)
    assert argv[:3] == ["bsub", "-J", "site"] and argv[-1] == "'/srv/my runs/job.sh'"
    for pair in [["-q", "gpu"], ["-P", "llm-serving"], ["-W", "24:01"], ["-n", "16"], ["-R", "span[ptile=16]"],
                 ["-gpu", "num=4"], ["-R", "select[mem>200000]"]]:
        assert any(argv[i:i + 2] == pair for i in range(len(argv))), pair
    assert "-x" in argv
    assert "#BSUB -gpu num=4\n" in script and "#BSUB -R 'select[mem>200000]'\n" in script


def test_multi_node_is_refused(vlaunch_home):
    prepared = _prepared(["resources.nodes=2", "resources.gpus_per_node=2"])
    with pytest.raises(ConfigError, match="single-node"):
        prepared.script(prepared.job("multi", "/srv/vlaunch/runs/multi"))


@pytest.mark.parametrize("setting", ['backend.lsf.queue="gpu\\ntouch /tmp/x"',
                                     'backend.lsf.extra_directives=["-x\\necho pwned"]'])
def test_a_newline_in_an_option_is_refused(vlaunch_home, setting):
    """A newline would end the #BSUB line and start a command of its own in the job script."""
    with pytest.raises(ConfigError, match="must be one line"):
        _prepared([setting])
