"""The ``syncammaster`` command: generate, cameras, convert, render, sample-list, cache, export, ui, download,
evaluate, train.

Each command is a module of this package (``sample-list`` is ``sample_list``) with two functions:
``add_arguments(parser)``, its flags, and ``run(args)``, which does the work. :data:`COMMANDS` lists them; a
command's module is imported only when that command runs, and imports the libraries it needs (torch, diffusers, ...)
only inside ``run``, so ``syncammaster --help`` and a bad flag answer at once. argparse is used here and nowhere
else in the package.

Every failure ends in one line on stderr (``syncammaster <command>: error: ...``) and a non-zero exit code; a failed
command leaves its output folder as it found it.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys

from ..app import CommandError, one_line

EXIT_USAGE = 2
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130

# name: one-line help, in the order `syncammaster --help` lists them.
COMMANDS = {
    "generate": "generate one video per camera of a rig (writes a scene folder)",
    "cameras": "list the rig presets, or show / plot / export one rig",
    "convert": "released checkpoint -> diffusers folder",
    "render": "render procedural multi-camera scenes (SynCamVideo layout)",
    "sample-list": "list the view groups of each scene of a dataset (JSON)",
    "cache": "fill a latent cache: encode a dataset's videos (VAE) and captions (text encoder) once",
    "export": "export a scene folder for reconstruction (nerfstudio: a static scene; dnerf: with times)",
    "ui": "a web app (Gradio): place the cameras, generate, watch the views",
    "download": "fetch the Wan2.1 base model, the released checkpoint or the SynCamVideo dataset from the Hub",
    "evaluate": "score scene folders against their cameras: epipolar error, RotErr/TransErr, Mat. Pix., sync",
    "train": "run one training stage (text, vae, base, sync) from a TOML config",
}


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad argument prints a single line instead of the usage block."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _command_module(name: str):
    """The module of command ``name`` (``add_arguments``, ``run``)."""
    return importlib.import_module(f".{name.replace('-', '_')}", __name__)


def _invoked_command(argv: list[str]) -> str | None:
    """The command named in ``argv`` (the first word that is not an option), if any."""
    return next((word for word in argv if not word.startswith("-")), None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The ``syncammaster`` parser; ``argv`` (default ``sys.argv[1:]``) says which command's flags to load."""
    invoked = _invoked_command(sys.argv[1:] if argv is None else argv)
    parser = OneLineArgumentParser(
        prog="syncammaster",
        description="SynCamMaster: a text prompt and N cameras -> N synchronized, 3D-consistent videos.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineArgumentParser)
    commands.required = True
    for name, summary in COMMANDS.items():
        command = commands.add_parser(name, help=summary)
        if name == invoked:
            module = _command_module(name)
            module.add_arguments(command)
            command.set_defaults(func=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the command ``argv`` (None: this process's command line) and returns its exit status."""
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    frozen = gc.get_freeze_count()
    try:
        args.func(args)
    except Exception as error:
        if not _is_reported_error(error):
            raise
        # In a multi-process run every process checks the same input and fails alike: rank 0 says it once.
        if _rank() == 0:
            print(f"syncammaster {args.command}: error: {one_line(error)}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"syncammaster {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of our output went away (e.g. `| head`): stop quietly, as command-line tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    finally:
        # A command's start-up freezes what it built (syncammaster.app.start_up), so that the collection Python
        # makes at exit skips it. A caller in this process (argv given) gets its collector back as it was.
        if argv is not None and not frozen:
            gc.unfreeze()
    return 0


def _is_reported_error(error: Exception) -> bool:
    """Whether ``error`` is one a command reports in one line. The package's own errors (CameraError,
    CheckpointError, SceneError, ModelFilesError, HubError, ...) are ValueErrors; catching them by that name spares
    commands such as `download` from importing torch. A RankZeroError (rank 0 failed while writing for all) can only
    come from a command that imported ``ranks``."""
    ranks = sys.modules.get("syncammaster.ranks")
    return isinstance(error, (CommandError, ValueError, FileNotFoundError)) or (
        ranks is not None and isinstance(error, ranks.RankZeroError)
    )


def _rank() -> int:
    """This process's rank (0 when alone), without importing torch.distributed where no command did."""
    ranks = sys.modules.get("syncammaster.ranks")
    return ranks.global_rank() if ranks is not None else int(os.environ.get("RANK", "0"))
