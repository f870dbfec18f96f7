"""What the first evaluated claim loads (the checkpoint, the libraries it imports) joins the
claims that collection froze (``ClaimSession.settle_loads``), and the session gives it back."""

from __future__ import annotations

import gc

import pytest
from conftest import claim_file_text, save_checkpoint
from test_collection_gc import _cycle


def test_what_the_first_claim_loads_is_left_out_of_later_collections(pytester) -> None:
    """The first evaluated claim loads the checkpoint (and the libraries it needs); what it
    made lives as long as the run, so it joins the frozen claims (pytest's collections at the
    end of the session then scan only the run's own objects); the session still gives
    everything back."""
    save_checkpoint(pytester.path / "model.pt")
    (pytester.path / "model.claims.yaml").write_text(
        claim_file_text("- norm(N0) > 0\n- norm(N1) > 0"), encoding="utf-8")
    pytester.makeconftest("""
        import gc
        import pytest
        FROZEN = []

        @pytest.hookimpl(tryfirst=True)
        def pytest_runtest_setup(item):
            FROZEN.append(("setup", item.name, gc.get_freeze_count()))

        def pytest_runtest_call(item):
            FROZEN.append(("call", item.name, gc.get_freeze_count()))

        def pytest_sessionfinish(session):
            session.config.stash_frozen = list(FROZEN)
    """)
    frozen_before = gc.get_freeze_count()
    recorded: list[tuple[str, str, int]] = []

    class Spy:
        @pytest.hookimpl(trylast=True)
        def pytest_sessionfinish(self, session: pytest.Session) -> None:
            recorded.extend(session.config.stash_frozen)

    result = pytester.runpytest_inprocess("-p", "no:randomly", "-q", plugins=[Spy()])
    assert result.ret == 0
    counts = {(when, name): count for when, name, count in recorded}
    first, second = "norm-n0-0", "norm-n1-0"
    assert counts[("setup", first)] > frozen_before  # the claims, frozen at collection
    assert counts[("call", first)] > counts[("setup", first)]  # + what the first claim made
    # once only: the second claim freezes nothing more (frozen objects may still be freed)
    assert counts[("call", second)] <= counts[("setup", second)] <= counts[("call", first)]
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen_before
    watched = _cycle()
    gc.collect()
    assert watched() is None



pytestmark = pytest.mark.usefixtures("heavy_modules_loaded")
