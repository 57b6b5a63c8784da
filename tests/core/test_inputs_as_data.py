"""Every string a user gives stays data: the five findings of a hostile user's review, each on the real
CLI or against vLLM's own argument parser (the property test over all fields is in the conformance
suite: ``BackendConformance.test_every_string_stays_data``)."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from helpers import assert_one_line_error, fake_command, vlaunch
from vlaunch import apikey

NEWLINE_RUN_ROOT = "/tmp/r\ntouch /tmp/vlaunch-pwned"


def launch_words(script: str) -> list[str]:
    """The server's command line, with the port the job picks shown as 8000."""
    [line] = [line for line in script.splitlines() if line.endswith(" &") and "--port" in line]
    return shlex.split(line[:-2].replace('"$VLAUNCH_PORT"', "8000"))


@pytest.fixture(scope="module")
def vllm_parser():
    from vlaunch.vllm_args import _parser

    return _parser()


# 1. run_root ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["local", "slurm", "pbs"])
def test_a_newline_in_run_root_is_refused_from_every_layer(isolated, backend):
    toml = json.dumps(NEWLINE_RUN_ROOT)
    assert_one_line_error(vlaunch("render", "-p", "cpu-tiny", "-b", backend, "-m", "m", "--run-root", NEWLINE_RUN_ROOT),
                          "--run-root must be one line without control characters")
    assert_one_line_error(vlaunch("render", "-p", "cpu-tiny", "-b", backend, "-m", "m", "--set", f"run_root={toml}"),
                          "command line: run_root:", "without control characters")
    (isolated / "vlaunch.toml").write_text(f"run_root = {toml}\n")
    assert_one_line_error(vlaunch("up", "-p", "cpu-tiny", "-b", backend, "-m", "m", "--no-wait", "--no-check-flags"),
                          "vlaunch.toml: run_root:", "without control characters")
    assert not (isolated / "state" / "jobs").exists() or not list((isolated / "state" / "jobs").glob("*.json"))


# 2. profile names ----------------------------------------------------------------------------------
def test_a_profile_name_with_a_newline_is_refused(isolated):
    folder = isolated / "config" / "profiles"
    folder.mkdir(parents=True)
    (folder / "evil\necho pwned.toml").write_text('extends = "cpu-tiny"\n')
    assert_one_line_error(vlaunch("render", "-p", "evil\necho pwned", "-m", "m"),
                          "profile name must be one line without control characters")


def test_a_job_name_derived_from_a_profile_name_is_a_valid_name_and_printed_commands_are_quoted(isolated):
    folder = isolated / "config" / "profiles"
    folder.mkdir(parents=True)
    (folder / "my;profile $(x).toml").write_text('extends = "cpu-tiny"\n')
    result = vlaunch("up", "-p", "my;profile $(x)", "-m", "m", "--set", fake_command(), "--no-wait", "--no-check-flags")
    assert result.returncode == 0, result.stderr
    [name] = [p.stem for p in (isolated / "state" / "jobs").glob("*.json")]
    assert re.fullmatch(r"my-profile---x--[0-9a-f]{6}", name), name
    assert f"`vlaunch wait {name}` waits until it is ready" in result.stdout
    assert vlaunch("down", name).returncode == 0


# 3. option injection into vLLM's parser ------------------------------------------------------------
def test_values_that_look_like_options_reach_vllm_as_values(isolated, vllm_parser):
    script = vlaunch("render", "-p", "cpu-tiny", "-m", "--api-key=abc", "--set", 'server.served_model_name="-x"',
                     "--set", 'server.host="-h"', "--", "--seed=-1").stdout
    words = launch_words(script)
    assert "--model=--api-key=abc" in words and "--served-model-name=-x" in words and "--host=-h" in words
    assert words[-2] == "--config"
    key_file = isolated / "state" / "runs" / "cpu-tiny" / apikey.FILE
    key_file.parent.mkdir(parents=True)
    key_file.write_text(apikey.file_text("the-real-key"))
    args = vllm_parser.parse_args(words[3:])  # after `python3 -m vllm.entrypoints.openai.api_server`
    assert args.model == "--api-key=abc" and args.served_model_name == ["-x"] and args.host == "-h"
    assert args.api_key == ["the-real-key"] and args.seed == -1


