"""The grid of ``sea-tf tune``: its resolved config → the pieces of work, each named once.

A *student cell* is one distillation: (sampling strategy, reduction method, d, student preset, head,
sparsity, QAT). An *artifact* is one exported file of a student cell: (mode, placement). A *cell* of the
results is an artifact benchmarked with one (threads, XNNPACK) setting on one board. Shared work is
named by the settings it depends on only, so it is done once: one sample per strategy, one reducer per
(strategy, method, d), one distillation per student cell, one export per (student cell, placement).

Everything a grid cannot build is refused here, before any work: an unknown budget key, a d above the
teacher's dimension, a mode a QAT student cannot take, an unknown preset or strategy.
"""
from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Mapping, Sequence

from sea_tf.config import Config, resolve, set_dotted
from sea_tf.errors import ConfigError
from sea_tf.presets import load_defaults

#: ``--budget`` keys: latency of one window (ms, p50), peak RSS (MiB), model file (KiB), accuracy lost
#: below the grid's most accurate cell (a fraction)
BUDGET_KEYS = ("latency_ms", "rss_mb", "flash_kb", "accuracy_drop")
#: What ``export`` makes of a QAT student (its learnt ranges): the integer modes only
QAT_MODES = ("int8", "dynamic")
EXPORT_MODES = ("fp32", "dynamic", "fp16", "int8", "int16x8")
PLACEMENTS = ("auto", "device", "model", "measure")
PAIRINGS = ("product", "matched")
TASKS = ("us8k", "esc50", "ust")
#: The schema (``configs/<schema>``) of each stage a tune runs, keyed as in the tune config's ``stages:``
STAGE_SCHEMAS = {"teacher": "teacher", "sampling": "sampling", "reduce": "reduce/fit", "distill": "distill",
                 "export": "export", "classify": "classify/{task}", "device": "device/run"}


@dataclasses.dataclass(frozen=True)
class StudentCell:
    """One distillation of the grid (what it trains on and what it trains)."""
    sampling: str
    method: str
    d: int
    preset: str
    head: str
    sparsity: float
    qat: bool

    @property
    def reducer_key(self) -> str:
        """The reducer this student regresses: ``<strategy>.<method><d>``."""
        return f"{self.sampling}.{self.method}{self.d}"

    @property
    def key(self) -> str:
        """A readable, unique folder name: ``sea-64.published.s0.dpp-quality.pca64[.qat]``."""
        return self.distill_key + (".qat" if self.qat else "")

    @property
    def distill_key(self) -> str:
        """The distillation: a QAT cell shares the float student's run (its QAT fine-tune is a step of that run)."""
        return f"{self.preset}.{self.head}.s{self.sparsity:g}.{self.reducer_key}"

    def as_dict(self) -> dict[str, Any]:
        return {"preset": self.preset, "head": self.head, "sparsity": self.sparsity, "qat": self.qat}


@dataclasses.dataclass(frozen=True)
class Artifact:
    """One exported file of a student cell."""
    student: StudentCell
    mode: str
    placement: str

    @property
    def key(self) -> str:
        return f"{self.student.key}/{self.mode}.{self.placement}"


@dataclasses.dataclass(frozen=True)
class BenchSetting:
    """How the interpreter runs on the board."""
    threads: int
    xnnpack: bool

    @property
    def key(self) -> str:
        return f"t{self.threads}.{'xnnpack' if self.xnnpack else 'builtin'}"


@dataclasses.dataclass(frozen=True)
class Grid:
    """Every piece of work of one tune, in the order it is done."""
    strategies: tuple[str, ...]
    reducers: tuple[tuple[str, str, int], ...]          # (strategy, method, d)
    students: tuple[StudentCell, ...]
    artifacts: tuple[Artifact, ...]
    bench: tuple[BenchSetting, ...]
    boards: tuple[str, ...]                              # "local" and the --host values, in order
    budgets: dict[str, float | None]

    def cell_id(self, artifact: Artifact, setting: BenchSetting, board: str) -> str:
        return f"{artifact.key}/{setting.key}@{board}"

    @property
    def n_cells(self) -> int:
        return len(self.artifacts) * len(self.bench) * len(self.boards)


