// The transcription page. Plain JavaScript, no build step, nothing from another origin.
// It talks to the same API as every other client: POST /speech-to-text, GET /task/...,
// GET /task/{id}/events (server-sent events, read with fetch so the token can be sent),
// GET /task/{id}/audio, PUT /task/{id}/speakers/{name}, DELETE /task/{id}.
"use strict";

const CONFIG = JSON.parse(document.getElementById("config").textContent);
const TOKEN_KEY = "whisperx-api-token";
const PAGE_SIZE = 20;
const FINAL = new Set(["completed", "failed"]);
const NO_TASKS = "No transcriptions yet.";
const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- small helpers
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function say(node, text, kind = "") {
  node.textContent = text || "";
  node.className = `message ${kind}`.trim();
}

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds || 0));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const mm = String(m).padStart(h ? 2 : 1, "0"), ss = String(r).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

// binary units, as MAX_UPLOAD_SIZE_MB counts them (so a 2 MB limit reads "2.0 MB")
function megabytes(bytes) {
  return bytes >= 1048576 ? `${(bytes / 1048576).toFixed(1)} MB` : `${Math.max(1, Math.round(bytes / 1024))} kB`;
}

function extension(name) {
  const dot = name.lastIndexOf(".");
  return dot < 0 ? "" : name.slice(dot).toLowerCase();
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------- the API
const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

function authHeaders(extra = {}) {
  const value = token.get();
  return value ? { ...extra, Authorization: `Bearer ${value}` } : extra;
}

class ApiError extends Error {
  constructor(status, body, retryAfter) {
    const error = (body && body.error) || {};
    super(error.message || `the server answered ${status}`);
    this.status = status;
    this.code = error.code || null;
    this.retryAfter = retryAfter;
  }
}

// A message a person can act on, for any failed request.
function explain(error) {
  if (!(error instanceof ApiError)) {
    return "The service could not be reached. Check your connection and try again.";
  }
  const wait = error.retryAfter ? ` Try again in ${error.retryAfter} s.` : " Try again in a moment.";
  switch (error.status) {
    case 401: return "Your access token was not accepted. Sign in again.";
    case 413: return `This file is too large for the service: ${error.message}.`;
    case 415: return `This file type is not supported: ${error.message}.`;
    case 429: return `Too many requests right now.${wait}`;
    case 503: return `The service is busy or restarting (${error.message}).${wait}`;
    case 507: return `The server's disk is full: ${error.message}.`;
    default: return `${error.message.charAt(0).toUpperCase()}${error.message.slice(1)}${error.message.endsWith(".") ? "" : "."}`;
  }
}

async function failure(response) {
  let body = null;
  try { body = await response.json(); } catch { /* not JSON: the status says enough */ }
  const error = new ApiError(response.status, body, response.headers.get("Retry-After"));
  if (response.status === 401) signedOut("Your access token was not accepted. Enter it again.");
  return error;
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: authHeaders(options.headers) });
  if (!response.ok) throw await failure(response);
  return response;
}

const getJson = async (path) => (await api(path)).json();

// An upload with progress (fetch cannot report upload progress).
function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", path);
    for (const [name, value] of Object.entries(authHeaders())) request.setRequestHeader(name, value);
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    request.addEventListener("load", () => {
      let body = null;
      try { body = JSON.parse(request.responseText); } catch { /* not JSON */ }
      if (request.status >= 200 && request.status < 300) resolve(body);
      else {
        if (request.status === 401) signedOut("Your access token was not accepted. Enter it again.");
        reject(new ApiError(request.status, body, request.getResponseHeader("Retry-After")));
      }
    });
    request.addEventListener("error", () => reject(new Error("network")));
    request.addEventListener("abort", () => reject(new Error("aborted")));
    request.send(form);
  });
}

