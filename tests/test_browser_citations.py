"""Citations in a real browser: the offline model cites an attached PDF and text document, the reply shows a
numbered marker after each cited span, the marker shows the cited text on hover, focus and tap, and its link
opens the PDF at the cited page or the text document with the passage highlighted, in a new tab.

It uses test_browser.py's server, browser and page fixtures.
"""

import re

import pytest
from attachment_samples import pdf_bytes
from test_browser import app_server, browser, browser_page, page, send, server_url, sign_up_and_start_a_chat  # noqa: F401

pytestmark = pytest.mark.browser

DONE = 30_000  # a whole reply from the offline model
PAGES = ["Quarterly report. Revenue grew by nine percent.", "Appendix. Costs fell in the spring."]
NOTES = "The launch moves to May.\nMarketing owns the press kit.\nThe budget stays at forty thousand dollars.\n"
MARKERS = ".message-assistant .markdown a[href^='#citation-']"


def attach_and_ask(page, server_url, username):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, username)
    page.set_input_files(
        "#attach-input",
        files=[
            {"name": "report.pdf", "mimeType": "application/pdf", "buffer": pdf_bytes(PAGES)},
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": NOTES.encode()},
        ],
    )
    page.locator(".composer-attachment[data-status=ready]").nth(1).wait_for()
    send(page, "What do these say?")
    page.wait_for_selector(".message-assistant[data-status=complete]", timeout=DONE)


def marker_for(page, kind: str):  # noqa: F811
    """The first marker whose popover names a source of `kind` ("page" for the PDF, else the text file)."""
    markers = page.locator(MARKERS)
    for index in range(markers.count()):
        marker = markers.nth(index)
        marker.hover()
        popover = page.locator("#citation-popover")
        popover.wait_for(state="visible")
        source = popover.locator(".citation-source").inner_text()
        if ("report.pdf, page" in source) == (kind == "page"):
            return marker
    raise AssertionError(f"no {kind} citation among {markers.count()} markers")


def test_a_pdf_citation_opens_the_pdf_at_its_page_in_a_new_tab(page, server_url):  # noqa: F811
    attach_and_ask(page, server_url, "pdfcite")
    assert page.locator(MARKERS).count() >= 2
    assert page.locator(MARKERS).first.inner_text() == "[1]"

    marker = marker_for(page, "page")
    popover = page.locator("#citation-popover")
    quoted = popover.locator(".citation-text").inner_text()
    assert quoted and any(quoted in text for text in PAGES)
    page_number = int(re.search(r"page (\d+)", popover.locator(".citation-source").inner_text())[1])
    assert PAGES[page_number - 1].find(quoted) >= 0
    marker.click()  # pins the popover and moves the focus to its link
    link = popover.locator(".citation-link")
    assert link.evaluate("link => link === document.activeElement")
    assert marker.get_attribute("aria-expanded") == "true"
    assert marker.get_attribute("aria-label").startswith("Citation ")

    with page.context.expect_page() as opened:
        link.click()
    tab = opened.value
    assert tab.url.endswith(f"/view/#page={page_number}")
    response = page.request.get(tab.url.split("#")[0])
    assert response.status == 200 and response.headers["content-type"] == "application/pdf"
    assert response.body().startswith(b"%PDF")
    assert response.headers["content-disposition"].startswith("inline")
    tab.close()

    page.keyboard.press("Escape")
    assert popover.is_hidden()


def test_a_text_citation_opens_the_passage_highlighted_and_survives_a_reload(page, server_url):  # noqa: F811
    attach_and_ask(page, server_url, "textcite")
    page.reload()
    page.wait_for_selector(".message-assistant[data-status=complete]")

    marker = marker_for(page, "text")
    quoted = page.locator("#citation-popover .citation-text").inner_text()
    assert quoted in NOTES
    with page.context.expect_page() as opened:
        page.locator("#citation-popover .citation-link").click()
    tab = opened.value
    tab.wait_for_load_state()
    assert "/passage/?start=" in tab.url and tab.url.endswith("#passage")
    mark = tab.locator("mark#passage")
    assert mark.inner_text() == quoted
    assert mark.evaluate(
        "node => { const box = node.getBoundingClientRect(); return box.top >= 0 && box.bottom <= innerHeight; }"
    )
    tab.close()
    assert marker.is_visible()


