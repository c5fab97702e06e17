"""The S3 inbox: what an upload event says, and what to do with the uploaded image.

Instructions come from the object's metadata (x-amz-meta-prompt, -size, -quality,
-output-format, -background, -n, -input-fidelity) or from the rules document in the inbox bucket,
which maps key prefixes or glob patterns to a prompt and parameters. Metadata wins over rules.
"""

from __future__ import annotations

import email.header
import fnmatch
import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from pydantic import ConfigDict, ValidationError

from imagejobs.domain.models import EditRequest, Model, ObjectRef, whole_number

# Every request parameter an upload may set as x-amz-meta-<name> (S3 keeps metadata names in
# lower case; dashes or underscores alike). Any other name is refused, as HTTP refuses an unknown
# parameter: a typo (x-amz-meta-promt) or a tool's own metadata fails the job saying which.
METADATA_PARAMS = {
    form: field
    for field in EditRequest.model_fields
    if field != "response_format"  # how a plain HTTP call is answered: nothing to do with an upload
    for form in (field, field.replace("_", "-"))
}
INTEGER_PARAMS = {"n", "output_compression"}


class _S3Object(Model):
    model_config = ConfigDict(extra="ignore")
    key: str
    size: int | None = None
    eTag: str | None = None
    versionId: str | None = None


class _S3Bucket(Model):
    model_config = ConfigDict(extra="ignore")
    name: str


class _S3Entity(Model):
    model_config = ConfigDict(extra="ignore")
    bucket: _S3Bucket
    object: _S3Object


class S3EventRecord(Model):
    """The fields of an S3 event notification record we use (lenient: moto sends fewer fields)."""

    model_config = ConfigDict(extra="ignore")
    eventSource: str
    eventName: str
    s3: _S3Entity

    def object_ref(self) -> ObjectRef:
        # Keys arrive URL-encoded: "uploads/cat+photo.png" means "uploads/cat photo.png".
        return ObjectRef(
            bucket=self.s3.bucket.name,
            key=unquote_plus(self.s3.object.key),
            version_id=self.s3.object.versionId,
            etag=self.s3.object.eTag,
        )


class NotAnS3Event(ValueError):
    pass


def parse_s3_message(body: Any) -> list[S3EventRecord] | None:
    """S3 event records in a queue message; [] for the s3:TestEvent; NotAnS3Event otherwise."""
    if isinstance(body, dict) and body.get("Event") == "s3:TestEvent":
        return []
    if not isinstance(body, dict) or not isinstance(body.get("Records"), list):
        raise NotAnS3Event("not an S3 event notification")
    if not body["Records"]:  # S3 never sends one (its test event is {"Event": "s3:TestEvent", ...})
        raise NotAnS3Event("an S3 event notification without records")
    try:
        records = [S3EventRecord.model_validate(record) for record in body["Records"]]
    except ValidationError as exc:
        raise NotAnS3Event(f"malformed S3 event record: {exc.errors()[0]['msg']}") from exc
    if any(record.eventSource != "aws:s3" for record in records):
        raise NotAnS3Event("record from another event source")
    return records


def object_name(ref: ObjectRef) -> str:
    """The uploaded object alone (bucket, key, version or ETag), without its instructions: what a
    redelivered event still names when the object can no longer be read (deleted, replaced)."""
    text = f"upload\x00{ref.bucket}\x00{ref.key}\x00{ref.version_id or ref.etag or ''}"
    return "upload#" + hashlib.sha256(text.encode()).hexdigest()


class NoInstructions(ValueError):
    reason = "no_instructions"


class InvalidInstructions(ValueError):
    reason = "invalid_instructions"


class InvalidRules(InvalidInstructions):
    """The rules document cannot be used; only uploads without their own prompt need it."""

    reason = "invalid_rules"


@dataclass(frozen=True)
class BrokenRules:
    """A rules document that is there but unusable, and why: each upload that needs it ends failed
    saying so; uploads with their own instructions (metadata) go on without it."""

    problem: str


