"""The copilot's group name: one per user, apart from the user's other sockets."""

from __future__ import annotations

import pytest

from realtime.copilot.groups import copilot_group
from realtime.groups import user_group


def test_copilot_group_is_per_user_and_not_the_user_group():
    assert copilot_group(7) == "copilot.7"
    assert copilot_group("7") != user_group("7")


@pytest.mark.parametrize("bad", ["", "a b", "a.b", None, True])
def test_copilot_group_refuses_unsafe_ids(bad):
    with pytest.raises(ValueError, match="invalid copilot id"):
        copilot_group(bad)
