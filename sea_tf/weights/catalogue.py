"""The published openl3 / edgel3 weight files sea-tf can fetch, and the names users type for them.

Names:

- ``openl3/<repr>-<content>`` (``repr`` ∈ linear, mel128, mel256; ``content`` ∈ music, env): the
  openl3 0.4.x audio files (``-v0_4_0``, front end removed from the file);
  ``openl3/<repr>-<content>@v0_2_0``: the files openl3 0.2.0–0.3.1 used, which still hold the
  kapre-0.1.4 front-end weights (docs/PROTOCOL.md §1.4). ``@v0_4_0`` is accepted as an alias.
- ``edgel3/sea-<d>`` (d ∈ 64, 128, 256, 512): the SEA students (8 kHz, UST-specialised).
- ``edgel3/sparse-<ft|kd>-<s>``: the pruned EdgeL3 models (docs/PROTOCOL.md §2.4).

Each entry knows its file on the repository's ``models`` branch (``<file>.gz``), the architecture
kind that :func:`sea_tf.models.h5_weights.check_layout` checks it against, and a sha256 of the
unpacked file where one is known.
"""
import dataclasses
import difflib
import fnmatch
import os
from collections.abc import Iterable

from sea_tf.errors import WeightsError

#: Raw-file addresses of the repositories' ``models`` branches.
DEFAULT_BASE_URLS = {
    "openl3": "https://raw.githubusercontent.com/marl/openl3/models/",
    "edgel3": "https://raw.githubusercontent.com/ksangeeta2429/edgel3/models/",
}
#: Environment variable naming one base address (a mirror, or a test server) for every file.
BASE_URL_ENV = "SEA_TF_WEIGHTS_URL"

OPENL3_REPRS = ("linear", "mel128", "mel256")
OPENL3_CONTENTS = {"music": "music videos", "env": "environmental videos"}
OPENL3_VERSIONS = ("v0_4_0", "v0_2_0")
SEA_DIMS = (64, 128, 256, 512)
SPARSE_RETRAIN = {"ft": "fine-tuned", "kd": "knowledge-distilled"}
#: Sparsities edgel3's setup.py downloads and its API accepts.
SPARSITIES = ("53.5", "63.5", "72.3", "87.0", "95.45")
#: Sparsities that are only on the edgel3 ``models`` branch (edgel3's API rejects them).
EXTRA_SPARSITIES = ("73.5", "81.0", "90.5")

#: sha256 of unpacked files, where known (SEA-64: edgel3's models branch file, unpacked).
KNOWN_SHA256 = {
    "edgel3_sea_ust_audio_emb_64.h5": "e8cd0eaac5d444c231d81940e30dc904ffed5cdafa632f7a5547142dc8283912",
}


@dataclasses.dataclass(frozen=True)
class WeightEntry:
    """One published weight file.

    Attributes
    ----------
    name : str
        Canonical name users type, e.g. ``"openl3/mel256-env"``.
    repository : str
        ``"openl3"`` or ``"edgel3"``; picks the default base address.
    filename : str
        Unpacked file name (the download is ``filename + ".gz"``), also its name in the cache.
    kind : str
        Architecture the file must match: ``"openl3-v0_4_0"``, ``"openl3-v0_2_0"``,
        ``"edgel3-sea"`` or ``"edgel3-sparse"``.
    input_repr : str or None
        Teacher front end (``linear|mel128|mel256``); None for SEA students.
    embedding_size : int or None
        Output size fixed by the file (SEA: d, sparse: 512); None for openl3, whose pooling head
        (512 or 6144) is added at load time.
    sample_rate : int
        Input rate in Hz (48000, or 8000 for SEA students).
    description : str
        What the file is, one line.
    sha256 : str or None
        Known sha256 of the unpacked file; None when only a hash recorded at first download exists.
    api_listed : bool
        False for files that exist on the ``models`` branch but that openl3/edgel3 never download.
    """
    name: str
    repository: str
    filename: str
    kind: str
    input_repr: str | None
    embedding_size: int | None
    sample_rate: int
    description: str
    sha256: str | None = None
    api_listed: bool = True

    def url(self, base_url: str | None = None) -> str:
        """Address of the ``.h5.gz`` download.

        Parameters
        ----------
        base_url : str, optional
            One base address holding every file side by side (a mirror or a test server).
            Default: ``$SEA_TF_WEIGHTS_URL``, else the repository's ``models`` branch.

        Returns
        -------
        str
        """
        base = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URLS[self.repository]
        return base.rstrip("/") + "/" + self.filename + ".gz"


