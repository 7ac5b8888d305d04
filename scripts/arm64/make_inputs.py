"""Workstation side of ``make test-arm64``: an exported int8 model, a classifier and a WAV.

Writes ``OUT/`` with the artifacts and ``OUT/args`` (the ``device.bench`` arguments). Uses the
export stage's demo artifacts when ``export/`` provides them; until then the tiny models of
``tests/device_support.py`` (converted with ``tf.lite.TFLiteConverter``, same sidecar contract).
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))


def main(out):
    import device_support

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    arts = device_support.build_artifacts(out)
    wav = device_support.write_tone_wav(out / "tone_22k.wav", sr=22050, seconds=2.0)
    args = ["--model", arts["emb_int8"], "--classifier", arts["cls_fp32"], "--audio", wav]
    (out / "args").write_text(" ".join(str(a) for a in args))
    print(f"make_inputs: {arts['emb_int8'].name}, {arts['cls_fp32'].name}, {wav.name} in {out}")


if __name__ == "__main__":
    main(sys.argv[1])
