"""The fake vLLM server (tests/fakes/fake_vllm.py), but /metrics replays recorded snapshots.

REPLAY_METRICS names snapshot files separated by os.pathsep; each GET /metrics returns the next one
and the last one repeats. REPLAY_METRICS_DOWN_AFTER=N makes /metrics answer 503 after N scrapes
(a server that stops answering). Used to drive the real `vlaunch watch` / `advise` CLI through
recorded data; the real CPU vLLM is used in test_real_vllm.py.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fakes"))

import fake_vllm  # noqa: E402

_FILES = [Path(p) for p in os.environ.get("REPLAY_METRICS", "").split(os.pathsep) if p]
_DOWN_AFTER = int(os.environ.get("REPLAY_METRICS_DOWN_AFTER", "0") or 0)
_served = [0]


class ReplayServer(fake_vllm.ThreadingHTTPServer):
    """Wraps the fake's request handler so that /metrics comes from the recorded files."""

    def __init__(self, address, handler):
        class Replay(handler):
            def do_GET(self):
                if self.path != "/metrics":
                    return super().do_GET()
                count = _served[0]
                _served[0] += 1
                if _DOWN_AFTER and count >= _DOWN_AFTER:
                    return self._send(503, b"down")
                self._send(200, _FILES[min(count, len(_FILES) - 1)].read_bytes())

        super().__init__(address, Replay)


fake_vllm.ThreadingHTTPServer = ReplayServer

if __name__ == "__main__":
    fake_vllm.main()
