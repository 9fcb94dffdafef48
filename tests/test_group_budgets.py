"""Group budgets in admission: every group a user is in, and every group above those, must have room;
alerts at 80% and 100% of a group's budget go to its managers."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.utils import timezone

from billing import selectors, services
from billing.models import BudgetAlert, Reservation
from chat import services as chat_services
from chat.llm.pricing import TokenUsage
from chat.models import ApiCall, Conversation
from chat.refusals import Refusal
from chat.replies import admission
from teams.models import Membership
from tests.group_personas import group_personas
from tests.test_admission import signed_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(settings):
    """No site-wide user budget, so the group budgets are what each test measures."""
    settings.CHAT_DEFAULT_MONTHLY_BUDGET = None
    return group_personas()


def spend(user, dollars) -> ApiCall:
    return ApiCall.objects.create(user=user, model="claude-sonnet-5-5", cost=Decimal(dollars))


def admit(user, text="Hello") -> services.Hold:
    conversation = Conversation.objects.filter(owner=user).first()
    conversation = conversation or chat_services.conversation_create(owner=user)
    return services.request_admit(
        user=user, conversation=conversation, text=text, model="claude-sonnet-5-5", max_tokens=4096,
    )


def admit_and_reserve(user) -> services.Hold:
    hold = admit(user)
    services.reservation_create(user=user, message=None, hold=hold)
    return hold


def refusal(user) -> services.RequestRefused:
    with pytest.raises(services.RequestRefused) as refused:
        admit(user)
    return refused.value


def full_reply_cost(user) -> Decimal:
    """What a full reply of `user`'s next send reserves when no budget is in the way."""
    return admit(user).amount


def test_the_second_member_is_refused_when_the_first_members_reservation_fills_the_group(people):
    full = full_reply_cost(people.alice)
    spend(people.charlie, "1")  # an outsider's spend never counts for the group
    spend(people.alice, Decimal("500") - full)  # settled spend leaves exactly one full reply

    alices = admit_and_reserve(people.alice)
    refused = refusal(people.bob)

    assert alices.amount == full and alices.notice == ""
    assert refused.code == "budget_exceeded"
    assert "left of your group Marketing's $500.00 monthly budget" in refused.detail
    assert f"${full:,.2f} is held for replies being written" in refused.detail
    assert list(Reservation.objects.values_list("user__username", "amount")) == [("alice", full)]


def test_a_group_whose_members_spent_its_budget_refuses_them_by_name(people):
    spend(people.bob, "500")

    refused = refusal(people.alice)

    assert refused.detail.startswith(
        "Your group Marketing has used its monthly budget of $500.00 ($500.00 spent by its members)."
    )
    assert Reservation.objects.count() == 0


def test_a_parent_budget_limits_its_child_groups_members(people):
    people.company.monthly_budget = Decimal("20")
    people.company.save()
    spend(people.dave, "20")  # Dave is in Sales, which sits inside Company too

    refused = refusal(people.bob)

    assert "Your group Company has used its monthly budget of $20.00" in refused.detail


def test_the_tightest_budget_shortens_the_reply_and_its_notice_names_it(people):
    full = full_reply_cost(people.bob)
    spend(people.alice, Decimal("500") - full / 2)  # room for one request of the reply, not its tool rounds

    hold = admit(people.bob)

    assert hold.tool_rounds == 0 and hold.amount <= full / 2
    assert hold.notice.startswith("Your group Marketing's monthly budget has $")
    assert hold.notice.endswith("left this month, so this reply makes no tool calls.")


def test_the_users_own_cap_is_a_budget_of_its_own(people):
    people.bob.monthly_cap = Decimal("2")
    people.bob.save()
    spend(people.bob, "2")

    refused = refusal(people.bob)

    assert refused.detail.startswith("You have used the monthly cap of $2.00 you set yourself ($2.00 spent).")


def test_a_cap_below_the_groups_room_is_the_one_the_reply_is_cut_to(people):
    people.bob.monthly_cap = Decimal("0.03")
    people.bob.save()

    hold = admit(people.bob)

    assert hold.amount <= Decimal("0.03") and hold.notice.startswith("Your own monthly cap has $0.03 left")


def test_the_users_budget_still_applies_inside_a_group_with_room(people, settings):
    settings.CHAT_DEFAULT_MONTHLY_BUDGET = Decimal("10")
    spend(people.bob, "10")

    assert refusal(people.bob).detail.startswith("You have used your monthly budget of $10.00")


