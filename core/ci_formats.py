"""The audit in the formats CI systems show: SARIF 2.1.0 (code scanning) and JUnit XML (test reports).

SARIF: one ``result`` per conflict record of every program, located at the object that carries it (the
extension or library that needs the version, as a ``file://`` URI), its ``ruleId`` the missing version
(``GLIBC_2.34``) or, for a record without one, its kind (``not-found``); errors are level ``error``,
warnings and latent records ``warning``. JUnit: one ``testcase`` per program, failed when it meets
``fail_on`` (as the exit code is), skipped when it could not be scanned.

Names that are not UTF-8 are written with ``\\xe9`` escapes (``core.export.printable``) in text, and
percent-encoded in URIs, so both documents stay valid.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import PurePosixPath

from glibc_doctor.core.audit import AuditResult, ProgramAudit, badness
from glibc_doctor.core.export import printable, xml_text
from glibc_doctor.core.model import Conflict, Kind, Severity

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
TOOL_NAME = "glibc-doctor"

_KIND_WORDS = {
    Kind.MISSING_VERSION: "an object needs a symbol version its provider does not define",
    Kind.NOT_FOUND: "a needed library is not found by the loader",
    Kind.WRONG_ELF: "a needed library is found only with the wrong ELF class or machine",
    Kind.UNREADABLE: "an object exists but cannot be read as ELF",
    Kind.MIXED_GLIBC: "libraries of two glibc builds in one process",
    Kind.LOADER_MISMATCH: "the PT_INTERP loader is of another glibc than the libc that loads",
    Kind.ORDER_DEPENDENT: "which copy of a library loads depends on import order",
    Kind.LATENT: "hidden today by the load order; breaks if the order changes",
}


def rule_id(conflict: Conflict) -> str:
    """The missing version (``GLIBC_2.34``, ``GLIBCXX_3.4.30``), else the record's kind."""
    return conflict.version or str(conflict.kind)


def to_sarif(result: AuditResult) -> dict[str, object]:
    """The SARIF 2.1.0 log of the audit (a JSON document: ``json.dumps`` it)."""
    rules: dict[str, int] = {}
    descriptors: list[dict[str, object]] = []
    results: list[dict[str, object]] = []
    for program in result.programs:
        for conflict in program.result.conflicts:
            rule = rule_id(conflict)
            if rule not in rules:
                rules[rule] = len(descriptors)
                descriptors.append(_descriptor(rule, conflict))
            results.append(_result(program, conflict, rules[rule]))
    driver = {"name": TOOL_NAME, "version": _tool_version(), "rules": descriptors}
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {"driver": driver},
                "results": results,
                "properties": _run_properties(result),
            }
        ],
    }


def _run_properties(result: AuditResult) -> dict[str, object]:
    properties: dict[str, object] = {"paths": [printable(path) for path in result.paths]}
    properties.update(result.summary())
    return properties


def _descriptor(rule: str, conflict: Conflict) -> dict[str, object]:
    if conflict.version:
        text = f"an object needs symbol version {rule}, which the library the process loads does not define"
    else:
        text = _KIND_WORDS.get(conflict.kind, str(conflict.kind))
    return {"id": rule, "name": rule, "shortDescription": {"text": text}}


def _result(program: ProgramAudit, conflict: Conflict, index: int) -> dict[str, object]:
    where = f" (in the process of {program.program})"
    message = printable(conflict.message + where)
    if conflict.cause:
        message += "\n" + printable(conflict.cause)
    return {
        "ruleId": rule_id(conflict),
        "ruleIndex": index,
        "level": "error" if conflict.severity == Severity.ERROR else "warning",
        "message": {"text": message},
        "locations": [_location(conflict.object)],
        "properties": {
            "program": printable(program.program),
            "kind": str(conflict.kind),
            "mode": conflict.mode,
            "library": printable(conflict.library) if conflict.library else None,
            "provider": printable(conflict.provider) if conflict.provider else None,
            "symbols": [printable(symbol) for symbol in conflict.symbols],
            "chain": [printable(node) for node in conflict.chain],
            "min_glibc": conflict.min_glibc,
            "fixes": [printable(fix) for fix in conflict.fixes],
        },
    }


def _location(path: str) -> dict[str, object]:
    """The object as a ``file://`` URI (percent-encoded bytes), and by name as a logical location."""
    uri = PurePosixPath(path).as_uri() if path.startswith("/") else printable(path)
    return {
        "physicalLocation": {"artifactLocation": {"uri": uri}},
        "logicalLocations": [
            {
                "name": printable(os.path.basename(path)),
                "fullyQualifiedName": printable(path),
                "kind": "module",
            }
        ],
    }


def _tool_version() -> str:
    try:
        return metadata.version(TOOL_NAME)
    except metadata.PackageNotFoundError:
        return "0"


# --- JUnit ---------------------------------------------------------------------------------------------


def to_junit(result: AuditResult, fail_on: str = "conflict") -> str:
    """JUnit XML: a ``testsuite`` of one ``testcase`` per program (and per program that was skipped)."""
    failures = len(result.failing(fail_on))
    suite = ET.Element(
        "testsuite",
        name="glibc-doctor audit",
        tests=str(len(result.programs) + len(result.skipped)),
        failures=str(failures),
        errors="0",
        skipped=str(len(result.skipped)),
    )
    for program in result.programs:
        suite.append(_testcase(program, fail_on))
    for skipped in result.skipped:
        case = ET.SubElement(suite, "testcase", classname="glibc-doctor.audit", name=xml_text(skipped.path))
        ET.SubElement(case, "skipped", message=xml_text(skipped.reason))
    root = ET.Element(
        "testsuites", name="glibc-doctor", tests=suite.get("tests", "0"), failures=str(failures)
    )
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _testcase(program: ProgramAudit, fail_on: str) -> ET.Element:
    """Failed with the records that meet ``fail_on``; every other record and the glibc in system-out."""
    case = ET.Element("testcase", classname=f"glibc-doctor.audit.{program.result.target.kind}")
    case.set("name", xml_text(program.program))
    counted: tuple[Conflict, ...] = ()
    if program.failed(fail_on):
        counted = program.conflicts + (program.latent if fail_on == "latent" else ())
        first = min(counted, key=badness)
        failure = ET.SubElement(case, "failure", type=str(first.kind))
        failure.set("message", xml_text(f"{len(counted)} conflict(s); first: {first.message}"))
        failure.text = xml_text("\n".join(_record_line(conflict) for conflict in counted))
    lines = [f"glibc {program.result.glibc.version or '?'}: {program.result.glibc.libc or 'no libc.so.6'}"]
    lines += [f"also: {alias}" for alias in program.aliases]
    lines += [_record_line(conflict) for conflict in program.result.conflicts if conflict not in counted]
    ET.SubElement(case, "system-out").text = xml_text("\n".join(lines))
    return case


def _record_line(conflict: Conflict) -> str:
    return f"[{conflict.mode} {conflict.kind}] {conflict.message} (object {conflict.object})"
