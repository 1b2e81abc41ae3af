#!/usr/bin/env python3
"""Print the JSON Schema of one version of a CustomResourceDefinition.

    crd2jsonschema.py CRD.yaml VERSION > schema.json

The schema is the CRD's own openAPIV3Schema, made strict the way the API server's
field validation (`kubectl apply --validate=strict`) is: an object that lists its
properties accepts no others, unless it says x-kubernetes-preserve-unknown-fields.
apiVersion and kind must be the CRD's. Used by deploy/check.sh for the manifests whose
kinds kubernetes-validate has no schema for (ServiceMonitor).
"""

import json
import sys

import yaml


def strict(node):
    if isinstance(node, dict):
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        for value in node.values():
            strict(value)
    elif isinstance(node, list):
        for value in node:
            strict(value)
    return node


def main(path, version):
    with open(path, encoding="utf-8") as f:
        crd = yaml.safe_load(f)
    spec = crd["spec"]
    group, kind = spec["group"], spec["names"]["kind"]
    [v] = [v for v in spec["versions"] if v["name"] == version]
    schema = strict(v["schema"]["openAPIV3Schema"])
    schema["properties"]["apiVersion"] = {"const": f"{group}/{version}"}
    schema["properties"]["kind"] = {"const": kind}
    schema.setdefault("required", [])
    for key in ("apiVersion", "kind", "metadata", "spec"):
        if key not in schema["required"]:
            schema["required"].append(key)
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    json.dump(schema, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