def _build() -> dict[str, WeightEntry]:
    entries = []
    for version in OPENL3_VERSIONS:
        for input_repr in OPENL3_REPRS:
            for content, content_text in OPENL3_CONTENTS.items():
                name = f"openl3/{input_repr}-{content}" + ("" if version == "v0_4_0" else f"@{version}")
                if version == "v0_4_0":
                    text = "weights for openl3 0.4.x (front end not in the file)"
                else:
                    text = "weights for openl3 0.2.0-0.3.1, with the kapre-0.1.4 front end of the original teacher"
                entries.append(WeightEntry(
                    name=name, repository="openl3",
                    filename=f"openl3_audio_{input_repr}_{content}-{version}.h5",
                    kind=f"openl3-{version}", input_repr=input_repr, embedding_size=None,
                    sample_rate=48000,
                    description=f"OpenL3 audio teacher, {input_repr}, trained on AudioSet {content_text}; {text}"))
    for dim in SEA_DIMS:
        filename = f"edgel3_sea_ust_audio_emb_{dim}.h5"
        entries.append(WeightEntry(
            name=f"edgel3/sea-{dim}", repository="edgel3", filename=filename, kind="edgel3-sea",
            input_repr=None, embedding_size=dim, sample_rate=8000,
            description=f"SEA student, {dim}-d, 8 kHz, specialised on SONYC-UST urban audio (edgel3 model_type='sea')",
            sha256=KNOWN_SHA256.get(filename)))
    for retrain, retrain_text in SPARSE_RETRAIN.items():
        for sparsity in SPARSITIES + EXTRA_SPARSITIES:
            listed = sparsity in SPARSITIES
            note = "" if listed else "; on the models branch only, edgel3's API does not offer it"
            if sparsity == "95.45":
                note = " ('EdgeL3')" + note
            entries.append(WeightEntry(
                name=f"edgel3/sparse-{retrain}-{sparsity}", repository="edgel3",
                filename=f"edgel3_{retrain}_audio_sparsity_{sparsity}.h5", kind="edgel3-sparse",
                input_repr="mel256", embedding_size=512, sample_rate=48000,
                description=f"pruned L3 audio net, {sparsity}% sparse, {retrain_text}{note}",
                api_listed=listed))
    return {entry.name: entry for entry in entries}


#: Every published file, keyed by canonical name, in display order.
CATALOGUE = _build()
_ALIASES = {name.split("@")[0] + "@v0_4_0": name for name in CATALOGUE if name.startswith("openl3/") and "@" not in name}
_BY_FILENAME = {entry.filename: entry for entry in CATALOGUE.values()}


def is_catalogue_name(spec: object) -> bool:
    """True when ``spec`` is spelled like a catalogue name (``openl3/...`` or ``edgel3/...``).

    A model resolver uses this to route a ``--model`` value here rather than to a file path; an
    existing file of that relative path still wins, so check ``Path(spec).exists()`` first.
    """
    return isinstance(spec, str) and spec.split("/", 1)[0] in DEFAULT_BASE_URLS and "/" in spec


def lookup(name: str) -> WeightEntry:
    """The catalogue entry for ``name`` (canonical name or alias).

    Parameters
    ----------
    name : str
        E.g. ``"openl3/mel256-env"``, ``"openl3/mel256-env@v0_2_0"``, ``"edgel3/sea-64"``.

    Returns
    -------
    WeightEntry

    Raises
    ------
    WeightsError
        Unknown name; the message suggests the closest names.
    """
    name = str(name).strip()
    name = _ALIASES.get(name, name)
    if name in CATALOGUE:
        return CATALOGUE[name]
    close = difflib.get_close_matches(name, list(CATALOGUE), n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise WeightsError(f"unknown published model '{name}'; {hint}`sea-tf models list` shows every name")


def select(patterns: Iterable[str]) -> list[WeightEntry]:
    """Entries matching names or shell-style patterns (``"edgel3/sea-*"``), in catalogue order.

    Raises
    ------
    WeightsError
        A pattern that matches nothing.
    """
    chosen: list[WeightEntry] = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            found = [entry for name, entry in CATALOGUE.items() if fnmatch.fnmatchcase(name, pattern)]
            if not found:
                raise WeightsError(f"'{pattern}' matches no published model; `sea-tf models list` shows every name")
        else:
            found = [lookup(pattern)]
        chosen.extend(entry for entry in found if entry not in chosen)
    return chosen


def by_filename(filename: str) -> WeightEntry | None:
    """The entry whose published file is called ``filename`` (``.h5`` or ``.h5.gz``), or None."""
    filename = filename[:-3] if filename.endswith(".gz") else filename
    return _BY_FILENAME.get(filename)
