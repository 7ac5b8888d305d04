"""``sea-tf models list|fetch|import|remove``: the published openl3/edgel3 weights and their cache."""
import argparse
import json
from typing import Any

from sea_tf.cli.common import Subparsers, add_command
from sea_tf.config import Config

_HOME_HELP = "sea-tf home holding weights/ ($SEA_TF_HOME, else the user cache directory)"


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "models", help="list, fetch and import the published openl3/edgel3 weights",
        description="The published openl3 teachers and edgel3 students, fetched on demand into a verified "
                    "local cache. `--model NAME` anywhere then loads them from the cache, never from the network.")
    actions = parser.add_subparsers(dest="models_action", metavar="ACTION")

    def print_help(cfg: Config, args: argparse.Namespace) -> int:  # `sea-tf models` without an action
        parser.print_help()
        return 2

    parser.set_defaults(_run=print_help, _defaults={}, _command="models", config=None, set_items=[], debug=False)

    p, opts = add_command(actions, "list", "show every published model, whether it is cached, its size and hash",
                          "models/list", run_list)
    p.set_defaults(_command="models list")
    opts.add("--home", key="home", help=_HOME_HELP)
    opts.add("--cached", key="cached_only", action="store_true", help="only the cached models")
    opts.add("--json", key="json", action="store_true", help="print JSON (full hashes and addresses)")

    p, opts = add_command(actions, "fetch", "download published weights into the cache (gunzip, verify sha256)",
                          "models/fetch", run_fetch,
                          description="Download published weights into the cache.\n\n"
                                      "NAME is a catalogue name (`sea-tf models list`) or a pattern such as "
                                      "'edgel3/sea-*'. The unpacked file must match the catalogue's sha256, or the "
                                      "one recorded at its first download, and the layers its name implies.")
    p.set_defaults(_command="models fetch")
    p.add_argument("names", nargs="+", metavar="NAME", help="e.g. openl3/mel256-env, edgel3/sea-64")
    opts.add("--home", key="home", help=_HOME_HELP)
    opts.add("--base-url", key="base_url",
             help="one address holding every <file>.h5.gz (a mirror); None: $SEA_TF_WEIGHTS_URL, else the "
                  "repositories' models branches on GitHub")
    opts.add("--connect-timeout", key="timeout.connect", type=float, help="seconds to wait for a connection")
    opts.add("--read-timeout", key="timeout.read", type=float, help="seconds to wait for the next data")
    opts.add("--retries", key="retries", type=int, help="extra attempts after a timeout or a cut-off transfer")
    opts.add("--force", key="force", action="store_true", help="download again even when cached")
    opts.add("--no-progress", key="progress", action="store_false", help="hide the download progress bar")

    p, opts = add_command(actions, "import", "put a weight file obtained elsewhere into the cache, after checking it",
                          "models/import", run_import,
                          description="Import a published weight file copied from another machine (.h5 or .h5.gz), "
                                      "or every file of an installed openl3/edgel3 package, into the cache.\n\n"
                                      "The layers must match the architecture the name implies; a hash the "
                                      "catalogue knows must match.")
    p.set_defaults(_command="models import")
    p.add_argument("paths", nargs="*", metavar="PATH", help="weight files to import")
    opts.add("--home", key="home", help=_HOME_HELP)
    opts.add("--name", key="name", help="catalogue name of the file; None: guessed from its file name")
    opts.add("--from-package", key="from_package", choices=["openl3", "edgel3"],
             help="import the weight files an installed openl3 or edgel3 package ships")
    opts.add("--force", key="force", action="store_true",
             help="replace a cached copy whose recorded hash differs")

    p, opts = add_command(actions, "remove", "delete cached weights and their recorded hashes",
                          "models/remove", run_remove)
    p.set_defaults(_command="models remove")
    p.add_argument("names", nargs="+", metavar="NAME")
    opts.add("--home", key="home", help=_HOME_HELP)


