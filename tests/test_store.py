"""The one-file signal store."""

from __future__ import annotations

import numpy as np
import pytest

from spectnet.errors import SpectNetError
from spectnet.datasets.store import SignalStore, SignalStoreWriter


def _write(root, signals):
    with SignalStoreWriter(root) as writer:
        for name, x in signals.items():
            writer.append(x, record=name, label=len(name))
        writer.write_text("note.txt", "hello")
        return writer.close()


def test_round_trip_keeps_values_order_and_metadata(tmp_path):
    rng = np.random.default_rng(0)
    signals = {"a1": rng.normal(size=10), "b22": rng.normal(size=0), "c333": rng.normal(size=7)}
    manifest = _write(tmp_path / "store", signals)
    assert list(manifest.columns) == ["record", "label", "offset", "n_samples"]
    store = SignalStore(tmp_path / "store")
    assert list(store) == ["a1", "b22", "c333"] and len(store) == 3 and "b22" in store
    for name, x in signals.items():
        np.testing.assert_array_equal(store[name], x)
    assert store["c333"].dtype == np.float64 and not store["c333"].flags.writeable
    assert (tmp_path / "store" / "note.txt").read_text() == "hello"
    with pytest.raises(KeyError, match="zzz"):
        store["zzz"]


def test_failure_while_writing_keeps_the_previous_store(tmp_path):
    root = tmp_path / "store"
    _write(root, {"old": np.arange(5.0)})
    with pytest.raises(RuntimeError):
        with SignalStoreWriter(root) as writer:
            writer.append(np.arange(3.0), record="new")
            raise RuntimeError("interrupted")
    np.testing.assert_array_equal(SignalStore(root)["old"], np.arange(5.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(SpectNetError, match="not a signal store"):
        SignalStore(tmp_path)
