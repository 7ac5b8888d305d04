"""Run ids: the name of one ``sea-tf device run`` directory, ``OUT/<user@host>/<run-id>/``.

Two stages read them: the device runner (:mod:`sea_tf.remote`) makes one per invocation, and the
report (:mod:`sea_tf.report`) keeps only each host's latest run. They live here, below both, so that
the report never imports the SSH code.
"""
import datetime
import re
import secrets

#: a run directory's name, ``OUT/<user@host>/<run-id>/``: UTC time (sorts in run order) + random
RUN_ID_RE = re.compile(r"\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{6}")


def new_run_id() -> str:
    """A fresh run id: ``YYYYMMDDTHHMMSS.ffffffZ-xxxxxx`` (UTC; sorts in time order; see :data:`RUN_ID_RE`)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S.%fZ") + "-" + secrets.token_hex(3)