def test_members_of_another_group_and_people_in_no_group_are_unaffected(people):
    spend(people.bob, "500")

    assert admit(people.dave).notice == ""
    assert admit(people.charlie).notice == ""


def test_a_zero_group_budget_lets_its_members_spend_nothing(people):
    people.marketing.monthly_budget = Decimal("0")
    people.marketing.save()

    refused = refusal(people.alice)

    assert refused.detail.startswith("Your group Marketing has used its monthly budget of $0.00")


def test_what_someone_spent_before_joining_a_group_does_not_count_for_it(people):
    """Joining by an invitation must not bring the month's spend along: nobody's earlier spend blocks a
    group they join, and a group's managers cannot be charged for it."""
    spend(people.charlie, "499")
    ApiCall.objects.update(created_at=timezone.now() - timedelta(seconds=5))
    Membership.objects.create(team=people.marketing, user=people.charlie)
    spend(people.charlie, "2")

    status = selectors.team_budget_statuses([people.marketing], selectors.team_selectors.team_tree())

    assert status[people.marketing.pk].spent == Decimal("2")
    assert admit(people.bob).notice == ""


def test_a_department_counts_a_members_spend_from_when_they_joined_any_of_its_teams(people):
    people.company.monthly_budget = Decimal("100")
    people.company.save()
    spend(people.charlie, "30")  # before joining Sales: not the department's
    ApiCall.objects.update(created_at=timezone.now() - timedelta(seconds=5))
    Membership.objects.create(team=people.sales, user=people.charlie)
    spend(people.charlie, "4")

    rows = {row["team"].name: row["cost"] for row in selectors.spend_by_team(since=selectors.month_start())}
    status = selectors.team_budget_statuses([people.company], selectors.team_selectors.team_tree())

    assert status[people.company.pk].spent == Decimal("4")
    assert (rows["Company"], rows["Sales"], rows["Marketing"]) == (4, 4, 0)


def test_a_member_in_two_subgroups_counts_once_for_the_parent(people):
    Membership.objects.create(team=people.sales, user=people.bob)
    people.company.monthly_budget = Decimal("10")
    people.company.save()
    spend(people.bob, "6")  # in Marketing and in Sales: $6 for Company, not $12

    status = selectors.team_budget_statuses([people.company], selectors.team_selectors.team_tree())

    assert status[people.company.pk].spent == Decimal("6")
    admit(people.dave)


def test_the_real_admission_refuses_a_member_of_a_spent_group_and_stores_nothing(people):
    spend(people.alice, "500")
    conversation = chat_services.conversation_create(owner=people.bob)
    session_key, auth_hash = signed_in(people.bob)

    with pytest.raises(Refusal) as refused:
        admission.reply_admit(
            user_id=people.bob.pk, session_key=session_key, auth_hash=auth_hash,
            conversation_id=conversation.pk, action="send", text="Hello",
        )

    assert refused.value.code == "budget_exceeded" and "Your group Marketing" in refused.value.detail
    assert conversation.messages.count() == 0 and Reservation.objects.count() == 0


def test_the_real_admission_reserves_for_a_member_with_room(people):
    conversation = chat_services.conversation_create(owner=people.bob)
    session_key, auth_hash = signed_in(people.bob)

    admitted = admission.reply_admit(
        user_id=people.bob.pk, session_key=session_key, auth_hash=auth_hash, conversation_id=conversation.pk,
        action="send", text="Hello",
    )

    reservation = Reservation.objects.get()
    assert (reservation.user, reservation.message_id) == (people.bob, admitted.reply.pk)
    status = selectors.team_budget_statuses([people.marketing], selectors.team_selectors.team_tree())
    assert status[people.marketing.pk].reserved == reservation.amount


def settle(user, dollars) -> None:
    """A reply settled through the one writer of the ledger, as a generation would."""
    spend(user, dollars)
    chat_services.message_finish(
        message_id=0, user_id=user.pk, conversation_id=None, status="complete", content=[], seq=0,
        model="claude-sonnet-5-5", usage=TokenUsage(output_tokens=1), attempts=[],
    )


def test_managers_are_emailed_once_per_month_at_80_and_at_100_percent_of_the_group_budget(people, mailoutbox):
    settle(people.bob, "300")
    assert mailoutbox == []
    settle(people.bob, "110")
    settle(people.alice, "10")
    assert [mail.subject for mail in mailoutbox] == [
        "[Claude chat] The group Marketing has used 80% of its monthly budget",
    ]
    assert mailoutbox[0].to == ["alice@example.com"]
    settle(people.bob, "90")
    settle(people.bob, "1")

    assert len(mailoutbox) == 2 and "100%" in mailoutbox[1].subject
    assert "$510.00 of its $500.00 budget" in mailoutbox[1].body and "refused" in mailoutbox[1].body
    assert list(BudgetAlert.objects.filter(team=people.marketing).values_list("threshold", flat=True)
                .order_by("threshold")) == [80, 100]


