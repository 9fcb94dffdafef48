"""The chat page's "Use your browser's time zone?" proposal: the banner is rendered until the user has chosen
a zone, and its answer (accounts `time_zone_answer`) saves a real zone for good. First the view, through
Django's test client; then the whole thing in a real browser set to Paris time (static/chat/timezone.js fills the
browser's zone in), on test_browser.py's server.
"""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse
from test_browser import browser, server_url, sign_up_and_start_a_chat  # noqa: F401 (fixtures)

BANNER = 'id="time-zone-banner"'


@pytest.mark.django_db
def test_it_saves_the_browsers_zone_and_stops_asking(client, owner):
    client.force_login(owner)
    assert BANNER in client.get(reverse("home")).content.decode()

    response = client.post(reverse("time_zone_answer"), {"time_zone": "Europe/Paris", "next": "/"})

    owner.refresh_from_db()
    assert response.status_code == 302 and response["Location"] == "/"
    assert (owner.time_zone, owner.time_zone_confirmed) == ("Europe/Paris", True)
    assert BANNER not in client.get(reverse("home")).content.decode()


@pytest.mark.django_db
def test_keeping_the_saved_zone_also_stops_asking(client, owner):
    client.force_login(owner)

    client.post(reverse("time_zone_answer"), {"time_zone": "UTC"})

    owner.refresh_from_db()
    assert (owner.time_zone, owner.time_zone_confirmed) == ("UTC", True)
    assert BANNER not in client.get(reverse("home")).content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "zone", ["Mars/Olympus_Mons", "", "Europe/Paris\x00", "../../etc/passwd", "x" * 10_000]
)
def test_a_zone_that_does_not_exist_is_a_400_and_saves_nothing(client, owner, zone):
    client.force_login(owner)

    response = client.post(reverse("time_zone_answer"), {"time_zone": zone})

    owner.refresh_from_db()
    assert response.status_code == 400 and response.content.decode() == "Unknown time zone."
    assert (owner.time_zone, owner.time_zone_confirmed) == ("UTC", False)


@pytest.mark.django_db
def test_it_goes_back_only_to_this_site(client, owner):
    client.force_login(owner)

    response = client.post(reverse("time_zone_answer"), {"time_zone": "UTC", "next": "https://evil.example/"})

    assert response.status_code == 302 and response["Location"] == reverse("home")


@pytest.mark.django_db
def test_it_goes_back_without_a_search_hits_message(client, owner):
    client.force_login(owner)

    response = client.post(
        reverse("time_zone_answer"), {"time_zone": "UTC", "next": "/conversations/3/?message=9"}
    )

    assert response.status_code == 302 and response["Location"] == "/conversations/3/"


@pytest.mark.django_db
def test_asked_by_fetch_it_saves_and_answers_204(client, owner):
    client.force_login(owner)

    response = client.post(
        reverse("time_zone_answer"),
        {"time_zone": "Europe/Paris", "next": "/"},
        headers={"X-Requested-With": "fetch"},
    )

    assert response.status_code == 204
    owner.refresh_from_db()
    assert (owner.time_zone, owner.time_zone_confirmed) == ("Europe/Paris", True)


@pytest.mark.django_db
def test_it_answers_only_posts_from_someone_signed_in(client, owner):
    response = client.post(reverse("time_zone_answer"), {"time_zone": "Europe/Paris"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))

    client.force_login(owner)
    assert client.get(reverse("time_zone_answer")).status_code == 405
    owner.refresh_from_db()
    assert (owner.time_zone, owner.time_zone_confirmed) == ("UTC", False)


@pytest.mark.django_db
def test_choosing_a_zone_in_settings_counts_as_an_answer(client, owner):
    client.force_login(owner)
    settings_form = {"default_model": "", "system_prompt": "", "time_zone": "Asia/Tokyo", "theme": ""}

    client.post(reverse("user_settings"), settings_form)

    owner.refresh_from_db()
    assert (owner.time_zone, owner.time_zone_confirmed) == ("Asia/Tokyo", True)
    assert BANNER not in client.get(reverse("home")).content.decode()


@pytest.mark.django_db
def test_saving_settings_without_touching_the_zone_still_lets_the_page_ask(client, owner):
    client.force_login(owner)
    settings_form = {"default_model": "", "system_prompt": "Be brief.", "time_zone": "UTC", "theme": ""}

    client.post(reverse("user_settings"), settings_form)

    owner.refresh_from_db()
    assert (owner.system_prompt, owner.time_zone_confirmed) == ("Be brief.", False)
    assert BANNER in client.get(reverse("home")).content.decode()