// Server-sent events read with fetch (EventSource cannot send the token). Reconnects with
// Last-Event-ID until the task's last event ("done" or "deleted") or until `signal` aborts.
async function followEvents(taskId, onEvent, signal) {
  let lastId = null;
  let delay = 500;
  while (!signal.aborted) {
    try {
      const headers = authHeaders(lastId ? { "Last-Event-ID": lastId } : {});
      const response = await fetch(`/task/${taskId}/events`, { headers, signal });
      if (response.status === 404) { onEvent("deleted", {}); return; }
      if (!response.ok) throw await failure(response);
      delay = 500;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        // a "\r" at the end may be half of "\r\n": keep it for the next chunk
        const cut = buffer.endsWith("\r") ? buffer.length - 1 : buffer.length;
        const text = buffer.slice(0, cut).replace(/\r\n?/g, "\n");
        const blocks = text.split("\n\n");
        buffer = blocks.pop() + buffer.slice(cut);
        for (const block of blocks) {
          let type = "message", data = "", id = null;
          for (const line of block.split("\n")) {
            if (line.startsWith(":")) continue;
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            const content = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
            if (field === "event") type = content;
            else if (field === "data") data += (data ? "\n" : "") + content;
            else if (field === "id") id = content;
          }
          if (id) lastId = id;
          if (!data) continue;
          onEvent(type, JSON.parse(data));
          if (type === "done" || type === "deleted") return;
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ApiError && error.status === 401) return;
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 15000);
  }
}

// ---------------------------------------------------------------- signing in
function signedOut(message) {
  token.clear();
  stopAll();
  $("app").hidden = true;
  $("signout").hidden = true;
  $("signin").hidden = false;
  say($("signin-message"), message || "", message ? "error" : "");
  $("token").focus();
}

async function signIn(event) {
  event.preventDefault();
  const value = $("token").value.trim();
  if (!value) {
    say($("signin-message"), "Enter the access token.", "error");
    return;
  }
  say($("signin-message"), "Checking…");
  try {
    const response = await fetch("/task/all?limit=1", { headers: { Authorization: `Bearer ${value}` } });
    if (response.status === 401) {
      say($("signin-message"), "That token was not accepted. Check it with whoever runs this service and try again.", "error");
      $("token").select();
      return;
    }
    if (!response.ok) throw await failure(response);
    token.set(value);
    $("token").value = "";
    say($("signin-message"), "");
    await start();
  } catch (error) {
    say($("signin-message"), explain(error), "error");
  }
}

// ---------------------------------------------------------------- choosing files
const picked = [];  // {file, item, message, ok}

function pick(files) {
  for (const file of files) {
    const item = el("li");
    const message = el("p", { class: "message", role: "status" });
    const entry = { file, item, message, ok: true };
    const ext = extension(file.name);
    if (!CONFIG.extensions.includes(ext)) {
      entry.ok = false;
      say(message, `Not a supported file type (${ext || "no extension"}). Supported: ${CONFIG.extensions.join(", ")}.`, "error");
    } else if (CONFIG.max_upload_bytes && file.size > CONFIG.max_upload_bytes) {
      entry.ok = false;
      say(message, `This file is ${megabytes(file.size)}; the service accepts files up to ${megabytes(CONFIG.max_upload_bytes)}.`, "error");
    } else if (file.size === 0) {
      entry.ok = false;
      say(message, "This file is empty.", "error");
    }
    const remove = el("button", {
      type: "button", class: "quiet", text: "Remove", "aria-label": `Remove ${file.name}`,
      onclick: () => { picked.splice(picked.indexOf(entry), 1); item.remove(); refreshPicked(); },
    });
    item.append(el("span", { class: "name", text: file.name }), el("span", { class: "size", text: megabytes(file.size) }), remove, message);
    picked.push(entry);
    $("picked").append(item);
  }
  refreshPicked();
}

