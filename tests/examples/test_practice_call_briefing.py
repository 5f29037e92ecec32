"""examples/practice_call's briefing hook on a fake clock: the job becomes the prompt, once."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from tether.core.events import AppEvent, ErrorNotice, SessionConfig
from tether.testing import RecordingChannel, fake_manager, settle

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "practice_call" / "app.py"


def _example() -> Any:
    spec = importlib.util.spec_from_file_location("practice_call_briefing", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


practice = _example()


async def test_a_job_in_the_config_becomes_the_system_prompt_and_the_page_is_told_once() -> None:
    """config.job is stored back with its system_prompt; one practice.briefed app event."""
    async with fake_manager() as kit:
        practice.Briefing(kit.manager).install()
        session = await kit.manager.start("alice", kind="call", config={"line": "practice"})
        page = RecordingChannel()
        await kit.manager.attach(session.id, page)
        job = {"title": " Nurse ", "company": "St Mary's", "extra": "ignored"}
        await kit.manager.update_config(session.id, {"line": "practice", "job": job})
        await settle()
        config = (await kit.manager.get(session.id)).config
        prompt = practice.interviewer_prompt({"title": "Nurse", "company": "St Mary's"})
        assert config == {"line": "practice", "job": job, "system_prompt": prompt}
        assert "Nurse at St Mary's" in prompt
        briefed = [e for e in page.events if isinstance(e, AppEvent)]
        assert [(e.name, e.data) for e in briefed] == [
            ("practice.briefed", {"title": "Nurse", "company": "St Mary's"})
        ]
        assert [e.config for e in page.events if isinstance(e, SessionConfig)][-1] == config


@pytest.mark.parametrize(
    "job",
    [
        "Nurse",
        {"company": "Acme"},
        {"title": "   "},
        {"title": 7},
        {"title": "x" * 201},
        {"title": "Nurse", "focus": ["a list"]},
    ],
)
async def test_a_job_it_cannot_use_is_answered_with_invalid_job_and_no_prompt(job: Any) -> None:
    """A bad config.job: error invalid_job to the session, no system_prompt, no briefing."""
    async with fake_manager() as kit:
        practice.Briefing(kit.manager).install()
        session = await kit.manager.start("alice", kind="call")
        page = RecordingChannel()
        await kit.manager.attach(session.id, page)
        await kit.manager.update_config(session.id, {"job": job})
        await settle()
        info = await kit.manager.get(session.id)
        assert info.config == {"job": job}
        assert info.state.value == "active"
        errors = [e for e in page.events if isinstance(e, ErrorNotice)]
        assert [e.code for e in errors] == ["invalid_job"]
        assert not [e for e in page.events if isinstance(e, AppEvent)]


async def test_a_config_without_a_job_is_left_alone() -> None:
    """No config.job: the hook changes nothing and says nothing."""
    async with fake_manager() as kit:
        practice.Briefing(kit.manager).install()
        session = await kit.manager.start("alice", kind="call")
        page = RecordingChannel()
        await kit.manager.attach(session.id, page)
        await kit.manager.update_config(session.id, {"system_prompt": "Be terse."})
        await settle()
        assert (await kit.manager.get(session.id)).config == {"system_prompt": "Be terse."}
        assert not [e for e in page.events if isinstance(e, AppEvent | ErrorNotice)]
