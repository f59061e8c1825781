"""A long recording (default 60 min) through the full pipeline of a running service: memory of
every server process over time (a PNG plot beside the JSON), time per audio hour, WER and DER.

The recording is a two-voice conversation of distinct sentences (tests/speech_corpus.py
espeak_conversation), so its truth (who said what, when) is known. With `--pieces-minutes N`
the same audio is also sent cut into N-minute pieces, one task after another, for the issue's
question: is a long file transcribed as well as the same audio in pieces? The file and its pieces
both run on a warm service: a short task (--warm-up-minutes, the recording's start) loads every
model first, so the comparison is of the work, not of a cold start. Each part's peak names the
stage and every process's RSS at that moment. Each part's time is also counted in the server's
CPU seconds, beside the host's share of time stolen by its hypervisor.

A host's pace drifts within a go by more than the file and its pieces differ (the same VAD work
took 19 % more CPU time in a four-hour file than in its pieces run right after it, 2026-12-06), and
stolen time does not show it. `--pieces-before` also sends the pieces before the file, so that the
file's time compares with the mean of the pieces on either side of it (`file_against_pieces`), which
cancels a drift that runs one way through the go.

    uv run python tests/bench/bench_long.py [--minutes 60] [--pieces-minutes 60] [--pieces-before]
        [--warm-up-minutes 2] [--batch-size N] [--model tiny.en]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx

from tests.audio import Turn
from tests.metrics import der, wer
from tests.speech_corpus import Recording, espeak_conversation
from tests.support import (
    clear_queue,
    descendants,
    free_port,
    make_bench_settings,
    process_name,
    settings_env,
    start_server,
)

RESULTS = Path(__file__).parent / "results"
SAMPLE_EVERY_S = 0.5


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """VmRSS: all resident pages; RssAnon: the process's own memory, without the file pages it
    maps (the decoded audio's: page cache, which the kernel drops when memory runs short)."""
    with contextlib.suppress(OSError, StopIteration):
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        return int(next(line.split()[1] for line in status if line.startswith(f"{field}:"))) / 1024
    return 0.0


def pss_mb(pid: int) -> float:
    """Proportional set size: a page shared by n processes (the libraries granian's forked
    worker shares with its parent, say) counts 1/n in each, so the sum over the server's
    processes is the memory they take together, which a sum of RSS overstates."""
    with contextlib.suppress(OSError, StopIteration):
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        return int(next(line.split()[1] for line in rollup if line.startswith("Pss:"))) / 1024
    return 0.0


@dataclass
class MemoryTrace:
    """RSS of the server's processes (granian, its web worker, the inference process) every
    SAMPLE_EVERY_S, with the task's stage at that moment."""

    pid: int
    stage: str = "idle"
    # (s, stage, RSS of all, RSS of the largest, RssAnon of all, PSS of all, RSS of each process,
    # RssAnon of each process: what the inference process's replacement reads, pipeline/rest_watch.py,
    # each process's work counters so far: its Work)
    samples: list[tuple[float, str, float, float, float, float, dict[str, int], dict[str, int], dict[int, Work]]] = (
        field(default_factory=list)
    )
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def at_peak(self, since: int = 0) -> dict[str, Any]:
        """The stage and each process's RSS and RssAnon at the highest RSS of all processes from
        `since` on."""
        top = max(self.samples[since:], key=lambda sample: sample[2])
        return {"s": top[0], "stage": top[1], "rss_by_process_mb": top[6], "anon_by_process_mb": top[7]}

    def stage_seconds(self, since: int = 0) -> dict[str, float]:
        """Seconds under each stage label, from the samples from index `since` on (the stage is
        the task's as last polled, so each is a second or so late)."""
        seconds: dict[str, float] = {}
        for before, after in zip(self.samples[since:], self.samples[since + 1 :], strict=False):
            seconds[before[1]] = round(seconds.get(before[1], 0.0) + after[0] - before[0], 1)
        return seconds

    def stage_work(self, since: int = 0) -> dict[str, dict[str, float]]:
        """The server's work under each stage label from index `since` on: CPU seconds in user
        space, in the kernel, of the children it reaped (ffmpeg), and its minor page faults. The
        host's pace changes between goes; these say where a part's extra time went (a fault is
        kernel time, counted whatever the host's pace). Each process counts between its
        successive readings, so one that appears (the inference process's replacement) counts
        from its first, and a reading missed (a process's stat read as it was replaced) loses
        nothing. A replaced inference process's whole CPU time shows once more as its parent's
        children's time, under the stage the label read when it was reaped."""
        totals: dict[str, list[float]] = {}
        last: dict[int, tuple[Work, str]] = {}  # each process's latest reading and the stage then
        for sample in self.samples[since:]:
            for pid, now in sample[8].items():
                if pid in last:
                    then, stage = last[pid]
                    sums = totals.setdefault(stage, [0.0, 0.0, 0.0, 0.0])
                    for i, (a, b) in enumerate(zip(then, now, strict=True)):
                        sums[i] += max(0, b - a)
                last[pid] = (now, sample[1])
        return {
            stage: {"user_s": round(u / CLOCK_TICKS, 1), "sys_s": round(k / CLOCK_TICKS, 1),
                    "children_s": round(c / CLOCK_TICKS, 1), "minor_faults": int(f)}
            for stage, (u, k, c, f) in totals.items()
        }  # fmt: skip

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(SAMPLE_EVERY_S):
            processes = [self.pid, *descendants(self.pid)]
            each = [rss_mb(p) for p in processes]
            anon = [rss_mb(p, "RssAnon") for p in processes]
            pss = sum(pss_mb(p) for p in processes)
            names = [f"{p} {process_name(p)}" for p in processes]
            self.samples.append(
                (round(time.monotonic() - started, 1), self.stage, round(sum(each)), round(max(each)), round(sum(anon)),
                 round(pss), {n: round(r) for n, r in zip(names, each, strict=True)},
                 {n: round(a) for n, a in zip(names, anon, strict=True)},
                 {p: w for p in processes if (w := work(p)) is not None})
            )  # fmt: skip

    def peak(self, since: int = 0) -> tuple[float, float, float, float]:
        """Highest RSS of all processes, of the largest one, RssAnon of all and PSS of all, over
        the samples from index `since` on."""
        return tuple(max(s[i] for s in self.samples[since:]) for i in (2, 3, 4, 5))  # type: ignore[return-value]


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Work(NamedTuple):
    """A process's counters from /proc/PID/stat: clock ticks in user space, in the kernel, of the
    children it reaped, and its minor page faults."""

    user: int
    system: int
    children: int
    minor_faults: int


def work(pid: int) -> Work | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None  # gone
    return Work(int(fields[11]), int(fields[12]), int(fields[13]) + int(fields[14]), int(fields[7]))


@dataclass(frozen=True)
class CpuMark:
    server_s: float  # CPU seconds of the server's processes and of the children they reaped
    host: tuple[int, ...]  # /proc/stat's cpu line: user nice system idle iowait irq softirq steal


def cpu_mark(pid: int) -> CpuMark:
    """The server's CPU time so far, and the host's. The host's pace differs between goes and
    within one, and on a shared host part of that is time the hypervisor gave to others
    (steal): the server's CPU seconds per audio hour count its work without that wait."""
    counters = [w for p in (pid, *descendants(pid)) if (w := work(p)) is not None]
    used = sum(w.user + w.system + w.children for w in counters) / CLOCK_TICKS
    with open("/proc/stat") as stat:
        host = tuple(int(x) for x in stat.readline().split()[1:9])
    return CpuMark(used, host)


def cpu_since(pid: int, mark: CpuMark, audio_s: float) -> dict[str, float]:
    now = cpu_mark(pid)
    ticks = [b - a for a, b in zip(mark.host, now.host, strict=True)]
    used = now.server_s - mark.server_s
    return {
        "cpu_s": round(used, 1),
        "cpu_s_per_audio_hour": round(used / audio_s * 3600, 1),
        "host_busy_share": round(1 - (ticks[3] + ticks[4] + ticks[7]) / max(1, sum(ticks)), 3),
        "host_steal_share": round(ticks[7] / max(1, sum(ticks)), 3),
    }


def transcribe(http: httpx.Client, path: Path, trace: MemoryTrace, model: str) -> dict[str, Any]:
    response = http.post(
        "/speech-to-text", files={"file": (path.name, path.read_bytes())},
        data={"model": model, "language": "en"},
    )  # fmt: skip
    response.raise_for_status()
    identifier = response.json()["identifier"]
    deadline = time.monotonic() + 4 * 3600
    while time.monotonic() < deadline:
        task = http.get(f"/task/{identifier}").json()
        trace.stage = task.get("stage") or task["status"]
        if task["status"] in ("completed", "failed"):
            trace.stage = "idle"
            assert task["status"] == "completed", task
            return dict(task)
        time.sleep(1)
    raise TimeoutError(f"task {identifier} did not finish")


def cut(source: Path, start: float, length: float, out: Path) -> Path:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", str(start), "-t", str(length), "-i", str(source),
         "-c", "copy", str(out)],
        check=True,
    )  # fmt: skip
    return out


