"""Chaos, end to end, at CI size (issue 22): three `relance serve`
replicas on one PostgreSQL send a two-step sequence to about 300
enrollments over 20 accounts into Postfix + Dovecot under the test clock,
with a third of the prospects replying; one replica is killed with
SIGKILL, one is stopped with SIGTERM and restarted, and PostgreSQL is
restarted. tests/chaos.py holds the scenario and its checks (no step
delivered twice, caps exact, every message delivered or `unknown`, no
follow-up after a reply, one holder per mailbox at a time from the lease
history, nothing left `sending`); run alone it does the 2,000-enrollment
run. RELANCE_TEST_CONTACTS changes the size here."""
import os

import pytest

import chaos

N = int(os.environ.get("RELANCE_TEST_CONTACTS", "300"))
pytestmark = pytest.mark.mail(users=chaos.ACCOUNTS)


def test_three_replicas_send_each_step_once_through_kills_restarts_and_replies(mail, own_postgres, tmp, serve, check):
    run = chaos.Chaos(N, own_postgres, mail, tmp, serve, check)
    run.setup()
    run.run()
    run.verify()
