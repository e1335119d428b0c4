"""Two answers of distribution 2.8.2 to well-formed reads that must not reach a client as they are.

Both are facts recorded in docs/protocol-parity.md: the registry is not down in either case, so a
5xx (or a connection cut mid-body) would tell the client the wrong thing.

- A blob GET with a Range it cannot satisfy: 416 with the blob's length declared and a shorter
  body, so the answer cannot be framed. The gateway answers the 416 itself, from the head alone.
- A manifest read by the digest of a blob that is not a manifest: 500 UNKNOWN (it parsed the
  blob). When a HEAD of that blob finds it, the truth is 404 MANIFEST_UNKNOWN.
"""

from __future__ import annotations

import json

import aiohttp
from aiohttp import web

from gateway.upstream.client import API_VERSION_HEADER, UpstreamClient

_RANGE_BODY = json.dumps({"errors": [{"code": "RANGE_INVALID",
                                      "message": "requested range not satisfiable"}]},
                         separators=(",", ":")) + "\n"


def unsatisfiable_range(blob_length: int | None) -> web.Response:
    """416 as RFC 9110 frames it: `Content-Range: bytes */LENGTH` when the length is known."""
    headers = dict(API_VERSION_HEADER)
    if blob_length is not None:
        headers["Content-Range"] = f"bytes */{blob_length}"
    return web.Response(status=416, text=_RANGE_BODY, content_type="application/json",
                        charset="utf-8", headers=headers)


async def is_plain_blob(client: UpstreamClient, name: str, digest: str) -> bool:
    """Whether `name` holds `digest` as a blob: asked only after a manifest read by that digest
    got a 500, so a registry that is really failing still fails here and the 500 stands."""
    try:
        async with client.session.head(client.url(f"/v2/{name}/blobs/{digest}"),
                                       allow_redirects=False) as response:
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError) as exc:
        client.failure(exc)  # counted as the failure it is; the original 500 is the answer
        return False
