"""SARIF 2.1.0 and JUnit XML of an audit with real conflicts (synthetic programs and plugins).

The SARIF document is checked against the required properties and the closed property sets of the
SARIF 2.1.0 JSON schema (OASIS, ``sarif-schema-2.1.0.json``) for every object kind it uses; the JUnit
document is parsed back with ``xml.etree``.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
from glibc_doctor.core.audit import AuditResult, audit
from glibc_doctor.core.ci_formats import rule_id, to_junit, to_sarif

from tests.synthetic import Synthetic

# From the SARIF 2.1.0 schema: (required properties, allowed properties) of each object kind used here.
# Every one of these definitions has "additionalProperties": false, so an unknown key is invalid too.
SCHEMA: dict[str, tuple[set[str], set[str]]] = {
    "sarifLog": (
        {"version", "runs"},
        {"$schema", "version", "runs", "inlineExternalProperties", "properties"},
    ),
    "run": ({"tool"}, {"tool", "results", "properties", "invocations", "artifacts", "logicalLocations"}),
    "tool": ({"driver"}, {"driver", "extensions", "properties"}),
    "toolComponent": ({"name"}, {"name", "version", "rules", "informationUri", "fullName", "properties"}),
    "reportingDescriptor": (
        {"id"},
        {"id", "name", "shortDescription", "fullDescription", "help", "properties"},
    ),
    "multiformatMessageString": ({"text"}, {"text", "markdown", "properties"}),
    "result": ({"message"}, {"ruleId", "ruleIndex", "level", "message", "locations", "properties", "kind"}),
    "message": (set(), {"text", "id", "markdown", "arguments", "properties"}),
    "location": (set(), {"physicalLocation", "logicalLocations", "message", "id", "properties"}),
    "physicalLocation": (set(), {"artifactLocation", "address", "region", "contextRegion", "properties"}),
    "artifactLocation": (set(), {"uri", "uriBaseId", "index", "description", "properties"}),
    "logicalLocation": (
        set(),
        {"name", "fullyQualifiedName", "decoratedName", "kind", "index", "properties"},
    ),
}
LEVELS = {"none", "note", "warning", "error"}


def check(kind: str, value: Any) -> None:
    required, allowed = SCHEMA[kind]
    assert isinstance(value, dict), kind
    assert required <= set(value), f"{kind} lacks {required - set(value)}"
    assert set(value) <= allowed, f"{kind} has unknown {set(value) - allowed}"


def validate_sarif(log: dict[str, Any]) -> None:
    check("sarifLog", log)
    assert log["version"] == "2.1.0"
    for run in log["runs"]:
        check("run", run)
        check("tool", run["tool"])
        driver = run["tool"]["driver"]
        check("toolComponent", driver)
        ids = [rule["id"] for rule in driver["rules"]]
        assert len(ids) == len(set(ids))
        for rule in driver["rules"]:
            check("reportingDescriptor", rule)
            check("multiformatMessageString", rule["shortDescription"])
        for result in run["results"]:
            check("result", result)
            check("message", result["message"])
            assert "text" in result["message"] or "id" in result["message"]  # the schema's anyOf
            assert result["level"] in LEVELS
            assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
            for location in result["locations"]:
                check("location", location)
                physical = location["physicalLocation"]
                check("physicalLocation", physical)
                assert "artifactLocation" in physical or "address" in physical  # the schema's anyOf
                check("artifactLocation", physical["artifactLocation"])
                for logical in location["logicalLocations"]:
                    check("logicalLocation", logical)


@pytest.fixture(scope="module")
def broken_audit(synthetic: Synthetic) -> AuditResult:
    return audit([str(synthetic.apps)], ext_dirs=[str(synthetic.ext)])


def test_the_sarif_log_has_every_required_property_and_no_unknown_one(broken_audit: AuditResult) -> None:
    log = to_sarif(broken_audit)
    validate_sarif(json.loads(json.dumps(log)))


def test_sarif_has_one_result_per_conflict_located_at_its_object(broken_audit: AuditResult) -> None:
    results = to_sarif(broken_audit)["runs"][0]["results"]  # type: ignore[index]
    records = [(p.program, c) for p in broken_audit.programs for c in p.result.conflicts]
    assert len(results) == len(records) > 0
    for result, (program, conflict) in zip(results, records, strict=True):
        assert result["ruleId"] == rule_id(conflict)
        uri = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        assert unquote(urlparse(uri).path) == conflict.object
        assert result["properties"]["program"] == program
        assert result["level"] == ("error" if conflict.severity == "error" else "warning")


def test_a_missing_version_is_the_rule(broken_audit: AuditResult) -> None:
    results = to_sarif(broken_audit)["runs"][0]["results"]  # type: ignore[index]
    rules = {
        (Path(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]).name, r["ruleId"])
        for r in results
    }
    assert ("ext_needs_234.so", "GLIBC_2.34") in rules
    assert ("ext_needs_238.so", "GLIBC_2.38") in rules


def test_junit_has_one_testcase_per_program_failed_when_it_has_conflicts(broken_audit: AuditResult) -> None:
    root = ET.fromstring(to_junit(broken_audit))
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert [case.get("name") for case in cases] == [p.program for p in broken_audit.programs]
    failed = {case.get("name") for case in cases if case.find("failure") is not None}
    assert failed == {p.program for p in broken_audit.programs if p.conflicts}
    assert suite.get("failures") == str(len(failed))
    assert suite.get("tests") == str(len(cases))
    for case in cases:
        failure = case.find("failure")
        if failure is not None:
            assert "GLIBC_2." in (failure.text or "")
            assert failure.get("type") == "missing-version"


def test_junit_fails_on_latent_records_when_asked(synthetic: Synthetic, tmp_path: Path) -> None:
    """A process that works today only because of its load order (strict mode finds a conflict)."""
    from tests.gcc import compile_elf

    lib = tmp_path / "lib"
    user_source = "int libdep_function(void);\nint user(void) { return libdep_function(); }\n"
    program_source = (
        "int user(void); int libdep_function(void); unsigned long strlen(const char *);\n"
        'void _start(void) { user(); libdep_function(); strlen("x"); for (;;) {} }\n'
    )
    dep = compile_elf(lib / "libdep.so", "int libdep_function(void) { return 0; }\n", soname="libdep.so")
    user = compile_elf(lib / "libuser.so", user_source, soname="libuser.so", libs=[dep], nostdlib=True)
    compile_elf(
        tmp_path / "bin" / "prog",
        program_source,
        shared=False,
        nostdlib=True,
        libs=[user, dep, synthetic.old_libc],  # libuser.so first: it needs libdep.so, loaded beside it
        runpath=[str(lib), str(synthetic.old_glibc)],
        extra=[f"-Wl,--dynamic-linker={synthetic.old_loader}"],
    )
    result = audit([str(tmp_path / "bin")])
    (program,) = result.programs
    assert program.conflicts == ()
    assert program.latent  # libuser.so has no RUNPATH: alone it finds no libdep.so
    today = ET.fromstring(to_junit(result, "conflict")).find("testsuite/testcase")
    strict = ET.fromstring(to_junit(result, "latent")).find("testsuite/testcase")
    assert today is not None
    assert strict is not None
    assert today.find("failure") is None
    assert "latent" in (today.findtext("system-out") or "")
    assert strict.find("failure") is not None
