"""`make build-check`: what `sam build` produced, checked as Lambda will run it.

For every function in the built template (.aws-sam/build/template.yaml):
- its handler is imported in a fresh, isolated interpreter of the runtime's Python (`-I -S`: no
  site-packages, no PYTHONPATH) whose path is only the function's build folder, its layer's
  `python/` and the AWS SDK as the runtime provides it, with the template's environment variables
  resolved the way CloudFormation would (placeholders for resource names); any import error fails;
- the wheels in its layer are checked against the runtime's platform (Amazon Linux 2023: glibc 2.34,
  the template's architecture, CPython 3.13), so an arm64 build is checked on an x86_64 machine too
  (there the import is skipped: the machine cannot load aarch64 code);
- the unzipped size of function + layers is printed against Lambda's 250 MB limit.

Sources: Lambda quotas (250 MB unzipped deployment package, layers included),
https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html; python3.13 runs on
Amazon Linux 2023, https://docs.aws.amazon.com/lambda/latest/dg/lambda-python.html; AL2023 ships
glibc 2.34, https://docs.aws.amazon.com/linux/al2023/ug/compare-with-al2.html; the runtime includes
boto3 (its version varies by region), https://docs.aws.amazon.com/lambda/latest/dg/lambda-python.html.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = "python3.13"
RUNTIME_GLIBC = (2, 34)  # Amazon Linux 2023
UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024
MACHINE = {"x86_64": "x86_64", "arm64": "aarch64"}
SDK_DIR = ROOT / ".venv" / "runtime-sdk"
ACCOUNT = "123456789012"
REGION = "us-east-1"
STACK = "imagejobs-check"

IMPORT_HANDLER = """
import importlib, json, sys
paths, module_name, attribute = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
sys.path[:0] = paths
module = importlib.import_module(module_name)
handler = getattr(module, attribute)
assert callable(handler), f"{module_name}.{attribute} is not callable"
foreign = sorted(
    name for name, loaded in sys.modules.items()
    if getattr(loaded, "__file__", None) and not any(str(loaded.__file__).startswith(p) for p in paths)
    and not str(loaded.__file__).startswith(sys.base_prefix)
)
assert not foreign, f"modules from outside the build: {foreign[:5]}"
"""


class Resolver:
    """CloudFormation's intrinsic functions, enough for environment variables: parameters take their
    defaults (or overrides), resources become placeholder names shaped like the real ones."""

    def __init__(self, template: dict[str, Any], overrides: dict[str, str]) -> None:
        self.template = template
        self.parameters = {
            name: overrides.get(name, spec.get("Default", ""))
            for name, spec in (template.get("Parameters") or {}).items()
        }
        for name, spec in (template.get("Parameters") or {}).items():
            if str(spec.get("Type", "")).startswith("CommaDelimitedList") or spec.get("Type") == "List<String>":
                value = self.parameters[name]
                self.parameters[name] = value if isinstance(value, list) else [v for v in str(value).split(",") if v]
        self.pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::StackName": STACK,
            "AWS::URLSuffix": "amazonaws.com",
        }

    def ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        resource = self.template["Resources"].get(name, {})
        kind = resource.get("Type", "")
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{STACK}-{name}"
        if kind in ("AWS::SecretsManager::Secret", "AWS::SNS::Topic"):
            return f"arn:aws:{kind.split('::')[1].lower()}:{REGION}:{ACCOUNT}:{STACK}-{name}"
        return f"{STACK}-{name}".lower()

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.resolve(item) for item in node]
        if not isinstance(node, dict):
            return node
        if len(node) != 1:
            return {key: self.resolve(value) for key, value in node.items()}
        ((key, value),) = node.items()
        if key == "Ref":
            return self.ref(value)
        if key == "Fn::GetAtt":
            logical_id, attribute = value if isinstance(value, list) else value.split(".", 1)
            return f"arn:aws:{logical_id}:{attribute}".lower()
        if key == "Fn::Sub":
            text, variables = (value[0], self.resolve(value[1])) if isinstance(value, list) else (value, {})

            def substitute(match: re.Match[str]) -> str:
                name = match.group(1)
                if name in variables:
                    return str(variables[name])
                if "." in name:
                    return str(self.resolve({"Fn::GetAtt": name.split(".", 1)}))
                resolved = self.ref(name)
                return ",".join(resolved) if isinstance(resolved, list) else str(resolved)

            return re.sub(r"\$\{([^}!]+)\}", substitute, text)
        if key == "Fn::Join":
            separator, items = value
            resolved = self.resolve(items)
            return separator.join(str(item) for item in resolved)
        if key == "Fn::Select":
            index, items = value
            return self.resolve(items)[int(self.resolve(index))]
        if key == "Fn::Split":
            separator, text = value
            return str(self.resolve(text)).split(separator)
        if key == "Fn::If":
            name, when_true, when_false = value
            return self.resolve(when_true if self.condition(name) else when_false)
        if key == "Fn::Equals":
            left, right = self.resolve(value)
            return left == right
        if key == "Fn::Not":
            return not self.resolve(value[0])
        if key == "Fn::And":
            return all(self.resolve(value))
        if key == "Fn::Or":
            return any(self.resolve(value))
        if key == "Condition":
            return self.condition(value)
        return {key: self.resolve(value)}


def function_environment(template: dict[str, Any], logical_id: str, resolver: Resolver) -> dict[str, str]:
    globals_env = ((template.get("Globals") or {}).get("Function") or {}).get("Environment") or {}
    own_env = template["Resources"][logical_id]["Properties"].get("Environment") or {}
    variables = {**(globals_env.get("Variables") or {}), **(own_env.get("Variables") or {})}
    resolved = {name: resolver.resolve(value) for name, value in variables.items()}
    return {name: str(value).lower() if isinstance(value, bool) else str(value) for name, value in resolved.items()}


def lambda_runtime_environment(function_name: str, memory: int, arch: str) -> dict[str, str]:
    """What the Lambda runtime itself sets (reserved variables), credentials as placeholders.
    https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime"""
    return {
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{RUNTIME}",
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_ACCESS_KEY_ID": "ASIACHECKONLY",
        "AWS_SECRET_ACCESS_KEY": "check-only",
        "AWS_SESSION_TOKEN": "check-only",
        "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
        "HOME": os.environ.get("HOME", "/tmp"),
        "IMAGEJOBS_CHECK_ARCH": arch,
    }


def runtime_sdk() -> Path:
    """boto3 and botocore as the runtime provides them (no other packages), at our pinned version."""
    pins = [
        line.strip()
        for line in (ROOT / "requirements-dev.txt").read_text(encoding="utf-8").splitlines()
        if re.match(r"^(boto3|botocore)==", line.strip())
    ]
    stamp = SDK_DIR / ".pins"
    if not stamp.exists() or stamp.read_text(encoding="utf-8") != "\n".join(pins):
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--upgrade", "--target", str(SDK_DIR), *pins],
            check=True,
        )
        stamp.write_text("\n".join(pins), encoding="utf-8")
    return SDK_DIR


def _glibc(tag: str) -> tuple[int, int] | None:
    legacy = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
    for name, version in legacy.items():
        if tag.startswith(name + "_"):
            return version
    match = re.match(r"manylinux_(\d+)_(\d+)_", tag)
    return (int(match.group(1)), int(match.group(2))) if match else None


def wheel_problems(layer_python: Path, arch: str) -> list[str]:
    """Each installed wheel's tags must fit the runtime: CPython 3.13 (or abi3 / pure), manylinux
    at glibc <= 2.34, the template's architecture."""
    problems: list[str] = []
    machine = MACHINE[arch]
    for wheel_file in sorted(layer_python.glob("*.dist-info/WHEEL")):
        tags = [
            line.split(":", 1)[1].strip() for line in wheel_file.read_text().splitlines() if line.startswith("Tag:")
        ]
        fits = False
        for tag in tags:
            python_tag, abi_tag, platform_tag = tag.split("-")
            if platform_tag == "any":
                fits = True
                continue
            glibc = _glibc(platform_tag)
            python_ok = python_tag in ("cp313", "py3") or abi_tag == "abi3"
            if glibc and glibc <= RUNTIME_GLIBC and platform_tag.endswith("_" + machine) and python_ok:
                fits = True
        if not fits:
            problems.append(f"{wheel_file.parent.name}: tags {tags} do not fit {RUNTIME} on {arch} (glibc 2.34)")
    for shared_object in layer_python.rglob("*.so"):
        name = shared_object.name
        if "cpython-" in name and f"-{machine}-linux-gnu" not in name:
            problems.append(f"{shared_object.relative_to(layer_python)}: built for another platform")
    return problems


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


