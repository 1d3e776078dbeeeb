"""Shared by the crash benchmarks: episodes of a crash harness on each database, and totals.

An episode is one harness run with a fresh sandbox and a fresh database. A benchmark runs
episodes on one database until it has the kills it asked for, then moves to the next.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench.results import database_urls, url_variable
from tests.conftest import reset_database

CHOICES = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mariadb": "MariaDB"}


class EpisodeResult(Protocol):
    """Figures of one harness run that the totals add up."""

    @property
    def kills(self) -> int: ...

    @property
    def rounds(self) -> Sequence[Any]: ...

    @property
    def phases(self) -> Counter[str]: ...

    @property
    def seconds(self) -> float: ...


# Runs one episode: (database URL, work folder, episode number, kills) to its result.
EpisodeRunner = Callable[[str, Path, int, int], EpisodeResult]


@dataclass
class DatabaseRun:
    """The episodes run on one database."""

    name: str
    episodes: list[Any] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def kills(self) -> int:
        return sum(result.kills for result in self.episodes)

    @property
    def rounds(self) -> int:
        return sum(len(result.rounds) for result in self.episodes)

    @property
    def phases(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for result in self.episodes:
            total.update(result.phases)
        return total

    def total(self, attribute: str) -> int:
        return sum(int(getattr(result, attribute)) for result in self.episodes)


def run_database(
    name: str,
    url: str,
    *,
    kills: int,
    kills_per_episode: int,
    work_dir: Path,
    run_episode: EpisodeRunner,
    progress: bool,
) -> DatabaseRun:
    """Run episodes on one database until ``kills`` kills; the harness raises on a difference.

    SQLite gets a new file per episode; a server database is emptied of syncd's tables.
    """
    run = DatabaseRun(name)
    started = time.monotonic()
    remaining = kills
    episode = 0
    while remaining > 0:
        episode_kills = min(kills_per_episode, remaining)
        episode_url = url
        if name == "SQLite":
            episode_url = f"sqlite:///{work_dir / f'episode-{episode}.sqlite3'}"
        reset_database(episode_url)
        result = run_episode(
            episode_url, work_dir / f"{name.lower()}-episode-{episode}", episode, episode_kills
        )
        run.episodes.append(result)
        remaining -= result.kills
        episode += 1
        if progress:
            print(
                f"{name} episode {episode}: {result.kills} kills in {len(result.rounds)} rounds, "
                f"{result.seconds:.0f} s",
                flush=True,
            )
    run.seconds = time.monotonic() - started
    return run


def run_databases(
    args: argparse.Namespace,
    run_episode: EpisodeRunner,
    failure: type[Exception],
) -> tuple[list[DatabaseRun], list[str]] | None:
    """Run the databases that ``args.database`` chooses; None when a comparison failed.

    Returns the runs and notes on the databases skipped for want of a URL. The work folder
    is kept when a comparison fails, so the round logs can be read, and removed otherwise.
    """
    runs: list[DatabaseRun] = []
    skipped: list[str] = []
    work_dir = Path(tempfile.mkdtemp(prefix="syncd-crash-"))
    urls = database_urls(f"sqlite:///{work_dir / 'unused.sqlite3'}")
    chosen = list(CHOICES.values()) if args.database == "all" else [CHOICES[args.database]]
    for name in chosen:
        url = urls[name]
        if url is None:
            skipped.append(f"{name} skipped: set {url_variable(name)} to measure it.")
            print(skipped[-1], flush=True)
            continue
        try:
            runs.append(
                run_database(
                    name,
                    url,
                    kills=args.kills,
                    kills_per_episode=args.kills_per_episode,
                    work_dir=work_dir,
                    run_episode=run_episode,
                    progress=not args.quiet,
                )
            )
        except failure as exc:
            print(f"{name}: crash safety FAILED: {exc}", file=sys.stderr)
            return None
    shutil.rmtree(work_dir)
    return runs, skipped


def add_common_arguments(parser: argparse.ArgumentParser, kills_per_episode: int) -> None:
    """Add the options every crash benchmark takes."""
    parser.add_argument("--kills", type=int, default=200, help="SIGKILLs per database")
    parser.add_argument("--kills-per-episode", type=int, default=kills_per_episode)
    parser.add_argument("--seed", type=int, default=1, help="seed of the first episode")
    parser.add_argument(
        "--database", choices=[*CHOICES, "all"], default="all", help="which databases to run"
    )
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--quiet", action="store_true", help="print no line per episode")


def phase_table(runs: list[DatabaseRun], phases: Sequence[str]) -> list[str]:
    """Return the Markdown table of where the killed runs were, one column per database."""
    lines = [
        "| phase | " + " | ".join(run.name for run in runs) + " |",
        "|---|" + "---:|" * len(runs),
    ]
    lines += [
        f"| {phase} | " + " | ".join(str(run.phases.get(phase, 0)) for run in runs) + " |"
        for phase in phases
    ]
    return lines
