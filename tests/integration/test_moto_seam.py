"""The offline runtime's reach into moto, checked before anything runs on it."""

from __future__ import annotations

import pytest

from imagejobs_local import moto_seam


def test_every_seam_resolves_in_the_pinned_moto() -> None:
    assert moto_seam.missing() == []
    moto_seam.check()


def test_a_seam_that_moved_is_named() -> None:
    moved = moto_seam.Seam("a patch of ours", "iam", "moto.core.authorization:ActionAuthenticatorMixin.gone_in_6")
    with pytest.raises(RuntimeError, match="iam: a patch of ours"):
        moto_seam.check([*moto_seam.SEAMS, moved])
