"""Every Prometheus metric Argus exports (argus_*). Other modules import these; none defines its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

FRAMES_IN = Counter("argus_frames_in", "Frames decoded", ["camera"], registry=REGISTRY)
FRAMES_ANALYZED = Counter("argus_frames_analyzed", "Frames analysed", ["camera"], registry=REGISTRY)
FRAMES_DROPPED = Counter(
    "argus_frames_dropped", "Frames dropped, by reason", ["camera", "reason"], registry=REGISTRY
)
RECONNECTS = Counter("argus_reconnects", "Source reconnects", ["camera"], registry=REGISTRY)
CAMERA_UP = Gauge("argus_camera_streaming", "1 while the camera is streaming", ["camera"], registry=REGISTRY)

INFERENCE_LATENCY = Histogram(
    "argus_inference_seconds",
    "Model run time per batch",
    ["model"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
    registry=REGISTRY,
)
INFERENCE_BATCH = Histogram(
    "argus_inference_batch_size",
    "Requests per model run",
    ["model"],
    buckets=(1, 2, 4, 8, 16, 32),
    registry=REGISTRY,
)
INFERENCE_QUEUE_WAIT = Histogram(
    "argus_inference_queue_wait_seconds",
    "Time a request waited for its batch to start",
    ["model"],
    buckets=(0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.05, 0.1, 0.5),
    registry=REGISTRY,
)
ANALYZER_SKIPPED = Counter(
    "argus_analyzer_skipped",
    "Analyzer runs skipped for a frame, by reason (timeout, error, dependency)",
    ["camera", "analyzer", "reason"],
    registry=REGISTRY,
)

EVENTS = Counter("argus_events", "Events produced", ["type", "severity"], registry=REGISTRY)
LINE_CROSSINGS = Counter(
    "argus_line_crossings",
    "Tracked objects crossing a detector line",
    ["camera", "line", "direction", "class"],
    registry=REGISTRY,
)
LOGGER_BUFFER = Gauge("argus_event_logger_buffer", "Events waiting to be written", registry=REGISTRY)
LOGGER_FLUSH = Histogram(
    "argus_event_logger_flush_seconds",
    "Event logger flush latency",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
    registry=REGISTRY,
)
LOGGER_SPILLED = Counter("argus_event_logger_spilled", "Events spilled to file", registry=REGISTRY)

ALERTS = Counter("argus_alerts", "Alerts created", ["priority"], registry=REGISTRY)
ALERTS_SUPPRESSED = Counter("argus_alerts_suppressed", "Alerts suppressed by dedup", registry=REGISTRY)
ALERTS_DROPPED = Counter(
    "argus_alerts_dropped",
    "Alert rows or events the engine could not write (logged)",
    ["reason"],
    registry=REGISTRY,
)
DELIVERIES = Counter("argus_webhook_deliveries", "Webhook delivery attempts", ["outcome"], registry=REGISTRY)

LIVE_ENCODES = Counter("argus_live_encodes", "JPEG encodes for live view", ["camera"], registry=REGISTRY)
LIVE_CLIENTS = Gauge("argus_live_clients", "Connected live-view clients", registry=REGISTRY)
LIVE_FRAMES_SENT = Counter("argus_live_frames_sent", "Frames sent to live clients", registry=REGISTRY)
LIVE_FRAMES_DROPPED = Counter(
    "argus_live_frames_dropped", "Frames a slow client never took", registry=REGISTRY
)

VLM_REQUESTS = Counter("argus_vlm_requests", "VLM describe calls, by outcome", ["outcome"], registry=REGISTRY)

RECORDING_SEGMENTS = Counter(
    "argus_recording_segments", "Continuous-recording segments finished", ["camera"], registry=REGISTRY
)
RECORDING_BYTES = Counter(
    "argus_recording_bytes", "Bytes of finished segments", ["camera"], registry=REGISTRY
)
MEDIA_DELETED = Counter(
    "argus_media_deleted",
    "Media deleted by retention, by kind (segments, clips, snapshots) and reason (age, disk)",
    ["kind", "reason"],
    registry=REGISTRY,
)
MEDIA_DISK_FREE = Gauge(
    "argus_media_disk_free_bytes", "Free bytes under DATA_DIR at the last sweep", registry=REGISTRY
)
MEDIA_DISK_LOW = Gauge(
    "argus_media_disk_low", "1 while free space stays below ARGUS_MIN_FREE_DISK_MB", registry=REGISTRY
)

MQTT_CONNECTED = Gauge("argus_mqtt_connected", "1 while connected to the MQTT broker", registry=REGISTRY)
MQTT_QUEUED = Gauge("argus_mqtt_queued", "MQTT messages waiting for the broker", registry=REGISTRY)
MQTT_MESSAGES = Counter(
    "argus_mqtt_messages", "MQTT messages, by outcome (published, dropped: queue full)", ["outcome"],
    registry=REGISTRY,
)  # fmt: skip

EVENT_STREAM_CLIENTS = Gauge(
    "argus_event_stream_clients", "Consumers connected to GET /api/events/stream", registry=REGISTRY
)
EVENT_STREAM_CUT = Counter(
    "argus_event_stream_cut_off",
    "Stream consumers cut off for reading too slowly (they resume)",
    registry=REGISTRY,
)

FORWARD_CONNECTED = Gauge(
    "argus_forward_connected", "1 while connected to the central Argus", registry=REGISTRY
)
FORWARD_QUEUED = Gauge(
    "argus_forward_queued", "Event changes not yet acknowledged by the central Argus", registry=REGISTRY
)
FORWARD_EVENTS = Counter(
    "argus_forward_events", "Event changes acknowledged by the central Argus", registry=REGISTRY
)

CLUSTER_LEASES = Gauge(
    "argus_cluster_leases", "Camera leases this node holds (cluster mode)", registry=REGISTRY
)
CLUSTER_LEASE_CHANGES = Counter(
    "argus_cluster_lease_changes",
    "Camera lease changes here: acquired, released, lost (taken over), self_fenced (not renewed in time)",
    ["change"],
    registry=REGISTRY,
)
EVENTS_FENCED = Counter(
    "argus_events_fenced",
    "Event writes refused: their camera lease token is stale (a former owner's late writes)",
    registry=REGISTRY,
)
