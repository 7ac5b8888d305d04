"""Demo step ``reduce``: fit StandardScaler + PCA (d = 64) on the sample, write aligned targets, report quality."""
import shutil

from sea_tf.demo import DemoContext, StepReport

PRESET = "reduce/fit-pca64"


def run(ctx: DemoContext) -> StepReport:
    from sea_tf import config
    from sea_tf.reduce import apply_reducer, fit_sample

    cfg = ctx.settings("reduce", PRESET)
    apply_cfg = config.load("reduce/apply")   # the demo step's settings are fit's; apply runs on its defaults
    shards, sample = ctx.artifacts["teacher_shards"], ctx.artifacts["sample"]
    reducer_dir, targets_dir = ctx.out_dir / "reducer", ctx.out_dir / "targets"
    card = fit_sample(shards, sample, reducer_dir, method=cfg["method"], d=cfg["d"], pca_solver=cfg["pca"]["solver"],
                      umap_params=cfg["umap"], seed=ctx.seed,
                      quality={"n_heldout": cfg["quality"]["n_heldout"], "k": cfg["quality"]["k"]},
                      progress=cfg["progress"], allow_partial=cfg["allow_partial"])
    targets = apply_reducer(reducer_dir, shards, targets_dir, chunk_rows=apply_cfg["chunk_rows"],
                            progress=apply_cfg["progress"], allow_partial=apply_cfg["allow_partial"])
    ctx.artifacts["reducer"] = str(reducer_dir)
    ctx.artifacts["targets"] = str(targets_dir)
    q = card["quality"]
    images = []
    if q.get("png"):
        shutil.copyfile(q["png"], ctx.report_dir / "reduce_quality.png")
        images.append("reduce_quality.png")
    figures = {"method": card["method"], "d": card["d"], "fitted_on": card["sample"]["m"],
               "explained_variance": q.get("explained_variance"), "trustworthiness": q["trustworthiness"],
               "knn_recall@10": q["knn_recall"], "n_heldout": q["n_heldout"],
               "target_rows": targets["teacher_shards"]["n_rows"], "target_shards": len(targets["shards"])}
    ev = f"explained variance {q['explained_variance']:.3f}, " if q.get("explained_variance") is not None else ""
    markdown = (f"φ = StandardScaler + {card['method'].upper()} to d = {card['d']}, fitted on the "
                f"{card['sample']['m']} {card['sample']['strategy']} samples. On {q['n_heldout']} held-out rows: "
                f"{ev}trustworthiness {q['trustworthiness']:.3f}, kNN recall@{q['k']} {q['knn_recall']:.3f}.\n\n"
                f"Targets for all {targets['teacher_shards']['n_rows']} rows (row-aligned with the teacher shards) "
                f"in `{targets_dir}`.")
    return StepReport(figures=figures, markdown=markdown, images=images)
