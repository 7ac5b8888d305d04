"""Audio input and openl3/edgel3 framing: read → mono → resample (soxr) → 1-s windows.

The framing reproduces ``openl3.core._preprocess_audio_batch`` (and edgel3, which is the same
apart from the sample rate; docs/PROTOCOL.md §1.3): with ``center=True`` half a window of zeros is
prepended so that timestamp ``k * hop_size`` is the centre of window ``k``; the end is zero-padded
to a whole number of hops; audio shorter than a window is padded to one window with a warning.

Read top to bottom: :mod:`checks` (sample rate, hop size, the array) → :mod:`files` (header
checks, whole files read in bounded blocks, downmix, input lists) → :mod:`resampling` (soxr HQ or
resampy, a whole signal) → :mod:`framing` (1-s windows, whole or pushed block by block; loudness)
→ :mod:`weighting` (the A-weighted level of a window, IEC 61672) → :mod:`reading` (one file as mono blocks, transient errors retried) → :mod:`streaming` (read,
resample and frame a file or array in blocks, memory flat in its length).

    from sea_tf.audio import load_audio, prepare_frames, stream_windows
    frames, timestamps = prepare_frames(*load_audio("rec.wav"), 8000, hop_size=0.5)
    for block in stream_windows("rec.wav", [48000, 8000], hop_size=0.5):
        teacher_windows, student_windows = block.frames
"""
from sea_tf.audio.checks import check_audio, check_hop_size, check_sample_rate
from sea_tf.audio.files import (AUDIO_EXTENSIONS, MAX_FILE_SAMPLE_RATE, MIN_FILE_SAMPLE_RATE, READ_BLOCK_FRAMES,
                                check_file_header, find_audio_files, load_audio, read_block_frames, to_mono)
from sea_tf.audio.resampling import RESAMPLERS, resample
from sea_tf.audio.framing import (LOUDNESS_FLOOR_DB, WindowFramer, frame_audio, n_frames, prepare_frames,
                                  window_loudness_db)
from sea_tf.audio.weighting import a_weighting_db, window_dba
from sea_tf.audio.reading import TransientAudioError, read_mono_blocks
from sea_tf.audio.streaming import WindowBlock, stream_array_windows, stream_windows

__all__ = [
    "check_sample_rate", "check_hop_size", "check_audio",
    "AUDIO_EXTENSIONS", "MIN_FILE_SAMPLE_RATE", "MAX_FILE_SAMPLE_RATE", "READ_BLOCK_FRAMES", "check_file_header",
    "read_block_frames", "load_audio", "to_mono", "find_audio_files",
    "RESAMPLERS", "resample",
    "LOUDNESS_FLOOR_DB", "n_frames", "frame_audio", "prepare_frames", "window_loudness_db", "WindowFramer",
    "a_weighting_db", "window_dba",
    "TransientAudioError", "read_mono_blocks",
    "WindowBlock", "stream_windows", "stream_array_windows",
]
