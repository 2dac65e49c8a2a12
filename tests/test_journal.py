"""The upload journal: its states, transitions, durability and what it refuses."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

import pytest

from fincome_toolkit.errors import ConfigError
from fincome_toolkit.journal import (
    MAX_MESSAGE_CHARS,
    Journal,
    JournalStateError,
    default_journal_path,
)

URL = "https://api2.fincome.co/product"


@pytest.fixture
def journal(tmp_path):
    with Journal(tmp_path / "journal.sqlite", base_url=URL) as opened:
        yield opened


def test_a_record_goes_pending_sent_acknowledged_counting_attempts(journal):
    journal.mark_pending("customers", [("C-1", "h1")])
    assert journal.get("customers", "C-1").state == "pending"
    journal.mark_sent("customers", "C-1")
    journal.mark_sent("customers", "C-1")  # a retry of the same write
    journal.mark_acknowledged("customers", "C-1", http_status=201)
    entry = journal.get("customers", "C-1")
    assert (entry.state, entry.attempts, entry.http_status, entry.payload_hash) == (
        "acknowledged",
        2,
        201,
        "h1",
    )
    assert entry.created_at <= entry.updated_at


@pytest.mark.parametrize(
    ("transition", "state"),
    [
        (lambda j: j.mark_rejected("invoices", "I-1", http_status=422, message="bad"), "rejected"),
        (
            lambda j: j.mark_conflict("invoices", "I-1", http_status=409, message="other"),
            "conflict",
        ),
        (lambda j: j.mark_unanswered("invoices", "I-1", http_status=503, message="x"), "pending"),
    ],
)
def test_sent_records_end_rejected_in_conflict_or_back_to_pending(journal, transition, state):
    journal.mark_pending("invoices", [("I-1", "h")])
    journal.mark_sent("invoices", "I-1")
    transition(journal)
    assert journal.get("invoices", "I-1").state == state


def test_transitions_from_the_wrong_state_are_refused(journal):
    with pytest.raises(JournalStateError, match="absent"):
        journal.mark_sent("customers", "never-planned")
    journal.mark_pending("customers", [("C-1", "h")])
    with pytest.raises(JournalStateError, match="pending to acknowledged"):
        journal.mark_acknowledged("customers", "C-1", http_status=200)
    journal.mark_sent("customers", "C-1")
    journal.mark_acknowledged("customers", "C-1", http_status=200)
    with pytest.raises(JournalStateError):
        journal.mark_sent("customers", "C-1")  # acknowledged: must be re-planned first
    assert journal.get("customers", "C-1").state == "acknowledged"


def test_replanning_resets_attempts_only_when_the_content_changed(journal):
    journal.mark_pending("customers", [("C-1", "old")])
    journal.mark_sent("customers", "C-1")
    journal.mark_unanswered("customers", "C-1", http_status=None, message="timeout")
    journal.mark_pending("customers", [("C-1", "old")])
    assert journal.get("customers", "C-1").attempts == 1
    journal.mark_pending("customers", [("C-1", "new")])
    entry = journal.get("customers", "C-1")
    assert (entry.attempts, entry.payload_hash) == (0, "new")


def test_requeue_puts_records_left_in_flight_back_to_pending(journal):
    journal.mark_pending("customers", [("C-1", "a"), ("C-2", "b"), ("C-3", "c")])
    journal.mark_sent("customers", "C-1")
    journal.mark_sent("customers", "C-2")
    journal.mark_acknowledged("customers", "C-2", http_status=200)
    assert journal.requeue_in_flight() == 1
    states = dict(journal.to_frame().select("record_id", "state").iter_rows())
    assert states == {"C-1": "pending", "C-2": "acknowledged", "C-3": "pending"}


def test_held_back_records_keep_their_reason_and_long_messages_are_cut(journal):
    journal.mark_held_back("invoices", [("I-9", "h", "waiting on customer C-1")])
    assert journal.get("invoices", "I-9").message == "waiting on customer C-1"
    journal.mark_pending("invoices", [("I-9", "h")])
    journal.mark_sent("invoices", "I-9")
    journal.mark_rejected("invoices", "I-9", http_status=500, message="<html>" + "x" * 10_000)
    message = journal.get("invoices", "I-9").message
    assert len(message) < MAX_MESSAGE_CHARS + 50
    assert message.startswith("<html>xxx")
    assert "more characters" in message


def test_counts_and_frame(journal):
    journal.mark_pending("customers", [("C-1", "a"), ("C-2", "b")])
    journal.mark_held_back("invoices", [("I-1", "c", "why")])
    assert journal.counts().rows() == [
        ("customers", "pending", 2),
        ("invoices", "held_back", 1),
    ]
    assert journal.to_frame("invoices").get_column("record_id").to_list() == ["I-1"]


def test_the_file_is_in_wal_mode_and_survives_reopening(tmp_path):
    path = tmp_path / "j.sqlite"
    with Journal(path, base_url=URL) as journal:
        journal.mark_pending("customers", [("C-1", "a")])
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with Journal(path, base_url=URL) as journal:
        assert journal.get("customers", "C-1").state == "pending"
        assert journal.base_url == URL


def test_a_committed_transition_survives_a_sigkill(tmp_path):
    path = tmp_path / "killed.sqlite"
    script = textwrap.dedent(
        f"""
        import os, signal
        from fincome_toolkit.journal import Journal
        journal = Journal({str(path)!r}, base_url={URL!r})
        journal.mark_pending("invoices", [("I-1", "h"), ("I-2", "h")])
        journal.mark_sent("invoices", "I-1")
        journal.mark_acknowledged("invoices", "I-1", http_status=201)
        journal.mark_sent("invoices", "I-2")
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    completed = subprocess.run([sys.executable, "-c", script], check=False)
    assert completed.returncode == -9
    with Journal(path, base_url=URL) as journal:
        assert journal.get("invoices", "I-1").state == "acknowledged"
        assert journal.get("invoices", "I-2").state == "sent"
        assert journal.requeue_in_flight() == 1


def test_a_journal_belongs_to_one_target(tmp_path):
    path = tmp_path / "j.sqlite"
    Journal(path, base_url=URL).close()
    with pytest.raises(ConfigError, match="one journal per target"):
        Journal(path, base_url="http://127.0.0.1:9999")


def test_a_damaged_file_is_a_config_error(tmp_path):
    path = tmp_path / "j.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError, match="cannot open the upload journal"):
        Journal(path, base_url=URL)


def test_default_path_names_the_host_and_differs_per_target(tmp_path):
    first = default_journal_path(URL, directory=tmp_path)
    second = default_journal_path("http://127.0.0.1:8765", directory=tmp_path)
    assert first.parent == tmp_path
    assert first.name.startswith("journal-api2.fincome.co-")
    assert second.name.startswith("journal-127.0.0.1-")
    assert first != second
    assert default_journal_path(URL + "/", directory=tmp_path) == first
    with Journal.for_target(URL, directory=tmp_path) as journal:
        assert journal.path == first
