"use strict";
/* Recordings tab: a camera's continuous-recording segments for a chosen hour, played in a <video>.
   Media needs the API key, so segments and exports are fetched as blobs and played from object URLs. */
(() => {
  const KEY_STORE = "argus.apiKey";
  const $ = (sel, root = document) => root.querySelector(sel);
  let objectUrl = null;

  async function fetchWithKey(path) {
    const res = await fetch(path, { headers: { Authorization: `Bearer ${localStorage.getItem(KEY_STORE) || ""}` } });
    if (!res.ok) {
      let detail = `${res.status} ${res.statusText || "error"}`;
      try { detail = (await res.json()).detail || detail; } catch { /* not JSON */ }
      throw new Error(detail);
    }
    return res;
  }

  function el(tag, props = {}, ...children) {
    const node = Object.assign(document.createElement(tag), props);
    for (const c of children) if (c != null) node.append(c);
    return node;
  }

  const pad = (n) => String(n).padStart(2, "0");
  const localHour = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:00`;
  const time = (iso) => (iso ? new Date(iso).toLocaleTimeString([], { hour12: false }) : "recording…");

  /** The chosen hour as [since, until) ISO strings (the input is local time). */
  function span() {
    const start = new Date($("#rec-hour").value || localHour(new Date()));
    start.setMinutes(0, 0, 0);
    return [start.toISOString(), new Date(start.getTime() + 3600_000).toISOString()];
  }

  async function loadCameras() {
    const select = $("#rec-camera");
    const chosen = select.value;
    const cameras = await (await fetchWithKey("/api/cameras")).json();
    select.replaceChildren(...cameras.map((c) => el("option", { value: c.id, textContent: c.name })));
    if (chosen && cameras.some((c) => String(c.id) === chosen)) select.value = chosen;
    if (!$("#rec-hour").value) $("#rec-hour").value = localHour(new Date());
    return cameras.length;
  }

  async function play(path, label) {
    const video = $("#rec-player");
    $("#rec-now").textContent = `Loading ${label}…`;
    try {
      const blob = await (await fetchWithKey(path)).blob();
      if (objectUrl) URL.revokeObjectURL(objectUrl);
      objectUrl = URL.createObjectURL(blob);
      video.src = objectUrl;
      video.dataset.source = path;
      $("#rec-now").textContent = label;
      await video.play();
    } catch (err) {
      $("#rec-now").textContent = `Cannot play ${label}: ${err.message}`;
    }
  }

  function row(seg) {
    const button = el("button", { className: "btn", textContent: "Play" });
    const label = `${time(seg.started_at)} – ${time(seg.ended_at)}`;
    button.disabled = !seg.url;
    button.addEventListener("click", () => play(seg.url, label));
    const tr = el("tr", {},
      el("td", { textContent: time(seg.started_at) }),
      el("td", { textContent: time(seg.ended_at) }),
      el("td", { textContent: `${(seg.bytes / 1048576).toFixed(1)} MB` }),
      el("td", { style: "text-align:right" }, button));
    tr.className = "rec-segment";
    tr.dataset.id = seg.id;
    return tr;
  }

  async function show() {
    const note = $("#rec-note");
    const camera = $("#rec-camera").value;
    if (!camera) { note.textContent = "No cameras yet."; note.hidden = false; return; }
    const [since, until] = span();
    const params = new URLSearchParams({ since, until });
    try {
      const segments = await (await fetchWithKey(`/api/cameras/${camera}/recordings?${params}`)).json();
      $("#rec-body").replaceChildren(...segments.map(row));
      $("#rec-export").disabled = !segments.some((s) => s.url);
      note.textContent = "Nothing recorded in this hour. Continuous recording is set per camera (record.mode).";
      note.hidden = segments.length > 0;
    } catch (err) {
      note.textContent = err.message;
      note.hidden = false;
    }
  }

  async function open() {
    try {
      if (await loadCameras()) await show();
      else { $("#rec-note").textContent = "No cameras yet."; $("#rec-note").hidden = false; }
    } catch (err) {
      $("#rec-note").textContent = err.message;
      $("#rec-note").hidden = false;
    }
  }

  $("#rec-show").addEventListener("click", show);
  $("#rec-camera").addEventListener("change", show);
  $("#rec-hour").addEventListener("change", show);
  $("#rec-export").addEventListener("click", () => {
    const [since, until] = span();
    const params = new URLSearchParams({ since, until });
    play(`/api/cameras/${$("#rec-camera").value}/export.mp4?${params}`, `the whole hour from ${time(since)}`);
  });
  document.querySelector(".tabs button[data-tab=recordings]").addEventListener("click", open);
  if (location.hash === "#recordings") document.querySelector(".tabs button[data-tab=recordings]").click();
})();
