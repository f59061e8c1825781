"""The transcription page at /, used as a person would in a real browser: pick a recording, watch
it progress live (server-sent events, no polling), read the transcript with its speakers, click a
word to play from there, rename a speaker into the speaker library, download subtitles, delete;
bad files and a busy service explained in words; the token entered once when auth is on; a phone
screen and the keyboard."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.audio import speak
from tests.browser.conftest import CHROMIUM, LAUNCH_ARGS, TOKEN, Server, Tab, open_tab
from tests.speech_corpus import Recording, espeak_dialogue

DONE_MS = 240_000  # a task's whole run on this machine's CPUs, with margin


@pytest.fixture(scope="module")
def dialogue(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    return espeak_dialogue("us-male", "female-3", tmp_path_factory.mktemp("page-dialogue"))


def task_item(page: Page, name: str) -> Any:
    return page.locator("#tasks li").filter(has=page.locator(".name", has_text=name))


def submit(page: Page, *files: Path) -> None:
    page.set_input_files("#files", [str(f) for f in files])
    page.locator("#transcribe").click()


def refusal(status: int, retry: str, code: str, text: str) -> Callable[[Route], None]:
    body = json.dumps({"error": {"message": text, "type": "server_error", "code": code, "param": None}})

    def refuse(route: Route) -> None:
        route.fulfill(status=status, headers={"Retry-After": retry}, content_type="application/json", body=body)

    return refuse


def paths(tab: Tab, method: str = "GET") -> list[str]:
    return [
        urlsplit(r.url).path + (f"?{urlsplit(r.url).query}" if urlsplit(r.url).query else "")
        for r in tab.requests
        if r.method == method
    ]


@pytest.mark.models
def test_a_recording_from_upload_to_named_speakers_and_subtitles(server: Server, tab: Tab, dialogue: Recording) -> None:
    page = tab.page
    page.goto(server.url)
    expect(page.locator("#app")).to_be_visible()
    submit(page, dialogue.path)
    item = task_item(page, dialogue.path.name)
    expect(item).to_be_visible()
    expect(page.locator("#tasks-message")).to_be_empty()
    tab.shot("queued")
    # live: the stage shows while it runs, then Done
    expect(item.locator(".state")).to_have_text(re.compile(r"…|Waiting"), timeout=30_000)
    expect(item).to_have_attribute("data-status", "completed", timeout=DONE_MS)
    expect(item.locator(".state")).to_have_text("Done")
    identifier = item.get_attribute("data-task")
    assert identifier
    seen = paths(tab)
    assert f"/task/{identifier}/events" in seen  # followed with server-sent events ...
    assert f"/task/{identifier}" not in seen  # ... not by polling the task
    tab.shot("done")

    page.get_by_role("button", name=f"Open the transcript of {dialogue.path.name}").click()
    viewer = page.locator("#viewer")
    expect(viewer).to_be_visible()
    expect(page.locator("#viewer-meta")).to_contain_text("2 speakers")
    expect(page.locator("#speakers li")).to_have_count(2)
    words = page.locator("#transcript .word")
    assert words.count() >= 20
    with server.api() as api:
        task = api.get(f"/task/{identifier}").json()
    spoken = " ".join(w["word"] for s in task["result"]["segments"] for w in s["words"])
    assert " ".join(words.all_inner_texts()) == spoken
    tab.shot("transcript")

    # click a word: the player jumps there and plays on, the word highlighted, then the next ones
    word = words.nth(words.count() // 2)
    start = float(word.get_attribute("data-start") or "nan")
    word.click()
    expect(word).to_have_class(re.compile(r"\bcurrent\b"))
    page.wait_for_function(
        "start => { const p = document.getElementById('player'); return !p.paused && p.currentTime > start + 0.3 }",
        arg=start,
        timeout=20_000,
    )
    later = float(page.locator("#transcript .word.current").get_attribute("data-start") or "nan")
    assert later > start  # the highlight follows the playback
    position = page.evaluate("() => { const p = document.getElementById('player'); p.pause(); return p.currentTime }")
    assert start <= position < start + 10
    audio = [r for r in tab.requests if urlsplit(r.url).path == f"/task/{identifier}/audio"]
    assert audio and any("range" in r.all_headers() for r in audio)  # streamed with range requests

    # rename a speaker: the transcript says the name, and so does the speaker library
    first = page.locator("#speakers li").first.locator(".speaker-name").inner_text()
    page.get_by_role("button", name=f"Rename {first}").click()
    page.get_by_label(f"New name for {first}").fill("Ada Lovelace")
    with page.expect_response(re.compile(r"/speakers/")) as renamed:
        page.get_by_role("button", name="Save").click()
    body = renamed.value.json()
    expect(page.locator("#speakers-message")).to_contain_text("speaker library now knows this voice")
    expect(page.locator("#transcript .who").first).to_have_text("Ada Lovelace")
    tab.shot("renamed")
    assert body["speaker_uuid"]
    with server.api() as api:
        assert api.get(f"/speakers/{body['speaker_uuid']}").json()["speaker_label"] == "Ada Lovelace"
        srt = api.get(f"/task/{identifier}", params={"format": "srt"}).text
        result = api.get(f"/task/{identifier}").json()["result"]
    assert "Ada Lovelace" in srt

    # downloads: what the API gives
    with page.expect_download() as subtitles:
        page.get_by_role("button", name="SRT subtitles").click()
    assert subtitles.value.suggested_filename == f"{dialogue.path.stem}.srt"
    assert Path(subtitles.value.path()).read_text() == srt
    with page.expect_download() as document:
        page.get_by_role("button", name="JSON").click()
    assert json.loads(Path(document.value.path()).read_text()) == result

    # delete: gone from the page and from the service
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Delete {dialogue.path.name}").click()
    expect(item).to_have_count(0)
    expect(viewer).to_be_hidden()
    with server.api() as api:
        assert api.get(f"/task/{identifier}").status_code == 404


def test_bad_files_are_explained_before_and_after_sending(server: Server, tab: Tab, tmp_path: Path) -> None:
    page = tab.page
    page.goto(server.url)
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio")
    big = tmp_path / "long.wav"
    big.write_bytes(b"RIFF" + bytes(3_000_000))
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x10\x00\x00WAVEjunk" + bytes(range(256)) * 40)
    with server.api() as api:
        before = api.get("/task/all").json()["total"]
    page.set_input_files("#files", [str(notes), str(big)])
    picked = page.locator("#picked li")
    expect(picked.filter(has_text="notes.txt")).to_contain_text("Not a supported file type (.txt)")
    expect(picked.filter(has_text="long.wav")).to_contain_text("the service accepts files up to 2.0 MB")
    expect(page.locator("#transcribe")).to_be_disabled()  # nothing worth sending
    tab.shot("refused-here")
    page.get_by_role("button", name="Remove notes.txt").click()
    page.get_by_role("button", name="Remove long.wav").click()
    expect(picked).to_have_count(0)

    # a file that only the service can tell is broken: its message, next to the file
    submit(page, broken)
    message = picked.filter(has_text="broken.wav").locator(".message")
    expect(message).to_have_class(re.compile(r"\berror\b"), timeout=30_000)
    assert re.search(r"decod|audio|media", message.inner_text(), re.IGNORECASE), message.inner_text()
    tab.shot("refused-there")
    with server.api() as api:
        assert api.get("/task/all").json()["total"] == before  # nothing was queued


def test_a_busy_service_is_explained_and_the_file_can_be_sent_again(server: Server, tab: Tab, tmp_path: Path) -> None:
    """The service's own 503 and 429 bodies (with Retry-After), as a proxy would pass them on."""
    page = tab.page
    page.goto(server.url)
    clip = speak("Busy.", tmp_path / "busy.wav")
    answers = [
        (
            503,
            "3",
            "DEPENDENCY_UNAVAILABLE",
            "redis is not answering",
            r"busy or restarting \(redis is not answering\)\. Try again in 3 s",
        ),
        (429, "7", "RATE_LIMIT_EXCEEDED", "rate limit exceeded", r"Too many requests right now\. Try again in 7 s"),
    ]
    page.set_input_files("#files", str(clip))
    for status, retry, code, text, shown in answers:
        page.route("**/speech-to-text", refusal(status, retry, code, text))
        page.locator("#transcribe").click()
        message = page.locator("#picked li").filter(has_text="busy.wav").locator(".message")
        expect(message).to_have_text(re.compile(shown))
        expect(page.locator("#transcribe")).to_be_enabled()  # the file stays, ready to be sent again
        page.unroute("**/speech-to-text")
    tab.shot("busy")
    page.locator("#diarize").uncheck()
    page.locator("#transcribe").click()
    expect(page.locator("#picked li")).to_have_count(0)
    item = task_item(page, "busy.wav")
    expect(item).to_be_visible()
    identifier = item.get_attribute("data-task")
    with server.api() as api:
        assert api.delete(f"/task/{identifier}").status_code == 200


