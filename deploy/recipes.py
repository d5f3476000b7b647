"""Offline checks of the deployment recipes, for deploy/check (which says what runs where).

    python deploy/recipes.py render deploy/k8s          # a minimal kustomize, when kubectl is absent
    python deploy/recipes.py manifests rendered.yaml    # what the schema cannot say about them
    python deploy/recipes.py compose                    # compose.yaml, without a Docker engine
    python deploy/recipes.py commands rendered.yaml     # every process command names what exists
    python deploy/recipes.py env .env.example [--fill-placeholders]  # KEY=VALUE lines (placeholders made random)

Each prints what it found wrong and exits 1, or exits 0 in silence.
"""

from __future__ import annotations

import re
import secrets
import shlex
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PROBLEMS: list[str] = []


def problem(message: str) -> None:
    PROBLEMS.append(message)


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            problem(f"{path}: not KEY=VALUE: {line!r}")
            continue
        values[key.strip()] = value.strip()
    return values


PLACEHOLDER = re.compile(r"(?i)(CHANGE-ME|EXAMPLE-ONLY)[A-Za-z0-9_-]*")


def fill_placeholders(value: str) -> str:
    return PLACEHOLDER.sub(lambda _: secrets.token_hex(32), value)


# --- a minimal kustomize: only what deploy/k8s uses --------------------------------------------------


