"""The ``data`` demo step: generates once, reuses a matching dataset, reports and plots."""

from sea_tf.demo import DemoContext
from sea_tf.demo_steps import data as data_step


# The demo's own way to shrink a step (`sea-tf demo --set 'steps.data=[...]'`, configs/demo/ci.yaml).
TINY = ["clips_per_class=2", "sample_rates=[22050]", "sample_rate_weights=[1.0]", "duration_s.max=1.0",
        "upstream.recordings=1", "upstream.min_duration_s=5.0", "upstream.max_duration_s=5.0",
        "ust.clips_per_sensor=1", "ust.clip_seconds=1.0"]


def test_data_step_generates_then_reuses(tmp_path):
    ctx = DemoContext(out_dir=tmp_path, report_dir=tmp_path / "report", data_dir=tmp_path / "data", seed=5,
                      step_settings={"data": TINY})

    first = data_step.run(ctx)
    assert ctx.artifacts["data_dir"] == tmp_path / "data"
    assert (ctx.artifacts["upstream_dir"] / "manifest.csv").is_file()
    f = first.figures
    assert not f["reused"] and f["n_clips"] == 20 and f["seed"] == 5 and f["unreadable_files"] == 0
    assert sum(f["clips_per_fold"].values()) == 20 and f["upstream"]["n_recordings"] == 1
    assert 0.0 <= f["linear_probe"]["pooled_accuracy"] <= 1.0
    assert (ctx.report_dir / first.images[0]).stat().st_size > 10_000
    assert "20 clips" in first.markdown

    mtime = (tmp_path / "data" / "card.json").stat().st_mtime_ns
    second = data_step.run(ctx)
    assert second.figures["reused"] and (tmp_path / "data" / "card.json").stat().st_mtime_ns == mtime

    ctx.seed = 6  # another seed: regenerated in place
    assert not data_step.run(ctx).figures["reused"]