def test_a_marker_is_reached_with_the_keyboard_and_tapped_on_a_phone(browser, server_url):  # noqa: F811
    with browser_page(browser, viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True) as phone:
        attach_and_ask(phone, server_url, "phonecite")
        marker = phone.locator(MARKERS).first
        marker.focus()
        popover = phone.locator("#citation-popover")
        popover.wait_for(state="visible")
        assert marker.get_attribute("aria-describedby") == "citation-popover"
        phone.keyboard.press("Escape")
        assert popover.is_hidden()

        marker.tap()
        popover.wait_for(state="visible")
        assert popover.locator(".citation-text").inner_text()
        box = popover.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390
        phone.locator(".message-author").first.tap()  # a tap elsewhere closes it
        assert popover.is_hidden()


def test_the_settings_dialog_offers_the_thinking_the_chosen_model_takes(page, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "thinker")
    send(page, "Hello")
    page.wait_for_selector(".message-assistant[data-status=complete]", timeout=DONE)
    levels = "#settings-dialog select[name=thinking] option:not([hidden])"  # a level the model does not take is hidden

    page.select_option("#model-select", "claude-haiku-4-5")
    page.click("#settings-button")
    assert page.locator(levels).all_inner_texts() == [
        "Off", "Low (2,048-token budget)", "Medium (8,192-token budget)", "High (16,384-token budget)"
    ]
    page.click("#settings-dialog .dialog-cancel")

    page.select_option("#model-select", "claude-opus-4-6")
    page.click("#settings-button")
    assert page.locator(levels).all_inner_texts() == ["Off", "Low effort", "Medium effort", "High effort", "Max effort"]
    page.click("#settings-dialog .dialog-cancel")

    page.select_option("#model-select", "claude-sonnet-5-5")  # adaptive, without effort max (ModelSpec.max_effort)
    page.click("#settings-button")
    assert page.locator(levels).all_inner_texts() == ["Off", "Low effort", "Medium effort", "High effort"]


def test_a_shared_reply_shows_its_citations_linked_to_the_shares_copy_of_the_pdf(page, server_url):  # noqa: F811
    attach_and_ask(page, server_url, "sharecite")
    conversation_id = page.locator("#chat").get_attribute("data-conversation-id")
    page.goto(f"{server_url}/conversations/{conversation_id}/shares/")
    page.select_option("#id_audience", "signed_in")
    page.get_by_role("button", name="Share").click()
    share = page.get_by_label("Link to share 1").input_value()
    page.goto(share)
    page.locator(".message-assistant").wait_for()

    marker = marker_for(page, "page")
    marker.click()
    link = page.locator("#citation-popover .citation-link")
    href = link.get_attribute("href")
    assert re.fullmatch(r"/s/[^/]+/attachments/\d+/#page=\d", href), href
    response = page.request.get(server_url + href.split("#")[0])
    assert response.status == 200 and response.body().startswith(b"%PDF")


def test_a_web_citation_links_only_to_a_web_page_and_spans_stay_one_paragraph(page, server_url):  # noqa: F811
    sign_up_and_start_a_chat(page, server_url, "webcite")
    urls = page.evaluate(
        """() => [
          {type: "web_search_result_location", url: "https://example.com/a?b=1", title: "A", cited_text: "x"},
          {type: "web_search_result_location", url: "javascript:alert(1)", title: "B", cited_text: "y"},
          {type: "page_location", attachment: "7/../../admin", start_page_number: "3"},
        ].map(window.ChatCitations.ownerSourceUrl)"""
    )
    assert urls == ["https://example.com/a?b=1", None, None]
    runs = page.evaluate(
        """() => [...window.ChatCitations.textRuns([
          {type: "text", text: "It says "},
          {type: "text", text: "the sky is green\\n", citations: [{type: "char_location"}, {type: "char_location"}]},
          {type: "tool_use", id: "t", name: "x", input: {}},
          {type: "text", text: "Done."},
        ]).entries()]"""
    )
    assert runs == [[0, "It says the sky is green[\\[1\\]](#citation-1)[\\[2\\]](#citation-2)\n"], [3, "Done."]]
