"""``Lazy[T]``: what the composition root builds on first use is built once, and only when asked."""

from __future__ import annotations

import threading

from oxoflow_notify.lazy import Lazy


def test_nothing_is_built_until_asked_and_then_once() -> None:
    # given a value that counts its builds
    builds: list[int] = []

    def build() -> int:
        builds.append(1)
        return len(builds)

    lazy = Lazy(build)
    # then nothing is built until asked
    assert not lazy.built and builds == []
    # when it is asked for twice, once as a call
    first, second = lazy.get(), lazy()
    # then it was built once and both got the same value
    assert (first, second, builds, lazy.built) == (1, 1, [1], True)


def test_threads_racing_for_it_build_it_once() -> None:
    # given a build that waits until every thread has asked
    started, builds = threading.Barrier(8), list[object]()

    def build() -> object:
        builds.append(object())
        return builds[-1]

    lazy = Lazy(build)

    def ask(out: list[object]) -> None:
        started.wait()
        out.append(lazy.get())

    # when eight threads ask at once
    got: list[object] = []
    threads = [threading.Thread(target=ask, args=(got,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then one value was built and every thread got it
    assert len(builds) == 1 and got == [builds[0]] * 8


def test_a_value_that_is_none_is_still_built_once() -> None:
    builds: list[None] = []

    def build() -> None:
        builds.append(None)

    lazy: Lazy[None] = Lazy(build)
    assert lazy.get() is None and lazy.get() is None and builds == [None]
