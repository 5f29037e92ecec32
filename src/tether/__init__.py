"""tether: the whole life of real-time conversational sessions.

The names most applications need are importable from here::

    from tether import SessionManager, Policy, FileJournal, YamlArchive

:class:`SessionManager` drives sessions over a store (:class:`MemoryStore` by
default, :class:`RedisStore` across nodes), a journal that makes every
acknowledged message durable (:class:`FileJournal`) and an archiver that keeps
each ended transcript (:class:`YamlArchive`). Every error tether raises on
purpose is a :class:`TetherError`; the tree is drawn in :mod:`tether.errors`.
The pure rules live in :mod:`tether.core`; the FastAPI service in
:mod:`tether.service`; the test kit in :mod:`tether.testing`.
"""

from tether.archive.journal import FileJournal
from tether.archive.yaml_archive import YamlArchive
from tether.core.policy import Policy
from tether.core.session import SessionInfo
from tether.core.transcript import Message
from tether.errors import (
    ArchiveError,
    ArchiveNotFound,
    BadJson,
    ConfigError,
    DuplicateSession,
    Forbidden,
    FrameError,
    InvalidInput,
    JournalCorrupt,
    MalformedMessage,
    MessageTooLarge,
    PolicyError,
    ReplyClosed,
    SessionEnded,
    SessionError,
    SessionNotFound,
    StoreError,
    StoreUnavailable,
    TetherError,
    Throttled,
    TooLarge,
    TooManyTasks,
    TranscriptFull,
    Unauthorized,
)
from tether.runtime.channel import Channel
from tether.runtime.cleanup import CleanupHandle
from tether.runtime.manager import SessionManager
from tether.runtime.replies import Reply
from tether.store.memory import MemoryStore
from tether.store.redis.store import RedisStore
from tether.types import EndReason, SessionId, SessionState, UserId

__all__ = [
    "ArchiveError",
    "ArchiveNotFound",
    "BadJson",
    "Channel",
    "CleanupHandle",
    "ConfigError",
    "DuplicateSession",
    "EndReason",
    "FileJournal",
    "Forbidden",
    "FrameError",
    "InvalidInput",
    "JournalCorrupt",
    "MalformedMessage",
    "MemoryStore",
    "Message",
    "MessageTooLarge",
    "Policy",
    "PolicyError",
    "RedisStore",
    "Reply",
    "ReplyClosed",
    "SessionEnded",
    "SessionError",
    "SessionId",
    "SessionInfo",
    "SessionManager",
    "SessionNotFound",
    "SessionState",
    "StoreError",
    "StoreUnavailable",
    "TetherError",
    "Throttled",
    "TooLarge",
    "TooManyTasks",
    "TranscriptFull",
    "Unauthorized",
    "UserId",
    "YamlArchive",
]
__version__ = "0.1.0.dev0"
