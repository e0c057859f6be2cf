"use strict";
/* Live view: one WebSocket to /ws/live, binary frames drawn on per-camera canvases, JSON dispatched.
   Frame header (little-endian, 28 bytes): u16 version, u16 header length, u32 camera id, u64 seq,
   f64 capture time (epoch s), u16 width, u16 height; the JPEG starts at `header length`. */
(() => {
  const FPS_WINDOW_MS = 2000;
  const BOXES_STALE_MS = 1500; // overlays older than this are cleared (the analysis stopped or lags)
  const TOKEN_CHARS = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/; // what a Sec-WebSocket-Protocol value may hold

  function parseFrame(buffer) {
    const v = new DataView(buffer);
    const headerLength = v.getUint16(2, true);
    return {
      cameraId: v.getUint32(4, true),
      seq: v.getUint32(8, true) + v.getUint32(12, true) * 2 ** 32,
      capturedAt: v.getFloat64(16, true),
      width: v.getUint16(24, true),
      height: v.getUint16(26, true),
      jpeg: new Blob([new Uint8Array(buffer, headerLength)], { type: "image/jpeg" }),
    };
  }

  /** Keeps one socket open (reconnects with backoff) and the server's subscriptions equal to `wanted`. */
  class LiveClient {
    constructor({ key, fps = 5, onFrame, onMessage, onStatus }) {
      Object.assign(this, { key, fps, onFrame, onMessage, onStatus });
      this.wanted = new Set();
      this.ws = null;
      this.retry = 0;
      this.stopped = false;
      this.timer = null;
    }

    connect() {
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      // The key travels as a subprotocol, not as ?token= (servers log request paths with their query).
      // A key with characters a subprotocol cannot hold falls back to the query string.
      const url = `${scheme}://${location.host}/ws/live`;
      const ws = TOKEN_CHARS.test(this.key)
        ? new WebSocket(url, ["argus.live", `argus.key.${this.key}`])
        : new WebSocket(`${url}?token=${encodeURIComponent(this.key)}`);
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      this.onStatus("wait");
      ws.onopen = () => {
        this.retry = 0;
        this.onStatus("on");
        if (this.wanted.size) this.send({ type: "subscribe", camera_ids: [...this.wanted], fps: this.fps });
      };
      ws.onmessage = (e) => {
        if (typeof e.data === "string") this.onMessage(JSON.parse(e.data));
        else this.onFrame(parseFrame(e.data));
      };
      ws.onclose = (e) => {
        if (this.ws !== ws) return;
        this.ws = null;
        if (e.code === 4401) { this.onStatus("unauthorized"); return; }
        if (this.stopped) { this.onStatus("off"); return; }
        this.onStatus("wait");
        const delay = Math.min(10000, 1000 * 2 ** this.retry++);
        this.timer = setTimeout(() => this.connect(), delay);
      };
    }

    setCameras(ids) {
      const next = new Set(ids);
      const added = [...next].filter((id) => !this.wanted.has(id));
      const removed = [...this.wanted].filter((id) => !next.has(id));
      this.wanted = next;
      if (added.length) this.send({ type: "subscribe", camera_ids: added, fps: this.fps });
      if (removed.length) this.send({ type: "unsubscribe", camera_ids: removed });
    }

    send(message) {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
    }

    close() {
      this.stopped = true;
      clearTimeout(this.timer);
      if (this.ws) this.ws.close(1000);
    }
  }

  const STATE_LABELS = {
    connecting: "Connecting", streaming: "Live", reconnecting: "Reconnecting",
    offline: "Offline", stopped: "Stopped", removed: "Removed",
  };

  /** One camera tile: draws the newest frame (latest-wins while a decode is running) and its boxes. */
  class Tile {
    constructor(camera, onEdit) {
      const node = document.getElementById("tile-template").content.firstElementChild.cloneNode(true);
      this.el = node;
      this.canvas = node.querySelector("canvas.frame");
      this.overlay = node.querySelector("canvas.overlay");
      this.badge = node.querySelector(".badge.state");
      this.timeEl = node.querySelector(".tile-time");
      this.fpsEl = node.querySelector(".tile-fps");
      this.placeholder = node.querySelector(".placeholder span");
      this.busy = false;
      this.pending = null;
      this.arrivals = [];
      this.boxes = null;
      node.querySelector(".tile-edit").addEventListener("click", () => onEdit(this.camera.id));
      this.draft = null; // a zone being drawn (zones.js)
      this.update(camera);
      if (window.ArgusZones) window.ArgusZones.attach(this);
      this.setState(camera.enabled ? camera.state || "connecting" : "stopped");
    }

    update(camera) {
      this.camera = camera;
      this.el.dataset.camera = camera.id;
      this.el.querySelector(".tile-name").textContent = camera.name;
      this.drawBoxes(); // its zones may have changed
    }

    setState(state) {
      this.state = state;
      this.el.dataset.state = state;
      this.badge.dataset.state = state;
      this.badge.textContent = STATE_LABELS[state] || state;
      const waiting = { offline: "Camera offline — retrying", stopped: "Camera disabled", reconnecting: "Reconnecting…" };
      this.placeholder.textContent = waiting[state] || "Connecting…";
      if (state === "offline" || state === "stopped") this.el.classList.remove("live");
    }

    draw(frame) {
      if (this.busy) { this.pending = frame; return; }
      this.busy = true;
      createImageBitmap(frame.jpeg)
        .then((bitmap) => {
          if (this.canvas.width !== bitmap.width || this.canvas.height !== bitmap.height) {
            this.canvas.width = this.overlay.width = bitmap.width;
            this.canvas.height = this.overlay.height = bitmap.height;
          }
          this.canvas.getContext("2d").drawImage(bitmap, 0, 0);
          bitmap.close();
          this.el.classList.add("live");
          this.frameAt = frame.capturedAt;
          this.tickFps();
          this.drawBoxes();
        })
        .catch(() => {}) // a truncated JPEG: the next frame replaces it
        .finally(() => {
          this.busy = false;
          const next = this.pending;
          this.pending = null;
          if (next) this.draw(next);
        });
    }

    tickFps() {
      const now = performance.now();
      this.arrivals.push(now);
      while (this.arrivals[0] < now - FPS_WINDOW_MS) this.arrivals.shift();
      const span = (now - this.arrivals[0]) / 1000;
      const fps = span > 0 ? (this.arrivals.length - 1) / span : 0;
      this.timeEl.textContent = new Date(this.frameAt * 1000).toLocaleTimeString([], { hour12: false });
      this.fpsEl.textContent = `${Math.max(0, fps).toFixed(1)} fps`;
    }

    setDetections(message) {
      this.boxes = { ...message, receivedAt: performance.now() };
      this.drawBoxes();
    }

    drawBoxes() {
      const ctx = this.overlay.getContext("2d");
      ctx.clearRect(0, 0, this.overlay.width, this.overlay.height);
      if (window.ArgusZones && this.camera) {
        window.ArgusZones.draw(ctx, this.overlay.width, this.overlay.height, this.camera, this.draft);
      }
      const b = this.boxes;
      if (!b || performance.now() - b.receivedAt > BOXES_STALE_MS || !b.width) return;
      const sx = this.overlay.width / b.width;
      const sy = this.overlay.height / b.height;
      const line = Math.max(2, Math.round(this.overlay.width / 320));
      ctx.lineWidth = line;
      ctx.font = `600 ${6 * line + 2}px Inter, system-ui, sans-serif`;
      ctx.textBaseline = "top";
      for (const d of b.detections) {
        const [x1, y1, x2, y2] = d.box;
        const x = x1 * sx, y = y1 * sy, w = (x2 - x1) * sx, h = (y2 - y1) * sy;
        ctx.strokeStyle = "#4f8cff";
        ctx.strokeRect(x, y, w, h);
        const score = d.confidence ?? d.score;
        const label = `${d.label ?? "object"}${score != null ? ` ${Math.round(score * 100)}%` : ""}`;
        const tw = ctx.measureText(label).width + 8;
        const th = 6 * line + 8;
        ctx.fillStyle = "#4f8cff";
        ctx.fillRect(x - line / 2, Math.max(0, y - th), tw, th);
        ctx.fillStyle = "#fff";
        ctx.fillText(label, x + 4 - line / 2, Math.max(0, y - th) + 4);
      }
    }
  }

  window.ArgusLive = { LiveClient, Tile, parseFrame };
})();