function refreshPicked() {
  const ready = picked.filter((entry) => entry.ok).length;
  $("transcribe").disabled = ready === 0;
  $("transcribe").textContent = ready > 1 ? `Transcribe ${ready} files` : "Transcribe";
}

function options() {
  const form = new FormData();
  form.set("model", $("model").value);
  if ($("language").value) form.set("language", $("language").value);
  const diarize = $("diarize").checked;
  form.set("diarize", String(diarize));
  if (diarize && $("num-speakers").value) form.set("num_speakers", $("num-speakers").value);
  if (diarize && $("identify").checked) {
    form.set("identify_speakers", "true");
    form.set("auto_store_speakers", "true");
  }
  return form;
}

async function transcribePicked(event) {
  event.preventDefault();
  const batch = picked.filter((entry) => entry.ok);
  if (!batch.length) return;
  $("transcribe").disabled = true;
  say($("upload-message"), "");
  for (const entry of batch) {
    const form = options();
    form.set("file", entry.file, entry.file.name);
    const remove = entry.item.querySelector("button");
    remove.disabled = true;
    try {
      const created = await upload("/speech-to-text", form, (fraction) => {
        say(entry.message, `Uploading… ${Math.round(fraction * 100)}%`);
      });
      picked.splice(picked.indexOf(entry), 1);
      entry.item.remove();
      addTask({ identifier: created.identifier, status: "queued", stage: null, progress: 0, file_name: entry.file.name }, true);
    } catch (error) {
      // the file stays in the list with the reason, ready to be sent again
      remove.disabled = false;
      say(entry.message, explain(error), "error");
      if (error instanceof ApiError && error.status === 401) return;
      if (error instanceof ApiError && [400, 413, 415, 422].includes(error.status)) entry.ok = false;
    }
  }
  refreshPicked();
}

// ---------------------------------------------------------------- recording
let recorder = null;

async function toggleRecording() {
  const button = $("record"), status = $("record-status");
  if (recorder) { recorder.stop(); return; }
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    say(status, "Recording needs a secure connection (https, or this page opened on localhost) and a browser that can record.", "error");
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (error) {
    say(status, `The microphone is not available (${error.name}). Allow this page to use it and try again.`, "error");
    return;
  }
  const chunks = [];
  recorder = new MediaRecorder(stream);
  const started = Date.now();
  const ticker = setInterval(() => say(status, `Recording… ${clock((Date.now() - started) / 1000)}`), 500);
  recorder.addEventListener("dataavailable", (event) => { if (event.data.size) chunks.push(event.data); });
  recorder.addEventListener("stop", () => {
    clearInterval(ticker);
    stream.getTracks().forEach((track) => track.stop());
    const type = recorder.mimeType || "audio/webm";
    const ext = type.includes("ogg") ? ".ogg" : type.includes("mp4") ? ".m4a" : ".webm";
    const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-");
    pick([new File(chunks, `recording-${stamp}${ext}`, { type })]);
    recorder = null;
    button.textContent = "Record from the microphone";
    button.setAttribute("aria-pressed", "false");
    say(status, `Recorded ${clock((Date.now() - started) / 1000)}. Press Transcribe to send it.`, "ok");
  });
  recorder.start(1000);
  button.textContent = "Stop recording";
  button.setAttribute("aria-pressed", "true");
  say(status, "Recording…");
}

// ---------------------------------------------------------------- the task list
const tasks = new Map();  // identifier -> {data, node, follow: AbortController|null}
let olderOffset = 0;

const STAGES = {
  queued: "Waiting in the queue", requeued: "Waiting in the queue", starting: "Starting",
  decoding: "Reading the recording", vad: "Finding speech", transcribing: "Transcribing",
  aligning: "Timing the words", diarizing: "Telling speakers apart", "identifying speakers": "Recognising voices",
  combining: "Combining", probing: "Reading the recording", done: "Done",
};

