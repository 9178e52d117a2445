"""`biograd data download nmnist` against a local HTTP server with Range support."""

import hashlib
import http.server
import threading
import zipfile

import pytest

from biograd.core.errors import DataFormatError
from biograd.sources.download import NMNIST_ARCHIVES, Archive, download, download_nmnist
from biograd.sources.nmnist import NMNISTDataset


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.payload`` at any path; honours ``Range: bytes=N-`` with 206."""

    def do_GET(self):
        data = self.server.payload
        self.server.requests.append((self.headers.get("Range"), self.headers.get("User-Agent")))
        start = 0
        rng = self.headers.get("Range")
        if rng and self.server.honour_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    httpd.payload, httpd.requests, httpd.honour_range = b"", [], True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture(scope="module")
def train_zip(nmnist_dir, tmp_path_factory):
    """A Train.zip in the official layout with 3 files per digit from nmnist-1k."""
    path = tmp_path_factory.mktemp("zip") / "Train.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for digit in range(10):
            for f in sorted((nmnist_dir / "Train" / str(digit)).glob("*.bin"))[:3]:
                zf.write(f, f"Train/{digit}/{f.name}")
    data = path.read_bytes()
    return data, hashlib.md5(data).hexdigest()


def url(server):
    return f"http://127.0.0.1:{server.server_address[1]}/file_downloaded"


def test_download_verifies_and_unpacks(server, train_zip, tmp_path, nmnist_dir):
    server.payload, md5 = train_zip
    dest = download_nmnist(
        tmp_path / "nmnist", ["Train"], archives={"Train": Archive("Train.zip", url(server), md5)}, progress=False
    )
    ds = NMNISTDataset(dest, "train", shuffle=False)
    assert len(ds) == 30 and ds.classes == list(range(10))
    for path, _ in ds.items:
        assert path.read_bytes() == (nmnist_dir / path.relative_to(dest)).read_bytes()
    assert not (dest / "Train.zip").exists()
    assert server.requests[0][0] is None and "Mozilla/5.0" in server.requests[0][1]


def test_resume_requests_only_the_missing_bytes(server, train_zip, tmp_path):
    data, md5 = train_zip
    server.payload = data
    part = tmp_path / "Train.zip.part"
    part.write_bytes(data[: len(data) // 3])
    out = download(url(server), tmp_path / "Train.zip", md5, progress=False)
    assert out.read_bytes() == data and not part.exists()
    assert server.requests == [(f"bytes={len(data) // 3}-", server.requests[0][1])]


def test_resume_of_a_complete_partial_file(server, train_zip, tmp_path):
    data, md5 = train_zip
    server.payload = data
    (tmp_path / "Train.zip.part").write_bytes(data)
    assert download(url(server), tmp_path / "Train.zip", md5, progress=False).read_bytes() == data


def test_server_ignoring_range_restarts_cleanly(server, train_zip, tmp_path):
    data, md5 = train_zip
    server.payload, server.honour_range = data, False
    (tmp_path / "Train.zip.part").write_bytes(data[:100])
    assert download(url(server), tmp_path / "Train.zip", md5, progress=False).read_bytes() == data


def test_md5_mismatch_is_a_clear_error(server, train_zip, tmp_path):
    data, md5 = train_zip
    server.payload = data[:-10] + b"corrupted!"
    with pytest.raises(
        DataFormatError,
        match=r"Train\.zip: MD5 [0-9a-f]{32} of the \d+-byte download does not "
        rf"match the expected {md5}",
    ):
        download(url(server), tmp_path / "Train.zip", md5, progress=False)
    assert not (tmp_path / "Train.zip").exists() and not (tmp_path / "Train.zip.part").exists()


def test_cli_download_into_dest(server, train_zip, tmp_path, monkeypatch, capsys):
    from biograd.pipeline.cli import main

    server.payload, md5 = train_zip
    monkeypatch.setitem(NMNIST_ARCHIVES, "Train", Archive("Train.zip", url(server), md5))
    assert main(["data", "download", "nmnist", "--dest", str(tmp_path / "n"), "--split", "Train"]) == 0
    assert len(NMNISTDataset(tmp_path / "n", "train")) == 30
    assert f"N-MNIST Train in {tmp_path / 'n'}" in capsys.readouterr().out
    # a second run finds it unpacked and fetches nothing
    requests = len(server.requests)
    assert main(["data", "download", "nmnist", "--dest", str(tmp_path / "n"), "--split", "Train"]) == 0
    assert len(server.requests) == requests


def test_failed_download_leaves_no_dataset_folder_and_replay_falls_back(server, train_zip, tmp_path):
    """Issue 12 item 10: a failed download left an empty nmnist/, and replay failed on it."""
    from biograd.sources.download import DownloadError
    from biograd.sources.nmnist import BUNDLED_ROOT, locate_nmnist

    data, md5 = train_zip
    server.payload = data
    dead = "http://127.0.0.1:9/file_downloaded"  # nothing listens on the discard port
    with pytest.raises(DownloadError, match="127.0.0.1:9"):
        download_nmnist(
            tmp_path / "nmnist", ["Train"], archives={"Train": Archive("Train.zip", dead, md5)}, progress=False
        )
    assert not (tmp_path / "nmnist").exists()
    assert locate_nmnist("", tmp_path) == BUNDLED_ROOT
    # a corrupted archive: no dataset folder either, and the bad bytes are gone
    server.payload = data[: len(data) // 2]
    with pytest.raises(DataFormatError):
        download_nmnist(
            tmp_path / "nmnist", ["Train"], archives={"Train": Archive("Train.zip", url(server), md5)}, progress=False
        )
    assert not (tmp_path / "nmnist").exists() and not list(tmp_path.rglob("*.part"))
    assert locate_nmnist("", tmp_path) == BUNDLED_ROOT


def test_tonic_layout_is_found(tmp_path, nmnist_dir):
    """``tonic.datasets.NMNIST(save_to=ROOT)`` unpacks to ROOT/NMNIST/Train/<digit>/*.bin."""
    import shutil

    from biograd.sources.nmnist import locate_nmnist

    for digit in range(10):
        target = tmp_path / "NMNIST" / "Train" / str(digit)
        target.mkdir(parents=True)
        for f in sorted((nmnist_dir / "Train" / str(digit)).glob("*.bin"))[:2]:
            shutil.copy(f, target)
    assert locate_nmnist("", tmp_path) == tmp_path / "NMNIST"
    assert locate_nmnist(str(tmp_path), None) == tmp_path / "NMNIST"  # Tonic's save_to given as the path
    assert len(NMNISTDataset(locate_nmnist("", tmp_path), "train")) == 20