def scores(recording: Recording, segments: list[dict[str, Any]], until: float | None = None) -> dict[str, float]:
    """WER and DER against the truth of the recording, or of its first `until` seconds (a piece
    cut there ends every turn that starts before it)."""
    end = recording.duration if until is None else until
    reference = " ".join(t.text for t in recording.utterances if t.start < end)
    hypothesis = " ".join(s["text"] for s in segments)
    truth = [replace(t, end=min(t.end, end)) for t in recording.turns if t.start < end]
    turns = [{"start": s["start"], "end": s["end"], "speaker": s.get("speaker", "?")} for s in segments]
    return {"wer": round(wer(reference, hypothesis), 4), "der": round(der(truth, turns), 4)}


def plot(trace: MemoryTrace, title: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s[0] / 60 for s in trace.samples]
    figure, axes = plt.subplots(figsize=(10, 4.5))
    axes.plot(minutes, [s[2] for s in trace.samples], label="all server processes", linewidth=1)
    axes.plot(minutes, [s[3] for s in trace.samples], label="largest process (inference)", linewidth=1)
    axes.plot(minutes, [s[4] for s in trace.samples], label="all, without mapped files (RssAnon)", linewidth=1)
    axes.plot(minutes, [s[5] for s in trace.samples], label="all, shared pages once (PSS)", linewidth=1)
    start = 0
    for index in range(1, len(trace.samples) + 1):  # the stages as labelled bands
        if index == len(trace.samples) or trace.samples[index][1] != trace.samples[start][1]:
            stage = trace.samples[start][1]
            if stage not in ("idle", "queued"):
                axes.axvspan(minutes[start], minutes[index - 1], alpha=0.08, color="C2")
                axes.text(minutes[start], axes.get_ylim()[0], stage, fontsize=7, rotation=90, va="bottom")
            start = index
    axes.set_xlabel("minutes since the upload")
    axes.set_ylabel("RSS (MB)")
    axes.set_title(title)
    axes.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--pieces-minutes", type=float, default=0, help="also send the audio in pieces this long")
    parser.add_argument(
        "--pieces-before", action="store_true",
        help="with --pieces-minutes: send the pieces before the file as well as after it, and compare the file with "
        "their mean",
    )  # fmt: skip
    parser.add_argument(
        "--bracket-pieces", type=int, default=0,
        help="with --pieces-before: only the first N pieces, the same ones before and after the file (a four-hour "
        "file between its first hour twice: 6 hours of audio instead of 12); their accuracy is for those pieces",
    )  # fmt: skip
    parser.add_argument(
        "--warm-up-minutes", type=float, default=2,
        help="first send this much of the recording, so that the file, like the pieces after it, finds a warm "
        "service (every model loaded); 0: the file runs on a fresh service",
    )  # fmt: skip
    parser.add_argument(
        "--batch-size", type=int, default=0,
        help="the service's BATCH_SIZE (Whisper's windows per batch; a CPU decoder takes at most 10 windows x "
        "beams per call); 0: its default",
    )  # fmt: skip
    parser.add_argument("--model", default="tiny.en", help="the Whisper model each task asks for")
    args = parser.parse_args()
    stamp = int(time.time())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        made = time.monotonic()
        recording = espeak_conversation(args.minutes, root / "long.mp3")
        print(f"recording: {recording.duration / 60:.1f} min, {len(recording.turns)} turns, "
              f"made in {time.monotonic() - made:.0f} s", flush=True)  # fmt: skip
        settings = make_bench_settings(root / "data", f"sqlite:///{root / 'records.db'}")
        port = free_port()
        # INFO: the server's log, kept beside the results, says which models loaded and when the
        # inference process was replaced
        env = {**settings_env(settings), "LOG_LEVEL": "INFO"}
        if args.batch_size:
            env["BATCH_SIZE"] = str(args.batch_size)
        server = start_server(env, root / "s.log", port, worker_ready=True, timeout=300)
        trace = MemoryTrace(server.proc.pid)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as http:
                trace.start()
                time.sleep(2)
                idle_all, idle_largest, idle_anon, idle_pss = trace.peak()
                warm_up: dict[str, Any] = {}
                if args.warm_up_minutes:
                    started = time.monotonic()
                    transcribe(
                        http, cut(recording.path, 0, args.warm_up_minutes * 60, root / "warm_up.mp3"), trace, args.model
                    )
                    warm_up = {
                        "warm_up_minutes": args.warm_up_minutes,
                        "warm_up_wall_s": round(time.monotonic() - started, 1),
                    }
                    time.sleep(3)
                    warm_up["rss_warm_all_mb"], _, warm_up["anon_warm_all_mb"], warm_up["pss_warm_all_mb"] = trace.peak(
                        len(trace.samples) - 1
                    )
                before: dict[str, Any] = {}
                if args.pieces_minutes and args.pieces_before:
                    before = pieces(
                        http, recording, args.pieces_minutes, root, trace, args.model, server.proc.pid,
                        args.bracket_pieces,
                    )  # fmt: skip
                    print(json.dumps({"pieces_before": before}), flush=True)
                first = len(trace.samples)
                started, cpu = time.monotonic(), cpu_mark(server.proc.pid)
                task = transcribe(http, recording.path, trace, args.model)
                wall = time.monotonic() - started
                cpu_used = cpu_since(server.proc.pid, cpu, recording.duration)
                whole_peak = trace.peak(first)
                stages = trace.stage_seconds(first)
                at_peak = trace.at_peak(first)
                result = task["result"]
                row: dict[str, Any] = {
                    "model": args.model,
                    "batch_size": args.batch_size or settings.batch_size,
                    "audio_s": round(recording.duration, 1),
                    "upload_mb": round(recording.path.stat().st_size / 1e6, 1),
                    "wall_s": round(wall, 1),
                    "s_per_audio_hour": round(wall / recording.duration * 3600, 1),
                    **cpu_used,
                    "timings": result["timings"],
                    "segments": len(result["segments"]),
                    "speakers": result["speakers"],
                    **scores(recording, result["segments"]),
                    "rss_idle_all_mb": idle_all, "rss_idle_largest_mb": idle_largest, "anon_idle_all_mb": idle_anon,
                    "pss_idle_all_mb": idle_pss, **warm_up,
                    "rss_peak_all_mb": whole_peak[0], "rss_peak_largest_mb": whole_peak[1],
                    "anon_peak_all_mb": whole_peak[2], "pss_peak_all_mb": whole_peak[3], "stage_s": stages,
                    "stage_work": trace.stage_work(first),
                    "at_peak": at_peak,
                }  # fmt: skip
                print(json.dumps(row), flush=True)
                if args.pieces_minutes:
                    row["pieces"] = pieces(
                        http, recording, args.pieces_minutes, root, trace, args.model, server.proc.pid,
                        args.bracket_pieces if args.pieces_before else 0,
                    )  # fmt: skip
                    print(json.dumps(row["pieces"]), flush=True)
                if before:
                    row["pieces_before"] = before
                    row["file_against_pieces"] = against_pieces(row, before, row["pieces"])
                    print(json.dumps({"file_against_pieces": row["file_against_pieces"]}), flush=True)
        finally:
            trace.stop()
            server.stop()
            clear_queue(settings.queue_name)
            RESULTS.mkdir(exist_ok=True)
            shutil.copy(root / "s.log", RESULTS / f"long_{stamp}.log")
    plot(
        trace,
        f"{args.minutes:g}-minute recording, full pipeline ({args.model}), this machine",
        RESULTS / f"long_{stamp}.png",
    )
    (RESULTS / f"long_{stamp}.json").write_text(
        json.dumps({"date": datetime.now(UTC).isoformat(), **row, "samples": trace.samples}, indent=1)
    )
    print(f"wrote {RESULTS / f'long_{stamp}.png'}, .json and .log (the server's)")


