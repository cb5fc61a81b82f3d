"""Read the shards of a finished cmcl run for training.

`open_run` checks a run folder's manifest.json; `read_shard` reads one shard as dicts;
`CmclDataset` streams every row once per epoch, with its hard negatives and positives
sampled. Every random choice is seeded by the dataset's seed and epoch (and, for a
row's sample, the row's uid), so the items do not depend on how many workers, or which,
read them.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import pyarrow as pa
import pyarrow.ipc as ipc

try:
    from torch.utils.data import IterableDataset as _DatasetBase
except ImportError:  # without torch the dataset is a plain iterable
    _DatasetBase = object  # type: ignore[assignment,misc]

__all__ = ["CmclDataset", "Run", "RunError", "open_run", "read_shard", "SCHEMA_VERSION"]

SCHEMA_VERSION = "1"
"""The shard schema this reader understands (`cmcl.schema_version`)."""

ITEM_COLUMNS = ("positives", "negatives", "neighbours")

Row = dict[str, Any]


class RunError(Exception):
    """The folder is not a finished cmcl run; the message names the file and what to do."""


@dataclass(frozen=True)
class Run:
    """A finished cmcl run folder and its parsed manifest.json."""

    path: Path
    manifest: dict[str, Any]

    @property
    def shard_files(self) -> list[Path]:
        """The shard files in row order."""
        shards = sorted(self.manifest["shards"], key=lambda shard: shard["index"])
        return [self.path / shard["file"] for shard in shards]

    @property
    def total_rows(self) -> int:
        """Rows over all shards, as the manifest counts them."""
        return int(self.manifest["total_rows"])


def open_run(path: str | os.PathLike[str]) -> Run:
    """Opens a run folder, failing with `RunError` unless every shard is written."""
    folder = Path(path)
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        # A shard plan's workers write no manifest; only `cmcl merge` does.
        hint = ("a shard plan not merged yet: run `cmcl merge`" if (folder / "plan.json").is_file()
                else "not a cmcl run folder, or its `cmcl augment` has not finished")
        raise RunError(f"{manifest_path} is missing: {hint}")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as error:
        raise RunError(f"{manifest_path} cannot be read: {error}") from error
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise RunError(f"{manifest_path} has schema version {manifest.get('schema_version')!r}; "
                       f"this reader reads {SCHEMA_VERSION!r}")
    if not manifest.get("complete"):
        raise RunError(f"{manifest_path} says the run is incomplete (\"complete\": false, "
                       f"{len(manifest.get('shards', []))} of {manifest.get('num_shards')} shards): "
                       "resume it with `cmcl augment` before reading it")
    run = Run(folder, manifest)
    for shard in run.shard_files:
        if not shard.is_file():
            raise RunError(f"{shard} is listed in {manifest_path} but missing")
    return run


def read_shard(path: str | os.PathLike[str]) -> list[Row]:
    """All rows of one shard as dicts of the columns' Python values.

    `uid` is 16 bytes. In `positives`, `negatives` and `neighbours`, each item's `params`
    (JSON in the shard) is parsed into a dict; the other item fields are kept as stored.
    """
    with pa.memory_map(str(path)) as source:
        rows = ipc.open_file(source).read_all().to_pylist()
    for row in rows:
        for column in ITEM_COLUMNS:
            for item in row[column]:
                item["params"] = json.loads(item["params"])
    return rows


class CmclDataset(_DatasetBase):
    """Every row of a run once per epoch, as a dict with sampled negatives and positives.

    A `torch.utils.data.IterableDataset` when torch is importable, else a plain iterable.

    - `negatives_per_kind`: keep at most k negatives of each kind (None keeps all);
      `kinds` keeps only negatives of these kinds (None keeps every kind).
    - `positives`: keep at most k positives (None keeps all).
    - `seed`, `set_epoch`: seed every choice. A row's sample depends on the seed, the
      epoch and its uid only; call `set_epoch` before each epoch for fresh choices. With
      a DataLoader, keep `persistent_workers=False` (the default) so that its workers
      see the new epoch.
    - `shuffle`: permute the shard order and the rows within each shard per epoch.
      Shards are read one at a time, so memory holds one shard's rows.
    - Splitting: shard i of the (shuffled) order goes to reader i % readers, where the
      readers are world_size x num_workers. `worker_id`/`num_workers` default to the
      DataLoader worker (`torch.utils.data.get_worker_info()`), `rank`/`world_size` to
      `torch.distributed` when it is initialised. A reader gets whole shards, so more
      readers than shards leaves some idle.
    - `transform`: called on each item dict; what it returns is yielded (load the image
      from `item["image_path"]` here).

    Each item has the row's columns (see `read_shard`), with `negatives` and `positives`
    replaced by the sampled lists, in the shard's order.
    """

    def __init__(
        self,
        run: str | os.PathLike[str] | Run,
        *,
        negatives_per_kind: int | None = None,
        kinds: Sequence[str] | None = None,
        positives: int | None = None,
        seed: int = 0,
        shuffle: bool = False,
        transform: Callable[[Row], Any] | None = None,
        worker_id: int | None = None,
        num_workers: int | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        for name, k in (("negatives_per_kind", negatives_per_kind), ("positives", positives)):
            if k is not None and k < 0:
                raise ValueError(f"{name} must be at least 0, not {k}")
        if isinstance(kinds, str):
            raise TypeError(f"kinds must be a list of kinds, not the string {kinds!r}")
        _check_split("worker_id", worker_id, "num_workers", num_workers)
        _check_split("rank", rank, "world_size", world_size)
        self.run = run if isinstance(run, Run) else open_run(run)
        self.negatives_per_kind = negatives_per_kind
        self.kinds = None if kinds is None else frozenset(kinds)
        self.positives = positives
        self.seed = seed
        self.shuffle = shuffle
        self.transform = transform
        self.worker_id, self.num_workers = worker_id, num_workers
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch that seeds the shuffle and the samples."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[Any]:
        for shard in self._reader_shards():
            rows = read_shard(shard)
            if self.shuffle:
                _rng("rows", self.seed, self.epoch, shard.name).shuffle(rows)
            for row in rows:
                item = self.sample(row)
                yield item if self.transform is None else self.transform(item)

    def sample(self, row: Row) -> Row:
        """The row with its negatives and positives sampled for the current epoch."""
        rng = _rng("items", self.seed, self.epoch, row["uid"].hex())
        negatives = row["negatives"]
        if self.kinds is not None:
            negatives = [item for item in negatives if item["kind"] in self.kinds]
        if self.negatives_per_kind is not None:
            negatives = _sample_per_kind(negatives, self.negatives_per_kind, rng)
        positives = row["positives"]
        if self.positives is not None:
            positives = _sample_per_kind(positives, self.positives, rng, by_kind=False)
        return {**row, "negatives": negatives, "positives": positives}

    def _reader_shards(self) -> list[Path]:
        """The shards this worker of this rank reads in the current epoch."""
        shards = self.run.shard_files
        if self.shuffle:
            _rng("shards", self.seed, self.epoch).shuffle(shards)
        worker_id, num_workers = ((self.worker_id, self.num_workers) if self.num_workers is not None
                                  else _dataloader_worker())
        rank, world_size = ((self.rank, self.world_size) if self.world_size is not None
                            else _distributed_rank())
        return shards[rank * num_workers + worker_id::world_size * num_workers]


def _check_split(index_name: str, index: int | None, count_name: str, count: int | None) -> None:
    if (index is None) != (count is None):
        raise ValueError(f"give both {index_name} and {count_name}, or neither")
    if index is not None and count is not None and not 0 <= index < count:
        raise ValueError(f"{index_name} must be in [0, {count_name}), not {index} of {count}")


def _rng(*parts: object) -> random.Random:
    """A generator seeded by `parts` alone, the same in every process (unlike `hash`)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _sample_per_kind(items: list[Row], k: int, rng: random.Random, by_kind: bool = True) -> list[Row]:
    """At most k items of each kind (of all items when not `by_kind`), in their order."""
    groups: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        groups.setdefault(item["kind"] if by_kind else "", []).append(index)
    chosen: list[int] = []
    for indices in groups.values():
        chosen += rng.sample(indices, min(k, len(indices)))
    return [items[index] for index in sorted(chosen)]


def _dataloader_worker() -> tuple[int, int]:
    """(worker id, workers) of the DataLoader worker running this, else (0, 1)."""
    try:
        from torch.utils.data import get_worker_info
    except ImportError:
        return 0, 1
    info = get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


def _distributed_rank() -> tuple[int, int]:
    """(rank, world size) of an initialised torch.distributed group, else (0, 1)."""
    try:
        import torch.distributed as dist
    except ImportError:
        return 0, 1
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
