"""``sea-tf tune``'s grid, budgets, Pareto fronts and choice: every refusal before work, and the arithmetic."""
import pytest

from sea_tf import config
from sea_tf.errors import ConfigError
from sea_tf.tune import build_grid, choose, pareto_front, parse_budgets
from sea_tf.tune.results import budget_misses


def _cfg(**grid):
    cfg = config.load("tune", data="/data", out="/out")
    cfg["grid"].update(grid)
    return cfg


def test_packaged_defaults_make_one_student_and_its_exports():
    g = build_grid(_cfg(), teacher_dim=512)
    assert len(g.students) == 1 and len(g.artifacts) == 3 and g.boards == ("local",)
    assert g.n_cells == 3 and g.reducers == (("dpp-quality", "pca", 64),)


def test_shared_work_is_named_once():
    g = build_grid(_cfg(sampling=["random", "dpp"], d=[32, 64], students=["sea-64", "sea-128"], qat=[False, True],
                        modes=["fp32", "int8"], threads=[1, 2], xnnpack=[True, False]), teacher_dim=512)
    assert len(g.students) == 2 * 2 * 2 * 2
    assert len(g.reducers) == 4                                   # (strategy, method, d), not per student
    assert len({s.distill_key for s in g.students}) == 8           # the QAT twin shares the float run
    assert len({s.key for s in g.students}) == 16
    # a QAT student exports int8 only here (fp32 is not a QAT mode): 8 float × 2 + 8 QAT × 1
    assert len(g.artifacts) == 24 and len({a.key for a in g.artifacts}) == 24
    assert len(g.bench) == 4 and g.n_cells == 24 * 4
    ids = {g.cell_id(a, b, "local") for a in g.artifacts for b in g.bench}
    assert len(ids) == 96


def test_matched_pairing_keeps_each_student_with_its_own_width():
    g = build_grid(_cfg(students=["sea-64", "sea-128", "sea-256"], d=[64, 128, 256], pairing="matched"), teacher_dim=512)
    assert sorted((s.preset, s.d) for s in g.students) == [("sea-128", 128), ("sea-256", 256), ("sea-64", 64)]
    with pytest.raises(ConfigError, match="matched pairs no student"):
        build_grid(_cfg(students=["sea-64"], d=[128], pairing="matched"), teacher_dim=512)


@pytest.mark.parametrize("grid, message", [
    (dict(d=[1024]), "d=1024 is larger than the teacher's 512 dimensions"),
    (dict(d=[0]), "not a positive whole number"),
    (dict(qat=[True], modes=["fp16", "fp32"]), "a QAT student exports as int8 or dynamic only"),
    (dict(students=["sea-65"]), "'sea-65' is not one of"),
    (dict(sampling=["loudest"]), "'loudest' is not one of"),
    (dict(reduction=["tsne"]), "'tsne' is not one of"),
    (dict(modes=["int4"]), "'int4' is not one of"),
    (dict(head=["mlp"]), "'mlp' is not one of"),
    (dict(sparsity=[100]), "not a percentage"),
    (dict(threads=[0]), "not a positive whole number"),
    (dict(modes=[]), "expected a non-empty list"),
    (dict(d=[64, 64]), "names a value twice"),
    (dict(placements=["gpu"]), "'gpu' is not one of"),
    (dict(pairing="zip"), "'zip' is not one of"),
])
def test_a_cell_that_cannot_be_built_is_one_line_before_work(grid, message):
    with pytest.raises(ConfigError, match=message) as info:
        build_grid(_cfg(**grid), teacher_dim=512)
    assert "\n" not in str(info.value)


def test_no_board_and_a_board_twice_are_refused():
    cfg = _cfg()
    cfg["local"] = False
    with pytest.raises(ConfigError, match="no board"):
        build_grid(cfg, teacher_dim=512)
    cfg.update(local=True, hosts=["local"])
    with pytest.raises(ConfigError, match="named twice"):
        build_grid(cfg, teacher_dim=512)