def test_vllm_serve_refuses_a_model_that_reads_as_an_option(isolated):
    assert_one_line_error(vlaunch("render", "-p", "turbo", "-m", "-x"), "`vllm serve` would read it as an option",
                          "'./-x'")
    words = launch_words(vlaunch("render", "-p", "turbo", "-m", "./-x").stdout)
    assert words[:3] == ["vllm", "serve", "./-x"]


@pytest.mark.parametrize("words, read_as", [
    (["--api-key", "x"], "--api-key"), (["--api_key", "x"], "--api-key"), (["--api-k=x"], "--api-key"),
    (["--api_k", "x"], "--api-key"), (["--config", "f.yaml"], "--config"), (["--conf=f.yaml"], "--config"),
])
def test_the_api_key_and_config_flags_are_refused_in_every_spelling_vllm_accepts(isolated, vllm_parser, words, read_as):
    assert_one_line_error(vlaunch("render", "-p", "cpu-tiny", "-m", "m", "--", *words), read_as)
    # vLLM's own parser does read each of these spellings as that flag:
    args = vllm_parser.parse_args(["--model", "m", *words]) if read_as == "--api-key" else None
    assert args is None or args.api_key == ["x"]


def test_a_split_served_name_is_one_word_again(isolated):
    words = launch_words(vlaunch("render", "-p", "cpu-tiny", "-m", "m", "--", "--served-model-name=-x").stdout)
    assert "--served-model-name=-x" in words and "-x" not in words


# 4. API keys ---------------------------------------------------------------------------------------
def test_no_generated_api_key_breaks_vllms_config_loading(tmp_path, vllm_parser):
    path = tmp_path / "api_key.yaml"
    path.write_text(apikey.file_text("-" + apikey.new_key()))
    with pytest.raises(SystemExit):  # what 1 in 64 token_urlsafe keys did to a start
        vllm_parser.parse_args(["--model", "m", "--config", str(path)])
    for _ in range(10_000):
        key = apikey.new_key()
        path.write_text(apikey.file_text(key))
        assert vllm_parser.parse_args(["--model", "m", "--config", str(path)]).api_key == [key]


# 5. values given as TOML scalars, names, and who set what ------------------------------------------
def test_scalars_become_text_where_text_is_expected_and_names_keep_their_case(isolated):
    env = {"VLAUNCH_ENVIRONMENT__VARIABLES__HF_HOME": "/cache", "VLAUNCH_ENVIRONMENT__VARIABLES__X": "1"}
    script = vlaunch("render", "-p", "cpu-tiny", "-m", "m", "--set", "environment.variables.HF_HUB_OFFLINE=1",
                     "--set", "environment.variables.FLAG=true", "--set", "environment.variables.DAY=2026-12-02",
                     "--set", "server.served_model_name=123", "--set", "resources.walltime=01:00:00", env=env)
    assert script.returncode == 0, script.stderr
    for line in ["export HF_HOME=/cache", "export X=1", "export HF_HUB_OFFLINE=1", "export FLAG=true",
                 "export DAY=2026-12-02"]:
        assert line in script.stdout.splitlines()
    assert "--served-model-name 123" in script.stdout


def test_refusals_name_the_layer_that_set_the_value(isolated):
    assert_one_line_error(vlaunch("render", "-p", "cpu-tiny", "-m", "m", "--set", "vlm.max_num_seqs=256"),
                          "command line: vlm: unknown key (did you mean 'vllm'?)")
    assert_one_line_error(vlaunch("render", "-p", "cpu-tiny", "-m", "m",
                                  env={"VLAUNCH_ENVIRONMENT__VARIABLES__1X": "v"}),
                          "environment (VLAUNCH_*): environment.variables: not a valid environment variable name: '1X'")
