"""Every format faery writes, made from the real DAVIS346 recording and read back through the project."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from biograd.core.errors import DataFormatError
from biograd.core.events import Geometry, from_faery, to_faery
from biograd.sources import open_source
from biograd.sources.aedat4 import AedatRecording
from biograd.sources.config import SourceConfig
from biograd.sources.formats import EventFile, detect
from biograd.sources.info import describe

faery = pytest.importorskip("faery")

#: file name -> (detected format, faery writer options)
WRITTEN = {
    "rec.evt3.raw": ("evt3", {"version": "evt3"}),
    "rec.evt2.raw": ("evt2", {"version": "evt2"}),
    "rec.dat": ("dat", {}),
    "rec.es": ("es", {}),
    "rec.aedat4": ("aedat4", {}),
    "rec.csv": ("csv", {}),
}


@pytest.fixture(scope="module")
def reference(data_dir):
    return AedatRecording(data_dir / "aedat4" / "davis346.aedat4").read_all()


@pytest.fixture(scope="module")
def converted(tmp_path_factory, reference):
    """The real recording written by faery's writers in every format it writes."""
    folder = tmp_path_factory.mktemp("formats")
    for name, (_, options) in WRITTEN.items():
        faery.events_stream_from_array(to_faery(reference), (346, 260)).to_file(folder / name, **options)
    return folder


def _same_events(got, want, relative_time=False):
    assert got.size == want.size
    for field in ("x", "y", "p"):
        np.testing.assert_array_equal(got[field], want[field], err_msg=field)
    if relative_time:  # ES stores time from 0 (faery's writer drops t0)
        np.testing.assert_array_equal(got["t"] - got["t"][0], want["t"] - want["t"][0])
    else:
        np.testing.assert_array_equal(got["t"], want["t"])


@pytest.mark.parametrize("name", list(WRITTEN))
def test_every_format_reads_back_the_same_events(converted, reference, name):
    fmt = WRITTEN[name][0]
    rec = EventFile(converted / name)
    assert rec.format == fmt
    assert rec.geometry == Geometry(346, 260)
    events = rec.read_all()
    _same_events(events, reference, relative_time=fmt == "es")
    assert rec.stats.invalid == 0 and rec.stats.bad_events == 0
    assert rec.stats.events == reference.size


@pytest.mark.parametrize("name", list(WRITTEN))
def test_every_format_through_open_source_with_resize(converted, reference, name):
    cfg = SourceConfig(kind="file", path=str(converted / name), resize=(34, 34))
    stream = open_source(cfg)
    assert stream.geometry == Geometry(34, 34)
    events = np.concatenate(list(stream))
    # the centre 260x260 of the 346-wide sensor, downsampled: aspect ratio kept
    inside = (reference["x"] >= 43) & (reference["x"] < 303)
    assert events.size == int(inside.sum())
    assert events["x"].max() < 34 and events["y"].max() < 34


def test_format_comes_from_the_content_not_the_extension(converted, tmp_path):
    misleading = tmp_path / "recording.dat"  # an EVT3 file with a DAT extension
    shutil.copy(converted / "rec.evt3.raw", misleading)
    assert detect(misleading).format == "evt3"
    no_suffix = tmp_path / "capture"
    shutil.copy(converted / "rec.es", no_suffix)
    assert detect(no_suffix).format == "es"
    (tmp_path / "x.raw").write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(DataFormatError, match="x.raw.*unrecognised event file"):
        detect(tmp_path / "x.raw")


def _evt2_body(converted):
    data = (converted / "rec.evt2.raw").read_bytes()
    end = 0
    while data[end : end + 1] == b"%":
        end = data.index(b"\n", end) + 1
    return data[end:]


def test_gen3_evt2_geometry_from_the_plugin_name(converted, reference):
    path = converted.parent / "gen31.raw"
    header = b"% evt 2.0\n% plugin_name hal_plugin_gen31_fx3\n% serial_number 00000001\n"
    path.write_bytes(header + _evt2_body(converted))
    rec = EventFile(path)
    assert rec.format == "evt2"
    assert rec.geometry == Geometry(640, 480) and "gen31" in rec.geometry_source
    assert rec.read_all().size == reference.size


def test_evt2_without_any_geometry_uses_the_largest_coordinate_and_warns(converted, reference, caplog):
    path = converted.parent / "bare.raw"
    path.write_bytes(b"% evt 2.0\n" + _evt2_body(converted))
    with caplog.at_level(logging.WARNING):
        rec = EventFile(path)
    assert rec.geometry == Geometry(int(reference["x"].max()) + 1, int(reference["y"].max()) + 1)
    assert rec.geometry_source == "largest coordinate"
    assert "names no sensor size" in caplog.text
    np.testing.assert_array_equal(rec.read_all()["x"], reference["x"])


@pytest.mark.parametrize("name", list(WRITTEN))
def test_data_info_for_every_format(converted, reference, name):
    info = describe(converted / name)
    assert info["geometry"] == "346x260"
    assert info["events"] == reference.size
    assert info["duration_us"] == int(reference["t"][-1] - reference["t"][0])
    assert info["on_fraction"] == pytest.approx(reference["p"].mean())
    assert info["mean_rate_ev_per_s"] == pytest.approx(reference.size / (info["duration_us"] / 1e6))
    assert WRITTEN[name][0].split(".")[0].upper()[:3] in info["format"].upper().replace("EVENT STREAM", "ES")


def _damaged_copies(path, tmp_path):
    data = path.read_bytes()
    flipped = bytearray(data)
    for i in np.random.default_rng(1).integers(len(data) // 4, 3 * len(data) // 4, 30):
        flipped[i] ^= 0xA5
    (tmp_path / f"flip-{path.name}").write_bytes(bytes(flipped))
    # cut mid-word (one byte past a multiple of 8 after the header) so a fixed-size word is split
    (tmp_path / f"cut-{path.name}").write_bytes(data[: len(data) // 2 // 8 * 8 + 1])
    return tmp_path / f"flip-{path.name}", tmp_path / f"cut-{path.name}"


@pytest.mark.parametrize("name", list(WRITTEN))
def test_damaged_file_gives_a_clear_error_or_a_counted_skip(converted, reference, name, tmp_path, caplog):
    flipped, cut = _damaged_copies(converted / name, tmp_path)
    # ES and EVT3 have no fixed word size or index: a cut there reads as a shorter recording
    cases = [flipped] + ([cut] if WRITTEN[name][0] in ("evt2", "dat", "aedat4", "csv") else [])
    for path in cases:
        caplog.clear()
        try:
            with caplog.at_level(logging.WARNING):
                rec = EventFile(path)
                events = rec.read_all()
        except DataFormatError as exc:
            assert path.name in str(exc)
            continue
        s = rec.stats
        assert s.invalid > 0 and (s.bad_events + s.skipped_bytes) > 0 or "decoding stopped" in s.last_error, path
        assert events.size < reference.size or s.bad_events > 0
        assert path.name in caplog.text  # warned, naming the file
        assert np.all(np.diff(events["t"]) >= 0)
        assert events["x"].max(initial=0) < 346 and events["y"].max(initial=0) < 260


def test_faery_packets_convert_without_a_copy(reference):
    as_faery = to_faery(reference)
    assert as_faery.dtype == faery.EVENTS_DTYPE and np.shares_memory(as_faery, reference)
    back = from_faery(as_faery)
    assert np.shares_memory(back, reference) and back.dtype == reference.dtype
