"""Read template.yaml the way SAM does, enough to run its functions locally.

Understands the CloudFormation short-form tags (!Ref, !GetAtt, !Sub, ...), Globals, and the
Handler / CodeUri / Layers / Environment of each AWS::Serverless::Function.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


class _Loader(yaml.SafeLoader):
    pass


def _tag(name: str):  # type: ignore[no-untyped-def]
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if name == "Fn::GetAtt":
                value = str(value).split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            assert isinstance(node, yaml.MappingNode)
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    return construct


for _short in ("Ref", "Condition"):
    _Loader.add_constructor(f"!{_short}", _tag(_short))
for _short in (
    "GetAtt",
    "Sub",
    "Join",
    "Select",
    "Split",
    "If",
    "Equals",
    "Not",
    "And",
    "Or",
    "FindInMap",
    "ImportValue",
    "Base64",
    "GetAZs",
):
    _Loader.add_constructor(f"!{_short}", _tag(f"Fn::{_short}"))


def load(path: Path = TEMPLATE) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        document: dict[str, Any] = yaml.load(handle, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    return document


class Resolver:
    """Resolves intrinsic functions against parameters and the local resources' physical ids."""

    def __init__(self, template: dict[str, Any], physical: dict[str, dict[str, str]], parameters: dict[str, str] | None = None) -> None:
        self.params = {k: str(v.get("Default", "")) for k, v in template.get("Parameters", {}).items()}
        self.params.update(parameters or {})
        self.params.setdefault("AWS::Region", "us-east-1")
        self.params.setdefault("AWS::AccountId", "123456789012")
        self.params.setdefault("AWS::StackName", "oxoflow-notify-local")
        self.physical = physical

    def ref(self, name: str) -> str:
        if name in self.params:
            return self.params[name]
        if name in self.physical:
            return self.physical[name]["Ref"]
        raise KeyError(f"!Ref {name}: no such parameter or local resource")

    def get_att(self, name: str, attribute: str) -> str:
        try:
            return self.physical[name][attribute]
        except KeyError:
            raise KeyError(f"!GetAtt {name}.{attribute}: not available locally") from None

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                return self.get_att(arg[0], arg[1])
            if key == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]
                extra = {} if isinstance(arg, str) else {k: self.resolve(v) for k, v in arg[1].items()}

                def sub(match: re.Match[str]) -> str:
                    token = match.group(1)
                    if token in extra:
                        return str(extra[token])
                    if "." in token:
                        return self.get_att(*token.split(".", 1))
                    return self.ref(token)

                return re.sub(r"\$\{([^}!]+)\}", sub, text)
            if key == "Fn::Join":
                return arg[0].join(str(self.resolve(v)) for v in arg[1])
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    handler: str
    code_dir: Path
    layer_dirs: tuple[Path, ...]
    environment: dict[str, Any]  # unresolved: values may still be intrinsics
    timeout: int
    memory: int


def functions(template: dict[str, Any], root: Path = ROOT) -> dict[str, FunctionSpec]:
    """Every AWS::Serverless::Function with Globals applied, as `sam local invoke` sees it."""
    glob = template.get("Globals", {}).get("Function", {})
    resources = template.get("Resources", {})
    params = Resolver(template, {})  # parameter defaults, for settings given as !Ref
    out: dict[str, FunctionSpec] = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.get("Properties", {})
        env = dict(glob.get("Environment", {}).get("Variables", {}))
        env.update(props.get("Environment", {}).get("Variables", {}))
        layers = []
        for layer in [*glob.get("Layers", []), *props.get("Layers", [])]:
            name = layer.get("Ref") if isinstance(layer, dict) else None
            if name and resources.get(name, {}).get("Type") == "AWS::Serverless::LayerVersion":
                layers.append(root / resources[name]["Properties"]["ContentUri"])
        out[logical_id] = FunctionSpec(
            logical_id=logical_id,
            handler=props.get("Handler", glob.get("Handler", "app.lambda_handler")),
            code_dir=root / props["CodeUri"],
            layer_dirs=tuple(layers),
            environment=env,
            timeout=int(params.resolve(props.get("Timeout", glob.get("Timeout", 3)))),
            memory=int(params.resolve(props.get("MemorySize", glob.get("MemorySize", 128)))),
        )
    return out
