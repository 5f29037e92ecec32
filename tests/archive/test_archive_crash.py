"""A real process journals under load and is SIGKILLed again and again; nothing acked is lost.

The child (``crash_child.py``) prints a line for every acknowledgement only
after the call returned. The parent kills it with SIGKILL at a random number
of acknowledgements, restarts it on the same data dir (its start-up recovery
archives what the dead one left), and at the end checks the data dir against
every line it read.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import yaml

CHILD = Path(__file__).with_name("crash_child.py")
KILLS = 24


@dataclass
class Promises:
    """Everything the children acknowledged, as read from their stdout."""

    started: set[str] = field(default_factory=set)
    ended: set[str] = field(default_factory=set)
    acked: dict[str, dict[int, str]] = field(default_factory=lambda: defaultdict(dict))
    recovered_per_run: list[int] = field(default_factory=list)

    def read(self, line: str) -> None:
        kind, _, rest = line.partition(" ")
        if kind == "S":
            self.started.add(rest.split()[0])
        elif kind == "E":
            self.ended.add(rest)
        elif kind == "A":
            sid, seq, content = rest.split(" ", 2)
            self.acked[sid][int(seq)] = content
        elif kind == "READY":
            self.recovered_per_run.append(int(rest))


def run_child(data_dir: Path, seed: int, promises: Promises, kill_after: int | None) -> None:
    """Run one child; SIGKILL it after ``kill_after`` acknowledgements (``None``: let it finish)."""
    args = [sys.executable, str(CHILD), str(data_dir), str(seed)]
    if kill_after is None:
        args.append("--final")
    log = (data_dir.parent / "child.log").open("a")
    with log, subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True) as child:
        assert child.stdout is not None
        acks = 0
        try:
            for line in child.stdout:
                promises.read(line.rstrip("\n"))
                acks += line.startswith("A ")
                if kill_after is not None and acks >= kill_after:
                    os.kill(child.pid, signal.SIGKILL)
                    break
            # Lines the child wrote before it died are still in the pipe: they count.
            for line in child.stdout:
                promises.read(line.rstrip("\n"))
        finally:
            child.kill()
            child.wait(timeout=30)
    if kill_after is None:
        assert child.returncode == 0


def archives(data_dir: Path) -> dict[str, list[dict[str, object]]]:
    """Every archive document on disk, by session id."""
    found: dict[str, list[dict[str, object]]] = defaultdict(list)
    for path in data_dir.glob("users/*/dialogs/archived/*"):
        doc = yaml.safe_load(path.read_text())
        found[doc["session_id"]].append(doc)
    return found


def test_sigkill_under_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """After 24 SIGKILLs under load, every acked message is archived in order, exactly once."""
    rng = random.Random(20261121)
    promises = Promises()
    tmp_path = tmp_path / "data"
    for run in range(KILLS):
        run_child(tmp_path, seed=run, promises=promises, kill_after=rng.randrange(1, 3000))
    run_child(tmp_path, seed=KILLS, promises=promises, kill_after=None)

    assert len(promises.recovered_per_run) == KILLS + 1
    assert all(n > 0 for n in promises.recovered_per_run[1:]), "each restart recovers the dead"
    found = archives(tmp_path)
    duplicates = {sid: len(docs) for sid, docs in found.items() if len(docs) != 1}
    assert duplicates == {}
    assert promises.started <= found.keys(), "every started session is archived"

    pattern = re.compile(r"[0-9a-f]{8}-[0-9]+-x*")
    for sid, (doc,) in found.items():
        messages = doc["messages"]
        assert isinstance(messages, list)
        seqs = [m["seq"] for m in messages]
        assert seqs == list(range(1, len(seqs) + 1)), f"gap or disorder in {sid[:8]}"
        by_seq = {m["seq"]: m["content"] for m in messages}
        for seq, content in promises.acked.get(sid, {}).items():
            assert by_seq.get(seq) == content, f"acknowledged message {seq} of {sid[:8]} lost"
        for m in messages:
            assert pattern.fullmatch(m["content"]), "no garbage"
            assert m["content"].startswith(sid[:8]), "no line from another session"
        outcome = (doc["end_reason"], doc["recovered"])
        if sid in promises.ended:
            assert outcome == ("client_ended", False)
        else:  # killed while live, or in the middle of its end
            assert outcome in {("server_shutdown", True), ("client_ended", False)}

    assert list(tmp_path.glob("users/*/dialogs/current/*")) == [], "no journal left behind"
    assert list(tmp_path.glob("users/*/dialogs/archived/.*")) == [], "no temp file left"
    assert list(tmp_path.glob("users/*/dialogs/damaged/*")) == [], "a kill never damages"
    total_acked = sum(len(v) for v in promises.acked.values())
    assert total_acked > KILLS * 100