def against_pieces(file: dict[str, Any], before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    """The file's seconds and CPU seconds per audio hour over the mean of its pieces' before and
    after it (above 1: the file took longer per audio hour)."""
    return {
        key: round(file[key] / ((before[key] + after[key]) / 2), 3)
        for key in ("s_per_audio_hour", "cpu_s_per_audio_hour")
    }


def pieces(
    http: httpx.Client, recording: Recording, minutes: float, root: Path, trace: MemoryTrace, model: str, server: int,
    count: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """The same audio in `minutes`-long pieces, one task each (the first `count` only, if given);
    their segments shifted back onto the whole file's clock and scored against the truth of the
    audio they cover."""
    length = minutes * 60
    segments: list[dict[str, Any]] = []
    speakers: list[int] = []
    first = len(trace.samples)
    started, cpu = time.monotonic(), cpu_mark(server)
    offset = 0.0
    while offset < recording.duration and (not count or offset < count * length):
        piece = cut(recording.path, offset, length, root / f"piece_{int(offset)}.mp3")
        result = transcribe(http, piece, trace, model)["result"]
        # speaker names are per task: map each piece's to the truth's voices by overlap, as a
        # user joining pieces would have to (DER of the pieces is then at its best)
        truth = [t for t in recording.turns if offset <= t.start < offset + length]
        names = _best_names(result["segments"], truth, offset)
        speakers.append(len(result["speakers"]))
        for s in result["segments"]:
            segments.append({**s, "start": s["start"] + offset, "end": s["end"] + offset,
                             "speaker": names.get(s.get("speaker", "?"), "?")})  # fmt: skip
        offset += length
    wall = time.monotonic() - started
    covered = min(offset, recording.duration)
    return {
        "minutes": minutes, "wall_s": round(wall, 1), "speakers_per_piece": speakers, "audio_s": round(covered, 1),
        "s_per_audio_hour": round(wall / covered * 3600, 1), **cpu_since(server, cpu, covered),
        **dict(zip(("rss_peak_all_mb", "rss_peak_largest_mb", "anon_peak_all_mb", "pss_peak_all_mb"),
                   trace.peak(first), strict=True)),
        "stage_s": trace.stage_seconds(first),
        "stage_work": trace.stage_work(first), "at_peak": trace.at_peak(first),
        **scores(recording, segments, covered),
    }  # fmt: skip


def _best_names(segments: list[dict[str, Any]], truth: list[Turn], offset: float) -> dict[str, str]:
    overlap: dict[tuple[str, str], float] = {}
    for s in segments:
        for t in truth:
            shared = min(s["end"] + offset, t.end) - max(s["start"] + offset, t.start)
            if shared > 0:
                key = (s.get("speaker", "?"), t.speaker)
                overlap[key] = overlap.get(key, 0.0) + shared
    names: dict[str, str] = {}
    for (label, voice), _ in sorted(overlap.items(), key=lambda kv: -kv[1]):
        if label not in names and voice not in names.values():
            names[label] = voice
    return names


if __name__ == "__main__":
    main()
