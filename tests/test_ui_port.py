"""`syncammaster ui` on a port that is taken: one line, exit 1, and no empty output folder left behind."""

import socket
import tempfile

import pytest

from syncammaster.cli import main

from tiny import tiny_pipeline


def test_a_taken_port_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    pytest.importorskip("gradio", reason="Gradio is not installed (pip install -e '.[ui]')")
    pytest.importorskip("plotly", reason="plotly is not installed (pip install -e '.[ui]')")
    model = tmp_path / "model"
    tiny_pipeline().save_pretrained(model)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["ui", "--model", str(model), "--host", "127.0.0.1", "--port", str(port)])
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert code == 1 and len(errors) == 1 and "pass another --port" in errors[0]
    assert list(scratch.glob("syncammaster-ui-*")) == []  # (Gradio keeps its own cache folder there)