def render(directory: Path) -> list[dict]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    known = {"apiVersion", "kind", "labels", "resources", "configMapGenerator", "secretGenerator", "images"}
    for key in set(kustomization) - known:
        problem(
            f"{directory}/kustomization.yaml: the fallback renderer does not know {key!r}; install kubectl"
        )
    objects: list[dict] = []
    for resource in kustomization.get("resources", []):
        objects += [doc for doc in yaml.safe_load_all((directory / resource).read_text()) if doc]
    for kind, key in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
        for generator in kustomization.get(key, []):
            data: dict[str, str] = {}
            for env in generator.get("envs", []):
                data.update(read_env_file(directory / env))
            obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": generator["name"]}}
            if kind == "Secret":
                obj["type"] = "Opaque"
                obj["stringData"] = data
            else:
                obj["data"] = data
            objects.append(obj)
    for group in kustomization.get("labels", []):
        for obj in objects:
            obj["metadata"].setdefault("labels", {}).update(group["pairs"])
    images = {image["name"]: image for image in kustomization.get("images", [])}
    for container in all_containers(objects):
        image = images.get(container["image"])
        if image:
            container["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
    return objects


# --- the rendered manifests ---------------------------------------------------------------------------


def pod_spec(obj: dict) -> dict | None:
    if obj["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
        return obj["spec"]["template"]["spec"]
    return None


def all_containers(objects: list[dict]) -> list[dict]:
    return [c for obj in objects if (spec := pod_spec(obj)) for c in spec.get("containers", [])]


def check_manifests(objects: list[dict]) -> None:
    by_kind: dict[str, dict[str, dict]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj
    deployments = by_kind.get("Deployment", {})
    for name in ("workspaces-web", "workspaces-worker", "workspaces-beat"):
        if name not in deployments:
            problem(f"no Deployment {name}")
    if not by_kind.get("Job"):
        problem("no migration Job")
    beat = deployments.get("workspaces-beat")
    if beat and (
        beat["spec"].get("replicas") != 1 or beat["spec"].get("strategy", {}).get("type") != "Recreate"
    ):
        problem("beat must have replicas: 1 and strategy Recreate: two beats send every periodic task twice")
    web = deployments.get("workspaces-web")
    if web:
        container = web["spec"]["template"]["spec"]["containers"][0]
        for probe, path in (
            ("startupProbe", "/healthz"),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
        ):
            if container.get(probe, {}).get("httpGet", {}).get("path") != path:
                problem(f"web's {probe} must GET {path}")
        if web["spec"].get("replicas", 1) < 2:
            problem("web should run at least 2 replicas")
        if not any(
            pdb["spec"]["selector"]["matchLabels"].items()
            <= web["spec"]["template"]["metadata"]["labels"].items()
            for pdb in by_kind.get("PodDisruptionBudget", {}).values()
        ):
            problem("no PodDisruptionBudget selects the web pods")
    config_maps = {n for n in by_kind.get("ConfigMap", {})}
    secrets = {n for n in by_kind.get("Secret", {})}
    for obj in objects:
        spec = pod_spec(obj)
        if spec is None:
            continue
        where = f"{obj['kind']} {obj['metadata']['name']}"
        if not spec.get("securityContext", {}).get("runAsNonRoot"):
            problem(f"{where}: securityContext.runAsNonRoot is not true")
        mounts_needed = {m["name"] for c in spec["containers"] for m in c.get("volumeMounts", [])}
        volumes = {v["name"] for v in spec.get("volumes", [])}
        if mounts_needed - volumes:
            problem(f"{where}: mounts volumes that are not declared: {sorted(mounts_needed - volumes)}")
        for container in spec["containers"]:
            resources = container.get("resources", {})
            if not resources.get("requests") or not resources.get("limits"):
                problem(f"{where}: container {container['name']} has no resource requests and limits")
            for source in container.get("envFrom", []):
                if "configMapRef" in source and source["configMapRef"]["name"] not in config_maps:
                    problem(f"{where}: ConfigMap {source['configMapRef']['name']} is not rendered")
                if "secretRef" in source and source["secretRef"]["name"] not in secrets:
                    problem(f"{where}: Secret {source['secretRef']['name']} is not rendered")


def manifest_commands(objects: list[dict]) -> list[tuple[str, list[str]]]:
    return [
        (f"{obj['kind']} {obj['metadata']['name']}", container["command"] + container.get("args", []))
        for obj in objects
        if (spec := pod_spec(obj))
        for container in spec["containers"]
    ]


# --- compose.yaml -------------------------------------------------------------------------------------


def check_compose() -> list[tuple[str, list[str]]]:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose.get("services", {})
    for name in ("postgres", "redis", "migrate", "web", "worker", "beat"):
        if name not in services:
            problem(f"compose.yaml: no service {name}")
    example = read_env_file(ROOT / ".env.example")
    commands = []
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            if dependency not in services:
                problem(f"compose.yaml: {name} depends on {dependency}, which is not a service")
        env_file = service.get("env_file")
        if env_file and env_file != ".env":
            problem(f"compose.yaml: {name} reads {env_file}; every service should read .env")
        if "build" in service:
            commands.append((f"compose service {name}", service["command"]))
    worker = services.get("worker", {})
    if "container_name" in worker or "ports" in worker:
        problem("compose.yaml: worker has a container_name or ports, so `--scale worker=N` would fail")
    if services.get("beat", {}).get("deploy", {}).get("replicas") != 1:
        problem("compose.yaml: beat must say deploy.replicas: 1")
    # Every ${VAR:?...} the file requires must be in .env.example.
    text = (ROOT / "compose.yaml").read_text()
    for part in text.split("${")[1:]:
        variable = part.split("}")[0]
        name, _, rest = variable.partition(":")
        if rest.startswith("?") and name not in example:
            problem(f"compose.yaml requires {name}, which .env.example does not set")
    return commands


# --- commands -----------------------------------------------------------------------------------------


def procfile_commands() -> list[tuple[str, list[str]]]:
    commands = []
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            commands.append((f"Procfile {name}", shlex.split(command)))
    return commands


def dockerfile_commands() -> list[tuple[str, list[str]]]:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("CMD "):
            return [("Dockerfile CMD", yaml.safe_load(line[4:]))]
    problem("Dockerfile: no CMD")
    return []


def module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def check_command(where: str, argv: list[str]) -> None:
    program, args = argv[0], argv[1:]
    if program == "gunicorn":
        if "-c" not in args or not (ROOT / args[args.index("-c") + 1]).exists():
            problem(f"{where}: gunicorn without an existing -c config file: {argv}")
        if not module_file(args[-1].split(":")[0]):
            problem(f"{where}: gunicorn's application module {args[-1]} does not exist")
    elif program == "celery":
        if "-A" not in args:
            problem(f"{where}: celery without -A: {argv}")
            return
        app = args[args.index("-A") + 1]
        celery_module = module_file(f"{app}.celery")
        if not celery_module or "Celery(" not in celery_module.read_text():
            problem(f"{where}: no Celery app in {app}.celery")
        if not {"worker", "beat"} & set(args):
            problem(f"{where}: celery command is neither worker nor beat: {argv}")
    elif program == "python" and args[:1] == ["manage.py"]:
        if not (ROOT / "manage.py").exists():
            problem(f"{where}: manage.py does not exist")
        if args[1:2] != ["migrate"]:
            problem(f"{where}: unexpected manage.py command {args[1:]}")
    else:
        problem(f"{where}: unknown program {program!r}")


def check_commands(objects: list[dict]) -> None:
    commands = procfile_commands() + dockerfile_commands() + check_compose() + manifest_commands(objects)
    roles = {
        "web": "gunicorn",
        "worker": "worker",
        "beat": "beat",
        "migrate": "migrate",
        "release": "migrate",
    }
    for where, argv in commands:
        check_command(where, argv)
        for role, marker in roles.items():
            if where.split()[-1].endswith(role) and marker not in argv:
                problem(f"{where}: the {role} process does not run {marker}: {argv}")


def load(path: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(Path(path).read_text()) if doc]


def main(argv: list[str]) -> int:
    action, *args = argv
    if action == "render":
        sys.stdout.write(yaml.safe_dump_all(render(Path(args[0])), sort_keys=False))
    elif action == "manifests":
        check_manifests(load(args[0]))
    elif action == "compose":
        check_compose()
    elif action == "commands":
        check_commands(load(args[0]))
    elif action == "env":
        # env FILE... [--fill-placeholders]: the files' variables, one KEY=VALUE a line; with the option,
        # each placeholder (CHANGE-ME..., EXAMPLE-ONLY...) becomes a random value, as an operator would
        # fill it in (production refuses placeholders: config/settings/production.py).
        fill = "--fill-placeholders" in args
        for path in (arg for arg in args if arg != "--fill-placeholders"):
            for key, value in read_env_file(Path(path)).items():
                print(f"{key}={fill_placeholders(value) if fill else value}")
    else:
        raise SystemExit(__doc__)
    for message in PROBLEMS:
        print(f"deploy: {message}", file=sys.stderr)
    return 1 if PROBLEMS else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
