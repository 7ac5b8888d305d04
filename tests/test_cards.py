"""Card names: the whole file name minus its last suffix; cards of the older first-dot name still read."""
import json

import pytest

from sea_tf import cards
from sea_tf.errors import DataError


@pytest.mark.parametrize("name, card", [
    ("student.keras", "student.card.json"),
    ("a.v1.2.keras", "a.v1.2.card.json"),
    ("edgel3_ft_audio_sparsity_95.45.h5", "edgel3_ft_audio_sparsity_95.45.card.json"),
    ("student-qat.h5", "student-qat.card.json"),
    ("weights.h5.gz", "weights.h5.card.json"),
    ("model", "model.card.json"),
])
def test_card_name_is_whole_name_minus_last_suffix(tmp_path, name, card):
    assert cards.card_path(tmp_path / name) == tmp_path / card


def test_directory_card(tmp_path):
    assert cards.card_path(tmp_path) == tmp_path / "card.json"
    cards.write_card(tmp_path, {"kind": "dir"})
    assert cards.read_card(tmp_path) == {"kind": "dir"}


def test_two_versions_keep_two_cards(tmp_path):
    # The old first-dot rule gave both files one card, so the second save overwrote the first's.
    v12, v13 = tmp_path / "student-v1.2.keras", tmp_path / "student-v1.3.keras"
    cards.write_card(v12, {"version": "1.2"})
    cards.write_card(v13, {"version": "1.3"})
    assert cards.read_card(v12) == {"version": "1.2"}
    assert cards.read_card(v13) == {"version": "1.3"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["student-v1.2.card.json", "student-v1.3.card.json"]


def test_legacy_card_still_found(tmp_path):
    artifact = tmp_path / "edgel3_ft_audio_sparsity_95.45.h5"
    legacy = tmp_path / "edgel3_ft_audio_sparsity_95.card.json"
    legacy.write_text(json.dumps({"written_by": "old sea-tf"}))
    assert cards.find_card(artifact) == legacy
    assert cards.read_card(artifact) == {"written_by": "old sea-tf"}


def test_current_name_wins_over_legacy(tmp_path):
    artifact = tmp_path / "a.v1.2.keras"
    (tmp_path / "a.card.json").write_text(json.dumps({"name": "legacy"}))
    cards.write_card(artifact, {"name": "current"})
    assert cards.find_card(artifact) == tmp_path / "a.v1.2.card.json"
    assert cards.read_card(artifact) == {"name": "current"}


def test_missing_card(tmp_path):
    artifact = tmp_path / "a.v1.2.keras"
    assert cards.find_card(artifact) is None
    assert cards.read_card(artifact, required=False) is None
    with pytest.raises(DataError, match=r"a\.v1\.2\.card\.json"):
        cards.read_card(artifact)


def test_unreadable_card_names_the_file(tmp_path):
    artifact = tmp_path / "m.keras"
    cards.card_path(artifact).write_text("{not json")
    with pytest.raises(DataError, match=r"m\.card\.json: unreadable card"):
        cards.read_card(artifact)
