"""Support for the weights tests: small synthetic weight files in the published openl3 layouts,
a local HTTP server and a ``models``-only CLI runner (used by ``tests/test_weights*.py``).

The openl3 teacher weights are not available to this project (docs/PROTOCOL.md §2.2), so tests write
files with the same groups, attributes and shapes (docs/PROTOCOL.md §1.4): a weights-only Keras 2 file
with a root ``layer_names`` and per-layer ``weight_names``; the v0_2_0 generation has a leading
kapre ``spectrogram_1``/``melspectrogram_1`` group holding the DFT kernels (and filterbank).
Values are seeded random numbers, so two seeds give two different files of the same layout.
"""
import base64
import gzip
import http.server
import threading
import time

import h5py
import numpy as np
import pytest

TEACHER_FILTERS = (64, 128, 256, 512)
FRONTENDS = {"linear": (512, None), "mel128": (2048, 128), "mel256": (2048, 256)}


def _dft_kernels(n_dft):
    """kapre-0.1.4 kernels: periodic-Hann-windowed DFT, (n_dft, 1, 1, n_dft//2+1) each (docs/PROTOCOL.md §2.3)."""
    n = np.arange(n_dft)[:, None]
    k = np.arange(n_dft // 2 + 1)[None, :]
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_dft) / n_dft))[:, None]
    real = np.cos(2 * np.pi * k * n / n_dft) * window
    imag = -np.sin(2 * np.pi * k * n / n_dft) * window
    return real.astype(np.float32)[:, None, None, :], imag.astype(np.float32)[:, None, None, :]


def teacher_layers(rng):
    """``[(group, [(weight, array)])]`` of the L3 audio body in Keras auto-names, in order; 16 weighted."""
    def bn(width):
        return [("gamma:0", 1 + 0.1 * rng.standard_normal(width)), ("beta:0", 0.1 * rng.standard_normal(width)),
                ("moving_mean:0", rng.standard_normal(width)), ("moving_variance:0", 0.5 + rng.random(width))]
    layers = [("input_1", []), ("batch_normalization_1", bn(1))]
    in_ch, conv, norm, act, pool = 1, 0, 1, 0, 0
    for block, width in enumerate(TEACHER_FILTERS):
        for position in range(2):
            last = block == 3 and position == 1
            conv += 1
            name = "audio_embedding_layer" if last else f"conv2d_{conv}"
            kernel = rng.standard_normal((3, 3, in_ch, width)) * np.sqrt(2.0 / (9 * in_ch))
            layers.append((name, [("kernel:0", kernel), ("bias:0", 0.01 * rng.standard_normal(width))]))
            in_ch = width
            if last:
                break
            norm += 1
            act += 1
            layers += [(f"batch_normalization_{norm}", bn(width)), (f"activation_{act}", [])]
        if block < 3:
            pool += 1
            layers.append((f"max_pooling2d_{pool}", []))
    return layers


def write_openl3(path, input_repr="mel256", version="v0_4_0", seed=0):
    """Write a synthetic openl3 audio weight file in the published weights-only layout; returns ``path``."""
    rng = np.random.default_rng(seed)
    layers = teacher_layers(rng)
    if version == "v0_2_0":
        n_dft, n_mels = FRONTENDS[input_repr]
        real, imag = _dft_kernels(n_dft)
        weights = [("real_kernels:0", real), ("imag_kernels:0", imag)]
        name = "spectrogram_1"
        if n_mels:
            name = "melspectrogram_1"
            weights.append(("Variable:0", rng.random((n_dft // 2 + 1, n_mels))))
        layers.insert(1, (name, weights))
    with h5py.File(path, "w") as handle:
        handle.attrs["layer_names"] = np.array([name.encode() for name, _ in layers])
        handle.attrs["backend"] = b"tensorflow"
        handle.attrs["keras_version"] = b"2.2.4"
        for name, weights in layers:
            group = handle.create_group(name)
            group.attrs["weight_names"] = np.array([f"{name}/{w}".encode() for w, _ in weights])
            for weight, value in weights:
                group.create_dataset(f"{name}/{weight}", data=np.asarray(value, dtype=np.float32))
    return path


def first_kernel(path):
    """``conv2d_1/kernel:0`` of a weights-only openl3 file, to compare with a loaded model."""
    with h5py.File(path, "r") as handle:
        return np.asarray(handle["conv2d_1"]["conv2d_1"]["kernel:0"])


def gzip_bytes(path):
    """The bytes of ``path``, gzipped as on the ``models`` branches (fast level: the tests need speed)."""
    with open(path, "rb") as fh:
        return gzip.compress(fh.read(), compresslevel=1)


class FileServer:
    """An HTTP server on 127.0.0.1 serving byte strings, with misbehaviours for the failure tests.

    ``routes[name] = (data, mode)``; ``mode`` is ``"ok"``, ``"truncate"`` (announces the whole
    length, sends half, closes), ``"truncate-nolength"`` (sends half without a length),
    ``"404"``, ``"500-once"`` (HTTP 500 on the first request, then the data), ``"endless"`` (no
    length; ``data`` over and over, up to 256 MiB, until the client hangs up) or ``"drip"`` (the
    whole length announced, then one byte every 50 ms: never silent long enough for a read timeout).
    ``hits[name]`` counts requests; with ``credentials = (user, password)`` set, a request
    without that HTTP basic authorization gets 401.
    """

    def __init__(self):
        self.routes = {}
        self.hits = {}
        self.credentials = None
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                name = self.path.split("?", 1)[0].rsplit("/", 1)[-1]
                server.hits[name] = server.hits.get(name, 0) + 1
                if server.credentials is not None:
                    token = base64.b64encode(":".join(server.credentials).encode()).decode()
                    if self.headers.get("Authorization") != f"Basic {token}":
                        self.send_error(401)
                        return
                data, mode = server.routes.get(name, (b"", "404"))
                if mode in ("endless", "drip"):
                    self._stream(data, mode)
                    return
                if mode == "404" or (mode == "500-once" and server.hits[name] == 1):
                    self.send_error(404 if mode == "404" else 500)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/gzip")
                if mode != "truncate-nolength":
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if mode.startswith("truncate"):
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

            def _stream(self, data, mode):
                self.send_response(200)
                self.send_header("Content-Type", "application/gzip")
                if mode == "drip":
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    if mode == "drip":
                        for i in range(len(data)):
                            self.wfile.write(data[i:i + 1])
                            self.wfile.flush()
                            time.sleep(0.05)
                    else:
                        for _ in range(256 * 2**20 // max(1, len(data))):
                            self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading: what the caps are for
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/weights"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def run_cli(argv):
    """``sea-tf ARGV`` with only the ``models`` command registered, so other stages' CLIs cannot
    break the weights tests; returns the exit code."""
    from sea_tf.cli import main as cli_main
    saved = cli_main.COMMAND_MODULES
    cli_main.COMMAND_MODULES = ["models"]
    try:
        return cli_main.main(argv)
    finally:
        cli_main.COMMAND_MODULES = saved


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty weights cache: ``SEA_TF_HOME`` in ``tmp_path`` and no catalogue URL override."""
    monkeypatch.setenv("SEA_TF_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SEA_TF_WEIGHTS_URL", raising=False)
    return tmp_path / "home"
