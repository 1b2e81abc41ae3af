#!/usr/bin/env python3
"""Check an OpenTelemetry Collector config's wiring (no collector binary needed).

    otel_pipelines.py deploy/otel-collector.yaml

Every receiver, processor and exporter a pipeline names is defined, every one defined is
used, and each pipeline has receivers and exporters. It does not check the components'
own settings: only a collector build (`otelcol-contrib validate --config …`) can.
"""

import sys

import yaml


def main(path):
    with open(path, encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    bad, used = [], {"receivers": set(), "processors": set(), "exporters": set()}
    pipelines = cfg.get("service", {}).get("pipelines") or {}
    if not pipelines:
        bad.append("no service.pipelines")
    for name, p in pipelines.items():
        for kind in ("receivers", "exporters"):
            if not p.get(kind):
                bad.append(f"pipeline {name}: no {kind}")
        for kind in used:
            for comp in p.get(kind) or []:
                used[kind].add(comp)
                if comp not in (cfg.get(kind) or {}):
                    bad.append(f"pipeline {name}: {kind[:-1]} {comp} is not defined")
    for kind, names in used.items():
        for comp in sorted(set(cfg.get(kind) or {}) - names):
            if kind == "exporters" and comp == "debug":
                continue  # kept for swapping in while debugging
            bad.append(f"{kind[:-1]} {comp} is defined but no pipeline uses it")
    for line in bad:
        print(f"{path}: {line}")
    if bad:
        return 1
    print(f"{path}: {len(pipelines)} pipelines, every component defined and used")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