function describe(task) {
  if (task.status === "completed") return "Done";
  if (task.status === "failed") {
    const error = task.error || {};
    return `Failed: ${error.message || error.code || "unknown error"}`;
  }
  if (task.status === "queued") return "Waiting in the queue";
  const stage = STAGES[task.stage] || (task.stage ? task.stage.charAt(0).toUpperCase() + task.stage.slice(1) : "Working");
  return `${stage}… ${Math.round((task.progress || 0) * 100)}%`;
}

function renderTask(entry) {
  const task = entry.data;
  const name = task.file_name || task.url || task.identifier;
  const when = task.created_at ? new Date(task.created_at).toLocaleString() : "";
  const state = el("span", { class: `state ${task.status}`, text: describe(task) });
  const actions = el("span", { class: "actions" });
  if (task.status === "completed") {
    actions.append(el("button", { type: "button", text: "Open", "aria-label": `Open the transcript of ${name}`, onclick: () => openTask(task.identifier) }));
  }
  actions.append(el("button", { type: "button", class: "danger", text: "Delete", "aria-label": `Delete ${name}`, onclick: () => deleteTask(task.identifier, name) }));
  const node = el("li", { "data-task": task.identifier, "data-status": task.status },
    el("div", { class: "head" }, el("span", { class: "name", text: name }), actions),
    el("div", { class: "head" }, state, el("span", { class: "meta", text: when })),
  );
  if (!FINAL.has(task.status)) {
    const percent = Math.round((task.progress || 0) * 100);
    node.append(el("progress", { max: "100", value: String(percent), "aria-label": `Progress of ${name}`, "aria-valuetext": describe(task) }));
    if (entry.live) node.append(el("p", { class: "live", text: entry.live }));
  }
  if (entry.message) node.append(el("p", { class: "message error", role: "alert", text: entry.message }));
  if (entry.node) entry.node.replaceWith(node);
  entry.node = node;
  return node;
}

function addTask(task, newest = false) {
  let entry = tasks.get(task.identifier);
  if (entry) {
    entry.data = { ...entry.data, ...task };
    renderTask(entry);
  } else {
    entry = { data: task, node: null, follow: null, live: "" };
    tasks.set(task.identifier, entry);
    const node = renderTask(entry);
    if (newest) $("tasks").prepend(node); else $("tasks").append(node);
    if ($("tasks-message").textContent === NO_TASKS) say($("tasks-message"), "");
  }
  if (!FINAL.has(entry.data.status) && !entry.follow) watch(entry);
  return entry;
}

function watch(entry) {
  const follow = new AbortController();
  entry.follow = follow;
  const id = entry.data.identifier;
  followEvents(id, (type, event) => {
    if (type === "deleted") {
      entry.follow = null;
      entry.node.remove();
      tasks.delete(id);
      return;
    }
    if (type === "segment") {
      entry.live = `Heard so far: “…${event.segment.text.trim().slice(-160)}”`;
    } else {
      entry.data = { ...entry.data, ...event, error: event.error_code ? { code: event.error_code, message: event.error_message } : entry.data.error };
    }
    if (type === "done") {
      entry.follow = null;
      entry.live = "";
      entry.data.progress = 1;
    }
    renderTask(entry);
  }, follow.signal).finally(() => { if (entry.follow === follow) entry.follow = null; });
}

function stopAll() {
  for (const entry of tasks.values()) if (entry.follow) entry.follow.abort();
  tasks.clear();
  $("tasks").replaceChildren();
  olderOffset = 0;
}

async function loadTasks(more = false) {
  if (!more) {
    stopAll();
  }
  say($("tasks-message"), more ? "" : "Loading…");
  try {
    const page = await getJson(`/task/all?limit=${PAGE_SIZE}&offset=${olderOffset}`);
    olderOffset += page.tasks.length;
    for (const task of page.tasks) addTask(task);
    $("more").hidden = olderOffset >= page.total;
    say($("tasks-message"), page.total ? "" : NO_TASKS);
  } catch (error) {
    say($("tasks-message"), explain(error), "error");
  }
}

