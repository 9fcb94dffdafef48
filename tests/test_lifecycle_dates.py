"""The suite does not depend on today's date: the lifecycle rows the migration seeds carry real retirement days,
so tests/conftest.py removes them from the test database (tests/test_lifecycle.py seeds them itself, against a
pinned day)."""

from datetime import date

import pytest

from lifecycle import selectors
from lifecycle.models import ModelLifecycle
from tests.test_admission import admit, signed_in

pytestmark = pytest.mark.django_db


def test_a_4_x_model_is_admitted_long_after_the_seeded_retirements(owner, conversation, monkeypatch):
    monkeypatch.setattr(ModelLifecycle, "today", staticmethod(lambda: date(2030, 1, 1)))
    conversation.model = "claude-sonnet-4-6"
    conversation.save(update_fields=["model"])

    assert not ModelLifecycle.objects.exists()
    assert selectors.model_retired("claude-sonnet-4-6") is None
    assert admit(owner, conversation, signed_in(owner), text="Still there?").reply.model == "claude-sonnet-4-6"
