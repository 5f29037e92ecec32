"""The pure core: rules with no clock, no event loop and no I/O.

Every function that depends on time takes ``now`` (epoch seconds) as an argument,
so the whole lifecycle is testable in microseconds. The asyncio runtime and the
stores are thin drivers around these rules.
"""