async function deleteTask(id, name) {
  if (!window.confirm(`Delete “${name}” and its transcript? This cannot be undone.`)) return;
  const entry = tasks.get(id);
  try {
    await api(`/task/${id}`, { method: "DELETE" });
    if (entry) {
      if (entry.follow) entry.follow.abort();
      entry.node.remove();
      tasks.delete(id);
    }
    if (viewer.id === id) closeViewer();
    say($("tasks-message"), `Deleted “${name}”.`, "ok");
  } catch (error) {
    if (entry) { entry.message = explain(error); renderTask(entry); }
  }
}

// ---------------------------------------------------------------- the transcript viewer
const viewer = { id: null, task: null, words: [], starts: [], current: -1, audioUrl: null, frame: 0 };

function speakerNames(result) {
  // names in order of first appearance; each name's library link (if any) for the label
  const names = [];
  for (const segment of result.segments || []) {
    if (segment.speaker && !names.includes(segment.speaker)) names.push(segment.speaker);
  }
  return names;
}

function libraryNote(result, name) {
  const raw = (result.segments || []).find((s) => s.speaker === name)?.speaker_raw || name;
  const found = (result.speaker_identification || {})[raw];
  if (!found) return "";
  if (found.status === "identified") return "recognised from the speaker library";
  if (found.status === "stored") return "new voice, remembered";
  return "";
}

async function openTask(id) {
  closeViewer();
  viewer.id = id;
  const section = $("viewer");
  section.hidden = false;
  $("viewer-title").textContent = "Loading…";
  try {
    const task = await getJson(`/task/${id}`);
    viewer.task = task;
    $("viewer-title").textContent = task.metadata.file_name || "Transcript";
    const result = task.result || {};
    const facts = [];
    if (task.metadata.audio_duration) facts.push(clock(task.metadata.audio_duration));
    if (result.language) facts.push(CONFIG.languages[result.language] || result.language);
    const names = speakerNames(result);
    if (names.length) facts.push(`${names.length} speaker${names.length > 1 ? "s" : ""}`);
    $("viewer-meta").textContent = facts.join(" · ");
    renderSpeakers(result);
    renderTranscript(result);
    await loadAudio(id);
    section.focus();
  } catch (error) {
    $("viewer-title").textContent = "Transcript";
    say($("player-message"), explain(error), "error");
  }
}

async function loadAudio(id) {
  const player = $("player");
  say($("player-message"), "");
  if (!token.get()) {
    // no token needed: the browser streams the file with range requests as it plays
    player.src = `/task/${id}/audio`;
    player.addEventListener("error", () => audioGone(id), { once: true });
    return;
  }
  try {
    const blob = await (await api(`/task/${id}/audio`)).blob();
    if (viewer.id !== id) return;
    viewer.audioUrl = URL.createObjectURL(blob);
    player.src = viewer.audioUrl;
  } catch (error) {
    audioGone(id, error);
  }
}

async function audioGone(id, error) {
  if (viewer.id !== id) return;
  let message = error ? explain(error) : "";
  if (!error) {
    const response = await fetch(`/task/${id}/audio`, { method: "GET", headers: { Range: "bytes=0-0", ...authHeaders() } });
    if (!response.ok) message = explain(await failure(response));
    else message = "Your browser cannot play this file's format; the transcript is below.";
  }
  say($("player-message"), message, "error");
}

function renderSpeakers(result) {
  const list = $("speakers");
  list.replaceChildren();
  say($("speakers-message"), "");
  const names = speakerNames(result);
  $("speakers-title").hidden = names.length === 0;
  names.forEach((name, index) => {
    const note = libraryNote(result, name);
    const item = el("li", {},
      el("span", { class: `speaker-name s${index % 8}`, text: name }),
      note ? el("span", { class: "meta", text: `(${note})` }) : null,
      el("button", { type: "button", class: "quiet", text: "Rename", "aria-label": `Rename ${name}`, onclick: () => renameForm(item, name) }),
    );
    list.append(item);
  });
}

