"""Demo step ``sampling``: pick the rows φ is fitted on (dpp-quality) and compare all strategies."""
import shutil

from sea_tf.demo import DemoContext, StepReport

PRESET = "sampling/demo"
COMPARE_D = 16


def run(ctx: DemoContext) -> StepReport:
    from sea_tf.reduce import compare_strategies, markdown_table
    from sea_tf.sampling import sample_shards

    cfg = ctx.settings("sampling", PRESET)
    shards = ctx.artifacts["teacher_shards"]
    out = ctx.out_dir / "sample"
    index, card = sample_shards(shards, out, cfg["m"], strategy=cfg["strategy"], seed=ctx.seed,
                                group_by=cfg["group_by"], group_rows=cfg["group_rows"], dpp_solver=cfg["dpp_solver"],
                                dpp_kernel=cfg["dpp_kernel"], ridge=cfg["ridge"], mcmc_iterations=cfg["mcmc_iterations"],
                                mcmc_start_seed=cfg["mcmc_start_seed"], max_kdpp_mb=cfg["max_kdpp_mb"],
                                quality=cfg["quality"], timezone=cfg["timezone"], progress=cfg["progress"],
                                allow_partial=cfg["allow_partial"])
    ctx.artifacts["sample"] = str(out)
    n_rows = card["teacher_shards"]["n_rows"]
    # The study: each strategy draws a quarter of the rows so that held-out rows remain for scoring.
    m_study = max(COMPARE_D + 1, n_rows // 4)
    study_sampling = {key: cfg[key] for key in ("group_by", "group_rows", "dpp_solver", "dpp_kernel", "ridge",
                                                "mcmc_iterations", "mcmc_start_seed", "max_kdpp_mb", "quality",
                                                "timezone")}
    table = compare_strategies(shards, ctx.out_dir / "sampling_study", m_study, method="pca", d=COMPARE_D,
                               seed=ctx.seed, sampling=study_sampling, also_dpp_solvers=["mcmc"], n_heldout=300, k=10,
                               progress=cfg["progress"], allow_partial=cfg["allow_partial"])
    png = ctx.report_dir / "sampling-study.png"
    shutil.copyfile(ctx.out_dir / "sampling_study" / "compare.png", png)
    figures = {"strategy": cfg["strategy"], "m": int(len(index)), "rows": n_rows, "groups": card["n_groups"],
               "dpp_solver": cfg["dpp_solver"], "dpp_kernel": cfg["dpp_kernel"],
               "study": {"m": m_study, "d": COMPARE_D, "random_loud_overlap": m_study / n_rows, "rows": table}}
    markdown = (f"Sampled {len(index)} of {n_rows} teacher rows with **{cfg['strategy']}** "
                f"({cfg['dpp_solver']} k-DPP solver, {cfg['dpp_kernel']} kernel, ridge {cfg['ridge']}; "
                f"{card['n_groups']} groups of ≤ {cfg['group_rows']} rows) → `{out}`.\n\n"
                f"Sampling study (`sea-tf reduce compare`): each strategy draws {m_study} rows, PCA to "
                f"d = {COMPARE_D}, scored on the same held-out rows. `loud_overlap`: share of the sample among "
                f"the {m_study} loudest rows (a uniform sample: {m_study / n_rows:.2f}; the loudest rows: 1); rows "
                "`(mcmc)`: the published code's 3-iteration MCMC approximation of the same k-DPP; "
                "`coverage`: mean distance from every row to its nearest sampled row (lower is better):\n\n"
                + markdown_table(table))
    return StepReport(figures=figures, markdown=markdown, images=[png.name])
