"""Benchmark the device harness against its targets (issue 8) and write a JSON.

Variants: ``net`` = SEA-64 network full-int8 with int8 I/O (numpy front end on the device; the
harness quantizes its input), ``net_float_io`` = the same with float I/O (the (de)quantize ops run
inside the interpreter), ``full`` = the whole model with its front end inside, int8 I/O.

Targets (issue 8, then issue 16: live sensor mode), all at 1 thread:
- the harness adds <= 5 % over the interpreter's bare ``invoke()`` for the SEA-64 int8 model with
  int8 I/O. Interleaved in one process: bare ``invoke()`` against the harness's per-window network
  step, which since the streaming front end writes the int8 codes itself is set_tensor + invoke +
  get_tensor + dequantize (``Artifact.run_batch``); ``run_one`` (float features in, quantized by
  the harness) is reported beside it;
- the device-side process (no TensorFlow) stays <= 100 MB peak RSS for SEA-64 int8 + classifier
  while classifying audio;
- at hop 0.1 s the streaming front end (``device.frontends.StreamingFrontend``, quantized input
  written) costs <= 35 % of the per-window front end (``compute_frontend``), p50 of ``device.bench``;
- ``device.listen`` compute per window (p50, file source, SEA-64 int8, no classifier) is <= 1.15 x
  (bare invoke + streaming front end);
- batch-16 offline throughput (``Artifact.embed_audio``) >= 1.3 x batch 1 for SEA-64 fp32 (int8 reported).

Without ``--artifacts``, the models are converted here from ``sea_tf.models.build_student`` (untrained
weights: same graph and cost as the trained model) with the artifact contract of
tests/device_support.py; with ``--artifacts DIR`` the export stage's files are used.

Usage::

    .venv/bin/python benchmarks/bench_device.py [--artifacts DIR] [--runs 300] [--repeats 3]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}  # as device.bench sets them

RAW_INVOKE = r"""
import json, sys, time
import numpy as np
from ai_edge_litert.interpreter import Interpreter
path, runs, warmup, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
it = Interpreter(model_path=path, num_threads=threads)
it.allocate_tensors()
d = it.get_input_details()[0]
x = np.random.default_rng(0).integers(-100, 100, d["shape"]).astype(d["dtype"]) if d["dtype"] != np.float32 \
    else np.random.default_rng(0).standard_normal(d["shape"]).astype(np.float32)
it.set_tensor(d["index"], x)
for _ in range(warmup):
    it.invoke()
ms = []
for _ in range(runs):
    t0 = time.perf_counter(); it.invoke(); ms.append((time.perf_counter() - t0) * 1e3)
print(json.dumps({"p50": float(np.median(ms)), "mean": float(np.mean(ms))}))
"""


INTERLEAVED = r"""
import json, sys, time
import numpy as np
from device.runner import load_artifact
path, runs, warmup, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
a = load_artifact(path, threads=threads)
rng = np.random.default_rng(0)
frame = (0.1 * rng.standard_normal(a.frame_samples)).astype(np.float32)
x = a.features(frame[None])[0]
it, idx = a.interpreter, a._in["index"]
it.set_tensor(idx, a.quantize_input(np.reshape(x, a.input_shape)))
clock = time.perf_counter
bare, harness = [], []
for _ in range(warmup):
    a.run_one(x)
