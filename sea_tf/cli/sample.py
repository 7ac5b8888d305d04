"""``sea-tf sample``: choose the teacher rows φ is fitted on (random, loudness, dpp, dpp-quality)."""
import argparse
from pathlib import Path

from sea_tf.cli.common import Subparsers, add_command
from sea_tf.config import Config


EPILOG = """
Writes OUT/sample.npz (index: sorted global row numbers of the shard table) and OUT/card.json.
Groups: 'source' (one per file), 'window' (blocks of --group-rows consecutive rows, a time window
in recording order), 'all'; or 'sensor-day' / 'sensor-week' / 'sensor-month': one stream per sensor
and timeframe with ceil(ceil(M / sensors) / timeframes) rows each, timeframes with fewer rows dropped
(docs/PROTOCOL.md §3.1; sensors from shards embedded with --sensor-manifest, or from --sensor-manifest).
Loudness is ranked within a group (--quality rms-group) or, as published, the A-weighted level within
the sensor's 2-hour slot of --timezone local time (--quality dba-slot); DPPs are solved per group
(--dpp-solver exact: the paper's stated k-DPP sample; mcmc: the published code's approximation,
--mcmc-iterations chain states from a uniform start re-seeded for every group, as that code did). A group whose k-DPP tables would exceed
--max-kdpp-mb is refused before anything is allocated: use smaller groups.

examples:
  sea-tf sample --shards shards/ --m 500000 --strategy dpp-quality --out sample/
  sea-tf sample --shards shards_a/ --shards shards_b/ --m 2000 --strategy random --seed 1
  sea-tf sample --shards shards/ --m 500000 --strategy dpp-quality --group-by sensor-day --out sample/
"""


def register(subparsers: Subparsers) -> None:
    from sea_tf.sampling import DPP_SOLVERS, GROUP_BY, KERNELS, QUALITIES, STRATEGIES

    parser, opts = add_command(subparsers, "sample", "choose M teacher rows to fit the reduction on", "sampling", run)
    parser.epilog = EPILOG
    opts.add("--shards", key="shards", action="append", metavar="DIR", help="teacher-shard directories (--shards A B or --shards A --shards B)")
    opts.add("--out", key="out", metavar="DIR", help="output directory")
    opts.add("--m", key="m", type=int, metavar="M", help="number of rows to pick")
    opts.add("--strategy", key="strategy", choices=STRATEGIES, help="sampling strategy")
    opts.add("--seed", key="seed", type=int, help="random seed")
    opts.add("--group-by", key="group_by", choices=GROUP_BY, help="grouping of rows")
    opts.add("--group-rows", key="group_rows", type=int, metavar="N", help="rows per 'window' group")
    opts.add("--sensor-manifest", key="sensor_manifest", metavar="CSV",
             help="sensor-* groupings: CSV file,sensor_id,timestamp instead of the shards' sensor columns")
    opts.add("--dpp-solver", key="dpp_solver", choices=DPP_SOLVERS,
             help="exact: draw a k-DPP sample exactly (the paper's stated method); mcmc: the published code's "
                  "approximation (DPPy's k-DPP MCMC, swaps from a uniform start); greedy-map: its approximate mode")
    opts.add("--mcmc-iterations", key="mcmc_iterations", type=int, metavar="N",
             help="mcmc: chain states, the start included (DPPy's nb_iter; the published code ran 3)")
    opts.add("--max-kdpp-mb", key="max_kdpp_mb", type=float, metavar="MB",
             help="refuse a group whose k-DPP tables would exceed this many MiB (before allocating)")
    opts.add("--dpp-kernel", key="dpp_kernel", choices=KERNELS,
             help="published: L1-normalised rows; cosine: L2-normalised rows")
    opts.add("--quality", key="quality", choices=QUALITIES,
             help="q of loudness/dpp-quality: rms-group (RMS level ranked within the group) or dba-slot (the "
                  "published: A-weighted level ranked per sensor and 2-hour slot of local time)")
    opts.add("--timezone", key="timezone", metavar="ZONE",
             help="IANA time zone of the sensors (dba-slot's slots, sensor-* days), e.g. America/New_York")
    opts.add("--allow-partial", key="allow_partial", action="store_true",
             help="read shard directories whose split run lacks some jobs (`sea-tf teacher-embed --status`)")
    opts.add("--no-progress", key="progress", action="store_false", help="hide the progress bar")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from sea_tf.sampling import sample

    index, card = sample(cfg)
    out = Path(cfg["out"])
    print(f"sample: {len(index)} of {card['teacher_shards']['n_rows']} rows by {cfg['strategy']} "
          f"({card['n_groups']} groups) -> {out / 'sample.npz'}")
    if card.get("dropped"):
        print(f"{len(card['dropped'])} (sensor, timeframe) stream(s) dropped: fewer rows than their share")
    return 0
