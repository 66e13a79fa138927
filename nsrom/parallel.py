"""Map a function over items with a process pool and a progress bar."""

from __future__ import annotations

import multiprocessing
from typing import Callable, Iterable, Iterator, TypeVar

from tqdm import tqdm

T = TypeVar("T")
R = TypeVar("R")


def parallel_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int = 1,
    desc: str = "",
    chunksize: int = 4,
) -> Iterator[R]:
    """Yield ``fn(item)`` for each item (order not kept when ``workers > 1``).

    ``workers <= 1`` runs in this process (easy to debug); otherwise a pool of
    ``workers`` processes runs ``fn``, which must be a picklable top-level
    function. A tqdm bar shows progress in both cases.
    """
    items = list(items)
    bar = tqdm(total=len(items), desc=desc, dynamic_ncols=True, leave=False)
    try:
        if workers <= 1 or len(items) <= 1:
            for item in items:
                yield fn(item)
                bar.update()
            return
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for result in pool.imap_unordered(fn, items, chunksize=chunksize):
                yield result
                bar.update()
    finally:
        bar.close()