def rules_problem(document: Any) -> str | None:
    """Why a parsed rules document cannot be used ({"rules": [{"prefix" | "match": str, ...}]}), or None."""
    if document is None:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
        return 'must be a JSON object with a "rules" list'
    for index, rule in enumerate(document["rules"]):
        if not isinstance(rule, dict) or not any(isinstance(rule.get(k), str) for k in ("prefix", "match")):
            return f'rule {index} must be an object with a "prefix" or "match" string'
    return None


def rule_for(key: str, rules_document: Any) -> dict[str, Any]:
    """The first rule whose `prefix` starts the key or whose `match` glob matches it."""
    if not isinstance(rules_document, dict):
        return {}
    for rule in rules_document.get("rules") or []:
        if not isinstance(rule, dict):
            continue
        prefix, pattern = rule.get("prefix"), rule.get("match")
        if (isinstance(prefix, str) and key.startswith(prefix)) or (
            isinstance(pattern, str) and fnmatch.fnmatchcase(key, pattern)
        ):
            return {k: v for k, v in rule.items() if k not in ("prefix", "match")}
    return {}


def metadata_value(value: str) -> str:
    """A user metadata value as it was set. S3 returns one that is not ASCII RFC 2047-encoded
    (=?UTF-8?B?...?=, S3 user guide: object metadata); sent on like that it would be the prompt."""
    if "=?" not in value:
        return value
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (ValueError, LookupError, UnicodeDecodeError):
        return value


def instructions(key: str, metadata: dict[str, str], rules_document: Any) -> EditRequest:
    unknown = sorted(name for name in metadata if name.lower() not in METADATA_PARAMS)
    if unknown:
        raise InvalidInstructions(
            f"x-amz-meta-{unknown[0]} is not an instruction an upload takes (it takes "
            f"{', '.join(sorted({name for name in METADATA_PARAMS if '_' not in name}))})"
        )
    own = {METADATA_PARAMS[name.lower()]: metadata_value(value) for name, value in metadata.items()}
    if isinstance(rules_document, BrokenRules):
        if not own.get("prompt"):
            raise InvalidRules(f"the upload has no prompt of its own and the rules document {rules_document.problem}")
        rules_document = None  # its own instructions need no rules
    params: dict[str, Any] = {**rule_for(key, rules_document), **own}
    if not params.get("prompt"):
        raise NoInstructions(
            "the upload has no prompt: set x-amz-meta-prompt or add a rule for its key to the rules document"
        )
    for name in INTEGER_PARAMS & params.keys():
        if isinstance(params[name], str):
            number = whole_number(params[name])  # ASCII digits, as HTTP takes them ("٣" is not 3)
            if number is None:
                raise InvalidInstructions(f"{name} must be a whole number, not {params[name]!r}")
            params[name] = number
    try:
        return EditRequest.model_validate(params)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "instructions"
        raise InvalidInstructions(f"{where}: {first.get('msg', 'invalid')}") from None


# Path segments a client removes or merges before it sends a URL (RFC 3986 5.2.4 and the WHATWG
# URL standard: ".", "..", and their percent-encoded forms), or that make an empty segment: an
# output key holding one is not fetchable by its own presigned URL.
UNSAFE_SEGMENTS = {"", ".", "..", "%2e", ".%2e", "%2e.", "%2e%2e"}


def output_prefix(source_key: str) -> str:
    """edits/<source key without extension>/, each segment safe in a URL ("uploads/..png" gives
    edits/uploads/_/: no ".", ".." or empty segment)."""
    stem, dot, extension = source_key.rpartition(".")
    base = stem if dot and "/" not in extension else source_key
    segments = ["_" * max(1, len(part)) if part.lower() in UNSAFE_SEGMENTS else part for part in base.split("/")]
    return f"edits/{'/'.join(segments)}/"
