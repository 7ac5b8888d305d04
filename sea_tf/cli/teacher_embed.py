"""``sea-tf teacher-embed``: teacher embeddings + student-rate windows of in-domain audio, in shards."""
import argparse
from pathlib import Path

from sea_tf.cli.common import Subparsers, add_command
from sea_tf.config import Config


EPILOG = """
Writes OUT/shard-<K>of<N>-<nnnnn>.h5 (embedding, audio at the student rate, timestamp, loudness_db, dBA,
source, label, fold; with --sensor-manifest also sensor_id and recording_time, for
`sea-tf sample --group-by sensor-day`), OUT/manifest-<K>of<N>.json and OUT/summary-<K>of<N>.json.
Re-running the same command after a crash or Ctrl-C resumes; a directory made with another teacher
or settings (a different sensor manifest included) is refused.
In a SLURM array (configs/slurm/) task K is job K of N: K = SLURM_ARRAY_TASK_ID (arrays are
indexed 0..N-1), N = --shard-count, else the N of the manifests already in OUT, else the size of a
whole array. A task resubmitted alone (sbatch --array=5 ...) therefore resumes job 5 of N.
Unreadable files are recorded as failed with their kind: transient (I/O, a mount not up, a
timeout), retried by every re-run of a finished job, or permanent (malformed), retried only with
--retry-failed.
--status OUT lists every job as done / partial / missing, and every failed file; exit status 0
when all are done, 1 when some are partial (unfinished, or with failed files) or missing, 2 on an
error (e.g. manifests of two array sizes).

examples:
  sea-tf teacher-embed --input ~/sonyc/audio --out shards/ --teacher openl3/mel256-env
  sea-tf teacher-embed --input ~/UrbanSound8K --out us8k_shards/ --shard 3/8
  sea-tf teacher-embed --config configs/teacher/sonyc-upstream.yaml --input files.txt --out shards/
  sea-tf teacher-embed --input ~/sonyc/audio --sensor-manifest sensors.csv --out shards/
  sea-tf teacher-embed --input files.txt --out shards/ --shard-count 16   # in a SLURM array task
  sea-tf teacher-embed --status shards/
"""


def register(subparsers: Subparsers) -> None:
    from sea_tf.audio import RESAMPLERS

    parser, opts = add_command(subparsers, "teacher-embed",
                               "embed 1-s windows of audio with the teacher; write resumable shards", "teacher", run)
    parser.epilog = EPILOG
    opts.add("--input", key="input", metavar="PATH", help="audio directory, .txt file list or UrbanSound8K root")
    opts.add("--out", key="out", metavar="DIR", help="output directory (shared by all jobs)")
    opts.add("--teacher", key="teacher", metavar="SPEC", help="teacher model: catalogue name, preset, .h5 or .keras")
    opts.add("--hop-size", key="hop_size", type=float, metavar="S", help="seconds between windows")
    opts.add("--no-centering", key="center", action="store_false",
             help="start window k at k*hop instead of centring it on k*hop (as sea-tf embed --no-centering)")
    opts.alias("--no-center", key="center", action="store_false")
    opts.add("--student-sample-rate", key="student_sample_rate", type=int, metavar="HZ",
             help="sample rate (Hz) of the student-rate audio window stored beside each teacher embedding")
    opts.alias("--student-sr", key="student_sample_rate", type=int)
    opts.add("--resampler", key="resampler", choices=RESAMPLERS,
             help="resampler for both rates: soxr-hq (also on the board) or resampy (optional extra)")
    opts.add("--shard-rows", key="shard_rows", type=int, metavar="N", help="rows per shard file")
    opts.add("--batch-size", key="batch_size", type=int, metavar="N", help="windows per teacher forward pass")
    opts.add("--shard", key="shard", metavar="K/N", help="run job K of N (else K = SLURM_ARRAY_TASK_ID, else 0/1)")
    opts.add("--shard-count", key="shard_count", type=int, metavar="N",
             help="N of a SLURM array run: task K is job K of N, also when resubmitted alone")
    parser.add_argument("--status", metavar="OUT",
                        help="list every job of the run in OUT as done/partial/missing and exit (0: all done)")
    opts.add("--limit-files", key="limit_files", type=int, metavar="N", help="only the first N files (quick runs)")
    opts.add("--sensor-manifest", key="sensor_manifest", metavar="CSV",
             help="CSV file,sensor_id,timestamp naming every input file: rows record sensor and recording time")
    opts.add("--decode-workers", key="decode_workers", type=int, metavar="N",
             help="threads decoding/resampling ahead of inference")
    opts.add("--read-retries", key="read_retries", type=int, metavar="N",
             help="retries of a transient read error (NFS, a mount not up) per file before it is recorded as failed")
    opts.add("--retry-failed", key="retry_failed", action="store_true",
             help="a re-run retries permanently failed (malformed) files too; transient failures always are")
    opts.add("--no-progress", key="progress", action="store_false", help="hide the progress bar")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from sea_tf.teacher import extract

    if args.status is not None:
        return status(args.status, shard_count=cfg["shard_count"])
    out = Path(cfg["out"])
    summary = extract(cfg)
    if summary.get("already_complete"):  # extract() printed the one line saying so; nothing is rewritten
        return 0
    print(f"teacher-embed {summary['job']}: {summary['n_rows']} rows in {summary['n_shards']} shards in {out} "
          f"({summary['windows_per_s']} windows/s, CPU {summary['cpu_utilisation']})")
    if summary["failed"]:
        print(f"{len(summary['failed'])} unreadable file(s) skipped (a re-run of this command retries the "
              "transient ones; --retry-failed also the permanent ones):")
        for item in summary["failed"]:
            print(f"  {item['source']} ({item['kind']}): {item['error']}")
    return 0


def status(out: Path | str, *, shard_count: int | None = None) -> int:
    """``--status OUT``: print the job table; 0 when every job is done, 1 otherwise."""
    from sea_tf.teacher import STATUS_DONE, STATUS_UNFINISHED, array_status, format_status

    table = array_status(out, shard_count=shard_count)
    print(format_status(out, table))
    return STATUS_DONE if all(job.state == "done" for job in table) else STATUS_UNFINISHED