def parse_budgets(items: Sequence[str] | Mapping[str, Any], *, base: Mapping[str, Any] | None = None) -> dict[str, float | None]:
    """``["latency_ms=25", "rss_mb=100"]`` (or a mapping) → ``{key: float}`` over ``base``.

    Raises
    ------
    ConfigError
        A key other than :data:`BUDGET_KEYS`, or a value that is not a positive number.
    """
    budgets: dict[str, float | None] = {key: None for key in BUDGET_KEYS}
    for source in (base or {}, items):
        pairs = source.items() if isinstance(source, Mapping) else [_split_budget(item) for item in source]
        for key, value in pairs:
            if key not in BUDGET_KEYS:
                raise ConfigError(f"budget {key!r}: no such budget; known: {', '.join(BUDGET_KEYS)} "
                                  "(e.g. --budget latency_ms=25)")
            if value is None:
                budgets[key] = None
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ConfigError(f"budget {key}={value!r}: expected a number, e.g. --budget {key}=25") from None
            if not number >= 0 or number == float("inf"):
                raise ConfigError(f"budget {key}={value!r}: expected a finite number >= 0")
            budgets[key] = number
    return budgets


def _split_budget(item: str) -> tuple[str, str]:
    key, sep, value = str(item).partition("=")
    if not sep:
        raise ConfigError(f"--budget {item!r}: expected KEY=VALUE, e.g. --budget latency_ms=25")
    return key.strip(), value.strip()


def stage_config(cfg: Config, stage: str, **values: Any) -> Config:
    """The resolved config of one stage run by the tune: its defaults ← ``stages.<stage>.config`` ←
    ``stages.<stage>.set`` ← the grid's ``values`` (dotted keys), each checked as the CLI checks it."""
    schema = STAGE_SCHEMAS[stage].format(task=cfg["task"])
    defaults = load_defaults(schema)
    own = cfg["stages"][stage]
    try:
        resolved = resolve(defaults, own["config"], set_items=own["set"], stage=schema.split("/")[0])
    except ConfigError as exc:
        raise ConfigError(f"tune setting 'stages.{stage}' ({schema}): {exc}") from None
    for key, value in values.items():
        set_dotted(resolved, key, value, known=defaults, source=f"tune grid ({stage})")
    return resolved


def _values(cfg: Config, key: str) -> list[Any]:
    values = cfg["grid"][key]
    if not isinstance(values, list) or not values:
        raise ConfigError(f"tune setting 'grid.{key}': expected a non-empty list, got {values!r}")
    if len(set(map(repr, values))) != len(values):
        raise ConfigError(f"tune setting 'grid.{key}': {values!r} names a value twice")
    return values


def _check_choice(key: str, values: Sequence[Any], known: Sequence[str]) -> None:
    for value in values:
        if value not in known:
            raise ConfigError(f"tune setting 'grid.{key}': {value!r} is not one of {', '.join(map(str, known))}")


def student_dims() -> dict[str, int]:
    """Each student preset's own embedding size (its last block's filters)."""
    from sea_tf.models.builders import STUDENT_PRESETS
    return {name: int(arch["filters"][-1]) for name, arch in STUDENT_PRESETS.items()}