function renameForm(item, name) {
  const input = el("input", { type: "text", value: name, "aria-label": `New name for ${name}`, maxlength: "255", required: true });
  const form = el("form", { class: "rename" }, input,
    el("button", { type: "submit", class: "primary", text: "Save" }),
    el("button", { type: "button", class: "quiet", text: "Cancel", onclick: () => renderSpeakers(viewer.task.result) }),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const wanted = input.value.trim();
    if (!wanted) { say($("speakers-message"), "Enter a name.", "error"); return; }
    if (wanted === name) { renderSpeakers(viewer.task.result); return; }
    try {
      const response = await api(`/task/${viewer.id}/speakers/${encodeURIComponent(name)}`, {
        method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ speaker_label: wanted }),
      });
      const renamed = await response.json();
      const task = await getJson(`/task/${viewer.id}`);
      viewer.task = task;
      renderSpeakers(task.result);
      renderTranscript(task.result);
      say($("speakers-message"), renamed.speaker_uuid
        ? `Renamed to “${wanted}”. The speaker library now knows this voice as “${wanted}”, so it is named in your next recordings.`
        : `Renamed to “${wanted}” in this transcript. This voice is not in the speaker library (transcribe with “Recognise known voices” on to remember it).`, "ok");
    } catch (error) {
      say($("speakers-message"), explain(error), "error");
    }
  });
  item.replaceChildren(form);
  input.focus();
  input.select();
}

function renderTranscript(result) {
  const box = $("transcript");
  box.replaceChildren();
  viewer.words = [];
  viewer.starts = [];
  viewer.current = -1;
  const names = speakerNames(result);
  let turn = null, speaker;
  for (const segment of result.segments || []) {
    if (!turn || segment.speaker !== speaker) {
      speaker = segment.speaker;
      turn = el("div", { class: "turn" });
      if (speaker) turn.append(el("div", { class: `who s${names.indexOf(speaker) % 8}`, text: speaker }));
      box.append(turn);
    }
    const line = el("p");
    line.append(el("button", { type: "button", class: "time", text: clock(segment.start), "aria-label": `Play from ${clock(segment.start)}`, onclick: () => seek(segment.start) }));
    const words = segment.words && segment.words.length ? segment.words : null;
    if (!words) {
      line.append(segment.text.trim());
    } else {
      words.forEach((word, index) => {
        const start = typeof word.start === "number" ? word.start : null;
        const span = el("span", { class: "word", text: word.word.trim() });
        if (start !== null) {
          span.dataset.start = String(start);
          span.dataset.index = String(viewer.words.length);
          viewer.words.push({ span, start, end: typeof word.end === "number" ? word.end : start });
          viewer.starts.push(start);
        }
        line.append(span, index < words.length - 1 ? " " : "");
      });
    }
    turn.append(line);
  }
  if (!(result.segments || []).length) box.append(el("p", { class: "meta", text: "No speech was found in this recording." }));
}

function seek(seconds) {
  const player = $("player");
  if (!player.src) return;
  player.currentTime = seconds;
  highlight(seconds);
  player.play().catch(() => { /* autoplay refused: the position is set */ });
}

function highlight(time) {
  // the last word that started at or before `time` (binary search over start times)
  let low = 0, high = viewer.starts.length - 1, found = -1;
  while (low <= high) {
    const mid = (low + high) >> 1;
    if (viewer.starts[mid] <= time + 0.01) { found = mid; low = mid + 1; } else high = mid - 1;
  }
  if (found === viewer.current) return;
  if (viewer.current >= 0) viewer.words[viewer.current].span.classList.remove("current");
  viewer.current = found;
  if (found >= 0) viewer.words[found].span.classList.add("current");
}

