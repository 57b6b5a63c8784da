"""The slurm backend's pure pieces: parsing what Slurm prints, building directives and commands.

The sample lines are what Slurm 22.05 printed on the test rig for the same commands.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vlaunch import JobState
from vlaunch.config.layers import cli_layer, resolve_profile
from vlaunch_slurm import SlurmBackend, SlurmOptions
from vlaunch_slurm.parse import expand_hostlist, parse_job_id, parse_sacct, parse_squeue, pending_reason


def test_sbatch_parsable_ids():
    assert parse_job_id("4242\n") == "4242"
    assert parse_job_id("4242;cluster2\n") == "4242"
    with pytest.raises(ValueError):
        parse_job_id("sbatch: error: something\n")


SQUEUE = """\
12|PENDING|Resources|||
13|PENDING|Priority|||
14|RUNNING|None|vm|0|
15|COMPLETING|None|vm|0|
16|FAILED|NonZeroExitCode|vm|768|
17|TIMEOUT|TimeLimit|vm|0|
18|CANCELLED|None|vm|15|
19|NODE_FAIL|NodeDown|gpu[01-02]|0|
20|PENDING|QOSMaxGRESPerUser|||
"""


def test_squeue_states_reasons_and_exit_codes():
    jobs = parse_squeue(SQUEUE)
    assert jobs["12"].state is JobState.PENDING and jobs["12"].reason.startswith("Resources: ")
    assert jobs["13"].reason.startswith("Priority: ")
    assert jobs["14"].state is JobState.RUNNING and jobs["14"].nodes == ("vm",)
    assert jobs["15"].state is JobState.RUNNING and "COMPLETING" in jobs["15"].reason
    assert jobs["16"].state is JobState.FAILED and jobs["16"].exit_code == 3 and "exit code 3" in jobs["16"].reason
    assert jobs["17"].state is JobState.TIMEOUT and jobs["17"].reason.startswith("TIMEOUT: ")
    assert jobs["18"].state is JobState.CANCELLED and jobs["18"].exit_code is None
    assert jobs["19"].state is JobState.FAILED and jobs["19"].reason.startswith("NODE_FAIL: a node")
    assert jobs["19"].nodes == ("gpu01", "gpu02")
    assert "QOS limit" in jobs["20"].reason


def test_every_final_slurm_state_is_final_and_live_ones_are_not():
    from vlaunch_slurm.parse import STATE_MAP

    for native in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED"):
        assert STATE_MAP[native].is_final, native
    for native in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "REQUEUED"):
        assert not STATE_MAP[native].is_final, native


def test_sacct_rows_last_one_wins_and_words_after_state():
    jobs = parse_sacct("7|FAILED|3:0\n8|CANCELLED by 0|0:15\n9|TIMEOUT|0:0\n7|COMPLETED|0:0\n")
    assert jobs["7"].state is JobState.COMPLETED
    assert jobs["8"].state is JobState.CANCELLED
    assert jobs["9"].state is JobState.TIMEOUT
    assert parse_sacct("") == {}


def test_unknown_state_and_unexplained_reason_pass_through():
    job = parse_squeue("5|SOMETHING_NEW|None|vm|0|\n")["5"]
    assert job.state is JobState.UNKNOWN and "SOMETHING_NEW" in job.reason
    assert pending_reason("SomeSiteReason") == "SomeSiteReason"
    assert pending_reason("ReqNodeNotAvail, UnavailableNodes:gpu3").startswith("ReqNodeNotAvail, Unavailable")


@pytest.mark.parametrize("text, hosts", [
    ("vm", ("vm",)),
    ("gpu[01-03,07],login1", ("gpu01", "gpu02", "gpu03", "gpu07", "login1")),
    ("r[1-2]n[8-9]", ("r1n8", "r1n9", "r2n8", "r2n9")),
    ("", ()),
])
def test_hostlists(text, hosts):
    assert expand_hostlist(text) == hosts


def test_commands_batch_all_jobs_in_one_call():
    backend = SlurmBackend()
    argv = backend.status_command(["3", "4", "5"])
    assert argv[0] == "squeue" and "--jobs=3,4,5" in argv and "--states=all" in argv
    history = backend.history_command(["3", "4"])
    assert history[0] == "sacct" and "--jobs=3,4" in history and "-X" in history and "--parsable2" in history
    assert backend.cancel_command("3") == ["scancel", "3"]
    assert backend.submit_command(None, "/runs/a b/job.sh") == ["sbatch", "--parsable", "/runs/a b/job.sh"]


@pytest.mark.parametrize("options, fragment", [
    ({"partition": "gpu\n#SBATCH --x"}, "one line"),
    ({"account": "a\rb"}, "one line"),
    ({"extra_directives": ["reservation=x"]}, "one sbatch option"),
    ({"skip_directives": ["memory"]}, "unknown directive 'memory'"),
    ({"partitoin": "gpu"}, "Extra inputs"),
])
def test_bad_options_are_refused(options, fragment):
    with pytest.raises(ValidationError) as info:
        SlurmOptions.model_validate(options)
    assert fragment in str(info.value)


def test_directives_skip_replace_and_quote():
    from vlaunch import JobSpec

    profile = resolve_profile("turbo", cli_layer(["resources.memory=\"64GB\"", "resources.walltime=\"1-00:00:00\""],
                                                 "m", None, [])).profile
    options = SlurmOptions(account="a b$(x)", gpu_type="a100", skip_directives=["--mem"],
                           extra_directives=["--time=2:00:00", "--comment=two words"])
    lines = SlurmBackend().directives(JobSpec("j", "turbo", profile, options, "/runs/j"))
    assert "#SBATCH --account='a b$(x)'" in lines
    assert "#SBATCH --gpus-per-node=a100:4" in lines
    assert not any(line.startswith("#SBATCH --mem") for line in lines)
    assert [line for line in lines if "--time" in line] == ["#SBATCH --time=2:00:00"]
    assert lines[-1] == "#SBATCH '--comment=two words'"
