"""UrbanSound8K and ESC-50 loaders on tiny real-layout fixtures, including malformed inputs."""
import numpy as np
import pytest
import soundfile as sf

from sea_tf.data import ESC50, US8K, Clip, detect_kind, load_labelled_dataset
from sea_tf.data.esc50 import ESC50_CLASSES
from sea_tf.data.recipes import US8K_CLASSES
from sea_tf.errors import DataError

HEADER = "slice_file_name,fsID,start,end,salience,fold,classID,class"
# Real UrbanSound8K rows (first lines of the official metadata) plus a few more folds.
ROWS = [
    "100032-3-0-0.wav,100032,0.0,0.317551,1,5,3,dog_bark",
    "100263-2-0-117.wav,100263,58.5,62.5,1,5,2,children_playing",
    "100263-2-0-121.wav,100263,60.5,64.5,1,5,2,children_playing",
    "100648-1-0-0.wav,100648,4.823402,5.471927,2,10,1,car_horn",
    "101281-3-0-0.wav,101281,0.0,4.0,1,1,3,dog_bark",
    "102871-8-0-3.wav,102871,1.5,5.5,2,3,8,siren",
]


def write_wav(path, seconds=0.05, sr=22050, channels=1, subtype="PCM_16"):
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = 0.1 * np.sin(np.linspace(0, 200, int(seconds * sr)))
    sf.write(str(path), np.stack([audio] * channels, axis=1) if channels > 1 else audio, sr, subtype=subtype)


def make_us8k(root, rows=ROWS, header=HEADER, audio=True):
    (root / "metadata").mkdir(parents=True)
    (root / "metadata" / "UrbanSound8K.csv").write_text("\n".join([header, *rows]) + "\n")
    if audio:
        for row in rows:
            cells = row.split(",")
            write_wav(root / "audio" / f"fold{cells[5]}" / cells[0])
    return root


def test_us8k_reads_real_layout(tmp_path):
    ds = US8K(make_us8k(tmp_path / "UrbanSound8K"))
    assert len(ds) == 6 and ds.kind == "us8k" and ds.folds == [1, 3, 5, 10]
    assert ds.classes == US8K_CLASSES
    first = ds.clips[0]
    assert first == Clip(path=tmp_path / "UrbanSound8K" / "audio" / "fold5" / "100032-3-0-0.wav", fold=5,
                         class_id=3, class_name="dog_bark", slice_file_name="100032-3-0-0.wav",
                         fs_id=100032, start=0.0, end=0.317551, salience=1)
    assert [c.slice_file_name for c in ds.clips_in_fold(5)] == ["100032-3-0-0.wav", "100263-2-0-117.wav", "100263-2-0-121.wav"]
    assert ds.clips_in_fold(2) == []
    assert ds.fold_counts() == {1: 1, 2: 0, 3: 1, 4: 0, 5: 3, 6: 0, 7: 0, 8: 0, 9: 0, 10: 1}
    assert ds.class_counts() == {"car_horn": 1, "children_playing": 2, "dog_bark": 2, "siren": 1}
    assert ds.check_audio() == []
    # protocol of docs/PROTOCOL.md §4.1: validation is the preceding fold, cyclic
    assert ds.split(1) == ([2, 3, 4, 5, 6, 7, 8, 9], 10, 1)
    assert ds.split(6) == ([1, 2, 3, 4, 7, 8, 9, 10], 5, 6)
    with pytest.raises(DataError, match="fold 11 does not exist"):
        ds.clips_in_fold(11)


def test_us8k_accepts_extra_columns_bom_and_float_ints(tmp_path):
    rows = [r.replace(",5,3,dog_bark", ",5.0,3,dog_bark") + ",x" for r in ROWS]
    root = make_us8k(tmp_path / "d", rows=rows, header="\ufeff" + HEADER + ",note")
    ds = US8K(root)
    assert len(ds) == 6 and ds.clips[0].fold == 5


