"""The backend conformance suite: one subclass in a plugin's tests checks what every backend must do.

    from vlaunch.testing import BatchConformance

    class TestLsf(BatchConformance):
        backend_name = "lsf"
        submit_stdout = "Job <123> is submitted to queue <normal>.\\n"
        submit_job_id = "123"
        native_states = ["PEND", "RUN", "DONE", "EXIT", "PSUSP", "USUSP", "SSUSP", "UNKWN", "ZOMBI"]
        status_samples = [(BJOBS_OUTPUT, {"123": JobState.PENDING})]
        pending_sample = (BJOBS_OUTPUT, "123", "Job slot limit")
        refusal_stderr = "Queue does not exist. Job not submitted."
        golden_dir = Path(__file__).parent / "golden"

Each check is a test method; pytest reports the ones a backend fails, by name.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import ValidationError

from ..backend import BatchBackend, ProcessBackend
from ..config.flags import vllm_flags
from ..errors import CommandNotFound, SubmitError
from ..plugins import get_host
from ..registry import JobRecord
from ..shell import join
from ..states import JobState
from .fakes import RecordingTransport, fail, ok, process_list

__all__ = ["BackendConformance", "BatchConformance", "ProcessConformance"]

HOSTILE = "x'; touch /tmp/vlaunch-conformance-pwned; echo '$(id)`id`"


class BackendConformance:
    """Checks every backend must pass. Set ``backend_name``; the rest has defaults."""

    #: The name the backend registers.
    backend_name: ClassVar[str]
    #: A profile that the backend can render without site options.
    profile: ClassVar[str] = "cpu-tiny"
    #: ``--set`` overrides needed to render (e.g. required options).
    sets: ClassVar[list[str]] = []
    #: Folder of golden scripts (``<profile>.sh``); ``VLAUNCH_UPDATE_GOLDEN=1`` rewrites them.
    golden_dir: ClassVar[Path | None] = None

    #: How many generated sets of hostile values :meth:`test_every_string_stays_data` tries.
    hostile_examples: ClassVar[int] = 150

    @pytest.fixture(autouse=True)
    def _home(self, vlaunch_home):
        return vlaunch_home

    def prepared(self, model: str = "org/model", extra_sets: list[str] = ()):
        """The profile prepared for this backend."""
        from .. import api

        return api.prepare(self.profile, self.backend_name, api.Overrides(sets=[*self.sets, *extra_sets], model=model))

    def script(self, model: str = "org/model", extra_sets: list[str] = ()) -> str:
        """The rendered script, with a fixed name and run directory."""
        prepared = self.prepared(model, extra_sets)
        return prepared.script(prepared.job("conformance", "/srv/vlaunch/runs/conformance"))

    def test_registered_through_entry_points(self):
        info = get_host().backends.get(self.backend_name)
        assert info is not None, f"no backend {self.backend_name!r} registered; declare it in [project.entry-points.vlaunch]"
        assert info.cls.description, "give the backend a one-line description"
        with pytest.raises(ValidationError):
            info.cls.options_model.model_validate({"surely_not_an_option": 1})
        schema = info.cls.options_model.model_json_schema()
        assert schema.get("additionalProperties") is False

    def test_options_are_described(self):
        model = get_host().backends[self.backend_name].cls.options_model
        undocumented = [name for name, field in model.model_fields.items() if not field.description]
        assert not undocumented, f"options without Field(description=...): {undocumented}"

    def test_render_is_byte_stable(self):
        first = self.script()
        assert first == self.script()
        if self.golden_dir is not None:
            golden = Path(self.golden_dir) / f"{self.profile}.sh"
            if os.environ.get("VLAUNCH_UPDATE_GOLDEN"):
                golden.parent.mkdir(parents=True, exist_ok=True)
                golden.write_text(first)
            assert golden.exists(), f"no golden file {golden}: run once with VLAUNCH_UPDATE_GOLDEN=1, review, commit"
            assert first == golden.read_text(), f"render drifted from {golden} (VLAUNCH_UPDATE_GOLDEN=1 rewrites it)"

    def test_profile_flags_appear_unchanged(self):
        prepared = self.prepared()
        flags = vllm_flags(prepared.profile.vllm)
        assert join(flags) in self.script(), "the script must carry the profile's vLLM flags verbatim"

    def test_hostile_strings_stay_literal(self):
        script = self.script(model=HOSTILE, extra_sets=[f'environment.variables.HOSTILE="{HOSTILE}"'])
        assert f"export HOSTILE={shlex.quote(HOSTILE)}" in script
        words = [w for line in script.splitlines() if "--model" in line or " serve " in line
                 for w in shlex.split(re.sub(r'"\$(\w+)"', r"\1", line))]
        assert HOSTILE in words, "the model name must reach vLLM as one literal word"


    def test_every_string_stays_data(self, tmp_path_factory):
        """Random strings (quotes, ``$()``, backticks, leading dashes, control characters, unicode) in the
        model, the served name, an environment value, a vLLM flag's value and every string option of the
        backend: each is refused in one line, or the script, run by bash, hands vLLM exactly the words
        the profile says (each value whole, none read as an option) and creates no other file."""
        from hypothesis import given, settings
        from hypothesis import strategies as st

        from .hostile import hostile_text, run_with_values, string_options

        options = string_options(get_host().backends[self.backend_name].cls.options_model)
        fields = ["model", "env", "server.served_model_name", "vllm.dtype", "flag",
                  *(f"backend.{self.backend_name}.{name}" for name in options)]
        chosen = st.dictionaries(st.sampled_from(fields), hostile_text(), min_size=1, max_size=3)

        @settings(max_examples=self.hostile_examples, deadline=None, database=None, derandomize=True)
        @given(chosen)
        def check(hostile):
            values = {"model": "org/model", "env": "v", **hostile}
            if "flag" in values:
                values["vllm.extra_args"] = [f"--x-hostile={values.pop('flag')}"]
            outcome = run_with_values(lambda model, sets: self.prepared(model, sets), values,
                                      tmp_path_factory.mktemp("hostile"))
            if outcome.refused is not None:
                assert len(outcome.refused.strip().splitlines()) == 1, f"refusal is not one line: {outcome.refused!r}"
                return
            assert outcome.argv == outcome.expected, "the server command did not get the profile's words"
            assert outcome.env == values["env"], "the environment value changed on its way"
            assert not outcome.stray, f"running the script created files: {outcome.stray}"
            for word in [v for k, v in hostile.items() if k != "flag"]:
                assert not (word.startswith("-") and word in outcome.argv), f"{word!r} reached vLLM as an option"
            given = {"model": None, "server.served_model_name": "--served-model-name", "vllm.dtype": "--dtype",
                     "flag": "--x-hostile"}
            for key, flag in given.items():
                if key in hostile:  # the value as the user gave it, not as vlaunch resolved it
                    value = hostile[key]
                    words = outcome.argv
                    assert (value in words if flag is None else f"{flag}={value}" in words
                            or any(a == flag and b == value for a, b in zip(words, words[1:]))), (key, value)

        check()


class BatchConformance(BackendConformance):
    """Checks for scheduler backends (:class:`vlaunch.BatchBackend`), from recorded scheduler output."""

    #: Recorded stdout of the submit command, and the job id in it.
    submit_stdout: ClassVar[str]
    submit_job_id: ClassVar[str]
    #: Every state code the scheduler can print.
    native_states: ClassVar[list[str]]
    #: (recorded status output, {job id: expected JobState}) pairs.
    status_samples: ClassVar[list[tuple[str, dict[str, JobState]]]] = []
    #: (recorded status output of a pending job, its id, a fragment of the readable reason).
    pending_sample: ClassVar[tuple[str, str, str] | None] = None
    #: What the scheduler prints when it refuses a job.
    refusal_stderr: ClassVar[str] = "job rejected: no such queue"

    def backend(self) -> BatchBackend:
        backend = get_host().backend(self.backend_name)
        assert isinstance(backend, BatchBackend)
        return backend

    def job(self):
        prepared = self.prepared()
        return prepared.job("conformance", "/srv/vlaunch/runs/conformance")

    def record(self, native_id: str, **changes) -> JobRecord:
        prepared = self.prepared()
        return JobRecord(name="conformance", backend=self.backend_name, profile=self.profile,
                         run_dir="/srv/vlaunch/runs/conformance", native_id=native_id,
                         config=prepared.profile.model_dump(mode="json"), **changes)

    def _program(self, argv: list[str]) -> str:
        return argv[0]

    def test_state_map_is_total(self):
        backend = self.backend()
        unmapped = [s for s in self.native_states if s not in backend.state_map]
        assert not unmapped, f"native states without a JobState: {unmapped}"
        assert all(isinstance(v, JobState) for v in backend.state_map.values())

    def test_status_samples_parse(self):
        backend = self.backend()
        for stdout, expected in self.status_samples:
            parsed = backend.parse_status(stdout)
            assert {k: parsed[k].state for k in expected} == expected

    def test_pending_reason_is_readable(self):
        if self.pending_sample is None:
            pytest.fail("set pending_sample: users need to see why a job waits")
        stdout, job_id, fragment = self.pending_sample
        status = self.backend().parse_status(stdout)[job_id]
        assert status.state is JobState.PENDING and fragment in (status.reason or "")

    def test_submit_returns_the_job_id(self):
        backend, transport = self.backend(), RecordingTransport()
        program = self._program(backend.submit_command(self.job(), "/srv/job.sh"))
        transport.answer(program, ok(self.submit_stdout))
        assert backend.submit(self.job(), "/srv/job.sh", transport) == self.submit_job_id
        assert transport.commands(program), "submission must go through the transport"

    def test_refused_submission_surfaces_the_scheduler_message(self):
        backend, transport = self.backend(), RecordingTransport()
        program = self._program(backend.submit_command(self.job(), "/srv/job.sh"))
        transport.answer(program, fail(1, self.refusal_stderr))
        with pytest.raises(SubmitError) as info:
            backend.submit(self.job(), "/srv/job.sh", transport)
        assert self.refusal_stderr.splitlines()[-1].strip() in str(info.value)

    def test_missing_command_names_backend_and_program(self):
        backend, transport = self.backend(), RecordingTransport()
        program = self._program(backend.submit_command(self.job(), "/srv/job.sh"))
        transport.missing.add(program)
        with pytest.raises(CommandNotFound) as info:
            backend.submit(self.job(), "/srv/job.sh", transport)
        assert self.backend_name in str(info.value) and program in str(info.value)

    def test_many_jobs_cost_one_scheduler_round(self):
        live = [(stdout, [i for i, state in expected.items() if not state.is_final])
                for stdout, expected in self.status_samples]
        stdout, ids = max(live, key=lambda sample: len(sample[1]), default=("", []))
        if len(ids) < 2:
            pytest.fail("set status_samples with one output listing two or more live jobs")
        backend, transport = self.backend(), RecordingTransport()
        program = self._program(backend.status_command(ids))
        transport.answer(program, ok(stdout))
        records = [self.record(job_id).model_copy(update={"name": f"job{job_id}"}) for job_id in ids]
        statuses = backend.poll(records, transport)
        assert {statuses[r.name].state for r in records} <= {s for s in JobState if not s.is_final}
        assert len(transport.calls) == 1, f"{len(ids)} jobs cost {len(transport.calls)} commands: {transport.calls}"

    def test_cancel_is_idempotent(self):
        backend, transport = self.backend(), RecordingTransport()
        record = self.record(self.submit_job_id, cancel_requested=True)
        cancel = self._program(backend.cancel_command(self.submit_job_id))
        transport.answer(cancel, fail(1, "job already finished"))
        transport.files[record.path("exit_code")] = "0\n"
        for program in {self._program(backend.status_command([self.submit_job_id])),
                        self._program(backend.history_command([self.submit_job_id]) or ["-"])}:
            transport.answer(program, ok(""))
        backend.cancel(record, transport)
        backend.cancel(record, transport)
        status = backend.poll([record], transport)[record.name]
        assert status.state.is_final


class ProcessConformance(BackendConformance):
    """Checks for backends that run the script as a detached process group (:class:`vlaunch.ProcessBackend`)."""

    #: Answers (program -> stdout) for commands the backend runs before it spawns (a preflight check).
    submit_answers: ClassVar[dict[str, str]] = {}

    def backend(self) -> ProcessBackend:
        backend = get_host().backend(self.backend_name)
        assert isinstance(backend, ProcessBackend)
        return backend

    def test_submit_spawns_the_script(self):
        transport = RecordingTransport()
        for program, stdout in self.submit_answers.items():
            transport.answer(program, ok(stdout))
        prepared = self.prepared()
        job = prepared.job("conformance", "/srv/vlaunch/runs/conformance")
        assert self.backend().submit(job, "/srv/job.sh", transport) == "4242"
        assert transport.calls[-1] == ("bash", "/srv/job.sh"), "the script is spawned through the transport"

    def test_cancel_of_a_gone_group_is_a_no_op(self):
        transport = RecordingTransport()
        transport.answer("ps", process_list("    1 Ss   /sbin/init"))
        record = JobRecord(name="c", backend=self.backend_name, profile=self.profile, run_dir="/srv/c", native_id="77")
        self.backend().cancel(record, transport)
        assert not transport.commands("kill")
