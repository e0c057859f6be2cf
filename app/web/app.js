"use strict";
/* Argus dashboard: API key, tabs, live grid (live.js), event feed, camera form, events and alerts. */
(() => {
  const { LiveClient, Tile } = window.ArgusLive;
  const KEY_STORE = "argus.apiKey";
  const FEED_MAX = 50;
  const CAMERA_POLL_MS = 20000;
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

  const state = {
    key: localStorage.getItem(KEY_STORE) || "",
    cameras: new Map(),
    tiles: new Map(),
    feed: new Map(), // event id -> <li>
    thumbs: new Map(), // snapshot url -> Promise<object URL>
    clipWatch: new Set(), // event ids whose clip the feed is waiting for
    clips: new Map(), // event id -> clip part urls, kept across the event's live updates
    live: null,
    editing: null,
    eventsCursor: null,
  };

  class ApiError extends Error {
    constructor(status, message, field) { super(message); this.status = status; this.field = field; }
  }

  function errorText(body, res) {
    const d = body && body.detail;
    if (typeof d === "string") return d;
    if (Array.isArray(d) && d.length) {
      const loc = (d[0].loc || []).filter((p) => p !== "body").join(".");
      return loc ? `${loc}: ${d[0].msg}` : d[0].msg;
    }
    return `${res.status} ${res.statusText || "error"}`;
  }

  function errorField(body) {
    const d = body && body.detail;
    if (body && body.field) return body.field;
    if (Array.isArray(d) && d.length) return (d[0].loc || []).filter((p) => p !== "body")[0];
    return undefined;
  }

  async function api(path, { method = "GET", body, key = state.key } = {}) {
    const headers = { Authorization: `Bearer ${key}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (!res.ok) {
      let data = null;
      try { data = await res.json(); } catch { /* not JSON */ }
      if (res.status === 401 && key === state.key) askKey("This key is no longer accepted.");
      throw new ApiError(res.status, errorText(data, res), errorField(data));
    }
    if (res.status === 204) return null;
    return (res.headers.get("content-type") || "").includes("json") ? res.json() : res.blob();
  }

  function el(tag, { dataset, ...props } = {}, ...children) {
    const node = Object.assign(document.createElement(tag), props);
    if (dataset) Object.assign(node.dataset, dataset);
    for (const c of children) if (c != null) node.append(c);
    return node;
  }

  function toast(message, kind = "") {
    const node = el("div", { className: `toast ${kind}`, textContent: message });
    $("#toasts").append(node);
    setTimeout(() => node.remove(), 4500);
  }

  function when(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    const time = d.toLocaleTimeString([], { hour12: false });
    return d.toDateString() === new Date().toDateString() ? time : `${d.toLocaleDateString()} ${time}`;
  }

  const cameraName = (id) => (id == null ? "External" : state.cameras.get(id)?.name || `Camera ${id}`);
  const sevBadge = (sev) => el("span", { className: "sev", textContent: sev, dataset: { sev } });

  /** Snapshots need the key, so they are fetched as blobs; each URL is fetched once per page. */
  function thumb(url, small = false) {
    const box = el("div", { className: small ? "thumb small" : "thumb" });
    box.innerHTML = '<svg viewBox="0 0 24 24"><path d="M4 7h3l2-3h6l2 3h3v13H4z"/><circle cx="12" cy="13" r="4"/></svg>';
    if (!url) return box;
    if (!state.thumbs.has(url)) state.thumbs.set(url, api(url).then((blob) => URL.createObjectURL(blob)));
    state.thumbs.get(url)
      .then((src) => box.replaceChildren(el("img", { src, alt: "Event snapshot", loading: "lazy" })))
      .catch(() => state.thumbs.delete(url));
    return box;
  }

  // -- event clips --

  /** Clips need the key too: each part is fetched as a blob and played from an object URL. */
  function playClip(urls, host) {
    host.querySelector("video.clip")?.remove();
    const video = el("video", { className: "clip", controls: true, muted: true, playsInline: true, preload: "auto" });
    video.setAttribute("aria-label", "Event clip");
    host.append(video);
    let part = 0;
    const load = async () => {
      try {
        const src = URL.createObjectURL(await api(urls[part]));
        if (video.src) URL.revokeObjectURL(video.src);
        video.src = src;
        await video.play();
      } catch (err) {
        if (err instanceof ApiError) toast(`Clip: ${err.message}`, "error");
      }
    };
    video.addEventListener("ended", () => { if (++part < urls.length) load(); });
    load();
    return video;
  }

  function clipButton(ev, host) {
    const urls = ev.clip_urls && ev.clip_urls.length ? ev.clip_urls : ev.clip_url ? [ev.clip_url] : [];
    if (!urls.length) return null;
    const label = urls.length > 1 ? `Play clip (${urls.length} parts)` : "Play clip";
    return el("button", {
      className: "btn clip-btn",
      type: "button",
      textContent: "▶ Clip",
      title: label,
      ariaLabel: label,
      onclick: (e) => { e.stopPropagation(); playClip(urls, typeof host === "function" ? host() : host); },
    });
  }

  /** Live events arrive before their clip exists: ask for the stored event until it has one. */
  function watchClip(ev, tries = 12) {
    const recording = state.cameras.get(ev.camera_id)?.record?.mode !== "off";
    if (ev.camera_id == null || ev.clip_url || !recording || state.clipWatch.has(ev.id)) return;
    state.clipWatch.add(ev.id);
    const check = async (left) => {
      if (!state.feed.has(ev.id)) { state.clipWatch.delete(ev.id); return; }
      try {
        const stored = await api(`/api/events/${encodeURIComponent(ev.id)}`);
        if (stored.clip_url) {
          state.clipWatch.delete(ev.id);
          addToFeed({ ...stored, phase: ev.phase });
          return;
        }
      } catch { /* not stored yet */ }
      if (left > 0) setTimeout(() => check(left - 1), 2500);
      else state.clipWatch.delete(ev.id);
    };
    setTimeout(() => check(tries), 2500);
  }

  // -- API key --

  function askKey(message = "") {
    const dialog = $("#key-dialog");
    $("#key-error").hidden = !message;
    $("#key-error").textContent = message;
    $("#key-forget").hidden = !state.key;
    if (!dialog.open) dialog.showModal();
    $("input[name=key]", dialog).focus();
  }

  $("#key-dialog").addEventListener("cancel", (e) => { if (!state.key) e.preventDefault(); });
  $("#key-button").addEventListener("click", () => askKey());
  $("#key-forget").addEventListener("click", () => {
    localStorage.removeItem(KEY_STORE);
    location.reload();
  });
  $("#key-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const key = e.target.key.value.trim();
    if (!key) return askKey("Enter a key.");
    try {
      await api("/api/cameras", { key });
    } catch (err) {
      return askKey(err.status === 401 ? "That key was not accepted." : `Could not reach the server: ${err.message}`);
    }
    localStorage.setItem(KEY_STORE, key);
    state.key = key;
    $("#key-dialog").close();
    start();
  });

  // -- tabs --

  const loaders = { events: () => loadEvents(true), cameras: loadCameras, alerts: loadAlerts };
  $$(".tabs button").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));

  function showTab(name) {
    $$(".tabs button").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
    $$(".tab").forEach((t) => t.classList.toggle("active", t.id === `tab-${name}`));
    history.replaceState(null, "", name === "live" ? "/" : `#${name}`);
    if (loaders[name]) loaders[name]();
  }

  // -- cameras: grid, table, subscriptions --

  async function loadCameras() {
    let list;
    try { list = await api("/api/cameras"); } catch (err) { if (err.status !== 401) toast(err.message, "error"); return; }
    state.cameras = new Map(list.map((c) => [c.id, c]));
    for (const [id, tile] of state.tiles) {
      if (!state.cameras.has(id)) { tile.el.remove(); state.tiles.delete(id); }
    }
    for (const cam of list) {
      const tile = state.tiles.get(cam.id);
      if (tile) { tile.update(cam); continue; }
      const fresh = new Tile(cam, openCameraForm);
      state.tiles.set(cam.id, fresh);
      $("#grid").append(fresh.el);
    }
    if (state.live) state.live.setCameras(list.map((c) => c.id));
    $("#grid-empty").classList.toggle("hidden", list.length > 0);
    renderCameraTable(list);
    renderSummary();
    const select = $("#events-camera");
    const chosen = select.value;
    select.replaceChildren(el("option", { value: "", textContent: "All cameras" }),
      ...list.map((c) => el("option", { value: c.id, textContent: c.name })));
    select.value = chosen;
  }

  function renderSummary() {
    const tiles = [...state.tiles.values()];
    const streaming = tiles.filter((t) => t.state === "streaming").length;
    $("#live-summary").textContent = tiles.length ? `${tiles.length} camera${tiles.length > 1 ? "s" : ""} · ${streaming} streaming` : "";
  }

  function renderCameraTable(list) {
    $("#cameras-note").classList.toggle("hidden", list.length > 0);
    $("#cameras-body").replaceChildren(...list.map((c) => {
      const st = state.tiles.get(c.id)?.state || c.state || "stopped";
      const edit = el("button", { className: "btn", textContent: "Edit" });
      edit.addEventListener("click", () => openCameraForm(c.id));
      return el("tr", {},
        el("td", {}, el("strong", { textContent: c.name })),
        el("td", { className: "mono", textContent: c.url, title: c.url }),
        el("td", {}, el("span", { className: "badge", dataset: { state: st }, textContent: st })),
        el("td", { textContent: `${c.analysis_fps} fps` }),
        el("td", { textContent: c.drop_policy === "every_nth" ? `1 in ${c.drop_every_n}` : "latest" }),
        el("td", { textContent: c.enabled ? "Yes" : "No" }),
        el("td", { style: "text-align:right" }, edit));
    }));
  }

  // -- camera form --

  const form = $("#camera-form");
  const policy = form.drop_policy;
  policy.addEventListener("change", () => { $(".every-n", form).hidden = policy.value !== "every_nth"; });
  $$("[data-action=add-camera]").forEach((b) => b.addEventListener("click", () => openCameraForm(null)));
  $$("[data-close]", form).forEach((b) => b.addEventListener("click", () => $("#camera-dialog").close()));

  function openCameraForm(id) {
    const cam = id == null ? null : state.cameras.get(id);
    state.editing = cam;
    form.reset();
    formError("");
    $("#camera-form-title").textContent = cam ? `Edit ${cam.name}` : "Add camera";
    $("#camera-save").textContent = cam ? "Save changes" : "Add camera";
    const del = $("#camera-delete");
    del.hidden = !cam;
    del.textContent = "Delete camera";
    delete del.dataset.armed;
    if (cam) {
      form.name.value = cam.name;
      form.url.value = cam.url;
      form.analysis_fps.value = cam.analysis_fps;
      form.drop_policy.value = cam.drop_policy;
      form.drop_every_n.value = cam.drop_every_n;
      form.enabled.checked = cam.enabled;
    }
    $(".every-n", form).hidden = policy.value !== "every_nth";
    showNormality(cam);
    $("#camera-dialog").showModal();
    form.name.focus();
  }

  /** The VAD's learned normality of the camera: its activity map (fetched with the key) and progress. */
  async function showNormality(cam) {
    const section = $("#camera-normality");
    section.hidden = !cam;
    if (!cam) return;
    const box = $("#normality-image");
    box.replaceChildren();
    try {
      const [status, blob] = await Promise.all([
        api(`/api/cameras/${cam.id}/status`), api(`/api/cameras/${cam.id}/vad/normality.png`)]);
      const vad = status.vad;
      $("#normality-learning").textContent = vad
        ? `learned ${(vad.learned_s / 3600).toFixed(1)} h · ${Math.round(vad.learning * 100)} % of the learning period`
        : "not learning (camera stopped or VAD off)";
      box.replaceChildren(el("img", { src: URL.createObjectURL(blob), alt: "Learned normal activity", id: "normality-png" }));
    } catch (err) {
      $("#normality-learning").textContent = err.message;
    }
  }

  $("#normality-reset").addEventListener("click", async () => {
    const cam = state.editing;
    if (!cam) return;
    try {
      await api(`/api/cameras/${cam.id}/vad/reset`, { method: "POST" });
      toast(`${cam.name}: learning starts over`, "ok");
      await showNormality(cam);
    } catch (err) { toast(err.message, "error"); }
  });

  function formError(message, field) {
    const box = $("#camera-form-error");
    box.hidden = !message;
    box.textContent = message;
    $$("input, select", form).forEach((i) => i.classList.toggle("invalid", !!field && i.name === field));
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const values = {
      name: form.name.value.trim(),
      url: form.url.value.trim(),
      enabled: form.enabled.checked,
      analysis_fps: Number(form.analysis_fps.value),
      drop_policy: form.drop_policy.value,
      drop_every_n: Number(form.drop_every_n.value),
    };
    if (!values.name) return formError("Give the camera a name.", "name");
    if (!values.url) return formError("Enter the stream URL or a file path.", "url");
    const cam = state.editing;
    // Only changed fields: the URL comes back masked, so sending it unchanged would lose the password.
    const body = cam ? Object.fromEntries(Object.entries(values).filter(([k, v]) => v !== cam[k])) : values;
    const save = $("#camera-save");
    save.disabled = true;
    try {
      const saved = cam
        ? await api(`/api/cameras/${cam.id}`, { method: "PATCH", body })
        : await api("/api/cameras", { method: "POST", body });
      $("#camera-dialog").close();
      toast(cam ? `Saved ${saved.name}` : `Added ${saved.name}`, "ok");
      await loadCameras();
    } catch (err) {
      formError(err.message, err.field);
    } finally {
      save.disabled = false;
    }
  });

  $("#camera-delete").addEventListener("click", async (e) => {
    const btn = e.currentTarget;
    const cam = state.editing;
    if (!btn.dataset.armed) { // a second click confirms: no blocking confirm() popups
      btn.dataset.armed = "1";
      btn.textContent = "Click again to delete";
      setTimeout(() => { delete btn.dataset.armed; btn.textContent = "Delete camera"; }, 4000);
      return;
    }
    try {
      await api(`/api/cameras/${cam.id}`, { method: "DELETE" });
      $("#camera-dialog").close();
      toast(`Deleted ${cam.name}`, "ok");
      await loadCameras();
    } catch (err) {
      formError(err.message, err.field);
    }
  });

  // -- live messages --

  function onMessage(msg) {
    if (msg.type === "camera_state") {
      const tile = state.tiles.get(msg.camera_id);
      if (msg.state === "removed") { loadCameras(); return; }
      if (tile) { tile.setState(msg.state); renderSummary(); }
    } else if (msg.type === "detections") {
      state.tiles.get(msg.camera_id)?.setDetections(msg);
    } else if (msg.type === "event") {
      addToFeed(msg.event);
    } else if (msg.type === "error") {
      if (msg.code !== "unknown_camera") toast(`Live view: ${msg.message}`, "error");
    }
  }

  function onStatus(status) {
    const pill = $("#conn");
    const text = { on: "Live", wait: "Reconnecting…", off: "Offline", unauthorized: "Key rejected" };
    pill.dataset.state = status === "unauthorized" ? "off" : status;
    $("span", pill).textContent = text[status];
    if (status === "unauthorized") askKey("This key is no longer accepted.");
  }

  // -- event feed --

  function feedItem(ev) {
    const title = el("div", { className: "feed-title" }, sevBadge(ev.severity), el("span", { textContent: ev.type.replace(/_/g, " ") }));
    if (ev.ended_at || ev.phase === "close") title.append(el("span", { className: "ended", textContent: "ended" }));
    const meta = [cameraName(ev.camera_id), when(ev.started_at)];
    if (ev.score != null) meta.push(`score ${Number(ev.score).toFixed(2)}`);
    const body = el("div", {}, title, el("div", { className: "feed-meta", textContent: meta.join(" · ") }));
    if (ev.description) body.append(el("div", { className: "feed-desc", textContent: ev.description }));
    const item = el("li", { className: "feed-item", dataset: { sev: ev.severity, id: ev.id } }, thumb(ev.snapshot_url), body);
    const play = clipButton(ev, item);
    if (play) body.append(play);
    return item;
  }

  function addToFeed(ev, atEnd = false) {
    if (ev.clip_url) state.clips.set(ev.id, ev.clip_urls || [ev.clip_url]);
    else if (state.clips.has(ev.id)) ev = { ...ev, clip_urls: state.clips.get(ev.id), clip_url: state.clips.get(ev.id)[0] };
    const old = state.feed.get(ev.id);
    const item = feedItem(ev);
    const playing = old && old.querySelector("video.clip");
    if (playing) item.append(playing); // a live update of the event must not stop its clip
    if (old) old.replaceWith(item);
    else if (atEnd) $("#feed").append(item);
    else $("#feed").prepend(item);
    state.feed.set(ev.id, item);
    while (state.feed.size > FEED_MAX) {
      const last = $("#feed").lastElementChild;
      state.feed.delete(last.dataset.id);
      state.clips.delete(last.dataset.id);
      last.remove();
    }
    $("#feed-empty").classList.toggle("hidden", state.feed.size > 0);
    $("#feed-count").textContent = state.feed.size;
    watchClip(ev);
  }

  // -- events tab --

  async function loadEvents(reset) {
    const params = new URLSearchParams({ limit: "50" });
    if ($("#events-camera").value) params.set("camera_id", $("#events-camera").value);
    if ($("#events-severity").value) params.set("min_severity", $("#events-severity").value);
    if (!reset && state.eventsCursor) params.set("cursor", state.eventsCursor);
    const note = $("#events-note");
    try {
      const page = await api(`/api/events?${params}`);
      const rows = page.items.map((ev) => {
        const row = el("tr", { dataset: { id: ev.id } });
        const cell = el("td", {}, thumb(ev.snapshot_url, true));
        const play = clipButton(ev, () => clipRow(row));
        if (play) cell.append(play);
        row.append(cell,
          el("td", { textContent: when(ev.started_at) }),
          el("td", { textContent: cameraName(ev.camera_id) }),
          el("td", { textContent: ev.type }),
          el("td", {}, sevBadge(ev.severity)),
          el("td", { textContent: ev.score == null ? "—" : Number(ev.score).toFixed(2) }),
          el("td", { className: "wrap", textContent: ev.description || "" }));
        return row;
      });
      if (reset) $("#events-body").replaceChildren(...rows); else $("#events-body").append(...rows);
      state.eventsCursor = page.next_cursor;
      $("#events-more").hidden = !page.next_cursor;
      note.textContent = "No events match these filters yet.";
      note.classList.toggle("hidden", $("#events-body").children.length > 0);
    } catch (err) {
      note.textContent = err.status === 404 ? "The events API is not available on this server." : err.message;
      note.classList.remove("hidden");
    }
  }

  /** The row under an event where its clip plays (created once). */
  function clipRow(row) {
    const next = row.nextElementSibling;
    if (next && next.classList.contains("clip-row")) return next.firstElementChild;
    const cell = el("td", { colSpan: 7 });
    row.after(el("tr", { className: "clip-row" }, cell));
    return cell;
  }

  $("#events-more").addEventListener("click", () => loadEvents(false));
  $("#events-refresh").addEventListener("click", () => loadEvents(true));
  $("#events-camera").addEventListener("change", () => loadEvents(true));
  $("#events-severity").addEventListener("change", () => loadEvents(true));

  // -- alerts tab --

  async function loadAlerts() {
    const note = $("#alerts-note");
    const params = new URLSearchParams({ limit: "100" });
    if ($("#alerts-status").value) params.set("status", $("#alerts-status").value);
    try {
      const page = await api(`/api/alerts?${params}`);
      const items = Array.isArray(page) ? page : page.items;
      $("#alerts-body").replaceChildren(...items.map((a) => el("tr", {},
        el("td", { textContent: when(a.created_at) }),
        el("td", { textContent: a.event_type }),
        el("td", { textContent: cameraName(a.camera_id) }),
        el("td", {}, sevBadge(a.severity)),
        el("td", { textContent: a.priority }),
        el("td", {}, el("span", { className: "badge", dataset: { status: a.status }, textContent: a.status })),
        el("td", { textContent: a.attempts }),
        el("td", { className: "wrap", textContent: a.last_status_code ? `HTTP ${a.last_status_code}` : a.last_error || (a.delivered_at ? when(a.delivered_at) : "—") }))));
      note.textContent = "No alerts yet. Alert rules decide which events are delivered to your webhooks.";
      note.classList.toggle("hidden", items.length > 0);
    } catch (err) {
      $("#alerts-body").replaceChildren();
      note.textContent = err.status === 404
        ? "Alert delivery status is not available on this server yet. Once alerting is enabled, every webhook delivery shows up here."
        : err.message;
      note.classList.remove("hidden");
    }
  }

  $("#alerts-refresh").addEventListener("click", loadAlerts);
  $("#alerts-status").addEventListener("change", loadAlerts);

  // -- start --

  async function start() {
    if (state.live) state.live.close();
    state.live = new LiveClient({
      key: state.key,
      onFrame: (f) => state.tiles.get(f.cameraId)?.draw(f),
      onMessage,
      onStatus,
    });
    await loadCameras();
    state.live.connect();
    try {
      const page = await api("/api/events?limit=20");
      for (const ev of page.items) if (!state.feed.has(ev.id)) addToFeed(ev, true);
    } catch { /* the feed still fills live */ }
    $("#feed-empty").classList.toggle("hidden", state.feed.size > 0);
  }

  setInterval(() => { if (state.key && document.visibilityState === "visible") loadCameras(); }, CAMERA_POLL_MS);
  const initial = location.hash.slice(1);
  if (["events", "cameras", "alerts"].includes(initial)) showTab(initial);
  if (state.key) start(); else askKey();
})();