def test_a_group_without_managers_has_its_alerts_sent_to_the_admins(people, settings, mailoutbox):
    settings.ADMINS = [("Ops", "ops@example.com")]
    people.company.monthly_budget = Decimal("100")
    people.company.save()

    settle(people.dave, "85")

    assert [(mail.subject, mail.to) for mail in mailoutbox] == [
        ("[Claude chat] The group Company has used 80% of its monthly budget", ["ops@example.com"]),
    ]


def test_a_group_alert_exists_once_per_group_month_and_threshold(people):
    month = selectors.month_start().date()
    BudgetAlert.objects.create(team=people.marketing, month=month, threshold=80, spent=400, budget=500)

    with pytest.raises(IntegrityError):
        BudgetAlert.objects.create(team=people.marketing, month=month, threshold=80, spent=410, budget=500)


def test_an_alert_is_for_a_user_or_a_group_never_both(people):
    with pytest.raises(IntegrityError):
        BudgetAlert.objects.create(
            user=people.bob, team=people.marketing, month=selectors.month_start().date(), threshold=80,
            spent=400, budget=500,
        )


def test_a_group_cannot_sit_inside_its_own_subgroup(people):
    people.company.parent = people.marketing

    with pytest.raises(ValidationError):
        people.company.clean()


def race_two_members() -> None:
    """Run in a process of its own on PostgreSQL (see the test below): Alice's admission reserves the group's
    last full reply and holds its transaction open until Bob's admission is seen waiting on a lock; only then
    does it commit. Prints what happened to Bob as JSON."""
    import json
    import os
    import threading

    import psycopg
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    people = group_personas()
    with transaction.atomic():  # admission always runs in one; on PostgreSQL its locks require it
        full = full_reply_cost(people.alice)
    spend(people.alice, Decimal("500") - full)
    chat_services.conversation_create(owner=people.bob)
    bob_pid, alice_reserved, outcome = [], threading.Event(), {}

    def admission_of(user, *, then=None):
        try:
            with transaction.atomic():
                get_user_model().objects.select_for_update(no_key=True).get(pk=user.pk)
                admit_and_reserve(user)
                if then:
                    then()
            outcome[user.username] = "admitted"
        except services.RequestRefused as refused:
            outcome[user.username] = refused.detail
        finally:
            connection.close()

    def wait_for_bob_to_block():
        alice_reserved.set()
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as watcher:
            for _ in range(600):
                if bob_pid and watcher.execute(
                    "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", bob_pid
                ).fetchone()[0]:
                    outcome["bob_waited_for_the_lock"] = True
                    return
                if "bob" in outcome:  # Bob was not held back: the group was never locked
                    return
                threading.Event().wait(0.05)

    def bob():
        alice_reserved.wait()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            bob_pid.append(cursor.fetchone()[0])
        admission_of(people.bob)

    bobs = threading.Thread(target=bob)
    bobs.start()
    admission_of(people.alice, then=wait_for_bob_to_block)
    bobs.join()
    amounts = [str(amount) for amount in Reservation.objects.values_list("amount", flat=True)]
    print(json.dumps({**outcome, "full": str(full), "reservations": amounts}))


@pytest.mark.scaleout
def test_two_members_sending_at_once_on_postgresql_cannot_overspend_their_group():
    import json
    import subprocess
    import sys
    import uuid

    from tests.cluster import (
        ROOT,
        drop_postgres_database,
        fresh_postgres_database,
        migrate,
        postgres_reachable,
        require,
        server_env,
    )

    require(postgres_reachable(), "PostgreSQL")
    name = f"claudechat_groups_{uuid.uuid4().hex[:8]}"
    env = server_env(DATABASE_URL=fresh_postgres_database(name), CHAT_DEFAULT_MONTHLY_BUDGET="")
    try:
        migrate(env)
        script = ("import django; django.setup(); "
                  "from tests.test_group_budgets import race_two_members; race_two_members()")
        run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=120, check=False)
    finally:
        drop_postgres_database(name)

    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["alice"] == "admitted" and result.get("bob_waited_for_the_lock") is True
    assert "left of your group Marketing's $500.00 monthly budget" in result["bob"]
    assert result["reservations"] == [result["full"]]
