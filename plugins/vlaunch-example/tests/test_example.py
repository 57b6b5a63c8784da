"""The vlaunch conformance suite for the ``example`` backend.

TODO(scheduler): replace the samples with outputs recorded from the real scheduler, and say where
and when they were recorded. Then turn on golden files (run once with VLAUNCH_UPDATE_GOLDEN=1,
review tests/golden/, commit it).
"""

from __future__ import annotations

from vlaunch import JobState
from vlaunch.testing import BatchConformance

STATUS = """\
7|PEND|waiting for resources|-|-
8|RUN|-|gpu01|-
9|EXIT|-|gpu01|3
"""


class TestExampleConformance(BatchConformance):
    backend_name = "example"
    golden_dir = None  # Path(__file__).parent / "golden"
    submit_stdout = "Submitted job 7\n"
    submit_job_id = "7"
    native_states = ["PEND", "HOLD", "RUN", "DONE", "EXIT", "KILLED", "TIMEOUT"]
    status_samples = [(STATUS, {"7": JobState.PENDING, "8": JobState.RUNNING, "9": JobState.FAILED})]
    pending_sample = (STATUS, "7", "waiting for resources")
    refusal_stderr = "examplesub: no such queue: gpux"
