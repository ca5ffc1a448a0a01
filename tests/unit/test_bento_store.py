"""Two builds of one version into one BentoML store take turns: the second reuses what the first stored."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pipelines.bento import stored_once


class NotFound(Exception):
    pass


class FakeStore:
    """BentoML's store as two builds meet it: an item is visible while it is still being written, and adding
    one that exists is refused ("Item ... already exists in the store")."""

    def __init__(self) -> None:
        self.items: dict[str, str] = {}
        self.adds = 0
        self.guard = threading.Lock()

    def find(self, tag: str) -> str:
        if tag not in self.items:
            raise NotFound(tag)
        if self.items[tag] != "complete":
            raise RuntimeError(f"{tag} read half written")
        return tag

    def add(self, tag: str) -> str:
        with self.guard:
            if tag in self.items:
                raise RuntimeError(f"Item '{tag}' already exists in the store")
            self.items[tag] = "being written"
            self.adds += 1
        time.sleep(0.3)
        self.items[tag] = "complete"
        return tag


def test_two_concurrent_builds_add_the_item_once_and_both_get_it(tmp_path):
    store = FakeStore()
    start = threading.Barrier(2)

    def build(_: int) -> str:
        start.wait()
        return stored_once(tmp_path, lambda: store.find("m:v1"), lambda: store.add("m:v1"), NotFound)

    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(build, range(2))) == ["m:v1", "m:v1"]
    assert store.adds == 1


def test_an_item_already_in_the_store_is_reused(tmp_path):
    store = FakeStore()
    store.add("m:v1")
    assert stored_once(tmp_path, lambda: store.find("m:v1"), lambda: store.add("m:v1"), NotFound) == "m:v1"
    assert store.adds == 1


def test_a_stored_item_that_fails_its_check_is_not_replaced(tmp_path):
    def refuse() -> str:
        raise ValueError("the stored model holds an ONNX file the gate did not check")

    with pytest.raises(ValueError, match="did not check"):
        stored_once(tmp_path, refuse, lambda: pytest.fail("a refused item must not be rebuilt over"), NotFound)