@pytest.mark.django_db(transaction=True)
def test_the_migration_counts_a_zone_set_before_it_as_chosen():
    before, after = [("accounts", "0005_user_theme")], [("accounts", "0006_user_time_zone_confirmed")]
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    executor = MigrationExecutor(connection)
    try:
        executor.migrate(before)
        old_apps = executor.loader.project_state(before).apps
        User = old_apps.get_model("accounts", "User")
        User.objects.create(username="tokyo", password="!", time_zone="Asia/Tokyo")
        User.objects.create(username="default", password="!")
    finally:
        executor.loader.build_graph()
        executor.migrate(after)
        executor.loader.build_graph()
        executor.migrate(latest)

    confirmed = dict(get_user_model().objects.values_list("username", "time_zone_confirmed"))
    assert confirmed == {"tokyo": True, "default": False}


# In a real browser.


def browser_page(browser, time_zone):  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 800}, timezone_id=time_zone)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    return page


@pytest.fixture
def paris(browser):  # noqa: F811
    page = browser_page(browser, "Europe/Paris")
    yield page
    page.context.close()
    assert page.errors == [], f"uncaught errors in the page: {page.errors}"


def saved_zone(page, server_url) -> str:  # noqa: F811
    page.goto(f"{server_url}{reverse('user_settings')}")
    return page.input_value("#id_time_zone")


@pytest.mark.browser
def test_use_it_saves_the_browsers_zone_and_the_banner_does_not_come_back(paris, server_url):  # noqa: F811
    sign_up_and_start_a_chat(paris, server_url, "parisian")
    banner = paris.locator("#time-zone-banner")
    assert banner.is_visible()
    assert (
        banner.locator(".time-zone-question").inner_text() == "Use Europe/Paris (your browser's time zone)?"
    )
    assert banner.locator(".time-zone-keep").inner_text() == "Keep UTC"
    paris.evaluate("() => { window.__samePage = true; }")
    paris.fill("#composer-input", "An unsent draft")

    banner.locator(".time-zone-use").click()

    # Posted by fetch: the banner goes, the page and its draft stay.
    banner.wait_for(state="detached")
    assert paris.evaluate("() => window.__samePage === true")
    assert paris.input_value("#composer-input") == "An unsent draft"
    assert saved_zone(paris, server_url) == "Europe/Paris"
    paris.goto(server_url + "/")
    assert paris.locator("#time-zone-banner").count() == 0
    paris.reload()
    assert paris.locator("#time-zone-banner").count() == 0
    assert saved_zone(paris, server_url) == "Europe/Paris"


@pytest.mark.browser
def test_keep_answers_too_and_the_banner_does_not_come_back(paris, server_url):  # noqa: F811
    sign_up_and_start_a_chat(paris, server_url, "keeper")

    paris.locator("#time-zone-banner .time-zone-keep").click()

    paris.locator("#time-zone-banner").wait_for(state="detached")
    paris.goto(server_url + "/")
    assert paris.locator("#time-zone-banner").count() == 0
    assert saved_zone(paris, server_url) == "UTC"


@pytest.mark.browser
def test_a_forged_zone_is_refused_with_a_400_and_nothing_is_saved(paris, server_url):  # noqa: F811
    sign_up_and_start_a_chat(paris, server_url, "forger")
    paris.evaluate(
        "document.querySelector('#time-zone-banner .time-zone-browser-input').value = 'Mars/Olympus'"
    )

    with paris.expect_navigation() as answered:
        paris.locator("#time-zone-banner .time-zone-use").click()

    assert answered.value.status == 400
    assert paris.locator("body").inner_text() == "Unknown time zone."
    paris.goto(server_url + "/")
    assert paris.locator("#time-zone-banner").is_visible(), "still unanswered"
    assert saved_zone(paris, server_url) == "UTC"


@pytest.mark.browser
def test_a_browser_in_the_saved_zone_is_not_asked(browser, server_url):  # noqa: F811
    page = browser_page(browser, "UTC")
    try:
        sign_up_and_start_a_chat(page, server_url, "londoner")
        page.wait_for_selector("#shortcuts-button:not([hidden])")  # the page's modules have run
        assert (
            page.locator("#time-zone-banner").count() == 1 and page.locator("#time-zone-banner").is_hidden()
        )
        assert page.errors == []
    finally:
        page.context.close()
