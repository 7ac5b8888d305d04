"""Sampling (docs/PROTOCOL.md §3.1): choose the M teacher rows φ is fitted on — random, loudness,
k-DPP diversity, k-DPP quality×diversity.

Candidates are the rows of a :class:`~sea_tf.shards.ShardSet`, split into groups (per source file,
per window of rows, one group) or into the published per-sensor streams; each group receives a share
of M and is sampled on its own.

The entry point is :func:`sample` (``sea-tf sample``: the resolved ``sampling`` config in, the sample
index and card out). Read top to bottom: :mod:`groups` (contiguous groups, loudness ranks, shares of M) →
:mod:`kdpp` (kernels, the exact k-DPP sampler, the published MCMC approximation, the greedy MAP and the memory
bound; pure numpy) → :mod:`choose`
(:func:`select`: one strategy over the groups) → :mod:`quality` (the published quality score: A-weighted
level ranked per sensor and 2-hour slot of local time) → :mod:`streams` (per-sensor, per-timeframe streams
from a sensor manifest, :mod:`sea_tf.sensors`) → :mod:`select_shards` (``sea-tf sample``: read the
shards, choose, write ``sample.npz`` + card: :func:`sample`, and :func:`sample_shards` from explicit
arguments; :func:`load_sample` reads it back).

    from sea_tf import config
    from sea_tf.sampling import sample, load_sample
    index, card = sample(config.load("sampling", shards=["shards/"], out="sample/", m=1024))
"""
from sea_tf.sampling.choose import STRATEGIES, select
from sea_tf.sampling.groups import GROUP_BY, allocate, group_bounds, loudness_rank, weighted_without_replacement
from sea_tf.sampling.kdpp import (DPP_SOLVERS, KERNELS, check_dpp_options, check_kdpp_memory, diversity,
                                  greedy_map_kdpp, kdpp_bytes, kernel_rows, mcmc_kdpp, sample_kdpp)
from sea_tf.sampling.quality import QUALITIES, check_quality_options, dba_slot_quality, local_slots, slot_rank
from sea_tf.sampling.select_shards import load_sample, sample, sample_shards
from sea_tf.sampling.streams import STREAM_TIMEFRAMES, plan_streams, sample_streams, stream_keys, timeframes

__all__ = [
    "sample",
    "DPP_SOLVERS", "GROUP_BY", "KERNELS", "QUALITIES", "STRATEGIES", "STREAM_TIMEFRAMES",
    "check_quality_options", "dba_slot_quality", "local_slots", "slot_rank",
    "allocate", "check_dpp_options", "check_kdpp_memory", "diversity", "greedy_map_kdpp", "group_bounds",
    "kdpp_bytes", "kernel_rows", "load_sample", "loudness_rank", "mcmc_kdpp", "plan_streams", "sample_kdpp", "sample_shards", "sample_streams",
    "select", "stream_keys", "timeframes", "weighted_without_replacement",
]
