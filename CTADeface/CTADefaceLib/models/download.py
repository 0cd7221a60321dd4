"""HTTP(S) download with a progress bar, resume of interrupted transfers and sha256 verification.

The standard library is enough here (urllib): no extra dependency for the one place that
uses the network. A transfer goes to `<target>.part`; an interrupted one resumes with an HTTP
Range request, and a server that ignores Range makes it restart cleanly.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request

from ..errors import ChecksumError, ModelError

_CHUNK = 1 << 20
TIMEOUT_S = 60


def download(url: str, target: str, *, progress: bool = True, expected_size: int | None = None,
             expected_sha256: str | None = None) -> str:
    from tqdm import tqdm

    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    part = target + ".part"
    have = os.path.getsize(part) if os.path.exists(part) else 0
    if expected_size is not None and have > expected_size:
        os.remove(part)
        have = 0
    request = urllib.request.Request(url, headers={"User-Agent": "ctadeface"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as err:
        if err.code == 416 and expected_size is not None and have == expected_size:
            response = None  # the part file is already complete
        else:
            raise ModelError(f"{url} answered HTTP {err.code} ({err.reason}).") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise ModelError(f"{url} could not be reached ({reason}).") from None
    if response is not None:
        with response:
            resumed = response.status == 206
            if not resumed:
                have = 0  # the server sent the whole file: start over
            length = response.headers.get("Content-Length")
            total = (have + int(length)) if length is not None else expected_size
            with open(part, "ab" if resumed else "wb") as out, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                desc=os.path.basename(target), disable=not progress, leave=False,
            ) as bar:
                try:
                    for block in iter(lambda: response.read(_CHUNK), b""):
                        out.write(block)
                        bar.update(len(block))
                except OSError as err:
                    raise ModelError(f"The download of {url} broke off ({err}); run the same install again to resume.") from None
    size = os.path.getsize(part)
    if expected_size is not None and size != expected_size:
        raise ModelError(f"The download of {url} stopped at {size} of {expected_size} bytes; run the install again to resume.")
    if expected_sha256 is not None:
        digest = hashlib.sha256()
        with open(part, "rb") as handle:
            for block in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(block)
        if digest.hexdigest() != expected_sha256:
            os.remove(part)  # a corrupt file must not be resumed
            raise ChecksumError(f"The downloaded file {os.path.basename(target)} from {url} does not match its "
                                "registered sha256 checksum; it was deleted, try again or use another mirror.")
    os.replace(part, target)
    return target
