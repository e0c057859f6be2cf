"use strict";
/* Zones on a camera tile: the detector's zones (green), masks (grey) and rule lines (orange, with an arrow
   towards their "in" side) drawn on the overlay under the boxes; "Draw zone" lets a user click a polygon on
   the picture and save it as a new zone of the camera's detector. Points are normalised (0..1) to the
   picture, which the overlay shows letterboxed (object-fit: contain), as the server stores them. */
(() => {
  const KEY_STORE = "argus.apiKey";
  const DEFAULT_MODEL = "yolov3-tiny";
  const ZONE = "#3ecf8e", MASK = "#8a94a6", LINE = "#ff9f1c", DRAFT = "#ffd60a";

  document.head.append(Object.assign(document.createElement("style"), { textContent: `
    .tile.drawing canvas.overlay { pointer-events: auto; cursor: crosshair; }
    .zone-form { display: flex; gap: 6px; align-items: center; margin: 6px 8px; padding: 6px;
      border-radius: 8px; background: rgba(10, 14, 20, .85); }
    .zone-form input { flex: 1; min-width: 0; }
    .zone-form .zone-hint { color: #c9d1dc; font-size: 12px; white-space: nowrap; }
    .zone-form .zone-error { color: #ff6b6b; font-size: 12px; }` }));

  function detector(camera) {
    return (camera.analyzers || []).find((a) => a.name === "detector") || null;
  }

  function geometry(camera) {
    const options = (detector(camera) || {}).options || {};
    return {
      zones: options.zones || [],
      masks: (options.masks || []).map((m) => (Array.isArray(m) ? m : m.polygon)),
      lines: (options.rules || []).filter((r) => r.type === "line_crossing" && r.line)
        .map((r) => ({ name: r.name || "line", line: r.line })),
    };
  }

  function path(ctx, points, w, h, close = true) {
    ctx.beginPath();
    points.forEach(([x, y], i) => (i ? ctx.lineTo(x * w, y * h) : ctx.moveTo(x * w, y * h)));
    if (close) ctx.closePath();
  }

  /** Draw the camera's zones, masks and lines (and a polygon being drawn) on an overlay of w x h. */
  function draw(ctx, w, h, camera, draft) {
    const g = geometry(camera);
    const line = Math.max(2, Math.round(w / 320));
    ctx.save();
    ctx.lineWidth = line;
    ctx.font = `600 ${6 * line + 2}px Inter, system-ui, sans-serif`;
    ctx.textBaseline = "top";
    for (const m of g.masks) {
      path(ctx, m, w, h);
      ctx.fillStyle = "rgba(138, 148, 166, .35)";
      ctx.fill();
      ctx.strokeStyle = MASK;
      ctx.stroke();
    }
    for (const z of g.zones) {
      path(ctx, z.polygon, w, h);
      ctx.fillStyle = "rgba(62, 207, 142, .18)";
      ctx.fill();
      ctx.strokeStyle = ZONE;
      ctx.stroke();
      ctx.fillStyle = ZONE;
      ctx.fillText(z.name, z.polygon[0][0] * w + 4, z.polygon[0][1] * h + 4);
    }
    for (const l of g.lines) {
      const [[x1, y1], [x2, y2]] = l.line;
      const ax = x1 * w, ay = y1 * h, bx = x2 * w, by = y2 * h;
      ctx.strokeStyle = ctx.fillStyle = LINE;
      path(ctx, l.line, w, h, false);
      ctx.stroke();
      // the arrow points to the right of first -> second point: where a crossing counts as "in"
      const mx = (ax + bx) / 2, my = (ay + by) / 2, len = Math.hypot(bx - ax, by - ay) || 1;
      const nx = -(by - ay) / len, ny = (bx - ax) / len, a = 8 * line;
      ctx.beginPath();
      ctx.moveTo(mx, my);
      ctx.lineTo(mx + nx * a * 2, my + ny * a * 2);
      ctx.stroke();
      ctx.fillText(`${l.name} in`, mx + nx * a * 2 + 4, my + ny * a * 2);
    }
    if (draft && draft.length) {
      ctx.setLineDash([4 * line, 3 * line]);
      path(ctx, draft, w, h, false);
      ctx.strokeStyle = DRAFT;
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.fillStyle = DRAFT;
      for (const [x, y] of draft) ctx.fillRect(x * w - 2 * line, y * h - 2 * line, 4 * line, 4 * line);
    }
    ctx.restore();
  }

  /** The picture's point under a click, normalised, or null outside the (letterboxed) picture. */
  function pointAt(canvas, event) {
    const rect = canvas.getBoundingClientRect();
    const scale = Math.min(rect.width / canvas.width, rect.height / canvas.height);
    const shownW = canvas.width * scale, shownH = canvas.height * scale;
    const x = (event.clientX - rect.left - (rect.width - shownW) / 2) / shownW;
    const y = (event.clientY - rect.top - (rect.height - shownH) / 2) / shownH;
    if (x < 0 || x > 1 || y < 0 || y > 1) return null;
    return [Math.round(x * 1000) / 1000, Math.round(y * 1000) / 1000];
  }

  async function call(path, method = "GET", payload) {
    const headers = { Authorization: `Bearer ${localStorage.getItem(KEY_STORE) || ""}` };
    if (payload !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(path, { method, headers, body: payload === undefined ? undefined : JSON.stringify(payload) });
    const body = await res.json().catch(() => null);
    if (!res.ok) {
      const d = body && body.detail;
      const error = new Error(typeof d === "string" ? d : (Array.isArray(d) && d[0] && d[0].msg) || `${res.status}`);
      error.status = res.status;
      throw error;
    }
    return body;
  }

  function patchZones(camera, zones) {
    const analyzers = (camera.analyzers || []).map((a) =>
      a.name === "detector" ? { ...a, options: { ...a.options, zones } } : a);
    return call(`/api/cameras/${camera.id}`, "PATCH", { analyzers });
  }

  /** Give a camera the built-in COCO detector: install the model once (server-side conversion), then add
      the analyzer (region mode: a calm camera runs no detector). */
  async function enableDetection(camera) {
    try {
      await call(`/api/models/${DEFAULT_MODEL}`);
    } catch (err) {
      if (err.status !== 404) throw err;
      await call("/api/models/install", "POST", { name: DEFAULT_MODEL });
    }
    const options = { model: DEFAULT_MODEL, classes: ["person", "bicycle", "car"], mode: "regions" };
    const analyzers = [...(camera.analyzers || []), { name: "detector", options }];
    return call(`/api/cameras/${camera.id}`, "PATCH", { analyzers });
  }

  /** The tile's "Draw zone" button and the click-to-draw mode. */
  function attach(tile) {
    const top = tile.el.querySelector(".tile-top");
    const button = Object.assign(document.createElement("button"), {
      className: "icon-btn tile-zone", title: "Draw a zone", textContent: "Zone",
    });
    button.setAttribute("aria-label", "Draw a zone");
    top.insertBefore(button, tile.el.querySelector(".tile-edit"));
    const media = tile.el.querySelector(".tile-media");
    let form = null;

    const stop = () => {
      tile.draft = null;
      tile.el.classList.remove("drawing");
      if (form) form.remove();
      form = null;
      tile.drawBoxes();
    };

    button.addEventListener("click", () => {
      if (form) { stop(); return; }
      tile.draft = [];
      tile.el.classList.add("drawing");
      form = document.createElement("form");
      form.className = "zone-form";
      form.innerHTML = `<span class="zone-hint">Click the corners, then name it</span>
        <input name="zone" placeholder="zone name" maxlength="64" autocomplete="off">
        <button type="submit" class="btn small">Save</button>
        <button type="button" class="btn small ghost zone-cancel">Cancel</button>
        <span class="zone-error"></span>`;
      form.querySelector(".zone-cancel").addEventListener("click", stop);
      if (!detector(tile.camera)) {
        // no detector yet: offer the built-in one (installed on the server the first time)
        const hint = form.querySelector(".zone-hint");
        hint.textContent = "No object detector on this camera";
        const enable = Object.assign(document.createElement("button"), {
          type: "button", className: "btn small zone-enable", textContent: "Enable detection",
        });
        hint.after(enable);
        enable.addEventListener("click", async () => {
          enable.disabled = true;
          enable.textContent = "Installing…";
          try {
            tile.update(await enableDetection(tile.camera));
            enable.remove();
            hint.textContent = "Click the corners, then name it";
          } catch (err) {
            form.querySelector(".zone-error").textContent = err.message;
            enable.disabled = false;
            enable.textContent = "Enable detection";
          }
        });
      }
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        const name = form.elements.zone.value.trim();
        const error = form.querySelector(".zone-error");
        if (!detector(tile.camera)) { error.textContent = "add a detector to this camera first"; return; }
        if (tile.draft.length < 3) { error.textContent = "click at least 3 corners"; return; }
        if (!name) { error.textContent = "name the zone"; return; }
        try {
          const zones = [...geometry(tile.camera).zones, { name, polygon: tile.draft }];
          tile.update(await patchZones(tile.camera, zones));
          stop();
        } catch (err) {
          error.textContent = err.message;
        }
      });
      media.after(form); // below the picture, so every point of it stays clickable
      tile.drawBoxes();
    });

    tile.overlay.addEventListener("click", (e) => {
      if (!tile.draft) return;
      const p = pointAt(tile.overlay, e);
      if (p) { tile.draft.push(p); tile.drawBoxes(); }
    });
  }

  window.ArgusZones = { geometry, draw, attach, pointAt, enableDetection };
})();