@dataclass
class BuiltFunction:
    """One function of the build as Lambda will load it: its folder, its layers' `python/` and its
    environment (the template's, resolved, plus the runtime's reserved variables)."""

    logical_id: str
    runtime: str
    handler: str  # "app.handler"
    code: Path
    layers: dict[str, Path]  # layer logical id -> its python/ folder
    env: dict[str, str]

    def path(self, sdk: Path) -> list[str]:
        """sys.path for an isolated interpreter: nothing but what Lambda puts there."""
        return [str(self.code), *map(str, self.layers.values()), str(sdk)]


def built_functions(build_dir: Path, overrides: dict[str, str]) -> tuple[str, list[BuiltFunction]]:
    """(architecture, every function) of the built template."""
    build_dir = build_dir.resolve()
    template = yaml_parse((build_dir / "template.yaml").read_text(encoding="utf-8"))
    resolver = Resolver(template, overrides)
    arch = str(resolver.parameters.get("Architecture", "x86_64"))
    layers = {
        logical_id: build_dir / resource["Properties"]["ContentUri"] / "python"
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::LayerVersion"
    }
    function_globals = (template.get("Globals") or {}).get("Function") or {}
    functions = []
    for logical_id, resource in sorted(template["Resources"].items()):
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = {**function_globals, **resource["Properties"]}
        own = [layer["Ref"] if isinstance(layer, dict) else str(layer) for layer in props.get("Layers") or []]
        memory = int(resolver.resolve(props.get("MemorySize", 128)))
        env = {
            **function_environment(template, logical_id, resolver),
            **lambda_runtime_environment(f"{STACK}-{logical_id}", memory, arch),
        }
        functions.append(
            BuiltFunction(
                logical_id=logical_id,
                runtime=str(props.get("Runtime")),
                handler=str(props["Handler"]),
                code=build_dir / props["CodeUri"],
                layers={layer_id: layers[layer_id] for layer_id in own},
                env=env,
            )
        )
    return arch, functions


