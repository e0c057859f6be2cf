"""The `argus` command: serve, migrate, demo, apikey create."""

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
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    demo = sub.add_parser("demo", help="run the server with two generated demo cameras")
    demo.add_argument("--host")
    demo.add_argument("--port", type=int)
    sub.add_parser("migrate", help="upgrade the database schema to the latest revision")
    key = sub.add_parser("apikey", help="manage API keys")
    key_sub = key.add_subparsers(dest="action", required=True)
    create = key_sub.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", default="cli")
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
        from app.migrate import upgrade
        from app.preflight import describe_database_error

        try:
            upgrade(settings.database_url)
        except Exception as exc:
            print(
                f"argus: migrate failed: {describe_database_error(settings.database_url, exc)}",
                file=sys.stderr,
            )
            return 2
        print("database is at the latest revision")
        return 0
    if args.command == "apikey":
        print(asyncio.run(_create_key(settings, args.name)))
        return 0
    if args.command == "demo":
        from app.demo import prepare_demo

        settings = asyncio.run(prepare_demo(settings))
    return _serve(settings)


WS_MAX_BYTES = 65_536


def _serve(settings: Settings) -> int:
    import uvicorn

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
        # Live JPEGs are encoded once and sent to every viewer: deflating them again per viewer costs
        # ~3 ms CPU per frame per viewer for ~2% fewer bytes (bench/live.py --deflate).
        ws_per_message_deflate=False,
        # client messages on /ws/live are tiny JSON (app.live.endpoints.MAX_TEXT): a bigger frame is
        # refused by the protocol (close 1009) before it is buffered, not after 16 MiB of it
        ws_max_size=WS_MAX_BYTES,
    )
    return 0


async def _create_key(settings: Settings, name: str) -> str:
    from app.auth.keys import create_key
    from app.kit.db import create_engine, create_sessionmaker
    from app.migrate import upgrade_async

    if settings.is_sqlite:
        await upgrade_async(settings.database_url)
    engine = create_engine(settings.database_url)
    try:
        async with create_sessionmaker(engine).begin() as session:
            return await create_key(session, name)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
