"""deploy/fluent-bit, read statically: the nodes' JSON logs parsed and shipped to Loki, and the
audit stream (the event ``propdev.storage.audit`` logs) routed to a Loki stream of its own."""

from __future__ import annotations

import fnmatch
import re

import yaml

from propdev.storage.audit import STREAM_EVENT
from tests.deploy.support import DEPLOY

CONF = (DEPLOY / "fluent-bit" / "propdev.conf").read_text(encoding="utf-8")
NODE_TAG = "propdev.deploy-node-1-1"  # the log driver's tag: propdev.{{.Name}}
Section = tuple[str, dict[str, str]]


def sections(text: str) -> list[Section]:
    """Fluent Bit's classic format: ``[NAME]`` then indented ``Key value`` lines."""
    found: list[Section] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            found.append((stripped[1:-1], {}))
            continue
        assert found and line[0].isspace(), f"a key outside a section: {line!r}"
        key, _, value = stripped.partition(" ")
        found[-1][1][key.lower()] = value.strip()
    return found


SECTIONS = sections(CONF)


def plugins(kind: str, name: str) -> list[dict[str, str]]:
    return [body for section, body in SECTIONS if section == kind and body["name"] == name]


def matches(body: dict[str, str], tag: str) -> bool:
    return fnmatch.fnmatchcase(tag, body["match"])


def labels(body: dict[str, str]) -> dict[str, str]:
    pairs = (pair.strip().partition("=") for pair in body["labels"].split(","))
    return {key: value for key, _, value in pairs}


def test_the_nodes_log_driver_tags_are_the_ones_the_pipeline_matches() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    for node in ("node-1", "node-2"):
        assert compose["services"][node]["logging"]["options"]["tag"] == "propdev.{{.Name}}"


def test_the_nodes_lines_are_parsed_as_json_before_the_audit_route_reads_them() -> None:
    order = [body["name"] for section, body in SECTIONS if section == "FILTER"]
    assert order == ["parser", "rewrite_tag"]
    [parser] = plugins("FILTER", "parser")
    assert matches(parser, NODE_TAG) and parser["key_name"] == "log"
    assert parser["parser"] == "json"


def test_audit_entries_leave_the_node_stream_for_their_own_tag() -> None:
    [route] = plugins("FILTER", "rewrite_tag")
    assert matches(route, NODE_TAG)
    key, pattern, new_tag, keep = route["rule"].split()
    assert key == "$event"
    assert re.search(pattern, STREAM_EVENT)
    for other in ("http_request", "audit_append_failed", f"{STREAM_EVENT}s", f"x{STREAM_EVENT}"):
        assert not re.search(pattern, other), other
    assert keep == "false"  # not in the node stream as well
    audit_tag = new_tag.replace("$TAG", NODE_TAG)
    [node_out] = [o for o in plugins("OUTPUT", "loki") if labels(o).get("stream") == "app"]
    [audit_out] = [o for o in plugins("OUTPUT", "loki") if labels(o).get("stream") == "audit"]
    assert matches(node_out, NODE_TAG) and not matches(node_out, audit_tag)
    assert matches(audit_out, audit_tag) and not matches(audit_out, NODE_TAG)
    assert not matches(route, audit_tag)  # a re-tagged record is not routed again


def test_both_streams_go_to_loki_under_the_job_with_bounded_labels() -> None:
    outputs = plugins("OUTPUT", "loki")
    assert len(outputs) == 2
    for out in outputs:
        assert (out["host"], out["port"], out["line_format"]) == ("loki", "3100", "json")
        assert labels(out)["job"] == "propdev"
        assert set(labels(out)) <= {"job", "stream", "container", "level", "node"}
    [audit_out] = [o for o in outputs if labels(o)["stream"] == "audit"]
    assert audit_out["retry_limit"] == "no_limits"