def build_grid(cfg: Config, *, teacher_dim: int) -> Grid:
    """The work of a resolved ``tune`` config, checked before anything runs.

    Parameters
    ----------
    cfg : dict
        The resolved ``tune`` config (``configs/tune/defaults.yaml``).
    teacher_dim : int
        The teacher's embedding size (512 for openl3): the largest d a reduction can give.

    Raises
    ------
    ConfigError
        A grid value that cannot be built, with the setting and what to do.
    """
    if cfg["task"] not in TASKS:
        raise ConfigError(f"tune setting 'task': {cfg['task']!r} is not one of {', '.join(TASKS)}")
    budgets = parse_budgets([], base=cfg["budget"])
    strategies = _values(cfg, "sampling")
    _check_choice("sampling", strategies, _sampling_strategies())
    methods = _values(cfg, "reduction")
    _check_choice("reduction", methods, _reduction_methods())
    dims = _values(cfg, "d")
    for d in dims:
        if not isinstance(d, int) or isinstance(d, bool) or d < 1:
            raise ConfigError(f"tune setting 'grid.d': {d!r} is not a positive whole number")
        if d > teacher_dim:
            raise ConfigError(f"tune setting 'grid.d': d={d} is larger than the teacher's {teacher_dim} dimensions; "
                              f"a reduction can keep at most {teacher_dim}")
    presets = _values(cfg, "students")
    dims_of = student_dims()
    _check_choice("students", presets, list(dims_of))
    heads = _values(cfg, "head")
    _check_choice("head", heads, _student_heads())
    sparsities = _values(cfg, "sparsity")
    for s in sparsities:
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 <= s < 100:
            raise ConfigError(f"tune setting 'grid.sparsity': {s!r} is not a percentage in [0, 100)")
    qats = _values(cfg, "qat")
    _check_choice("qat", qats, [False, True])  # type: ignore[list-item]  # booleans, named as the YAML spells them
    modes = _values(cfg, "modes")
    _check_choice("modes", modes, EXPORT_MODES)
    if True in qats and not set(modes) & set(QAT_MODES):
        raise ConfigError(f"tune setting 'grid.qat': a QAT student exports as {' or '.join(QAT_MODES)} only, and "
                          f"grid.modes is {modes}; add one of them or drop qat: true")
    placements = _values(cfg, "placements")
    _check_choice("placements", placements, PLACEMENTS)
    threads = _values(cfg, "threads")
    for t in threads:
        if isinstance(t, bool) or not isinstance(t, int) or t < 1:
            raise ConfigError(f"tune setting 'grid.threads': {t!r} is not a positive whole number")
    xnnpack = _values(cfg, "xnnpack")
    _check_choice("xnnpack", xnnpack, [True, False])  # type: ignore[list-item]
    if cfg["grid"]["pairing"] not in PAIRINGS:
        raise ConfigError(f"tune setting 'grid.pairing': {cfg['grid']['pairing']!r} is not one of {', '.join(PAIRINGS)}")

    students: list[StudentCell] = []
    for strategy, method, d, preset, head, sparsity, qat in itertools.product(
            strategies, methods, dims, presets, heads, sparsities, qats):
        if cfg["grid"]["pairing"] == "matched" and dims_of[preset] != d:
            continue
        students.append(StudentCell(strategy, method, int(d), preset, head, float(sparsity), bool(qat)))
    if not students:
        raise ConfigError("tune setting 'grid.pairing': matched pairs no student with any d "
                          f"(students {presets} make {[dims_of[p] for p in presets]}-d embeddings; d {dims})")
    reducers = tuple(dict.fromkeys((s.sampling, s.method, s.d) for s in students))
    artifacts = tuple(Artifact(s, mode, placement) for s in students for placement in placements for mode in modes
                      if not s.qat or mode in QAT_MODES)
    boards = (["local"] if cfg["local"] else []) + [str(h) for h in cfg["hosts"]]
    if not boards:
        raise ConfigError("tune: no board to benchmark on; set local: true or pass --host USER@HOST")
    if len(set(boards)) != len(boards):
        raise ConfigError(f"tune: a board is named twice in {boards}")
    bench = tuple(BenchSetting(int(t), bool(x)) for t in threads for x in xnnpack)
    return Grid(strategies=tuple(dict.fromkeys(s.sampling for s in students)), reducers=reducers,
                students=tuple(students), artifacts=artifacts, bench=bench, boards=tuple(boards), budgets=budgets)


def _sampling_strategies() -> list[str]:
    from sea_tf.sampling.choose import STRATEGIES
    return list(STRATEGIES)


def _reduction_methods() -> list[str]:
    from sea_tf.reduce.reducer import METHODS
    return list(METHODS)


def _student_heads() -> list[str]:
    from sea_tf.models.architectures import HEADS
    return list(HEADS)
