"""create_app(): the FastAPI application, every domain router, the error handler and /metrics."""

from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app import __version__
from app.alerts.endpoints import routers as alert_routers
from app.auth.deps import require_api_key
from app.auth.endpoints import router as api_keys_router
from app.auth.gate import BodyAuthGate
from app.cameras.endpoints import router as cameras_router
from app.cluster.endpoints import router as cluster_router
from app.config import Settings
from app.dashboard import install_dashboard
from app.errors import install_error_handler
from app.events.edge_endpoints import router as edge_router
from app.events.edge_endpoints import ws_router as edge_ws_router
from app.events.endpoints import router as events_router
from app.events.stream_endpoints import router as event_stream_router
from app.health import router as health_router
from app.inference.endpoints import router as models_router
from app.kit.body_limit import BodyLimit
from app.kit.docs import install_offline_docs
from app.kit.logs import configure_logging
from app.kit.openapi import install_openapi
from app.lifespan import lifespan
from app.live.endpoints import router as live_router
from app.metrics import REGISTRY
from app.recording.clip_endpoints import router as clips_router
from app.recording.endpoints import router as recordings_router
from app.restream.endpoints import router as restream_router

DESCRIPTION = """Argus watches RTSP cameras, scores frames with ONNX models, stores events, delivers alerts
by webhook and streams live video over WebSocket.

Every route except `/api/health` and these docs needs `Authorization: Bearer <API key>`."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.log_format)
    app = FastAPI(
        title="Argus", version=__version__, description=DESCRIPTION, lifespan=lifespan,
        docs_url=None, redoc_url=None,  # install_offline_docs: served from the package, no CDN
    )  # fmt: skip
    install_offline_docs(app)
    app.state.settings = settings
    install_error_handler(app)
    # the last added runs first: a request with a body shows a valid key before anything reads it, then
    # the body is refused with 413 past ARGUS_MAX_BODY_BYTES (a declared length before a byte is read)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(BodyAuthGate)
    app.include_router(health_router)
    # -- routers --
    for router in alert_routers:
        app.include_router(router)
    app.include_router(cameras_router)
    app.include_router(models_router)
    app.include_router(api_keys_router)
    app.include_router(event_stream_router)  # before events: `/api/events/stream` is no event id
    app.include_router(edge_router)
    app.include_router(edge_ws_router)
    app.include_router(events_router)
    app.include_router(clips_router)
    app.include_router(recordings_router)
    app.include_router(live_router)
    app.include_router(restream_router)
    app.include_router(cluster_router)
    install_dashboard(app)  # `/` and `/static/*`

    @app.get(
        "/metrics",
        tags=["health"],
        summary="Prometheus metrics (text exposition format)",
        dependencies=[Depends(require_api_key)],
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    install_openapi(app)

    return app