def test_budgets_parse_and_refuse():
    assert parse_budgets(["latency_ms=25", "flash_kb=512"]) == {"latency_ms": 25.0, "rss_mb": None, "flash_kb": 512.0,
                                                                "accuracy_drop": None}
    assert parse_budgets(["rss_mb=80"], base={"rss_mb": 100, "flash_kb": 1})["rss_mb"] == 80.0
    for bad, message in [("latency=25", "no such budget"), ("latency_ms", "expected KEY=VALUE"),
                         ("latency_ms=fast", "expected a number"), ("latency_ms=-1", "finite number >= 0"),
                         ("latency_ms=inf", "finite number >= 0")]:
        with pytest.raises(ConfigError, match=message):
            parse_budgets([bad])


def _cell(cid, acc, p50, size, board="local", status="done", rss=40.0):
    return {"id": cid, "board": board, "status": status, "accuracy": acc, "latency_ms": {"p50": p50},
            "size_bytes": size, "peak_rss_mb": rss, "error": None if status == "done" else "board gone"}


CELLS = [_cell("a", 0.70, 5.0, 2_000_000), _cell("b", 0.68, 1.0, 500_000), _cell("c", 0.60, 0.8, 450_000),
         _cell("d", 0.65, 2.0, 400_000), _cell("e", 0.70, 6.0, 300_000), _cell("f", 0.99, 0.1, 1, status="failed")]


def test_pareto_fronts_keep_only_undominated_done_cells():
    assert pareto_front(CELLS, "latency") == ["c", "b", "a"]      # d (2 ms, 0.65) is beaten by b (1 ms, 0.68)
    assert pareto_front(CELLS, "size") == ["e"]                   # e is the smallest and (tied) most accurate
    tie = [_cell("x", 0.5, 1.0, 10), _cell("y", 0.5, 1.0, 10)]
    assert pareto_front(tie, "latency") == ["x"]


def test_choice_is_the_most_accurate_cell_within_every_budget():
    budgets = {"latency_ms": 1.5, "rss_mb": None, "flash_kb": None, "accuracy_drop": None}
    cells = [{**c, "misses": budget_misses(c, budgets, 0.70)} for c in CELLS]
    choice = choose(cells, "local", budgets)
    assert choice["cell"] == "b" and choice["fits"] == 2 and "latency_ms ≤ 1.5" in choice["message"]
    # ties on accuracy go to the faster cell
    budgets = {"latency_ms": None, "rss_mb": None, "flash_kb": None, "accuracy_drop": 0.0}
    cells = [{**c, "misses": budget_misses(c, budgets, 0.70)} for c in CELLS]
    assert choose(cells, "local", budgets)["cell"] == "a"


def test_nothing_fits_names_the_closest_cell_and_each_budget_it_misses():
    budgets = {"latency_ms": 0.5, "rss_mb": None, "flash_kb": 100.0, "accuracy_drop": None}
    cells = [{**c, "misses": budget_misses(c, budgets, 0.70)} for c in CELLS]
    choice = choose(cells, "local", budgets)
    assert choice["cell"] is None and choice["closest"] == "c"
    assert choice["misses"] == pytest.approx({"latency_ms": 0.3, "flash_kb": 450_000 / 1024 - 100})
    assert choice["message"].startswith("nothing fits on local; closest: c (latency_ms 0.8ms > 0.5ms by 0.3ms; flash_kb")
    assert choose(cells, "pi", budgets)["message"] == "nothing measured on pi"


def test_accuracy_drop_is_measured_from_the_grid_best():
    budgets = {"latency_ms": None, "rss_mb": None, "flash_kb": None, "accuracy_drop": 0.05}
    assert budget_misses(_cell("c", 0.60, 1, 1), budgets, 0.70) == pytest.approx({"accuracy_drop": 0.05})
    assert budget_misses(_cell("d", 0.65, 1, 1), budgets, 0.70) == {}
