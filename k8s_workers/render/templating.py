"""The Jinja2 environment over `templates/`: the only place file text comes from."""

import base64
import copy
import functools
import json
import tomllib
from pathlib import Path
from typing import Any

import jinja2
import tomli_w
import yaml

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"


class _IndentedDumper(yaml.SafeDumper):
    """Indent list items under their key, as Kubernetes documents usually are."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)


def to_yaml(document: Any) -> str:
    # Nodes mostly share their documents: dumping is cached by content (JSON is the key).
    return _dump_cached(json.dumps(document))


@functools.lru_cache(maxsize=256)
def _dump_cached(document_json: str) -> str:
    document = json.loads(document_json)
    return yaml.dump(document, Dumper=_IndentedDumper, sort_keys=False, default_flow_style=False).rstrip("\n")


@functools.lru_cache(maxsize=256)
def _parse_cached(text: str) -> Any:
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@functools.lru_cache(maxsize=64)
def _parse_toml_cached(text: str) -> Any:
    return tomllib.loads(text)


def parse_toml(text: str) -> Any:
    """Parse TOML we rendered ourselves; cached, so callers get a private copy."""
    return copy.deepcopy(_parse_toml_cached(text))


def parse_yaml(text: str) -> Any:
    """Parse YAML we rendered ourselves; cached, so callers get a private copy."""
    return copy.deepcopy(_parse_cached(text))


def to_toml(document: Any) -> str:
    return tomli_w.dumps(document).rstrip("\n")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,  # a missing value is a bug, never an empty string
        keep_trailing_newline=True,
        auto_reload=False,  # templates do not change during a run; skip the per-render stat()
        autoescape=False,
        # Shell uses `{#` (${#array[@]}); Jinja comments are not used in our templates.
        comment_start_string="<%#",
        comment_end_string="#%>",
    )
    env.filters["b64"] = b64
    env.filters["to_yaml"] = to_yaml
    env.filters["to_toml"] = to_toml
    env.filters["shquote"] = shell_quote
    env.filters["quoted"] = json.dumps  # a string YAML reads back as a string ("yes", "123" included)
    return env


def shell_quote(value: Any) -> str:
    """Single-quote for POSIX shells."""
    return "'" + str(value).replace("'", "'\"'\"'") + "'"


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)