def test_us8k_lists_missing_and_unreadable_audio(tmp_path):
    root = make_us8k(tmp_path / "d")
    (root / "audio" / "fold5" / "100032-3-0-0.wav").unlink()
    (root / "audio" / "fold10" / "100648-1-0-0.wav").write_bytes(b"RIFF\x00\x00not a wav at all")
    write_wav(root / "audio" / "fold1" / "101281-3-0-0.wav", seconds=0)
    ds = US8K(root)  # loading still works: the real dataset has quirks, listed rather than fatal
    problems = {clip.slice_file_name: reason for clip, reason in ds.check_audio()}
    assert problems.keys() == {"100032-3-0-0.wav", "100648-1-0-0.wav", "101281-3-0-0.wav"}
    assert problems["100032-3-0-0.wav"] == "missing"
    assert problems["100648-1-0-0.wav"].startswith("unreadable")
    assert problems["101281-3-0-0.wav"] == "empty"
    with pytest.raises(DataError, match=r"3 of 6 audio files are missing or unreadable: .*100032-3-0-0.wav \(missing\)"):
        ds.require_audio()


@pytest.mark.parametrize("rows, header, match", [
    (ROWS, "slice_file_name,fsID,start,end,salience,folds,classID,class", r"missing column\(s\) fold .*found: .*folds"),
    (ROWS, "file,fsID,start,end,salience,fold,classID,label", r"missing column\(s\) slice_file_name, class"),
    (ROWS[:1] + ["1-1-0-0.wav,1,0,1,1,11,1,car_horn"], HEADER, r"line 3: fold 11 is outside 1-10"),
    (ROWS[:1] + ["1-1-0-0.wav,1,0,1,1,0,1,car_horn"], HEADER, r"line 3: fold 0 is outside 1-10"),
    (["1-1-0-0.wav,1,0,1,1,2,one,car_horn"], HEADER, r"line 2: classID 'one' is not an integer"),
    (["1-1-0-0.wav,1,0,1,1,2,1.5,car_horn"], HEADER, r"classID '1.5' is not an integer"),
    (["1-1-0-0.wav,1,0,1,1,2,12,car_horn"], HEADER, r"classID 12 is outside 0-9"),
    (["1-1-0-0.wav,1,0,1,1,two,1,car_horn"], HEADER, r"fold 'two' is not an integer"),
    (["1-1-0-0.wav,1,zero,1,1,2,1,car_horn"], HEADER, r"start 'zero' is not a number"),
    (ROWS + ["1-3-0-0.wav,1,0,1,1,2,3,dog"], HEADER, r"classID 3 is 'dog' here but 'dog_bark' earlier"),
    (ROWS + ["1-4-0-0.wav,1,0,1,1,2,4,dog_bark"], HEADER, r"class 'dog_bark' has two classIDs"),
    (ROWS + [ROWS[0]], HEADER, r"100032-3-0-0.wav is listed twice"),
    (["1-1-0-0.wav,1,0,1,1,2,1"], HEADER, r"line 2: wrong number of fields"),
    (["../1-1-0-0.wav,1,0,1,1,2,1,car_horn"], HEADER, r"must be a bare file name"),
    ([], HEADER, r"lists no clips"),
    ([], "", r"missing column"),
])
def test_us8k_bad_metadata_names_file_and_line(tmp_path, rows, header, match):
    root = make_us8k(tmp_path / "d", rows=rows, header=header, audio=False)
    with pytest.raises(DataError, match=match) as err:
        US8K(root)
    assert "UrbanSound8K.csv" in str(err.value)


def test_us8k_missing_root_or_metadata(tmp_path):
    with pytest.raises(DataError, match="dataset root not found"):
        US8K(tmp_path / "nowhere")
    (tmp_path / "audio" / "fold1").mkdir(parents=True)
    with pytest.raises(DataError, match=r"metadata/UrbanSound8K.csv: metadata not found; pass the UrbanSound8K root"):
        US8K(tmp_path)
    (tmp_path / "metadata").mkdir()
    (tmp_path / "metadata" / "UrbanSound8K.csv").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DataError, match="cannot read the metadata"):
        US8K(tmp_path)


ESC_META = "filename,fold,target,category,esc10,src_file,take"
ESC_ROWS = [
    "1-100032-A-0.wav,1,0,dog,True,100032,A",
    "1-100038-A-14.wav,1,14,chirping_birds,False,100038,A",
    "2-102414-C-17.wav,2,17,pouring_water,False,102414,C",
    "5-9032-A-0.wav,5,0,dog,True,9032,A",
]


