"""Bulk upload of a plan from CSV: all or nothing, every bad line listed with its reason."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.quotas import services
from apps.quotas.models import Quota, QuotaChange

pytestmark = pytest.mark.django_db

D = Decimal


def upload(org, text: str | bytes, user=None):
    content = text.encode("utf-8") if isinstance(text, str) else text
    return services.quota_plan_import_csv(
        team=org.dach, period=org.period("2025-Q1"), user=user or org.max, content=content
    )


def test_a_good_file_is_saved(org):
    # given a file with a BOM, mixed-case header, spaces and a team line
    text = (
        "\ufeffRep_Email,team,Month,Amount\r\n"
        'anna@example.com,,2025-01,"10,000"\r\n'
        " ANNA@example.com ,,2025-02,10500.50\r\n"
        "ben@example.com,,2025-03,0\r\n"
        ",DACH,2025-01,25000\r\n"
        "\r\n"
        "ben@example.com,,2025-02,\r\n"  # empty amount: left as it is
    )
    # when it is uploaded
    written = upload(org, text)
    # then every amount is saved and audited
    assert written == 4
    assert dict(Quota.objects.filter(rep=org.anna).values_list("period__name", "amount")) == {
        "2025-01": D("10000.00"),
        "2025-02": D("10500.50"),
    }
    assert Quota.objects.get(team=org.dach).amount == D("25000.00")
    assert QuotaChange.objects.count() == 4


def test_a_bad_file_lists_every_bad_line_and_writes_nothing(org):
    text = (
        "rep_email,month,amount\n"
        "anna@example.com,2025-01,1000\n"  # 2: fine
        "nobody@example.com,2025-01,1000\n"  # 3: unknown person
        "carl@example.com,2025-01,1000\n"  # 4: Carl is in Nordics
        "anna@example.com,2025-04,1000\n"  # 5: outside 2025-Q1
        "anna@example.com,Jan 2025,1000\n"  # 6: not YYYY-MM
        "ben@example.com,2025-01,-5\n"  # 7: negative
        "ben@example.com,2025-02,12.345\n"  # 8: too many decimals
        "anna@example.com,2025-01,2000\n"  # 9: duplicate of line 2
        ",2025-03,5\n"  # 10: nobody
        "ben@example.com,,5\n"  # 11: no month
    )
    with pytest.raises(services.QuotaImportError) as caught:
        upload(org, text)
    lines = dict(caught.value.lines)
    assert sorted(lines) == [3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert "nobody@example.com is not a rep of DACH" in lines[3]
    assert "carl@example.com is not a rep of DACH" in lines[4]
    assert "'2025-04' is not a month of 2025-Q1" in lines[5]
    assert "'Jan 2025' is not a month" in lines[6]
    assert "cannot be negative" in lines[7]
    assert "two decimal places" in lines[8]
    assert "duplicate of line 2" in lines[9]
    assert "rep_email or team is required" in lines[10]
    assert "month is required" in lines[11]
    assert "9 line(s) need fixing; nothing was saved" in caught.value.message
    assert not Quota.objects.exists()
    assert not QuotaChange.objects.exists()


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        (b"", 1, "no header row"),
        (b"email,month,amount\nanna@example.com,2025-01,1\n", 1, "rep_email or team"),
        (b"rep_email,amount\nanna@example.com,1\n", 1, "Missing column(s): month"),
        (b"rep_email,month,amount\n", 0, "No line has an amount"),
        ("rep_email,month,amount\nanna@example.com,2025-01,1\n".encode("utf-16"), 0, "UTF-8"),
        (b"rep_email,team,month,amount\nanna@example.com,DACH,2025-01,1\n", 2, "not both"),
        (b"team,month,amount\nNordics,2025-01,1\n", 2, "'Nordics' is not DACH"),
    ],
)
def test_unusable_files_are_refused_with_a_reason(org, content, line, reason):
    with pytest.raises(services.QuotaImportError) as caught:
        upload(org, content)
    assert caught.value.lines[0][0] == line
    assert reason in caught.value.lines[0][1]
    assert not Quota.objects.exists()


def test_a_too_large_file_is_refused(org):
    with pytest.raises(services.QuotaImportError, match="too large"):
        upload(org, b"x" * (services.MAX_UPLOAD_BYTES + 1))


def test_upload_follows_the_plan_workflow(org):
    services.quota_plan_submit(team=org.dach, period=org.period("2025-Q1"), user=org.max)
    with pytest.raises(services.ApplicationError, match="is submitted"):
        upload(org, "rep_email,month,amount\nanna@example.com,2025-01,1\n")
    with pytest.raises(services.QuotaPermissionError):
        upload(org, "rep_email,month,amount\nanna@example.com,2025-01,1\n", user=org.nora)
    assert not Quota.objects.exists()
