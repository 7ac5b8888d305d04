"""Entry point of the ``sea-tf`` console script and ``python -m sea_tf``."""
import argparse
import contextlib
import importlib
import importlib.util
import os
import sys
import traceback
import warnings
from typing import Iterator, Sequence, TextIO

from sea_tf import __version__, tf_logs
from sea_tf.errors import SeaTFError, SeaTFWarning

# Stage modules in pipeline order; each defines ``register(subparsers)``.
COMMAND_MODULES = [
    "configs", "data", "models", "embed", "teacher_embed", "sample", "reduce", "distill",
    "classify", "export", "device", "tune", "report", "demo",
]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subcommand per available stage module."""
    from sea_tf.cli.common import Parser

    # Parser: no abbreviations, errors with the subcommand's usage (every subcommand inherits it).
    parser = Parser(
        prog="sea-tf",
        description="Specialized Embedding Approximation: L3 teacher -> sampling -> reduction -> "
                    "distilled student -> TFLite -> on-device benchmark.")
    parser.add_argument("--version", action="version", version=f"sea-tf {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module_name = f"sea_tf.cli.{name}"
        if importlib.util.find_spec(module_name) is not None:
            importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "debug", False):
        # Set before a stage imports TensorFlow (sea_tf.backend), and inherited by worker processes:
        # --debug shows every TensorFlow start-up line as well as tracebacks.
        os.environ[tf_logs.DEBUG_ENV] = "1"
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    if getattr(args, "trust_model_code", False):
        # Read where a model is loaded (sea_tf.models.safe_load), in this process and its workers; for
        # this command only (an in-process caller's later commands do not inherit the trust).
        from sea_tf.models.safe_load import TRUST_ENV
        with _environment(TRUST_ENV, "1"):
            return _run(args)
    return _run(args)


@contextlib.contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """``os.environ[name] = value`` inside the block, the previous state restored after it."""
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def _run(args: argparse.Namespace) -> int:
    """Resolve the config of parsed ``args`` and run its command; one line per error."""
    from sea_tf.cli.common import resolved_config
    try:
        cfg = resolved_config(args)
        with one_line_warnings(args._command):
            result = args._run(cfg, args)
        return result if isinstance(result, int) else 0
    except SeaTFError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"sea-tf {args._command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sea-tf {args._command}: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - last-resort one-line report
        if args.debug:
            traceback.print_exc()
        print(f"sea-tf {args._command}: internal error: {type(exc).__name__}: {exc} "
              f"(re-run with --debug for the traceback and report it)", file=sys.stderr)
        return 1


@contextlib.contextmanager
def one_line_warnings(command: str) -> Iterator[None]:
    """Print each distinct :class:`SeaTFWarning` once, as ``sea-tf COMMAND: warning: ...`` on stderr.

    Python's default format (file, line number, source line) reads like a traceback; a user of the
    command line only needs the sentence. Other warnings keep their usual format.
    """
    original = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: TextIO | None = None,
             line: str | None = None) -> None:
        if issubclass(category, SeaTFWarning):
            print(f"sea-tf {command}: warning: {message}", file=sys.stderr)
        else:
            original(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.simplefilter("default", SeaTFWarning)
        warnings.showwarning = show
        yield


if __name__ == "__main__":
    sys.exit(main())
