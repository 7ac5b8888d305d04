"""Workstation side of ``make test-arm64``: an exported SEA-64 int8 model, a classifier and a WAV.

Writes ``OUT/`` with the artifacts, ``OUT/args`` (the ``device.bench`` arguments) and
``OUT/listen_args`` (those of ``device.listen`` on the WAV). The SEA-64
network (untrained weights, ``sea_tf.models.build_student``) is exported full-int8 without its
front end, so the board computes the numpy front end (``device/frontends.py``) under emulation too;
the classifier is the small fp32 one of ``tests/device_support.py``. Both follow the artifact
contract (``X.tflite`` + ``X.json``) of docs/ARCHITECTURE.md.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))


def main(out):
    import device_support

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    student = device_support.student_artifacts(out, "sea-64", modes=("int8",), n_frames=8)
    classifier = device_support.convert(device_support.tiny_classifier(dim=64), out / "tiny-cls.fp32.tflite", "fp32",
                                        card={"name": "tiny-cls", "kind": "classifier"},
                                        classes=device_support.CLASSES, input_kind="embedding")
    wav = device_support.write_tone_wav(out / "tone_22k.wav", sr=22050, seconds=2.0)
    args = ["--model", student["net.int8"], "--classifier", classifier, "--audio", wav, "--hop-size", "0.5"]
    (out / "args").write_text(" ".join(str(a) for a in args))
    # device.listen on the same WAV as a file source (streaming resampler and front end); 0.2 s is
    # 10 STFT hops of SEA-64, so consecutive windows share frames
    listen = ["--model", student["net.int8"], "--classifier", classifier, "--source", wav, "--hop-size", "0.2"]
    (out / "listen_args").write_text(" ".join(str(a) for a in listen))
    print(f"make_inputs: {student['net.int8'].name}, {classifier.name}, {wav.name} in {out}")


if __name__ == "__main__":
    main(sys.argv[1])
