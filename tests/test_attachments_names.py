"""Display names of uploaded files."""

import pytest

from chat.attachments.names import display_name


# --- names ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\..\\report.pdf", "report.pdf"),
        ("..", "attachment"),
        ("/", "attachment"),
        ("line\nbreak\x00and\x1bescape.png", "linebreakandescape.png"),
        ("invoice\u202egnp.exe", "invoicegnp.exe"),
        ("\u200fright-to-left\u200e mark.png", "right-to-left mark.png"),
        ("<img src=x onerror=alert(1)>.png", "<img src=x onerror=alert(1)>.png"),
        ("a" * 300 + ".jpeg", "a" * 115 + ".jpeg"),
        ("  spaced   out .png ", "spaced out .png"),
    ],
)
def test_display_names_are_sanitised(raw, shown):
    assert display_name(raw) == shown