@pytest.mark.models
def test_the_token_is_asked_once_and_kept_in_the_tab(auth_server: Server, tab: Tab, tmp_path: Path) -> None:
    page = tab.page
    page.goto(auth_server.url)
    expect(page.locator("#signin")).to_be_visible()
    expect(page.locator("#app")).to_be_hidden()
    page.get_by_label("Access token").fill("not-the-token")
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("#signin-message")).to_contain_text("That token was not accepted")
    tab.shot("wrong-token")
    page.get_by_label("Access token").fill(TOKEN)
    signing_in = len(tab.requests)
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("#app")).to_be_visible()
    assert page.evaluate("() => sessionStorage.getItem('whisperx-api-token')") == TOKEN
    page.reload()  # the same tab keeps it
    expect(page.locator("#app")).to_be_visible()

    clip = speak("The token is kept in this tab only.", tmp_path / "token.wav")
    page.locator("#diarize").uncheck()
    submit(page, clip)
    item = task_item(page, "token.wav")
    expect(item).to_have_attribute("data-status", "completed", timeout=DONE_MS)
    page.get_by_role("button", name="Open the transcript of token.wav").click()
    expect(page.locator("#transcript")).to_contain_text(re.compile(r"token", re.IGNORECASE))
    # the audio needs the token too: fetched with it, played from memory
    page.wait_for_function("() => document.getElementById('player').src.startsWith('blob:')")
    assert all(TOKEN not in r.url for r in tab.requests)  # never in a URL
    sent = [r for r in tab.requests[signing_in:] if urlsplit(r.url).path.startswith(("/task", "/speech-to-text"))]
    assert sent and all(r.all_headers().get("authorization") == f"Bearer {TOKEN}" for r in sent)
    tab.shot("signed-in")

    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#signin")).to_be_visible()
    assert page.evaluate("() => sessionStorage.getItem('whisperx-api-token')") is None


