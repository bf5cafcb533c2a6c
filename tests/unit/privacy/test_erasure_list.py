"""Reading the erasures to re-apply: the erasure list, the audit stream's lines (raw or as
``logcli --output=jsonl`` wraps them), and everything else refused."""

from __future__ import annotations

import json

import pytest

from propdev.privacy import Erasure, ErasureListError
from propdev.privacy.erasure_list import document, parse


def entry(subject: object, at: object, action: str = "resident.erase", **extra: object) -> str:
    return json.dumps(
        {
            "event": "audit_entry",
            "id": 7,
            "chain": 3,
            "at": at,
            "actor": "operator:op-1",
            "action": action,
            "decision": "granted",
            "reason": f"user_id={subject}",
            "subject": subject,
            **extra,
        }
    )


def test_an_exported_list_reads_back_as_it_was_written() -> None:
    erasures = [Erasure("u-1", 10.0, "operator:op-1"), Erasure("u-2", 20.5, "operator:op-2")]

    read = parse(json.dumps(document(erasures, cluster_id="c-1", exported_at=30.0)))

    assert (read.erasures, read.cluster_id, read.source) == (tuple(erasures), "c-1", "erasure_list")


def test_the_audit_stream_gives_its_erasures_once_each_at_the_earliest_time() -> None:
    lines = [
        entry("u-2", 20.0),
        json.dumps({"event": "partner_call", "partner": "sim"}),
        entry("u-9", 5.0, action="open"),
        entry("u-8", 6.0, decision="denied"),
        json.dumps({"labels": {"stream": "audit"}, "line": entry("u-1", 10.0)}),
        "",
        entry("u-2", 25.0, actor="cli:erasures"),  # a re-application, later
    ]

    read = parse("\n".join(lines))

    assert read.erasures == (
        Erasure("u-1", 10.0, "operator:op-1"),
        Erasure("u-2", 20.0, "operator:op-1"),
    )
    assert (read.cluster_id, read.source) == (None, "audit_stream")


def test_a_stream_without_erasures_is_nothing_to_do() -> None:
    assert parse(entry("u-1", 1.0, action="open")).erasures == ()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("  \n", "empty"),
        ("[1, 2]", "line 1: not a JSON object"),
        (entry("u-1", 1.0) + "\nnot json", "line 2: not JSON"),
        ('{"event": "node_started"}', "no line is an audit_entry"),
        (entry("", 1.0), "line 1: no valid user id"),
        (entry(None, 1.0), "line 1: no valid user id"),
        (entry("u-1", "yesterday"), "line 1: no valid time"),
        (entry("u-1", True), "line 1: no valid time"),
        ('{"kind": "propdev.erasures", "format": 2, "erasures": []}', "format 2"),
        ('{"kind": "propdev.erasures", "format": 1}', 'no "erasures" array'),
        ('{"kind": "propdev.erasures", "format": 1, "erasures": [1]}', "erasures[0]: not an"),
        (
            '{"kind": "propdev.erasures", "format": 1, "erasures": '
            '[{"user_id": "u", "erased_at": 1, "actor": ""}]}',
            "erasures[0]: no valid actor",
        ),
        (
            '{"kind": "propdev.erasures", "format": 1, "cluster_id": 5, "erasures": []}',
            "cluster_id is not a string",
        ),
    ],
)
def test_a_malformed_file_is_refused_naming_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(ErasureListError) as caught:
        parse(text)
    assert words in str(caught.value)