function followPlayback() {
  const player = $("player");
  const step = () => {
    highlight(player.currentTime);
    if (!player.paused) viewer.frame = requestAnimationFrame(step);
  };
  player.addEventListener("play", () => { cancelAnimationFrame(viewer.frame); viewer.frame = requestAnimationFrame(step); });
  player.addEventListener("seeked", () => highlight(player.currentTime));
  player.addEventListener("timeupdate", () => highlight(player.currentTime));
}

function closeViewer() {
  const player = $("player");
  player.pause();
  player.removeAttribute("src");
  player.load();
  if (viewer.audioUrl) URL.revokeObjectURL(viewer.audioUrl);
  Object.assign(viewer, { id: null, task: null, words: [], starts: [], current: -1, audioUrl: null });
  $("viewer").hidden = true;
}

async function download(format) {
  const id = viewer.id;
  if (!id) return;
  const base = (viewer.task.metadata.file_name || id).replace(/\.[^.]+$/, "");
  try {
    let blob;
    if (format === "json") {
      const task = await getJson(`/task/${id}`);
      blob = new Blob([JSON.stringify(task.result, null, 2)], { type: "application/json" });
    } else {
      blob = await (await api(`/task/${id}?format=${format}`)).blob();
    }
    const link = el("a", { href: URL.createObjectURL(blob), download: `${base}.${format}` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  } catch (error) {
    say($("player-message"), explain(error), "error");
  }
}

// ---------------------------------------------------------------- start
async function loadModels() {
  const select = $("model");
  if (select.options.length) return;
  let names = [CONFIG.default_model];
  try {
    // whisper-1 and gpt-4o-*: OpenAI's names for the default model, not models of their own
    const listed = (await getJson("/v1/models")).data.map((model) => model.id).filter((name) => !/^(whisper-1|gpt-)/.test(name));
    names = [...new Set([CONFIG.default_model, ...listed])];
  } catch { /* the default model still works */ }
  for (const name of names) select.append(el("option", { value: name, text: name === CONFIG.default_model ? `${name} (default)` : name }));
}

function fillLanguages() {
  const select = $("language");
  for (const [code, name] of Object.entries(CONFIG.languages)) {
    select.append(el("option", { value: code, text: `${name.charAt(0).toUpperCase()}${name.slice(1)}` }));
  }
  if (CONFIG.default_language) select.value = CONFIG.default_language;
}

async function start() {
  $("signin").hidden = true;
  $("app").hidden = false;
  $("signout").hidden = !CONFIG.auth;
  await Promise.all([loadModels(), loadTasks()]);
}

function wire() {
  $("signin-form").addEventListener("submit", signIn);
  $("signout").addEventListener("click", () => signedOut(""));
  $("files").addEventListener("change", (event) => { pick(event.target.files); event.target.value = ""; });
  $("record").addEventListener("click", toggleRecording);
  $("upload-form").addEventListener("submit", transcribePicked);
  $("diarize").addEventListener("change", () => {
    $("identify").disabled = !$("diarize").checked;
    $("num-speakers").disabled = !$("diarize").checked;
  });
  $("refresh").addEventListener("click", () => loadTasks());
  $("more").addEventListener("click", () => loadTasks(true));
  $("close-viewer").addEventListener("click", closeViewer);
  $("transcript").addEventListener("click", (event) => {
    const word = event.target.closest(".word");
    if (word && word.dataset.start) seek(Number(word.dataset.start));
  });
  for (const button of document.querySelectorAll(".download")) {
    button.addEventListener("click", () => download(button.dataset.format));
  }
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer && event.dataTransfer.files.length) pick(event.dataTransfer.files);
  });
  $("files").setAttribute("accept", CONFIG.extensions.join(","));
  followPlayback();
}

wire();
fillLanguages();
if (CONFIG.auth && !token.get()) signedOut("");
else start();
