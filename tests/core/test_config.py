"""Profile resolution: layering order, provenance, validation messages."""

from __future__ import annotations

import pytest

from vlaunch.config.layers import cli_layer, resolve_profile
from vlaunch.errors import ConfigError


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_packaged_turbo_values():
    profile = resolve_profile("turbo").profile
    assert profile.vllm.data_parallel_size == 4
    assert profile.vllm.max_num_seqs == 512
    assert profile.vllm.enforce_eager is False


def test_layers_later_wins_in_documented_order(isolated, monkeypatch):
    write(isolated / "config" / "config.toml", "[vllm]\nmax_num_seqs = 100\nmax_model_len = 1000\n")
    write(isolated / "vlaunch.toml", "[vllm]\nmax_num_seqs = 200\n")
    monkeypatch.setenv("VLAUNCH_VLLM__MAX_NUM_SEQS", "300")
    resolved = resolve_profile("turbo")
    assert resolved.profile.vllm.max_num_seqs == 300
    assert resolved.profile.vllm.max_model_len == 1000
    assert resolved.source_of("vllm.max_num_seqs") == "environment (VLAUNCH_*)"
    assert resolved.source_of("vllm.max_model_len").endswith("config.toml")
    assert resolved.source_of("vllm.max_num_batched_tokens").endswith("turbo.toml")
    assert resolved.source_of("vllm.seed") == "default"
    cli = resolve_profile("turbo", cli_layer(["vllm.max_num_seqs=400"]))
    assert cli.profile.vllm.max_num_seqs == 400
    assert cli.source_of("vllm.max_num_seqs") == "command line"


def test_user_profile_and_extends(isolated):
    write(isolated / "config" / "profiles" / "mine.toml",
          'extends = "turbo"\ndescription = "mine"\n[vllm]\nmax_num_seqs = 64\n')
    profile = resolve_profile("mine").profile
    assert (profile.vllm.data_parallel_size, profile.vllm.max_num_seqs, profile.description) == (4, 64, "mine")


def test_extends_cycle(isolated):
    write(isolated / "config" / "profiles" / "a.toml", 'extends = "b"\n')
    write(isolated / "config" / "profiles" / "b.toml", 'extends = "a"\n')
    with pytest.raises(ConfigError, match="extends itself: a -> b -> a"):
        resolve_profile("a")


def test_free_form_flags_fold_into_typed_fields_and_later_wins():
    layer = cli_layer([], vllm_words=["--max-num-seqs", "8", "--foo", "1", "--max-num-seqs=16", "--foo", "2",
                                      "--no-enforce-eager", "--bar"])
    profile = resolve_profile("default", layer).profile
    assert profile.vllm.max_num_seqs == 16
    assert profile.vllm.enforce_eager is False
    assert profile.vllm.extra_args == ["--foo", "2", "--bar"]


def test_extra_args_merge_by_flag_across_layers(isolated):
    write(isolated / "vlaunch.toml", '[vllm]\nextra_args = ["--foo", "1", "--keep", "x"]\n')
    profile = resolve_profile("default", cli_layer([], vllm_words=["--foo", "9"])).profile
    assert profile.vllm.extra_args == ["--keep", "x", "--foo", "9"]


def test_model_and_port_flags_go_to_server_section():
    profile = resolve_profile("default", cli_layer([], vllm_words=["--model", "m", "--port", "8011"])).profile
    assert (profile.server.model, profile.server.port) == ("m", 8011)


def test_api_key_flag_refused():
    with pytest.raises(ConfigError, match="never on the command line"):
        resolve_profile("default", cli_layer([], vllm_words=["--api-key", "s3cret"]))


def test_config_flag_refused():
    with pytest.raises(ConfigError, match="hands vLLM its API key through --config"):
        resolve_profile("default", cli_layer([], vllm_words=["--config", "mine.yaml"]))


def test_malformed_toml_names_line_and_column(isolated):
    write(isolated / "vlaunch.toml", "[vllm]\nmax_num_seqs = = 3\n")
    with pytest.raises(ConfigError) as info:
        resolve_profile("turbo")
    assert "vlaunch.toml: invalid TOML" in str(info.value) and "line 2" in str(info.value)
    assert "column" in str(info.value)


def test_unknown_key_names_file_path_and_suggestion(isolated):
    write(isolated / "vlaunch.toml", "[vllm]\nmax_num_seq = 3\n")
    with pytest.raises(ConfigError) as info:
        resolve_profile("turbo")
    message = str(info.value)
    assert "vlaunch.toml: vllm.max_num_seq: unknown key (did you mean 'max_num_seqs'?)" in message


def test_wrong_type_names_path(isolated):
    with pytest.raises(ConfigError, match=r"command line: vllm.max_num_seqs: .*integer"):
        resolve_profile("turbo", cli_layer(["vllm.max_num_seqs=lots"]))


def test_impossible_parallelism():
    with pytest.raises(ConfigError, match=r"^profile turbo: parallelism needs 8 GPUs .* resources give 4"):
        resolve_profile("turbo", cli_layer(["vllm.tensor_parallel_size=2"]))


def test_unknown_profile_lists_available():
    with pytest.raises(ConfigError, match=r"unknown profile 'turbbo' \(did you mean 'turbo'\?\); available: .*cpu-tiny"):
        resolve_profile("turbbo")


def test_env_value_types():
    profile = resolve_profile("turbo", None, environ={"VLAUNCH_SERVER__HOST": "0.0.0.0",
                                                     "VLAUNCH_VLLM__ENABLE_PREFIX_CACHING": "true"}).profile
    assert profile.server.host == "0.0.0.0" and profile.vllm.enable_prefix_caching is True


def test_bad_set_syntax():
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        cli_layer(["vllm.max_num_seqs"])
