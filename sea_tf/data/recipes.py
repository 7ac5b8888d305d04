"""Sound recipes for the 10 UrbanSound8K classes and for city-like backgrounds.

Each class has two functions: ``draw_source(rng) -> dict`` picks what one sound *source* is like
(a horn's pitch, an engine's firing rate, a siren's pattern: shared by every slice cut from that
source, like the slices of one Freesound recording), and ``render(rng, sr, n, source) -> [n]``
synthesises one slice of it with fresh per-slice randomness (timing, jitter, exact pitch).

The recipes follow how the sounds are produced physically (harmonic stacks, FM sweeps, impulse
and AM trains, shaped noise, reverberant tails), so that classes are separable on spectral shape
and temporal structure, but overlap where the real ones do (engines, air conditioners, drills and
jackhammers are all machinery; sirens, horns and music are all harmonic).
"""
from collections.abc import Callable
from typing import Any

import numpy as np

from sea_tf.data.synth import (Signal, bandpass, colored_noise, control_rate, damped_modes, formant_gains,
                               harmonic_stack, normalise_rms, place, pulse_times, ramp_envelope, reverb,
                               smooth_random)

#: The parameters of one sound source (or background): numbers, flags and lists, drawn once.
Source = dict[str, Any]

# UrbanSound8K class names, indexed by classID (the official order).
US8K_CLASSES = [
    "air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling",
    "engine_idling", "gun_shot", "jackhammer", "siren", "street_music",
]

# Relative chance that a slice of this class runs the full 4 s (short events are often cut short);
# classes not listed have weight 1.
FULL_LENGTH_WEIGHT = {"car_horn": 0.5, "dog_bark": 0.6, "gun_shot": 0.2}

_VOWELS = [(730, 1090, 2440), (270, 2290, 3010), (530, 1840, 2480), (570, 840, 2410), (300, 870, 2240)]


