"""``atomic.save_figure``: the one way sea-tf writes a figure (atomic PNG, figure closed)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from sea_tf import atomic  # noqa: E402
from sea_tf.errors import OutputError  # noqa: E402


def test_a_saved_figure_is_a_png_and_is_closed(tmp_path):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    path = atomic.save_figure(fig, tmp_path / "curve.png", dpi=50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert fig.number not in plt.get_fignums()          # pyplot no longer holds it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curve.png"]   # no temporary left


def test_an_unwritable_destination_is_an_output_error_and_the_figure_is_closed(tmp_path):
    (tmp_path / "plots").write_text("a file where the directory should be")
    fig, _ = plt.subplots(figsize=(2, 2))
    with pytest.raises(OutputError):
        atomic.save_figure(fig, tmp_path / "plots" / "curve.png")
    assert fig.number not in plt.get_fignums()
