"""`biograd data download nmnist`: fetch, verify and unpack the official N-MNIST archives.

The checksum check and the atomic placement are pooch's (``pooch.retrieve``
with ``known_hash="md5:…"``: the archive appears under its name only once its
MD5 matches). pooch itself restarts a broken download from zero, so its
downloader here is :class:`ResumingDownloader`: it keeps the bytes received so
far in ``<archive>.part`` and asks for the rest with an HTTP ``Range`` request
(Tonic's download code, the other candidate, neither resumes nor keeps to
HTTPS). Some hosts refuse Python's default User-Agent, so a browser-like one is sent.

A failed download leaves no dataset folder: the archive is unpacked into a
hidden sibling folder and moved into place only when complete, and partial
archives wait in ``<data root>/.downloads/`` for the next try. So replay, which
looks for ``nmnist/``, falls back to the bundled sample instead of failing on
an empty folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from biograd.core.errors import BioGradError, DataFormatError

log = logging.getLogger(__name__)

USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Archive:
    name: str
    url: str
    md5: str


#: The Mendeley Data mirror (dataset 468j46mzdv) of https://www.garrickorchard.com/datasets/n-mnist.
NMNIST_ARCHIVES = {
    "Train": Archive(
        "Train.zip",
        "https://data.mendeley.com/public-files/datasets/468j46mzdv/files/"
        "39c25547-014b-4137-a934-9d29fa53c7a0/file_downloaded",
        "20959b8e626244a1b502305a9e6e2031",
    ),
    "Test": Archive(
        "Test.zip",
        "https://data.mendeley.com/public-files/datasets/468j46mzdv/files/"
        "05a4d654-7e03-4c15-bdfa-9bb2bcbea494/file_downloaded",
        "69ca8762b2fe404d9b9bad1103e97832",
    ),
}


class DownloadError(BioGradError):
    """The server could not be reached or answered with an error."""


def file_md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


class ResumingDownloader:
    """A pooch downloader that resumes ``part`` with an HTTP Range request, then hands the bytes to pooch."""

    def __init__(self, part: Path, *, progress: bool = True, timeout: float = 60.0):
        self.part, self.progress, self.timeout = part, progress, timeout
        self.size = 0

    def __call__(self, url: str, output_file, pooch_obj=None, check_only: bool = False) -> bool | None:
        if check_only:
            return True
        _fetch(url, self.part, self.progress, self.timeout)
        self.size = self.part.stat().st_size
        shutil.move(str(self.part), str(output_file))  # pooch hashes it there, then moves it into place
        return None


def download(url: str, dest: str | os.PathLike, md5: str, *, progress: bool = True, timeout: float = 60.0) -> Path:
    """Fetch ``url`` to ``dest``, resuming ``dest.part``; verify the MD5 (pooch); return ``dest``.

    An existing ``dest`` with the right MD5 is kept. A wrong MD5 removes the
    download (it cannot be resumed into a good file) and raises DataFormatError.
    """
    import pooch

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    fetch = ResumingDownloader(part, progress=progress, timeout=timeout)
    try:
        got = pooch.retrieve(url, known_hash=f"md5:{md5}", fname=dest.name, path=dest.parent, downloader=fetch)
    except ValueError as exc:  # pooch: hash mismatch; it has deleted the download already
        digest = re.search(r"but got ([0-9a-f]{32})", str(exc))
        part.unlink(missing_ok=True)
        raise DataFormatError(
            dest,
            f"MD5 {digest[1] if digest else '?'} of the {fetch.size}-byte download does not match the "
            f"expected {md5}; removed it, run again to download afresh",
        ) from None
    return Path(got)


def _fetch(url: str, part: Path, progress: bool, timeout: float) -> None:
    """Append to ``part`` the bytes of ``url`` it does not hold yet (Range request)."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            response = None  # the partial file already holds every byte
        else:
            raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"{url}: {getattr(exc, 'reason', exc)}") from None
    if response is not None:
        with response:
            if have and response.status != 206:
                log.info("%s: server ignored the Range request; downloading from the start", url)
                have = 0
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            with (
                open(part, "ab" if have else "wb") as out,
                tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=part.name, disable=not progress) as bar,
            ):
                try:
                    for block in iter(lambda: response.read(CHUNK), b""):
                        out.write(block)
                        bar.update(len(block))
                except OSError as exc:
                    raise DownloadError(
                        f"{url}: connection lost after {out.tell()} bytes ({exc}); run again to resume"
                    ) from None


def unpack(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Extract a zip into ``dest``, refusing members that would land outside it."""
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.infolist():
                target = (dest / member.filename).resolve()
                if root != target and root not in target.parents:
                    raise DataFormatError(archive, f"member {member.filename!r} would extract outside {dest}")
            for member in tqdm(
                zf.infolist(), desc=f"unpack {archive.name}", unit="file", disable=len(zf.infolist()) < 1000
            ):
                zf.extract(member, dest)
    except zipfile.BadZipFile as exc:
        raise DataFormatError(archive, f"not a valid zip archive ({exc})") from None
    return dest


def download_nmnist(
    dest: str | os.PathLike,
    splits=("Train", "Test"),
    *,
    archives=None,
    progress: bool = True,
    keep_archives: bool = False,
) -> Path:
    """Download and unpack N-MNIST into ``dest`` (``dest/Train/<digit>/*.bin`` …).

    ``archives`` maps split → :class:`Archive` (default the official ones);
    tests pass a local URL and MD5 here.
    """
    dest = Path(dest)
    archives = archives or NMNIST_ARCHIVES
    downloads = dest.parent / ".downloads"  # partial and kept archives: never inside the dataset folder
    for split in splits:
        if split not in archives:
            raise BioGradError(f"unknown N-MNIST split {split!r}: choose from {', '.join(archives)}")
        arch = archives[split]
        if (dest / split).is_dir() and any((dest / split).glob("*/*.bin")):
            log.info("%s already unpacked; skipping", dest / split)
            continue
        zpath = download(arch.url, downloads / arch.name, arch.md5, progress=progress)
        staging = dest.parent / f".{dest.name}.unpacking"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            unpack(zpath, staging)
            if not (staging / split).is_dir():
                raise DataFormatError(zpath, f"archive did not contain a {split}/ folder")
            dest.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(dest / split, ignore_errors=True)
            (staging / split).replace(dest / split)  # the split appears whole or not at all
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if keep_archives:
            zpath.replace(dest / arch.name)
        else:
            zpath.unlink()
    if downloads.is_dir() and not any(downloads.iterdir()):
        downloads.rmdir()
    return dest
