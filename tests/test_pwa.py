"""The app is installable: a web app manifest with its icons, linked from every page, served as a manifest."""

import json
from pathlib import Path

import pytest
from django.contrib.staticfiles.views import serve
from django.test import RequestFactory, override_settings
from PIL import Image

STATIC = Path(__file__).resolve().parent.parent / "static"
MANIFEST = STATIC / "manifest.webmanifest"


def manifest() -> dict:
    return json.loads(MANIFEST.read_text())


def test_the_manifest_describes_a_standalone_app():
    data = manifest()
    assert data["name"] and data["short_name"]
    assert data["start_url"] == "/" and data["scope"] == "/"
    assert data["display"] == "standalone"
    assert data["theme_color"].startswith("#") and data["background_color"].startswith("#")


def test_every_icon_exists_at_its_declared_size():
    icons = manifest()["icons"]
    for icon in icons:
        # Relative to the manifest's own URL, so it holds wherever STATIC_URL points.
        path = MANIFEST.parent / icon["src"]
        width, height = (int(n) for n in icon["sizes"].split("x"))
        with Image.open(path) as image:
            assert image.format == "PNG" and icon["type"] == "image/png"
            assert image.size == (width, height), icon["src"]
    sizes = {(icon["sizes"], icon.get("purpose", "any")) for icon in icons}
    assert {("192x192", "any"), ("512x512", "any"), ("512x512", "maskable")} <= sizes


@pytest.mark.django_db
def test_every_page_links_the_manifest_theme_colour_and_touch_icon(client):
    html = client.get("/accounts/login/").content.decode()
    assert '<link rel="manifest" href="/static/manifest.webmanifest">' in html
    assert '<meta name="theme-color"' in html
    assert '<link rel="apple-touch-icon" href="/static/icons/apple-touch-icon.png">' in html
    with Image.open(STATIC / "icons" / "apple-touch-icon.png") as image:
        assert image.size == (180, 180) and image.mode == "RGB", "iOS wants an opaque square"


@override_settings(DEBUG=True)
def test_the_manifest_is_served_as_a_manifest():
    response = serve(RequestFactory().get("/static/manifest.webmanifest"), "manifest.webmanifest")
    assert response["Content-Type"] == "application/manifest+json"
    assert json.loads(b"".join(response.streaming_content)) == manifest()
