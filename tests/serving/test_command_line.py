"""The model server's command line: TF Serving's flags as compose and k8s pass them."""

from pathlib import Path

import pytest

from serving.__main__ import TF_SERVING_ENTRYPOINT, not_honoured, parse_args

TF_SERVING_FLAGS = Path("serving/tf_serving_flags.txt").read_text().split()


def test_the_image_takes_the_flags_compose_and_k8s_give_tf_serving() -> None:
    args = parse_args([TF_SERVING_ENTRYPOINT, *TF_SERVING_FLAGS])
    assert (args.host, args.rest_api_port) == ("0.0.0.0", 8501)
    assert args.model_config_file == Path("/etc/tf-serving/models.config")
    assert args.enable_batching and args.batching_parameters_file
    assert args.allow_version_labels_for_unavailable_models
    assert args.model_config_file_poll_wait_seconds == 60
    # --port is TF Serving's gRPC port: accepted, and named among what is not served.
    assert any(flag.startswith("--port=8500") for flag in not_honoured(args))


def test_a_developer_gets_rest_on_port_and_loopback() -> None:
    args = parse_args(["--model-base-path", "models/mnist", "--port", "8601"])
    assert (args.host, args.rest_api_port, args.model_name) == ("127.0.0.1", 8601, "mnist")
    assert not args.enable_batching
    assert not_honoured(args) == []


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        ([TF_SERVING_ENTRYPOINT, "--model_base_path=m", "--rest_api_port=8501", "--grpc=1"],
         "unrecognized arguments: --grpc=1"),
        (["--model-base-path", "m", "--batching-parameters-file", "b.config"],
         "--batching_parameters_file is set without --enable_batching"),
        ([TF_SERVING_ENTRYPOINT, "--model_base_path=m"], "--rest_api_port is 0"),
        (["--port", "8501"], "give one of --model_base_path and --model_config_file"),
        (["--model-base-path", "m", "--enable_batching=maybe"], "expected true or false"),
    ],
)
def test_a_command_line_tf_serving_would_refuse_stops_with_the_reason(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        parse_args(argv)
    assert stopped.value.code == 2
    assert complaint in capsys.readouterr().err