def _u(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


# --- air_conditioner: broadband fan noise + blade-pass hum, slowly breathing -----------------------
def _ac_source(rng: np.random.Generator) -> Source:
    return {"hum_hz": _u(rng, 40, 130), "tilt": _u(rng, 0.6, 1.8), "cutoff_hz": _u(rng, 700, 5000),
            "hum_level": _u(rng, 0.05, 0.5), "am_hz": _u(rng, 0.2, 2.0), "am_depth": _u(rng, 0.0, 0.25)}


def _ac_render(rng: np.random.Generator, sr: int, n: int, s: Source) -> Signal:
    noise = normalise_rms(bandpass(colored_noise(rng, n, exponent=s["tilt"]), sr, low=30,
                                   high=s["cutoff_hz"] * _u(rng, 0.9, 1.1)))
    hum = normalise_rms(harmonic_stack(np.full(n, s["hum_hz"] * _u(rng, 0.98, 1.02)), sr, n_harmonics=6, rolloff=0.6,
                                       rng=rng))
    t = np.arange(n) / sr
    am = 1 + s["am_depth"] * np.sin(2 * np.pi * s["am_hz"] * t + _u(rng, 0, 6.3))
    return am * (noise + s["hum_level"] * hum)


# --- car_horn: two bright harmonic tones a third apart, honked 1-3 times ---------------------------
def _horn_source(rng: np.random.Generator) -> Source:
    return {"f0": _u(rng, 300, 520), "ratio": float(rng.choice([1.0, 1.2, 1.25, 1.33])),
            "n_harm": int(rng.integers(8, 20)), "rolloff": _u(rng, 0.65, 0.9), "rt60": _u(rng, 0.1, 0.6)}


def _horn_render(rng: np.random.Generator, sr: int, n: int, s: Source) -> Signal:
    dur = n / sr
    segments, t = [], _u(rng, 0, min(0.5, dur / 3))
    for _ in range(int(rng.integers(1, 4))):
        length = _u(rng, 0.15, 1.5)
        segments.append((t, t + length))
        t += length + _u(rng, 0.05, 0.5)
    env = ramp_envelope(n, sr, segments, attack_s=0.015, release_s=0.04)
    drift = 1 + 0.005 * smooth_random(rng, n, sr, 3)
    f0 = s["f0"] * _u(rng, 0.97, 1.03) * drift
    tone = harmonic_stack(f0, sr, n_harmonics=s["n_harm"], rolloff=s["rolloff"], rng=rng)
    if s["ratio"] > 1:
        tone += harmonic_stack(f0 * s["ratio"], sr, n_harmonics=s["n_harm"], rolloff=s["rolloff"], rng=rng)
    return reverb(env * tone, sr, rng, rt60_s=s["rt60"], wet=0.2)


# --- children_playing: several voices (glottal harmonic stacks through vowel formants) -------------
def _children_source(rng: np.random.Generator) -> Source:
    return {"n_voices": int(rng.integers(2, 6)), "f0": _u(rng, 220, 420), "syllable_hz": _u(rng, 2.5, 6),
            "babble": _u(rng, 0.1, 0.6), "rt60": _u(rng, 0.2, 0.8)}


def _children_render(rng: np.random.Generator, sr: int, n: int, s: Source) -> Signal:
    out = np.zeros(n)
    t = np.arange(n) / sr
    for _ in range(s["n_voices"]):
        f0 = s["f0"] * _u(rng, 0.8, 1.25) * (1 + 0.08 * smooth_random(rng, n, sr, 2))
        f0 = f0 * (1 + 0.02 * np.sin(2 * np.pi * _u(rng, 4, 7) * t))  # vibrato
        vowel = _VOWELS[int(rng.integers(len(_VOWELS)))]
        formants = [f * _u(rng, 1.1, 1.35) for f in vowel]  # children's shorter vocal tracts
        k = np.arange(1, 16)[:, None]
        amps = control_rate(formant_gains(k * f0[None, ::64], formants, [90, 120, 160]) * (0.9 ** k), n)
        voice = harmonic_stack(f0, sr, n_harmonics=15, amplitudes=amps, rng=rng)
        syllables = np.clip(np.sin(2 * np.pi * s["syllable_hz"] * _u(rng, 0.8, 1.2) * t + _u(rng, 0, 6.3)), 0, 1)
        gate = (smooth_random(rng, n, sr, 1.5) > -0.3).astype(float)
        out += _u(rng, 0.4, 1.0) * normalise_rms(voice) * syllables * gate
    babble = normalise_rms(bandpass(colored_noise(rng, n, exponent=1.0), sr, low=300, high=3500)) * s["babble"]
    return reverb(out + babble, sr, rng, rt60_s=s["rt60"], wet=0.3)


# --- dog_bark: short chevron-pitched, rough harmonic bursts with a room tail ----------------------
def _dog_source(rng: np.random.Generator) -> Source:
    size = _u(rng, 0, 1)  # bigger dogs bark lower and longer
    return {"f0": 900 - 550 * size, "bark_s": 0.08 + 0.17 * size, "formant_hz": _u(rng, 800, 2500),
            "roughness": _u(rng, 0.2, 0.8), "rt60": _u(rng, 0.2, 1.0), "interval_s": _u(rng, 0.25, 0.8)}


def _dog_render(rng: np.random.Generator, sr: int, n: int, s: Source) -> Signal:
    out = np.zeros(n)
    dur = n / sr
    t0 = _u(rng, 0, min(0.4, dur / 2))
    first = True
    while t0 < dur:
        length = s["bark_s"] * _u(rng, 0.8, 1.25)
        if first and t0 + length > dur:  # a dog_bark clip always holds at least one bark
            t0, length = 0.0, min(length, 0.9 * dur)
        first = False
        m = int(length * sr)
        a = int(t0 * sr)
        if a + m > n:
            break
        tt = np.linspace(0, 1, m)
        f0 = s["f0"] * _u(rng, 0.9, 1.1) * (1 + 0.35 * np.sin(np.pi * tt))  # rise then fall
        k = np.arange(1, 13)[:, None]
        amps = formant_gains(k * f0[None, :], [s["formant_hz"], 2 * s["formant_hz"]], [400, 600])
        burst = harmonic_stack(f0, sr, n_harmonics=12, amplitudes=amps, rng=rng)
        burst *= 1 + s["roughness"] * rng.standard_normal(m)
        env = np.minimum(1, tt / 0.05) * np.exp(-3 * tt)
        out[a:a + m] += env * normalise_rms(burst)
        t0 += length + s["interval_s"] * _u(rng, 0.7, 1.4)
    return reverb(out, sr, rng, rt60_s=s["rt60"], wet=0.35)


# --- drilling: high motor whine with gear harmonics and bit-contact noise, on/off with load ---------
def _drill_source(rng: np.random.Generator) -> Source:
    return {"whine_hz": _u(rng, 500, 2200), "n_harm": int(rng.integers(3, 8)), "noise": _u(rng, 0.2, 1.0),
            "load_drop": _u(rng, 0.05, 0.2), "gear": int(rng.integers(4, 12))}


def _drill_render(rng: np.random.Generator, sr: int, n: int, s: Source) -> Signal:
    dur = n / sr
    segments, t = [], _u(rng, 0, min(0.3, dur / 4))
    while t < dur:
        length = _u(rng, 0.4, 3.0)
        segments.append((t, t + length))
        t += length + _u(rng, 0.1, 0.6)
    on = ramp_envelope(n, sr, segments, attack_s=0.08, release_s=0.15)
    f = s["whine_hz"] * (1 - s["load_drop"] * on) * (1 + 0.01 * smooth_random(rng, n, sr, 5))
    whine = harmonic_stack(f * on.clip(0.3, 1), sr, n_harmonics=s["n_harm"], rolloff=0.55, rng=rng)
    rot = f / s["gear"]
    phase = 2 * np.pi * np.cumsum(rot) / sr
    grind = (normalise_rms(bandpass(colored_noise(rng, n, exponent=0.3), sr, low=1500, high=9000))
             * (1 + 0.5 * np.sin(phase)))
    return on * (normalise_rms(whine) + s["noise"] * grind)


# --- engine_idling: cylinder firing pulses through exhaust resonances + low rumble -----------------
def _engine_source(rng: np.random.Generator) -> Source:
    return {"fire_hz": _u(rng, 18, 45), "res1": _u(rng, 70, 250), "res2": _u(rng, 350, 1000),
            "rumble": _u(rng, 0.2, 0.8), "jitter": _u(rng, 0.01, 0.05)}


def _engine_render(rng: np.random.Generator, sr: int, n: int, s: Source) -> Signal:
    dur = n / sr
    rate = s["fire_hz"] * _u(rng, 0.95, 1.05)
    times = pulse_times(rng, dur, rate, jitter=s["jitter"], start_s=_u(rng, 0, 1 / rate))
    kernel = damped_modes(sr, [s["res1"], s["res2"], 2.7 * s["res2"]], [0.012, 0.005, 0.002], [1.0, 0.5, 0.2], 0.05)
    pulses = place([(t * sr, 1 + 0.25 * rng.standard_normal()) for t in times], kernel, n)
    rumble = normalise_rms(bandpass(colored_noise(rng, n, exponent=2.0), sr, low=20, high=400))
    return normalise_rms(pulses) + s["rumble"] * rumble


# --- gun_shot: muzzle blast (broadband N-wave burst + thump) and a long reverberant tail -----------
def _gun_source(rng: np.random.Generator) -> Source:
    return {"rt60": _u(rng, 0.4, 1.8), "blast_ms": _u(rng, 2, 12), "thump_hz": _u(rng, 50, 160),
            "brightness_hz": _u(rng, 2500, 9000), "wet": _u(rng, 0.4, 0.8)}


def _gun_render(rng: np.random.Generator, sr: int, n: int, s: Source) -> Signal:
    dur = n / sr
    m = int(0.15 * sr)
    tt = np.arange(m) / sr
    blast = rng.standard_normal(m) * np.exp(-tt / (s["blast_ms"] / 1000))
    blast = bandpass(blast, sr, low=100, high=s["brightness_hz"], order=2)
    blast = normalise_rms(blast) + 0.7 * normalise_rms(np.exp(-tt / 0.03) * np.sin(2 * np.pi * s["thump_hz"] * tt))
    n_shots = int(rng.choice([1, 1, 1, 2, 3]))
    starts = np.sort(rng.uniform(0, max(0.01, min(dur * 0.6, 1.5)), n_shots))
    dry = place([(t * sr, _u(rng, 0.6, 1.0)) for t in starts], blast, n)
    return reverb(dry, sr, rng, rt60_s=s["rt60"], wet=s["wet"], brightness_hz=s["brightness_hz"] / 2)


# --- jackhammer: fast train of metallic impacts (damped inharmonic modes) + compressor hiss --------
def _jack_source(rng: np.random.Generator) -> Source:
    base = _u(rng, 600, 2500)
    return {"blow_hz": _u(rng, 12, 28), "modes": [base * r for r in (1.0, 2.3, 3.9, 5.6)],
            "decay_s": _u(rng, 0.004, 0.02), "hiss": _u(rng, 0.1, 0.5), "duty": _u(rng, 0.5, 1.0)}


def _jack_render(rng: np.random.Generator, sr: int, n: int, s: Source) -> Signal:
    dur = n / sr
    kernel = damped_modes(sr, s["modes"], [s["decay_s"]] * 4, [1.0, 0.7, 0.5, 0.3], 0.08)
    kernel += 0.5 * normalise_rms(rng.standard_normal(kernel.size)) * np.exp(-np.arange(kernel.size) / (0.003 * sr)) * kernel.std()
    times = pulse_times(rng, dur, s["blow_hz"] * _u(rng, 0.9, 1.1), jitter=0.03)
    hits = place([(t * sr, 1 + 0.2 * rng.standard_normal()) for t in times], kernel, n)
    segments, t = [], 0.0
    while t < dur:
        length = _u(rng, 0.5, 2.5)
        segments.append((t, t + length * s["duty"]))
        t += length
    env = ramp_envelope(n, sr, segments, attack_s=0.02, release_s=0.05)
    hiss = normalise_rms(bandpass(colored_noise(rng, n, exponent=0.5), sr, low=2000, high=10000))
    return env * (normalise_rms(hits) + s["hiss"] * hiss)


# --- siren: FM sweeps (wail, yelp or hi-lo) of a square-ish harmonic tone, with Doppler drift ------
def _siren_source(rng: np.random.Generator) -> Source:
    low = _u(rng, 450, 850)
    kind = str(rng.choice(["wail", "yelp", "hilo"]))
    period = {"wail": _u(rng, 2.0, 6.0), "yelp": _u(rng, 0.15, 0.4), "hilo": _u(rng, 0.8, 2.0)}[kind]
    return {"kind": kind, "low": low, "high": low * _u(rng, 1.5, 2.3), "period_s": period,
            "n_harm": int(rng.integers(4, 12)), "distance_hz": _u(rng, 2000, 8000)}


def _siren_render(rng: np.random.Generator, sr: int, n: int, s: Source) -> Signal:
    t = np.arange(n) / sr
    phase = t / (s["period_s"] * _u(rng, 0.9, 1.1)) + _u(rng, 0, 1)
    frac = phase % 1.0
    if s["kind"] == "wail":
        shape = 0.5 - 0.5 * np.cos(2 * np.pi * frac)
    elif s["kind"] == "yelp":
        shape = frac
    else:
        shape = (frac > 0.5).astype(float)
    doppler = 1 + 0.03 * np.tanh(_u(rng, -1, 1) * (t - t.mean()))
    f0 = (s["low"] + (s["high"] - s["low"]) * shape) * doppler
    odd = np.array([1.0 / k if k % 2 else 0.3 / k for k in range(1, s["n_harm"] + 1)])
    tone = harmonic_stack(f0, sr, n_harmonics=s["n_harm"], amplitudes=odd, rng=rng)
    return bandpass(tone, sr, low=200, high=s["distance_hz"], order=2)


# --- street_music: pentatonic melody of plucked/bowed harmonic notes, optional drums --------------
def _music_source(rng: np.random.Generator) -> Source:
    return {"root_midi": int(rng.integers(45, 70)), "tempo_bpm": _u(rng, 80, 150),
            "minor": bool(rng.integers(2)), "n_harm": int(rng.integers(4, 14)), "rolloff": _u(rng, 0.5, 0.85),
            "plucked": bool(rng.integers(2)), "drums": bool(rng.random() < 0.5), "rt60": _u(rng, 0.3, 1.2)}


def _music_render(rng: np.random.Generator, sr: int, n: int, s: Source) -> Signal:
    dur = n / sr
    scale = [0, 3, 5, 7, 10, 12] if s["minor"] else [0, 2, 4, 7, 9, 12]
    beat = 60.0 / s["tempo_bpm"]
    step = beat / float(rng.choice([1, 2]))
    out = np.zeros(n)
    t = _u(rng, 0, min(step, dur / 4))
    while t < dur:
        midi = s["root_midi"] + scale[int(rng.integers(len(scale)))] + 12 * int(rng.integers(0, 2))
        length = step * float(rng.choice([1, 1, 2]))
        m = min(int(length * sr), n - int(t * sr))
        if m <= 0:
            break
        tt = np.arange(m) / sr
        f0 = 440.0 * 2 ** ((midi - 69) / 12)
        env = np.exp(-tt / (0.25 * length)) if s["plucked"] else np.minimum(1, tt / 0.05) * np.minimum(1, (m - np.arange(m)) / (0.05 * sr))
        note = harmonic_stack(np.full(m, f0), sr, n_harmonics=s["n_harm"], rolloff=s["rolloff"], rng=rng) * env
        a = int(t * sr)
        out[a:a + m] += note
        t += length
    out = normalise_rms(out)
    if s["drums"]:
        kick = damped_modes(sr, [60], [0.05], [1.0], 0.2)
        hat = (bandpass(rng.standard_normal(int(0.04 * sr)), sr, low=6000, high=None)
               * np.exp(-np.arange(int(0.04 * sr)) / (0.008 * sr)))
        beats = np.arange(0, dur, beat)
        out += 0.8 * normalise_rms(place([(b * sr, 1.0) for b in beats[::2]], kick, n) + 1e-12)
        out += 0.3 * normalise_rms(place([(b * sr, 1.0) for b in np.arange(0, dur, beat / 2)], hat, n) + 1e-12)
    return reverb(out, sr, rng, rt60_s=s["rt60"], wet=0.25)


RECIPES: dict[str, tuple[Callable[[np.random.Generator], Source],
                        Callable[[np.random.Generator, int, int, Source], Signal]]] = {
    "air_conditioner": (_ac_source, _ac_render),
    "car_horn": (_horn_source, _horn_render),
    "children_playing": (_children_source, _children_render),
    "dog_bark": (_dog_source, _dog_render),
    "drilling": (_drill_source, _drill_render),
    "engine_idling": (_engine_source, _engine_render),
    "gun_shot": (_gun_source, _gun_render),
    "jackhammer": (_jack_source, _jack_render),
    "siren": (_siren_source, _siren_render),
    "street_music": (_music_source, _music_render),
}


def draw_source(class_name: str, rng: np.random.Generator) -> Source:
    """Parameters of one sound source of ``class_name`` (shared by all its slices)."""
    return RECIPES[class_name][0](rng)


def render(class_name: str, rng: np.random.Generator, sr: int, n: int, source: Source) -> Signal:
    """One slice of ``source`` (from :func:`draw_source`): unit-RMS float64 ``[n]`` at ``sr`` Hz."""
    x = RECIPES[class_name][1](rng, sr, n, source)
    return normalise_rms(np.nan_to_num(np.asarray(x, dtype=np.float64)))


# --- city background: traffic rumble swelling as cars pass, mains hum, distant broadband wash -------
def draw_background(rng: np.random.Generator) -> Source:
    """Parameters of one city-like background (one recording location)."""
    return {"tilt": _u(rng, 1.0, 2.0), "cutoff_hz": _u(rng, 600, 6000), "swell_hz": _u(rng, 0.1, 0.6),
            "swell_depth": _u(rng, 0.1, 0.8), "hum_hz": float(rng.choice([50.0, 60.0])),
            "hum_level": _u(rng, 0.0, 0.3), "wash": _u(rng, 0.05, 0.4)}


def render_background(rng: np.random.Generator, sr: int, n: int, bg: Source) -> Signal:
    """One stretch of background ``bg``: unit-RMS float64 ``[n]`` at ``sr`` Hz."""
    rumble = normalise_rms(bandpass(colored_noise(rng, n, exponent=bg["tilt"]), sr, low=20, high=bg["cutoff_hz"]))
    swell = np.exp(bg["swell_depth"] * smooth_random(rng, n, sr, bg["swell_hz"]))
    hum = normalise_rms(harmonic_stack(np.full(n, bg["hum_hz"]), sr, n_harmonics=5, rolloff=0.5, rng=rng))
    wash = normalise_rms(bandpass(colored_noise(rng, n, exponent=0.5), sr, low=1000, high=None))
    return normalise_rms(swell * rumble + bg["hum_level"] * hum + bg["wash"] * wash)
