"""The application layer's pieces of a generate run that the command-line tests do not see: rig.png drawn in a child
process, and the start-up's collector pause."""

from __future__ import annotations

import gc

import pytest

from syncammaster.app import BackgroundRigPlot, draw_rig, start_up
from syncammaster.cameras import CameraError, CameraRig
from syncammaster.cli import main


def test_rig_png_drawn_beside_the_loading_is_the_one_drawn_here():
    rig = CameraRig.preset("orbit", num_views=3)
    plot = BackgroundRigPlot(rig, "orbit")
    png = plot.png()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert png == draw_rig(rig, "orbit")
    plot.close()  # nothing left to stop


class UnplottableRig:
    num_views = 2

    def plot(self, path, title=None):
        raise CameraError("this rig cannot be drawn")


def test_a_drawing_that_fails_in_the_child_fails_here_with_its_own_error():
    plot = BackgroundRigPlot(UnplottableRig(), "broken")
    with pytest.raises(CameraError, match="cannot be drawn"):
        plot.png()


def test_a_child_still_drawing_is_stopped_when_the_command_fails():
    plot = BackgroundRigPlot(CameraRig.preset("arc"), "arc")
    plot.close()
    assert plot.png() == draw_rig(CameraRig.preset("arc"), "arc")  # drawn here once the child is gone


def test_start_up_pauses_the_collector_then_freezes_what_it_built():
    assert gc.isenabled() and gc.get_freeze_count() == 0
    try:
        with start_up():
            assert not gc.isenabled()
            built = [[] for _ in range(1000)]
        assert gc.isenabled() and gc.get_freeze_count() >= len(built)
    finally:
        gc.unfreeze()


def test_a_command_run_in_this_process_gives_the_collector_back(tmp_path, capsys):
    """generate's start-up freezes what it built; main(argv) called from Python (not as the process) undoes it, also
    when the command fails."""
    code = main(["generate", "--prompt", "x", "--out", str(tmp_path / "out"), "--rig", str(tmp_path / "none.json")])
    assert code == 1 and "none.json" in capsys.readouterr().err
    assert gc.isenabled() and gc.get_freeze_count() == 0
