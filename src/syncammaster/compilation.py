"""``generate --compile``: regional compilation of the transformer's repeated blocks (``torch.compile``).

diffusers' ``ModelMixin.compile_repeated_blocks`` compiles each module whose class the model lists in
``_repeated_blocks`` (here ``SynCamMasterTransformerBlock``) instead of the whole model: the blocks share one
compiled graph, so compiling costs about one block's time rather than the model's. The first call pays for it; the
calls after it run the compiled kernels (timings: RESULTS.md, "Compiled generation").

``check_compile`` finds, before any model is loaded, the set-ups where compiling cannot work, and says so in one line.
"""

from __future__ import annotations


class CompileError(ValueError):
    """``--compile`` cannot work here; the message says why and what to do."""


def check_compile(device: str | None, setting: str = "--compile", off: str = "drop --compile") -> None:
    """Raises ``CompileError`` where ``torch.compile`` cannot compile for ``device`` (default: cuda if available,
    else cpu): Python builds that TorchDynamo does not support, a CPU without a C++ compiler (inductor builds C++
    kernels), a GPU without Triton, and other device types. ``setting`` names the option in the message and ``off``
    how to turn it off (training's config: ``compile = true``, ``set compile = false``).

    torch has no public test for a C++ compiler or Triton; inductor's own (``torch._inductor.cpp_builder``,
    ``torch.utils._triton``) are what ``torch.compile`` itself runs, so they answer exactly its question.
    """
    import torch

    device_type = torch.device(device).type if device else ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch._dynamo.is_dynamo_supported():
        raise CompileError(f"{setting}: torch.compile does not support this Python ({_python()}); {off}")
    if device_type == "cpu":
        try:
            from torch._inductor.cpp_builder import get_cpp_compiler

            get_cpp_compiler()
        except Exception as error:  # inductor's own error types vary between torch versions
            raise CompileError(f"{setting} on a CPU needs a C++ compiler ({' '.join(str(error).split())}); install "
                               f"g++ (or set CXX to one), or {off}") from None
    elif device_type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            raise CompileError(f"{setting} on a GPU needs Triton (pip install triton), or {off}")
    else:
        raise CompileError(f"{setting} works on cpu and cuda devices, not {device_type}; {off}")


def compile_transformer(pipe) -> None:
    """Compiles the pipeline's transformer blocks in place (each compiles at its first call)."""
    pipe.transformer.compile_repeated_blocks()


def _python() -> str:
    import sys

    return sys.version.split()[0]