q = a.quantize_input(np.reshape(x, a.input_shape)).copy()
fused = []
for block in range(runs // 25):      # alternate blocks so all see the same machine load and caches
    it.set_tensor(idx, q)
    for _ in range(25):
        t0 = clock(); it.invoke(); bare.append(clock() - t0)
    for _ in range(25):
        t0 = clock(); a.run_batch(q); fused.append(clock() - t0)
    for _ in range(25):
        t0 = clock(); a.run_one(x); harness.append(clock() - t0)
print(json.dumps({"bare_p50": 1e3 * float(np.median(bare)), "harness_p50": 1e3 * float(np.median(fused)),
                  "run_one_p50": 1e3 * float(np.median(harness))}))
"""


LISTEN_INTERLEAVED = r"""
import json, sys, time
import numpy as np
from device.frontends import StreamingFrontend
from device.listen import Listener
from device.runner import load_artifact
path, runs, warmup, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
a = load_artifact(path, threads=threads)
listener = Listener(a)
fe = StreamingFrontend(a.frontend, a.frame_samples)
hop, n = int(round(0.1 * a.sample_rate)), a.frame_samples
stream = (0.1 * np.random.default_rng(0).standard_normal((runs + warmup) * hop + n)).astype(np.float32)
quant, q = a.input_quantization, np.empty(a.input_shape, listener._x.dtype)
it, idx, clock = a.interpreter, a._in["index"], time.perf_counter
for k in range(warmup):
    listener.window(stream[k * hop:k * hop + n], k * hop)
base, listen, kb, kl = [], [], 0, warmup
for block in range(runs // 25):      # alternate blocks: both see the same machine load
    for _ in range(25):
        s = kb * hop; kb += 1
        t0 = clock(); fe(stream[s:s + n], s, quantize=quant, out=q[0]); t1 = clock()
        it.set_tensor(idx, q)
        t2 = clock(); it.invoke(); t3 = clock()
        base.append((t1 - t0) + (t3 - t2))
    for _ in range(25):
        s = (kl % runs) * hop; kl += 1
        t0 = clock(); listener.window(stream[s:s + n], s); listen.append(clock() - t0)
print(json.dumps({"bare_plus_streaming_p50": 1e3 * float(np.median(base)), "listen_p50": 1e3 * float(np.median(listen))}))
"""


def build_classifier(out_dir, embeddings):
    """An int8 UrbanSound8K-shaped MLP (64 -> 512 -> 128 -> 10, softmax), untrained, with a sidecar."""
    import numpy as np

    import device_support
    from sea_tf.backend import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((64,), name="embedding")
    x = keras.layers.Dense(512, activation="relu")(inp)
    x = keras.layers.Dense(128, activation="relu")(x)
    clf = keras.Model(inp, keras.layers.Dense(10, activation="softmax")(x))
    classes = ["air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling", "engine_idling",
               "gun_shot", "jackhammer", "siren", "street_music"]
    return device_support.convert(clf, Path(out_dir) / "us8k-mlp.int8.tflite", "int8",
                                  representative=np.abs(embeddings) + 0.01,
                                  card={"name": "us8k-mlp", "kind": "classifier"}, classes=classes,
                                  input_kind="embedding")


def build_audio(out_dir):
    import device_support

    return [device_support.write_tone_wav(Path(out_dir) / f"clip{i}.wav", sr=22050, seconds=4.0, freq=300.0 * (i + 1))
            for i in range(2)]


def build_long_audio(out_dir, seconds=30.0):
    """A seeded 8 kHz WAV long enough for throughput (~290 windows at hop 0.1 s)."""
    import device_support

    return device_support.write_tone_wav(Path(out_dir) / "long_8k.wav", sr=8000, seconds=seconds, freq=700.0)


def build_models(out_dir):
    """SEA-64 int8 (network; numpy front end), SEA-64 int8 (front end inside) and an int8 MLP classifier."""
    import device_support

    s = device_support.student_artifacts(out_dir, "sea-64", modes=("int8", "fp32"), full_modes=("int8",), n_frames=16)
    f = device_support.student_artifacts(out_dir, "sea-64", modes=("int8",), n_frames=16, int8_io=False)
    return {"net": s["net.int8"], "net_fp32": s["net.fp32"], "net_float_io": f["net.int8"], "full": s["full.int8"],
            "classifier": build_classifier(out_dir, s["ref_emb"]), "audio": build_audio(out_dir)}


def raw_invoke(model, runs, warmup, threads):
    out = subprocess.run([sys.executable, "-c", RAW_INVOKE, str(model), str(runs), str(warmup), str(threads)],
                         capture_output=True, text=True, check=True, env=ENV)
    return json.loads(out.stdout.strip().splitlines()[-1])


def listen(model, wav, threads, json_path):
    """``device.listen`` on a file source at hop 0.1 s (as fast as possible); its summary."""
    subprocess.run([sys.executable, "-m", "device.listen", "--model", str(model), "--source", str(wav),
                    "--hop-size", "0.1", "--threads", str(threads), "--jsonl", str(json_path) + "l",
                    "--summary-json", str(json_path)], cwd=ROOT, check=True, capture_output=True, text=True, env=ENV)
    return json.loads(Path(json_path).read_text())


def harness(model, classifier, audio, runs, warmup, threads, json_path, batch=16):
    args = [sys.executable, "-m", "device.bench", "--model", str(model), "--runs", str(runs), "--warmup", str(warmup),
            "--threads", str(threads), "--out-file", str(json_path), "--quiet", "--batch-size", str(batch)]
    if classifier:
        args += ["--classifier", str(classifier)]
    if audio:
        args += ["--audio", *map(str, audio)]
    subprocess.run(args, cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(Path(json_path).read_text())


def interleaved(model, runs, warmup, threads):
    out = subprocess.run([sys.executable, "-c", INTERLEAVED, str(model), str(runs), str(warmup), str(threads)],
                         cwd=ROOT, capture_output=True, text=True, check=True, env=ENV)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(model, runs, warmup, threads, repeats, tmp):
    """Harness overhead three ways; medians over ``repeats``.

    - ``interleaved``: one process, blocks of bare ``invoke()`` alternating with ``Artifact.run_one``
      (quantize + set + invoke + get + dequantize) on the same input: the target's measure;
    - ``in_bench``: ``device.bench``'s own network p50 against its bare ``invoke`` p50 (same runs,
      each after the numpy front end of the window);
    - ``separate``: a process timing only ``invoke()`` against ``device.bench``'s network p50.
    """
    raw, net, inv, fe, il_bare, il_harness = [], [], [], [], [], []
    il_run_one = []
    for i in range(repeats):
        il = interleaved(model, runs, warmup, threads)
        il_bare.append(il["bare_p50"])
        il_harness.append(il["harness_p50"])
        il_run_one.append(il["run_one_p50"])
        raw.append(raw_invoke(model, runs, warmup, threads)["p50"])
        r = harness(model, None, (), runs, warmup, threads, Path(tmp) / f"h{i}.json")
        net.append(r["latency_ms"]["network"]["p50"])
        inv.append(r["latency_ms"]["invoke"]["p50"])
        fe.append(r["latency_ms"]["frontend"]["p50"])
    med = statistics.median
    raw_m, net_m, inv_m = med(raw), med(net), med(inv)
    b, h = med(il_bare), med(il_harness)
    return {"model": str(model), "threads": threads, "runs": runs, "repeats": repeats,
            "interleaved": {"bare_invoke_p50_ms": b, "harness_p50_ms": h, "overhead_pct": 100 * (h - b) / b,
                            "run_one_p50_ms": med(il_run_one), "run_one_overhead_pct": 100 * (med(il_run_one) - b) / b,
                            "all_bare": il_bare, "all_harness": il_harness, "all_run_one": il_run_one},
            "in_bench": {"invoke_p50_ms": inv_m, "network_p50_ms": net_m, "overhead_pct": 100 * (net_m - inv_m) / inv_m},
            "separate": {"raw_invoke_p50_ms": raw_m, "bench_network_p50_ms": net_m,
                         "overhead_pct": 100 * (net_m - raw_m) / raw_m, "all_raw": raw, "all_network": net},
            "frontend_numpy_p50_ms": med(fe), "overhead_pct": 100 * (h - b) / b}


def live_figures(models, threads, net_overhead, tmp):
    """Issue-16 figures on a 30-s file: streaming vs per-window front end, device.listen compute
    against bare invoke + streaming front end, offline windows/s at batch 1 and 16."""
    wav = build_long_audio(tmp)
    bench = harness(models["net"], None, [wav], 300, 30, threads, Path(tmp) / "live_bench.json")
    lat = bench["latency_ms"]
    fe, fe_stream = lat["frontend"]["p50"], lat["frontend_streaming"]["p50"]
    summary = listen(models["net"], wav, threads, Path(tmp) / "listen.json")
    compute = summary["latency_ms"]["compute"]["p50"]
    bare = net_overhead["interleaved"]["bare_invoke_p50_ms"]
    side = subprocess.run([sys.executable, "-c", LISTEN_INTERLEAVED, str(models["net"]), "300", "30", str(threads)],
                          cwd=ROOT, capture_output=True, text=True, check=True, env=ENV)
    side = json.loads(side.stdout.strip().splitlines()[-1])
    batching = {}
    for key, model in (("int8", models["net"]), ("fp32", models.get("net_fp32"))):
        if model is None:
            continue
        off = (bench if key == "int8" else harness(model, None, [wav], 30, 3, threads, Path(tmp) / "b.json"))["files"][0]["offline"]
        batching[key] = {**off, "speedup": off["batch_windows_per_s"] / off["batch_1_windows_per_s"]
                         if off["batch_windows_per_s"] else None}
    return {"hop_s": 0.1, "frontend_per_window_p50_ms": fe, "frontend_streaming_p50_ms": fe_stream,
            "streaming_frontend_ratio": fe_stream / fe,
            # Listener.window against bare invoke + streaming front end, interleaved in one process
            "listen_window_p50_ms": side["listen_p50"], "bare_invoke_plus_streaming_p50_ms": side["bare_plus_streaming_p50"],
            "listen_compute_ratio": side["listen_p50"] / side["bare_plus_streaming_p50"],
            # the same from separate runs (device.listen on the file; bare invoke of the overhead section)
            "listen_file_compute_p50_ms": compute, "bare_invoke_p50_ms": bare,
            "listen_file_compute_ratio": compute / (bare + fe_stream),
            "listen_real_time_factor": summary["real_time_factor"], "listen_windows": summary["windows"],
            "listen_peak_rss_mb": summary["memory_mb"]["peak_rss"], "batching": batching}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifacts", help="export directory (SEA-64 int8 embedding + classifier) instead of converting")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_device.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.artifacts:
            files = sorted(Path(args.artifacts).glob("*.tflite"))
            emb = [f for f in files if "int8" in f.name and "sea-64" in f.name and "mlp" not in f.name]
            cls = [f for f in files if json.loads(f.with_suffix(".json").read_text()).get("classes")]
            import numpy as np

            classifier = cls[0] if cls else build_classifier(tmp, np.random.default_rng(0).random((64, 64)))
            models = {"net": emb[0], "full": None, "classifier": classifier, "audio": build_audio(tmp)}
            source = f"export artifacts in {args.artifacts}" + ("" if cls else " (+ an untrained int8 MLP classifier)")
        else:
            models = build_models(tmp)
            source = "converted here from sea_tf.models.build_student('sea-64') (untrained weights), full-int8"
        results = {"source": source, "overhead": {}}
        for key in ("net", "net_float_io", "full"):
            if models.get(key):
                results["overhead"][key] = measure(models[key], args.runs, args.warmup, args.threads, args.repeats, tmp)
        full_run = harness(models["net"], models["classifier"], models["audio"], args.runs, args.warmup, args.threads,
                           Path(tmp) / "full.json")
        mem = full_run["memory_mb"]
        results["memory"] = {"model": Path(models["net"]).name,
                             "classifier": Path(models["classifier"]).name if models["classifier"] else None,
                             "audio_files": len(models["audio"]), "peak_rss_mb": mem["peak"],
                             "load_increase_mb": mem["load_increase"], "run_increase_mb": mem["run_increase"],
                             "status": full_run["status"]}
        results["pipeline_latency_ms"] = {k: full_run["latency_ms"][k].get("p50") for k in full_run["latency_ms"]}
        results["environment"] = full_run["environment"]
        results["live"] = live_figures(models, args.threads, results["overhead"]["net"], tmp)
    ov = results["overhead"]["net"]["overhead_pct"]
    live = results["live"]
    results["targets"] = {"overhead_le_5pct": ov <= 5.0, "peak_rss_le_100mb": results["memory"]["peak_rss_mb"] <= 100,
                          "streaming_frontend_le_35pct": live["streaming_frontend_ratio"] <= 0.35,
                          "listen_compute_le_1_15x": live["listen_compute_ratio"] <= 1.15}
    if live["batching"].get("fp32", {}).get("speedup") is not None:
        results["targets"]["batch16_fp32_ge_1_3x"] = live["batching"]["fp32"]["speedup"] >= 1.3
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    for key, o in results["overhead"].items():
        il, ib, sp = o["interleaved"], o["in_bench"], o["separate"]
        print(f"{key}: interleaved bare invoke p50 {il['bare_invoke_p50_ms']:.3f} ms vs harness {il['harness_p50_ms']:.3f} ms "
              f"({il['overhead_pct']:+.2f} %); in device.bench {ib['invoke_p50_ms']:.3f} vs {ib['network_p50_ms']:.3f} ms "
              f"({ib['overhead_pct']:+.2f} %); separate processes {sp['raw_invoke_p50_ms']:.3f} vs "
              f"{sp['bench_network_p50_ms']:.3f} ms ({sp['overhead_pct']:+.2f} %); numpy front end p50 "
              f"{o['frontend_numpy_p50_ms']:.3f} ms")
    lv = results["live"]
    print(f"hop 0.1 s: streaming front end p50 {lv['frontend_streaming_p50_ms']:.3f} ms vs per-window "
          f"{lv['frontend_per_window_p50_ms']:.3f} ms ({100 * lv['streaming_frontend_ratio']:.0f} %); device.listen window "
          f"p50 {lv['listen_window_p50_ms']:.3f} ms = {lv['listen_compute_ratio']:.3f} x (bare invoke + streaming front end "
          f"{lv['bare_invoke_plus_streaming_p50_ms']:.3f} ms, interleaved); on the file: compute p50 "
          f"{lv['listen_file_compute_p50_ms']:.3f} ms, real-time factor {lv['listen_real_time_factor']:.4f}")
    for key, b in lv["batching"].items():
        print(f"offline {key}: {b['batch_1_windows_per_s']:.0f} windows/s at batch 1, "
              f"{b['batch_windows_per_s'] or float('nan'):.0f} at batch {b['batch']} (x{b['speedup'] or float('nan'):.2f})")
    m = results["memory"]
    print(f"peak RSS {m['peak_rss_mb']:.1f} MB for {m['model']} + {m['classifier']} on {m['audio_files']} files "
          f"(+{m['load_increase_mb']:.1f} load, +{m['run_increase_mb']:.1f} run)")
    print(f"targets: {results['targets']}  -> {out}")
    return 0 if all(results["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
