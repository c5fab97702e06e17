"""Write each state machine's ASL with its DefinitionSubstitutions applied, for asl-validator.

Substitution values are shaped like what CloudFormation would put there (function ARNs for
GetAtt ...Arn, names for Ref), so the validator checks the definition that would be deployed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from imagejobs_local.deploy import ROOT, load_template

ACCOUNT_ARN = "arn:aws:lambda:us-east-1:123456789012:function"
PSEUDO_PARAMETERS = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012"}


def placeholder(value: Any, key: str) -> str:
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        logical_id = target[0] if isinstance(target, list) else str(target).split(".")[0]
        return f"{ACCOUNT_ARN}:{logical_id}"
    if isinstance(value, dict) and "Ref" in value:
        return PSEUDO_PARAMETERS.get(value["Ref"], str(value["Ref"]))
    return str(value) if not isinstance(value, dict) else key


def substituted_definitions() -> dict[str, str]:
    template = load_template()
    definitions: dict[str, str] = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::StateMachine":
            continue
        props = resource["Properties"]
        text = (ROOT / props["DefinitionUri"]).read_text(encoding="utf-8")
        for key, value in (props.get("DefinitionSubstitutions") or {}).items():
            text = text.replace("${" + key + "}", placeholder(value, key))
        if "${" in text:
            raise SystemExit(f"{logical_id}: unresolved substitution left in {props['DefinitionUri']}")
        json.loads(text)
        definitions[logical_id] = text
    return definitions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for logical_id, text in substituted_definitions().items():
        (args.out / f"{logical_id}.asl.json").write_text(text, encoding="utf-8")
        print(f"substituted {logical_id} -> {args.out / (logical_id + '.asl.json')}")


if __name__ == "__main__":
    main()
