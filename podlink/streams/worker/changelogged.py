"""A Faust table as the record handler reads and writes it: straight to its local store, with
each write's changelog record handed to the worker's outbox, sent with the slice's outputs.

Faust's own `table[key] = value` sends the changelog record through its topic machinery: a
future, a pending message in its producer buffer, a sensor call, a callback per record. That
was about a twentieth of the worker's time at saturation (py-spy on `podlink bench`). What it
guarantees is kept: the record goes to the changelog partition of the input record being
handled (the current event, as Faust's own write does), the producer's flush before each
commit covers it, and once the broker has a partition's last record of a slice the store
remembers that offset, as Faust's callback does, so that recovery reads on from there.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from faust.streams import current_event
from faust.types import TP

# (topic, partition, key, value, delivered): one changelog record to send, and what to call
# with its offset once the broker has it (the sender may call it for a partition's last only).
SendChangelog = Callable[[str, int, bytes, bytes, Callable[[int], None]], None]


class Changelogged(MutableMapping[bytes, bytes]):
    def __init__(self, table: Any, send: SendChangelog) -> None:
        self._table = table
        self._send = send

    @property
    def _store(self) -> Any:
        return self._table.data

    def __getitem__(self, key: bytes) -> bytes:
        return self._store[key]  # type: ignore[no-any-return]

    def get(self, key: bytes, default: Any = None) -> Any:
        try:
            return self._store[key]
        except KeyError:
            return default

    def __setitem__(self, key: bytes, value: bytes) -> None:
        event = current_event()
        if event is None:  # as Faust's own write: a table changes only for an input record
            raise RuntimeError("a table is written only while an input record is handled")
        partition = event.message.partition
        self._store[key] = value
        topic = self._table.changelog_topic_name
        store = self._store
        self._send(topic, partition, key, value,
                   lambda offset: store.set_persisted_offset(TP(topic, partition), offset))

    def __delitem__(self, key: bytes) -> None:
        raise NotImplementedError("podlink never deletes a table key")

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._store)

    def __len__(self) -> int:
        return len(self._store)