def make_esc50(root, rows=ESC_ROWS, meta=True):
    for row in rows:
        write_wav(root / "audio" / row.split(",")[0], sr=44100)
    if meta:
        (root / "meta").mkdir(parents=True)
        (root / "meta" / "esc50.csv").write_text("\n".join([ESC_META, *rows]) + "\n")
    return root


def test_esc50_with_and_without_metadata(tmp_path):
    with_meta = ESC50(make_esc50(tmp_path / "a"))
    without = ESC50(make_esc50(tmp_path / "b", meta=False))
    for ds in (with_meta, without):
        assert ds.kind == "esc50" and ds.n_folds == 5 and len(ds.classes) == 50
        assert ds.folds == [1, 2, 5]
        assert [(c.fold, c.class_id, c.class_name) for c in ds.clips_in_fold(1)] == [(1, 0, "dog"), (1, 14, "chirping_birds")]
        assert ds.check_audio() == []
        assert ds.split(1) == ([2, 3, 4], 5, 1)
    assert with_meta.metadata_path.name == "esc50.csv" and without.metadata_path is None
    assert with_meta.clips[2].fs_id == 102414 and with_meta.clips[2].path == tmp_path / "a" / "audio" / "2-102414-C-17.wav"
    assert ESC50_CLASSES[17] == "pouring_water" and ESC50_CLASSES[49] == "hand_saw"
    with pytest.raises(DataError, match="ESC-50 folds are 1-5"):
        with_meta.clips_in_fold(6)


@pytest.mark.parametrize("rows, match", [
    (["6-1-A-0.wav,6,0,dog,True,1,A"], r"fold 6 is outside 1-5"),
    (["1-1-A-50.wav,1,50,x,True,1,A"], r"target 50 is outside 0-49"),
    (["1-1-A-0.wav,2,0,dog,True,1,A"], r"disagree with the file name"),
    (["dog.wav,1,0,dog,True,1,A"], r"does not follow the ESC-50 convention"),
    (["1-1-A-0.wav,1,0,dog,True,1,A", "1-2-A-0.wav,1,0,cat,True,2,A"], r"target 0 is 'cat' here but 'dog'"),
])
def test_esc50_bad_metadata(tmp_path, rows, match):
    root = tmp_path / "esc"
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "esc50.csv").write_text("\n".join([ESC_META, *rows]) + "\n")
    with pytest.raises(DataError, match=match) as err:
        ESC50(root)
    assert "esc50.csv" in str(err.value)


def test_esc50_bad_file_names_and_missing_audio(tmp_path):
    root = make_esc50(tmp_path / "esc", meta=False)
    write_wav(root / "audio" / "README-sound.wav")
    with pytest.raises(DataError, match=r"README-sound.wav.*rename or remove it"):
        ESC50(root)
    root = make_esc50(tmp_path / "esc2")
    (root / "audio" / "5-9032-A-0.wav").unlink()
    assert [(c.slice_file_name, r) for c, r in ESC50(root).check_audio()] == [("5-9032-A-0.wav", "missing")]
    with pytest.raises(DataError, match="neither meta/esc50.csv nor audio"):
        ESC50(tmp_path / "esc2" / "meta")


def test_load_labelled_dataset_detects_the_layout(tmp_path):
    us8k, esc = make_us8k(tmp_path / "u"), make_esc50(tmp_path / "e", meta=False)
    assert detect_kind(us8k) == "us8k" and detect_kind(esc) == "esc50"
    assert isinstance(load_labelled_dataset(us8k, kind="auto"), US8K)
    assert isinstance(load_labelled_dataset(esc, kind="auto"), ESC50)
    assert isinstance(load_labelled_dataset(esc, kind="esc50"), ESC50)
    with pytest.raises(DataError, match="metadata not found"):
        load_labelled_dataset(esc, kind="us8k")
    with pytest.raises(DataError, match="unknown dataset kind 'dcase'"):
        load_labelled_dataset(us8k, kind="dcase")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not an UrbanSound8K root"):
        load_labelled_dataset(tmp_path / "empty", kind="auto")
    with pytest.raises(DataError, match="not found"):
        load_labelled_dataset(tmp_path / "absent", kind="auto")