def run_list(cfg: Config, args: argparse.Namespace) -> int:
    from sea_tf.weights import cache, catalogue
    from sea_tf.weights.fetch import redact
    registry = cache.read_registry(cfg["home"])
    rows: list[dict[str, Any]] = []
    for entry in catalogue.CATALOGUE.values():
        path = cache.weights_dir(cfg["home"]) / entry.filename
        cached = entry.name in registry and path.is_file()
        if cfg["cached_only"] and not cached:
            continue
        recorded = registry.get(entry.name, {})
        sha = entry.sha256 or recorded.get("sha256")
        rows.append({"name": entry.name, "cached": cached, "size": path.stat().st_size if cached else None,
                     "sha256": sha, "hash": "catalogue" if entry.sha256 else ("recorded" if sha else None),
                     "kind": entry.kind, "path": str(path) if cached else None, "url": redact(entry.url()),
                     "description": entry.description})
    if cfg["json"]:
        print(json.dumps({"cache": str(cache.weights_dir(cfg["home"])), "models": rows}, indent=2))
        return 0
    print(f"cache: {cache.weights_dir(cfg['home'])}")
    width = max(len(row["name"]) for row in rows) if rows else 10
    print(f"{'NAME':<{width}}  CACHED  {'SIZE':>8}  SHA256 (source)           DESCRIPTION")
    for row in rows:
        size = f"{row['size'] / 2**20:.1f}M" if row["size"] else "-"
        sha = f"{row['sha256'][:12]} ({row['hash']})" if row["sha256"] else "-"
        print(f"{row['name']:<{width}}  {'yes' if row['cached'] else 'no':<6}  {size:>8}  {sha:<24}  "
              f"{row['description']}")
    return 0


def run_fetch(cfg: Config, args: argparse.Namespace) -> int:
    from sea_tf.weights import catalogue
    from sea_tf.weights.fetch import fetch
    timeout = (float(cfg["timeout"]["connect"]), float(cfg["timeout"]["read"]))
    for entry in catalogue.select(args.names):
        result = fetch(entry.name, home=cfg["home"], base_url=cfg["base_url"], force=cfg["force"],
                       timeout=timeout, retries=int(cfg["retries"]), progress=cfg["progress"],
                       max_unpacked_mb=cfg["max_unpacked_mb"], max_download_mb=float(cfg["max_download_mb"]),
                       total_timeout=float(cfg["timeout"]["total"]))
        print(f"{result.name}: {result.status} {result.path} ({result.size / 2**20:.1f} MB, "
              f"sha256 {result.sha256[:16]}... {_HASH_WORDS[result.hash_source]})")
    return 0


_HASH_WORDS = {"catalogue": "matches the catalogue", "recorded": "matches the recorded hash",
               "new": "recorded at this first download", "none": "not verified"}


def run_import(cfg: Config, args: argparse.Namespace) -> int:
    from sea_tf.errors import WeightsError
    from sea_tf.weights import importer
    if cfg["from_package"]:
        if args.paths or cfg["name"]:
            raise WeightsError("--from-package imports a whole package; give no PATH or --name with it")
        results = importer.import_from_package(cfg["from_package"], home=cfg["home"], force=cfg["force"],
                                               max_unpacked_mb=cfg["max_unpacked_mb"])
    else:
        if not args.paths:
            raise WeightsError("give a PATH to import, or --from-package openl3|edgel3")
        if cfg["name"] and len(args.paths) > 1:
            raise WeightsError("--name applies to one PATH; import the files one at a time")
        results = [importer.import_file(path, name=cfg["name"], home=cfg["home"], force=cfg["force"],
                                        max_unpacked_mb=cfg["max_unpacked_mb"]) for path in args.paths]
    for result in results:
        print(f"{result.name}: {result.status} {result.source} -> {result.path} (sha256 {result.sha256[:16]}...)")
    return 0


def run_remove(cfg: Config, args: argparse.Namespace) -> int:
    from sea_tf.weights import cache, catalogue
    for entry in catalogue.select(args.names):
        removed = cache.forget(entry.name, home=cfg["home"])
        print(f"{entry.name}: {'removed' if removed else 'was not cached'}")
    return 0
