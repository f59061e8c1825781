"""The first offline diarizer: VAD regions -> resemblyzer window embeddings (GE2E, 256-dim) ->
cosine average-linkage clustering. It tells espeak voices apart (DER 0) but not real ones
(DER 0.47 on the real call); kept for speaker libraries of resemblyzer vectors."""

from __future__ import annotations

import numpy as np
import torch

from whisperx_api.pipeline.audio import SAMPLE_RATE
from whisperx_api.pipeline.diarization.turns import Diarization, SpeakerTurn, first_appearance_names, normalise
from whisperx_api.pipeline.encoders import EMBEDDED_MODEL
from whisperx_api.pipeline.progress import ProgressCallback
from whisperx_api.pipeline.vad import Region

WINDOW_S = 1.5
HOP_S = 0.75
MIN_WINDOW_S = 0.4
# Average-linkage cosine distance between clusters: windows of one voice merge at 0.05-0.27
# (across turns of a dialogue too), different voices at 0.4-0.55; cut between the two.
DISTANCE_THRESHOLD = 0.35
EMBED_BATCH = 64


class SpeakerEncoder:
    """resemblyzer's bundled GE2E encoder (256-dim, L2-normalised output)."""

    model_id = EMBEDDED_MODEL

    def __init__(self, device: str) -> None:
        from resemblyzer import VoiceEncoder

        self.device = device
        self._encoder = VoiceEncoder(device=device, verbose=False)

    @property
    def dimension(self) -> int:
        return 256

    def embed_windows(self, audio: np.ndarray, windows: list[tuple[float, float]]) -> np.ndarray:
        from resemblyzer.audio import wav_to_mel_spectrogram

        mels = [wav_to_mel_spectrogram(audio[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)]) for a, b in windows]
        out = np.zeros((len(windows), self.dimension), dtype=np.float32)
        by_length: dict[int, list[int]] = {}
        for index, mel in enumerate(mels):
            by_length.setdefault(mel.shape[0], []).append(index)
        with torch.inference_mode():
            for indices in by_length.values():
                for i in range(0, len(indices), EMBED_BATCH):
                    chunk = indices[i : i + EMBED_BATCH]
                    batch = torch.from_numpy(np.stack([mels[j] for j in chunk])).to(self.device)
                    out[chunk] = self._encoder(batch).cpu().numpy()
        return out


def sliding_windows(regions: list[Region]) -> list[tuple[float, float]]:
    windows: list[tuple[float, float]] = []
    for region in regions:
        length = region.end - region.start
        if length < MIN_WINDOW_S:
            continue
        if length <= WINDOW_S:
            windows.append((region.start, region.end))
            continue
        t = region.start
        while t + WINDOW_S <= region.end + 1e-6:
            windows.append((t, t + WINDOW_S))
            t += HOP_S
        if windows[-1][1] < region.end - 0.1:
            windows.append((region.end - WINDOW_S, region.end))
    return windows


def _cluster(embeddings: np.ndarray, num: int | None, low: int | None, high: int | None) -> np.ndarray:
    from scipy.cluster.hierarchy import fcluster, linkage

    if len(embeddings) == 1:
        return np.zeros(1, dtype=int)
    tree = linkage(embeddings, method="average", metric="cosine")
    if num:
        return fcluster(tree, t=min(num, len(embeddings)), criterion="maxclust") - 1
    labels = fcluster(tree, t=DISTANCE_THRESHOLD, criterion="distance") - 1
    count = len(set(labels.tolist()))
    wanted = min(max(count, low or 1), high or count, len(embeddings))
    if wanted != count:
        labels = fcluster(tree, t=wanted, criterion="maxclust") - 1
    return labels


def diarize_embedded(
    encoder: SpeakerEncoder,
    audio: np.ndarray,
    regions: list[Region],
    num_speakers: int | None,
    min_speakers: int | None,
    max_speakers: int | None,
    progress: ProgressCallback,
) -> Diarization:
    windows = sliding_windows(regions)
    if not windows:
        return Diarization([], {}, "embedded", EMBEDDED_MODEL, EMBEDDED_MODEL)
    embeddings = encoder.embed_windows(audio, windows)
    progress("diarizing", 0.8)
    raw = _cluster(embeddings, num_speakers, min_speakers, max_speakers)
    # name speakers by order of first appearance
    names = first_appearance_names(raw.tolist())
    pieces: list[SpeakerTurn] = []
    for (start, end), label in zip(windows, raw.tolist(), strict=True):
        region = next(r for r in regions if r.start - 1e-6 <= start and end <= r.end + 1e-6)
        centre = (start + end) / 2
        core_start = region.start if start <= region.start + 1e-6 else max(region.start, centre - HOP_S / 2)
        core_end = region.end if end >= region.end - 1e-6 else min(region.end, centre + HOP_S / 2)
        if pieces and pieces[-1].end > core_start and pieces[-1].end <= region.end:
            core_start = pieces[-1].end
        if core_end > core_start:
            pieces.append(SpeakerTurn(core_start, core_end, names[label]))
    turns: list[SpeakerTurn] = []
    for piece in pieces:
        if turns and turns[-1].speaker == piece.speaker and piece.start - turns[-1].end < 0.5:
            turns[-1] = SpeakerTurn(turns[-1].start, piece.end, piece.speaker)
        else:
            turns.append(piece)
    centroids = {
        names[label]: normalise(embeddings[raw == label].mean(axis=0)).tolist() for label in sorted(set(raw.tolist()))
    }
    progress("diarizing", 1.0)
    return Diarization(
        [SpeakerTurn(round(t.start, 3), round(t.end, 3), t.speaker) for t in turns], centroids, "embedded",
        EMBEDDED_MODEL, EMBEDDED_MODEL,
    )  # fmt: skip
