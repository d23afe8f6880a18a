"""The cells card speaks the user's language: the card's own file in Chromium, no Home Assistant needed.

The card picks its table from Home Assistant's language (``hass.locale.language``, or
``hass.language`` on older frontends), a regional variant by its base language, English when it
has no table for it. A minimal ``hass`` and a card without a device make it draw its header and
its "pick a balancer" message, both from the table.
"""

from __future__ import annotations

import pytest

pytest.importorskip("playwright", reason="playwright is not installed (requirements_test.txt)")

from playwright.async_api import Page

from ..card_table import CARD_FILE, card_strings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

#: Home Assistant's language codes (its frontend's list) and the table each one gets.
CASES = [
    ("en", "en"),
    ("en-GB", "en"),
    ("de", "de"),
    ("de-CH", "de"),
    ("fr", "fr"),
    ("es", "es"),
    ("es-419", "es"),
    ("it", "it"),
    ("nl", "nl"),
    ("pl", "pl"),
    ("cs", "cs"),
    ("pt-BR", "en"),
    ("sv", "en"),
]

DRAW = """([language, viaLocale]) => {
  const card = document.createElement("daly-balancer-card");
  document.body.append(card);
  card.setConfig({});
  card.hass = viaLocale
    ? { locale: { language }, language: "en", states: {}, entities: {}, devices: {} }
    : { language, states: {}, entities: {}, devices: {} };
  const root = card.shadowRoot;
  const drawn = [root.querySelector("h1").textContent, root.querySelector(".message").textContent];
  card.remove();
  return drawn;
}"""


async def test_card_draws_in_home_assistants_language(page: Page) -> None:
    """Each language Home Assistant offers gets the card's table for it, or English."""
    table = card_strings()
    assert {expected for _, expected in CASES} == set(table), "a case for each language of the table"
    await page.set_content("<!doctype html><html><body></body></html>")
    await page.add_script_tag(content=CARD_FILE.read_text(encoding="utf-8"), type="module")
    await page.wait_for_function("() => !!customElements.get('daly-balancer-card')")
    for language, expected in CASES:
        texts = table[expected]
        for via_locale in (True, False):
            drawn = await page.evaluate(DRAW, [language, via_locale])
            assert drawn == [texts["name"], texts["pick_device"]], (language, via_locale)