def isolated(code: str, paths: list[str], env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter of this Python that sees no site-packages, no
    PYTHONPATH and writes no bytecode (python -I -S -B), with `paths` first on sys.path."""
    return subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", code, json.dumps(paths), *args],
        env=env,
        capture_output=True,
        text=True,
    )


def check(build_dir: Path, overrides: dict[str, str]) -> list[str]:
    arch, functions = built_functions(build_dir, overrides)
    host = MACHINE.get(arch) == platform.machine()
    sdk = runtime_sdk()
    failures: list[str] = []
    checked_layers: dict[str, Path] = {}
    print(f"## sam build output in {build_dir.resolve()} ({RUNTIME}, {arch}; boto3 from {sdk.relative_to(ROOT)})")
    for function in functions:
        if function.runtime != RUNTIME:
            failures.append(f"{function.logical_id}: runtime {function.runtime}, expected {RUNTIME}")
        for layer_id, layer in function.layers.items():
            if layer_id not in checked_layers:
                checked_layers[layer_id] = layer
                failures += [f"{layer_id}: {problem}" for problem in wheel_problems(layer, arch)]
        size = folder_bytes(function.code) + sum(folder_bytes(path) for path in function.layers.values())
        if size > UNZIPPED_LIMIT_BYTES:
            failures.append(f"{function.logical_id}: {size / 2**20:.1f} MB unzipped, over Lambda's 250 MB")
        if host:
            module_name, _, attribute = function.handler.rpartition(".")
            answer = isolated(IMPORT_HANDLER, function.path(sdk), function.env, module_name, attribute)
            verdict = "imports" if answer.returncode == 0 else "FAILS TO IMPORT"
            if answer.returncode != 0:
                failures.append(f"{function.logical_id}: {answer.stderr.strip().splitlines()[-1:]}")
                print(answer.stderr.strip(), file=sys.stderr)
        else:
            verdict = f"import skipped ({arch} code on a {platform.machine()} machine)"
        print(
            f"{function.logical_id:<22} {function.handler:<14} {size / 2**20:7.1f} MB unzipped (limit 250)   {verdict}"
        )
    for layer_id, folder in checked_layers.items():
        print(f"{layer_id:<22} {'layer':<14} {folder_bytes(folder) / 2**20:7.1f} MB unzipped")
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-dir", type=Path, default=ROOT / ".aws-sam" / "build")
    parser.add_argument("--parameter", action="append", default=[], help="Name=Value, as sam build was given")
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.parameter)
    failures = check(args.build_dir, overrides)
    for failure in failures:
        print("FAIL", failure, file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
