"""HTTP(S) download with a progress bar, resume of interrupted transfers, size and sha256 checks.

The standard library is enough here (urllib): no extra dependency for the one place that
uses the network. A transfer goes to `<target>.part` and is renamed to `<target>` only when it
has the expected size (the registry's, else the server's Content-Length) and, where one is
known, the expected sha256. An interrupted transfer keeps its `.part` and resumes with an HTTP
Range request; a server that ignores Range makes it restart cleanly. A body longer than expected
is refused and its part file deleted: resuming it could never give the right file.
"""

from __future__ import annotations

import functools
import http.client
import os
import re
import urllib.error
import urllib.request

from ..errors import ChecksumError, ModelError
from ..hashing import file_sha256

_CHUNK = 1 << 20
TIMEOUT_S = 60
# No face model file comes near this; it bounds what a server without Content-Length can write to disk.
MAX_DOWNLOAD_BYTES = 4 * 1024**3


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) from 'bytes 100-199/200'; None where absent or '*'."""
    match = re.match(r"bytes\s+(\d+)-\d+/(\d+|\*)", value or "")
    if not match:
        return None, None
    return int(match.group(1)), (int(match.group(2)) if match.group(2) != "*" else None)


def _too_big(url: str, part: str, size: int, limit: int) -> ModelError:
    if os.path.exists(part):
        os.remove(part)  # resuming a body that is already too long can never give the right file
    return ModelError(
        f"{url} sent more data than expected ({size} bytes, expected at most {limit}); the partial "
        "download was deleted; check the address or use another mirror."
    )


def _open(url: str, have: int):
    request = urllib.request.Request(url, headers={"User-Agent": "ctadeface"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    return urllib.request.urlopen(request, timeout=TIMEOUT_S)


def download(
    url: str,
    target: str,
    *,
    progress: bool = True,
    expected_size: int | None = None,
    expected_sha256: str | None = None,
) -> str:
    from tqdm import tqdm

    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    part = target + ".part"
    total = expected_size
    for _attempt in range(2):  # a second attempt only after the server refused the range asked for
        have = os.path.getsize(part) if os.path.exists(part) else 0
        if expected_size is not None and have > expected_size:
            raise _too_big(url, part, have, expected_size)
        if expected_size is not None and have == expected_size:
            break  # an earlier run fetched it all: only the checks below remain
        try:
            response = _open(url, have)
        except urllib.error.HTTPError as err:
            if err.code == 416 and have:
                os.remove(part)  # the server has no bytes past what we hold: the part is stale, start over
                continue
            raise ModelError(f"{url} answered HTTP {err.code} ({err.reason}).") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            reason = getattr(err, "reason", err)
            raise ModelError(f"{url} could not be reached ({reason}).") from None
        with response:
            length = response.headers.get("Content-Length")
            length = int(length) if length is not None and length.isdigit() else None
            first, whole = _content_range(response.headers.get("Content-Range"))
            resumed = response.status == 206 and have > 0 and first in (None, have)
            if response.status == 206 and not resumed:
                raise ModelError(f"{url} sent a part of the file that was not asked for; delete {part} and try again.")
            if not resumed:
                have = 0  # the server sent the whole file: start over
            offered = whole if whole is not None else (have + length if length is not None else None)
            if offered is not None and expected_size is not None and offered > expected_size:
                raise _too_big(url, part, offered, expected_size)
            total = expected_size if expected_size is not None else offered
            limit = total if total is not None else MAX_DOWNLOAD_BYTES
            with (
                open(part, "ab" if resumed else "wb") as out,
                tqdm(
                    total=total,
                    initial=have,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=os.path.basename(target),
                    disable=not progress,
                    leave=False,
                ) as bar,
            ):
                try:
                    for block in iter(functools.partial(response.read, _CHUNK), b""):
                        if have + len(block) > limit:
                            out.close()
                            raise _too_big(url, part, have + len(block), limit)
                        out.write(block)
                        have += len(block)
                        bar.update(len(block))
                except (OSError, http.client.HTTPException) as err:
                    raise ModelError(
                        f"The download of {url} broke off ({err or type(err).__name__}); run the same "
                        "command again to resume it."
                    ) from None
        break
    if not os.path.exists(part):
        raise ModelError(f"{url} sent nothing usable; try again later or use another address.")
    size = os.path.getsize(part)
    if total is not None and size != total:
        raise ModelError(
            f"The download of {url} stopped at {size} of {total} bytes; run the same command again to resume it."
        )
    if expected_sha256 is not None and file_sha256(part) != expected_sha256:
        os.remove(part)  # a corrupt file must not be resumed
        raise ChecksumError(
            f"The downloaded file {os.path.basename(target)} from {url} does not match its "
            "registered sha256 checksum; it was deleted, try again or use another mirror."
        )
    os.replace(part, target)
    return target
