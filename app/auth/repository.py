"""ApiKeyRepository: every query on the api_keys table (the CLI and /api/api-keys share it)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.keys import KEY_PREFIX, generate_key, hash_key
from app.models import ApiKey, utcnow


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, name: str) -> tuple[ApiKey, str]:
        """A new key: the row (hash and prefix only) and the key itself, to be shown once."""
        key = generate_key()
        row = ApiKey(name=name, prefix=key[: len(KEY_PREFIX) + 4], key_hash=hash_key(key))
        self.session.add(row)
        await self.session.flush()
        return row, key

    async def list(self) -> Sequence[ApiKey]:
        return list((await self.session.scalars(select(ApiKey).order_by(ApiKey.id))).all())

    async def get(self, key_id: int) -> ApiKey | None:
        return await self.session.get(ApiKey, key_id)

    async def find(self, id_or_prefix: str) -> Sequence[ApiKey]:
        """Keys by id (digits) or by the prefix `list` shows (`argus_AbCd`)."""
        if id_or_prefix.isdigit():
            row = await self.get(int(id_or_prefix))
            return [row] if row is not None else []
        stmt = select(ApiKey).where(ApiKey.prefix == id_or_prefix).order_by(ApiKey.id)
        return list((await self.session.scalars(stmt)).all())

    async def active_id(self, key_hash: str) -> int | None:
        """The id of the unrevoked key with this hash, if any."""
        stmt = select(ApiKey.id).where(ApiKey.key_hash == key_hash, ~ApiKey.revoked)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def touch(self, key_id: int) -> None:
        await self.session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=utcnow()))

    async def revoke(self, row: ApiKey) -> None:
        """Revoked keys stay listed (who had access, and when it was last used); they open nothing."""
        row.revoked = True
        await self.session.flush()