def test_usable_on_a_phone_and_by_keyboard(server: Server, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    tab = open_tab(context, "test_usable_on_a_phone_and_by_keyboard")
    try:
        page = tab.page
        page.goto(server.url)
        expect(page.locator("#app")).to_be_visible()
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390  # no sideways scrolling
        tab.shot("phone")
        # every control has a name a screen reader can say
        unnamed = page.evaluate(
            """() => [...document.querySelectorAll('input, select, button, textarea')]
                .filter((c) => !c.closest('[hidden]'))
                .filter((c) => !(c.labels && c.labels.length) && !c.getAttribute('aria-label') && !c.textContent.trim())
                .map((c) => c.outerHTML)"""
        )
        assert unnamed == []
        # the keyboard reaches the file picker, the options and the button, in order
        reached = []
        for _ in range(12):
            page.keyboard.press("Tab")
            reached.append(
                page.evaluate("() => document.activeElement.id || document.activeElement.textContent.trim()")
            )
        for control in ("files", "record", "model", "language", "diarize"):
            assert control in reached, reached
        assert reached.index("files") < reached.index("model") < reached.index("diarize")
    finally:
        context.close()
    assert tab.outside == [] and tab.errors == []


@pytest.mark.models
def test_a_recording_from_the_microphone(server: Server, browser: Browser, tmp_path: Path) -> None:
    """Chromium's fake microphone plays a spoken clip; the page records it and transcribes it."""
    clip = speak("Recording from the microphone works.", tmp_path / "mic.wav")
    playwright = browser.browser_type
    args = [*LAUNCH_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={clip}%noloop"]  # fmt: skip
    microphone = playwright.launch(executable_path=CHROMIUM, args=args)
    try:
        context = microphone.new_context(permissions=["microphone"])
        tab = open_tab(context, "test_a_recording_from_the_microphone")
        page = tab.page
        page.goto(server.url)
        page.get_by_role("button", name="Record from the microphone").click()
        expect(page.locator("#record-status")).to_contain_text("Recording")
        page.wait_for_timeout(4_000)  # the clip lasts about 2.5 s
        page.get_by_role("button", name="Stop recording").click()
        expect(page.locator("#record-status")).to_contain_text("Press Transcribe")
        name = page.locator("#picked li .name").inner_text()
        assert re.fullmatch(r"recording-[\d-]+\.(webm|ogg)", name), name
        page.locator("#diarize").uncheck()
        page.locator("#transcribe").click()
        item = task_item(page, name)
        expect(item).to_have_attribute("data-status", "completed", timeout=DONE_MS)
        page.get_by_role("button", name=f"Open the transcript of {name}").click()
        expect(page.locator("#transcript")).to_contain_text(re.compile(r"microphone", re.IGNORECASE))
        tab.shot("recorded")
        assert tab.outside == [] and tab.errors == []
    finally:
        microphone.close()
