"""CAM++ on the diarizer's clips (pipeline/diarization/campp.py), with its real weights: the
clips go through the model in order of length, one forward pass per batch of one length, and
each clip's vector is the one it gets alone."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from tests.audio import speak
from tests.model_probes import CountingModel

pytestmark = pytest.mark.models


def test_clips_are_embedded_in_batches_of_one_length_each_as_it_would_be_alone(tmp_path: Path) -> None:
    from whisperx_api.pipeline.diarization import campp

    path = speak("Each of these pieces of speech is cut to its own length before it is embedded.", tmp_path / "s.wav")
    audio = torch.from_numpy(soundfile.read(path, dtype="float32")[0]).repeat(4)
    # 100 clips as the diarizer cuts them, mixed: 1.5 s pieces, stretches' shorter last pieces
    # (12 lengths), one too short for a vector and one longer than CAM++ takes
    rng = random.Random(7)
    shorter = [6_400 + 1_400 * k for k in range(12)]
    lengths = [24_000] * 74 + shorter * 2 + [300, 24_000 * 5]
    rng.shuffle(lengths)
    clips = [audio[(start := rng.randrange(0, len(audio) - n)) : start + n] for n in lengths]
    encoder = campp.CamppEncoder("cpu")
    counting = encoder.model = CountingModel(encoder.model)
    progress: list[int] = []

    vectors = encoder.embed_batch(clips, progress.append)

    frames = [campp.feature_frames(len(clip)) for clip in clips]
    distinct = {n for n in frames if n >= campp.MIN_FRAMES}
    assert len(distinct) == 14 and frames.count(0) == 1 and max(frames) == campp.MAX_EMBED_FRAMES
    # in order of length every length is one pass, but where a batch (16 on a CPU) ends inside a
    # length (in the order given: about six lengths in each of the seven batches)
    batches = -(-len(clips) // campp.CPU_BATCH)
    assert len(counting.shapes) <= len(distinct) + batches - 1, counting.shapes
    assert sum(size for size, _ in counting.shapes) == 99 and {n for _, n in counting.shapes} == distinct
    assert progress == [16, 32, 48, 64, 80, 96, 100]
    assert vectors[frames.index(0)] is None
    for index in {len(clip): index for index, clip in enumerate(clips)}.values():  # a clip of each length
        alone, vector = encoder.embed_tensor(clips[index]), vectors[index]
        assert (vector is None) == (alone is None)
        if vector is not None and alone is not None:
            assert np.allclose(vector, alone, atol=1e-4 * float(np.abs(alone).max()))
