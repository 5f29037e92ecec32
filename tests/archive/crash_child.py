"""Child process for the crash test: journals messages under load until it is killed.

Usage: ``python crash_child.py DATA_DIR SEED [--final]``

It opens a :class:`SessionManager` over ``DATA_DIR`` (which recovers whatever a
previous, killed child left), prints ``READY <recovered>``, then runs 100
sessions that append messages as fast as they can, now and then ending a
session and starting another. Every acknowledgement is printed with one
``os.write`` (atomic on a pipe) only *after* the call that acknowledged it
returned, so each line the parent reads is a promise the data dir must keep:

* ``S <sid> <user>``: a session started;
* ``A <sid> <seq> <content>``: a message was acknowledged;
* ``E <sid>``: a session's end returned (its archive is durable).

With ``--final`` it only recovers, ends every session it has (none) and exits.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys

from tether.archive.journal import FileJournal
from tether.archive.yaml_archive import YamlArchive
from tether.core.policy import Policy
from tether.runtime.manager import SessionManager

SESSIONS = 100
USERS = 10


def say(line: str) -> None:
    os.write(1, (line + "\n").encode())


def content_for(session_id: str, seq_hint: int, rng: random.Random) -> str:
    """Content the parent can recognise: the session's id and a random tail."""
    return f"{session_id[:8]}-{seq_hint}-" + "x" * rng.randrange(0, 300)


async def run_session(manager: SessionManager, user: str, rng: random.Random) -> None:
    while True:
        session = await manager.start(user, kind="crash", config={"n": rng.randrange(100)})
        say(f"S {session.id} {user}")
        for n in range(rng.randrange(5, 60)):
            if rng.random() < 0.05:
                await manager.update_config(session.id, {"n": n})
            message = await manager.append(
                session.id, rng.choice(["user", "assistant"]), content_for(session.id, n, rng)
            )
            say(f"A {session.id} {message.seq} {message.content}")
        await manager.end(session.id)
        say(f"E {session.id}")


async def main() -> None:
    data_dir, seed = sys.argv[1], int(sys.argv[2])
    final = "--final" in sys.argv
    rng = random.Random(seed)
    policy = Policy(idle_timeout=3600, warn_before=0, max_duration=7200, presence_timeout=3600)
    manager = SessionManager(
        policy=policy,
        max_sessions_per_user=None,
        journal=FileJournal(data_dir, fsync="always"),
        archiver=YamlArchive(data_dir),
    )
    async with manager:
        assert manager.recovery is not None
        say(f"READY {manager.recovery.recovered}")
        if final:
            return
        tasks = [
            asyncio.create_task(
                run_session(manager, f"user{i % USERS}", random.Random(rng.random()))
            )
            for i in range(SESSIONS)
        ]
        await asyncio.gather(*tasks)


if __name__ == "__main__":
    asyncio.run(main())
