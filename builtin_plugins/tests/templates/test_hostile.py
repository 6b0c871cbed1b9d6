"""A hostile template or variable value can do nothing: helm option injection, YAML alias
bombs and YAML injection through variables are refused with the reason, before anything
runs or expands. End to end through the plugin (access check, nothing deployed, the bot
keeps serving): tests/templates/test_hostile.py."""

from __future__ import annotations

import json
import os
import resource
import stat
import time

import pytest
import yaml

from clustercord_builtins.templates import catalog, charts
from clustercord_builtins.templates.limits import RenderLimits
from clustercord_builtins.templates.render import (
    ALIASES_REFUSED,
    MERGE_REFUSED,
    Var,
    is_plain,
    load_documents,
    render_manifests,
    yaml_scalar,
)
from clustercord_builtins.templates.template import TemplateError, load_template
from clustercord_builtins.templates.validation import ManifestError, check_template, validate_object
from clustercord_builtins.templates.variables import VariableError, resolve

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"
CHART = {"repo": "https://charts.example.com/stable", "chart": "plex", "version": "6.4.3"}
LIMITS = RenderLimits(seconds=5, memory_mb=256)


def data(content=CONFIGMAP, variables=(), **extra):
    return {
        "name": "hostile",
        "version": "1.0.0",
        "category": "OTHER",
        "description": "a hostile template",
        "variables": list(variables),
        "manifests": [{"name": "app.yaml", "content": content}],
        **extra,
    }


def one(content=CONFIGMAP, variables=(), **extra):
    return load_template(data(content, variables, **extra), source="the submitted template")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- 1. helm option injection -----------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("chart", "--post-renderer=/bin/sh", "starts with '-': a chart is a name, never an option"),
        ("chart", "-x", "starts with '-'"),
        ("chart", "/etc/passwd", "is not a chart reference"),
        ("chart", "../../secret-chart", "is not a chart reference"),
        ("chart", "file:///tmp/chart", "is not a chart reference"),
        ("chart", "a/b/c", "is not a chart reference"),
        ("chart", "plex --post-renderer=x", "is not a chart reference"),
        ("chart", "oci://169.254.169.254/charts/x", "169.254.169.254 is a cloud metadata address"),
        ("repo", "--post-renderer=/bin/sh", "is not an https:// URL"),
        ("repo", "http://charts.example.com", "must be an https:// URL (not http)"),
        ("repo", "file:///etc", "must be an https:// URL"),
        ("repo", "https://169.254.169.254/latest/meta-data", "a cloud metadata address"),
        ("repo", "https://169.254.1.1/", "is a link-local address"),
        ("repo", "https://[fe80::1]/", "is a link-local address"),
        ("repo", "https://[::ffff:169.254.169.254]/", "a cloud metadata address"),
        ("repo", "https://[fd00:ec2::254]/", "a cloud metadata address"),
        ("repo", "https://127.0.0.1:8443/", "is a loopback address"),
        ("repo", "https://[::1]/", "is a loopback address"),
        ("repo", "https://0.0.0.0/", "an unspecified address"),
        ("repo", "https://localhost/charts", "names this machine or a metadata service"),
        ("repo", "https://api.localhost/", "names this machine or a metadata service"),
        ("repo", "https://metadata.google.internal/", "names this machine or a metadata service"),
        ("repo", "https://2130706433/", "is not a DNS name or an IP address"),
        ("repo", "https://0x7f.1/", "is not a DNS name or an IP address"),
        ("repo", "https://user:pw@charts.example.com/", "credentials in the URL"),
        ("repo", "https://charts.example.com/\n--x", "is not an https:// URL"),
        ("version", "--post-renderer=/bin/sh", "is not a chart version or constraint"),
        ("version", "1.0.0;rm", "is not a chart version or constraint"),
    ],
)
def test_a_chart_entry_that_could_inject_an_option_is_refused_naming_the_field(
    field, value, message
):
    with pytest.raises(TemplateError) as refused:
        one(helm_charts=[{**CHART, field: value}])
    text = str(refused.value)
    assert text.startswith(f"the submitted template: helm_charts[0].{field}: "), text
    assert message in text, text


@pytest.mark.parametrize(
    "entry",
    [
        CHART,
        {**CHART, "chart": "bitnami/redis", "version": "^18.1"},
        {**CHART, "chart": "oci://registry-1.docker.io/bitnamicharts/redis", "version": "18.1.0"},
        {**CHART, "repo": "https://10.0.0.5:8443/charts"},  # a homelab's own repository
        {**CHART, "repo": "https://[2001:db8::1]/charts", "version": ">=1.0, <2"},
    ],
)
def test_chart_references_and_public_https_repositories_are_accepted(entry):
    assert one(helm_charts=[entry]).helm_charts == (entry,)


@pytest.fixture
def fake_helm(tmp_path, monkeypatch):
    """A ``helm`` on PATH that records its argv and environment and prints one ConfigMap."""
    record = tmp_path / "helm-calls.jsonl"
    script = tmp_path / "bin" / "helm"
    script.parent.mkdir()
    script.write_text(
        f"""#!{os.environ.get("PYTHON", "/usr/bin/env python3")}
import json, os, sys
values = [open(a[9:]).read() for a in sys.argv if a.startswith("--values=")]
with open({str(record)!r}, "a") as f:
    f.write(json.dumps({{"argv": sys.argv[1:], "env": dict(os.environ), "values": values}}) + "\\n")
print("apiVersion: v1\\nkind: ConfigMap\\nmetadata: {{name: from-chart}}\\n")
"""
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DISCORD_TOKEN", "not-for-helm")

    def calls():
        if not record.exists():
            return []
        return [json.loads(line) for line in record.read_text().splitlines()]

    return calls


def test_helm_gets_options_as_name_value_and_positionals_after_double_dash(fake_helm):
    template = one(
        variables=[{"name": "greeting", "type": "string", "default": "hi"}],
        helm_charts=[{**CHART, "values": "greeting: {{ greeting }}"}],
    )
    rendered = render_manifests(
        template, {"greeting": "hello"}, release="demo", namespace="games", helm_allowed=True
    )
    assert [o["metadata"]["name"] for o in rendered.objects] == ["x", "from-chart"]
    ((call),) = fake_helm()
    argv = call["argv"]
    assert argv[:4] == [
        "template",
        "--namespace=games",
        "--version=6.4.3",
        f"--repo={CHART['repo']}",
    ]
    assert argv[4].startswith("--values=") and argv[5:] == ["--", "demo", "plex"]
    assert "DISCORD_TOKEN" not in call["env"] and "KUBECONFIG" in call["env"]
    assert call["env"]["HOME"] != os.environ.get("HOME")  # its own empty home


def test_helm_never_runs_without_the_callers_access_check(fake_helm):
    template = one(helm_charts=[CHART])
    with pytest.raises(TemplateError, match="helm runs only for users allowed to submit"):
        render_manifests(template, {}, release="demo", namespace="games")
    with pytest.raises(TemplateError, match="helm runs only for users allowed to submit"):
        check_template(template, limits=LIMITS)
    assert fake_helm() == []


def test_a_chart_entry_changed_after_loading_is_checked_again_before_helm(fake_helm):
    template = one(helm_charts=[dict(CHART)])
    template.helm_charts[0]["chart"] = "--post-renderer=/bin/sh"  # a tampered stored row
    with pytest.raises(TemplateError, match=r"helm_charts: chart: '--post-renderer=/bin/sh'"):
        render_manifests(template, {}, release="demo", namespace="games", helm_allowed=True)
    assert fake_helm() == []


# -- 2. YAML alias bomb -----------------------------------------------------------------
def alias_bomb(levels: int = 10) -> str:
    """The classic shape: each level a list of nine aliases of the one before (9**10 leaves
    at 10 levels, from well under a kilobyte)."""
    lines = [
        CONFIGMAP.rstrip("\n"),
        "data:",
        '  l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    ]
    for level in range(1, levels):
        lines.append(f"  l{level}: &l{level} [" + ",".join([f"*l{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_the_alias_bomb_shape_is_728_bytes_or_less():
    assert len(alias_bomb()) <= 728


@pytest.mark.parametrize("limits", [None, LIMITS], ids=["in-process", "bounded-child"])
def test_an_alias_bomb_is_refused_before_it_expands(limits):
    template = one(alias_bomb())
    before = peak_rss_mb()
    started = time.monotonic()
    with pytest.raises(TemplateError) as refused:
        check_template(template, limits=limits)
    elapsed = time.monotonic() - started
    grown = peak_rss_mb() - before
    assert str(refused.value).startswith(
        "app.yaml: line 5: the rendered YAML is invalid: YAML aliases"
    )
    assert ALIASES_REFUSED in str(refused.value)
    assert elapsed < 3, elapsed
    assert grown < 20, f"the bot's peak RSS grew by {grown:.0f} MB"


def test_merge_keys_and_single_aliases_are_refused_too():
    with pytest.raises(yaml.YAMLError, match="merge keys"):
        load_documents("a: &a {x: 1}\nb: {<<: *a}\n")
    with pytest.raises(yaml.YAMLError, match=r"merge keys \(<<\) are not accepted"):
        load_documents("b: {<<: {x: 1}}\n")
    with pytest.raises(yaml.YAMLError, match=r"YAML aliases \(\*name\) are not accepted"):
        load_documents("a: &a x\nb: *a\n")
    with pytest.raises(yaml.YAMLError) as refused:
        load_documents("b:\n  <<: {x: 1}\n")
    assert MERGE_REFUSED in str(refused.value)
    # Anchors alone (never referred to) and a literal '*' in a value are fine.
    assert load_documents("a: &a x\nb: '*a'\nc: x*y\n") == [{"a": "x", "b": "*a", "c": "x*y"}]


def test_schema_error_messages_are_bounded():
    huge = {"data": [list(range(100))] * 2000}
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, **huge}
    with pytest.raises(ManifestError) as refused:
        validate_object(obj)
    assert len(str(refused.value)) < 500
    assert "is not of type 'object'" not in str(refused.value) or len(str(refused.value)) < 500
    with pytest.raises(TemplateError) as refused:
        load_template({**data(), "tags": [["x" * 1000] * 1000]})
    assert len(str(refused.value)) < 1000


# -- 3. YAML injection through variables ------------------------------------------------
SMUGGLE = "x\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: smuggled}\ndata: {a: b}"
ATTACKS = [
    SMUGGLE,
    "x\nextra: {key: 1}",
    "x, extra: 1",
    "x}, extra: {a: 1",
    'x" , extra: "y',
    "x' , extra: 'y",
    "x # comment",
    "*alias",
    "&anchor x",
    "- item",
    "x\r\n---\r\nkind: ConfigMap",
    "x\u2028---\u2028kind: ConfigMap",
]
NOTE = [{"name": "note", "type": "string", "default": "hello"}]


@pytest.mark.parametrize("value", ATTACKS)
@pytest.mark.parametrize(
    "manifest",
    [
        "data:\n  note: {{ note }}\n",
        "data: {note: {{ note }}}\n",
        "data:\n  note: |\n    {{ note }}\n",
        "data:\n  list: [{{ note }}, b]\n",
    ],
    ids=["block", "flow", "literal", "flow-list"],
)
def test_a_variable_is_rendered_as_an_inert_string(value, manifest):
    template = one(CONFIGMAP + manifest, NOTE)
    for limits in (None, LIMITS):
        rendered = render_manifests(
            template,
            resolve(template, {"note": value}).values,
            release="r",
            namespace="ns",
            limits=limits,
        )
        ((obj),) = rendered.objects
        assert obj["metadata"]["name"] == "x"
        assert set(obj["data"]) == ({"list"} if "list" in manifest else {"note"})
        shown = obj["data"]["list"][0] if "list" in manifest else obj["data"]["note"]
        # The value itself; in a literal block (|) its quoted form, as text.
        assert shown in (value, yaml_scalar(value) + "\n"), (shown, value)


@pytest.mark.parametrize("value", ATTACKS)
@pytest.mark.parametrize(
    "manifest",
    [
        'data:\n  note: "{{ note }}"\n',
        "data:\n  note: '{{ note }}'\n",
        "data:\n  note: {{ note ~ '' }}\n",
        "data:\n  note: {{ note | upper }}\n",
        "data:\n  note: x{{ note }}\n",
    ],
    ids=["double-quoted", "single-quoted", "concatenated", "filtered", "after-text"],
)
def test_a_variable_that_escapes_its_quoting_is_refused_or_inert(value, manifest):
    template = one(CONFIGMAP + manifest, NOTE)
    try:
        rendered = render_manifests(
            template, resolve(template, {"note": value}).values, release="r", namespace="ns"
        )
    except TemplateError as error:
        assert "changes the structure" in str(error) or "rendered YAML is invalid" in str(error)
        return
    ((obj),) = rendered.objects
    assert set(obj) == {"apiVersion", "kind", "metadata", "data"}
    assert set(obj["data"]) == {"note"} and isinstance(obj["data"]["note"], str)


def test_the_exact_attack_is_refused_when_a_template_drops_the_quoting():
    template = one(CONFIGMAP + "data:\n  note: {{ note ~ '' }}\n", NOTE)
    for limits in (None, LIMITS):
        with pytest.raises(TemplateError) as refused:
            render_manifests(
                template,
                resolve(template, {"note": SMUGGLE}).values,
                release="r",
                namespace="ns",
                limits=limits,
            )
        assert str(refused.value) == (
            "app.yaml: the value of note changes the structure of the rendered YAML (a new "
            "document, kind or key): variables are data, never YAML; nothing was deployed"
        )


def test_plain_values_are_written_as_they_are():
    assert is_plain("My Server") and is_plain("1.21.4") and is_plain("a-b_c/d@e+f=g~h")
    assert not is_plain("-x") and not is_plain("a: b") and not is_plain("a\nb")
    assert not is_plain(" lead") and not is_plain("trail ") and not is_plain("a,b")
    assert yaml_scalar("a: b\n---") == '"a\\u003a b\\u000a---"'
    assert load_documents(f"k: {yaml_scalar(SMUGGLE)}") == [{"k": SMUGGLE}]
    assert load_documents(f"k: {yaml_scalar('ü 😀')}") == [{"k": "ü 😀"}]
    assert isinstance(Var("x"), str)


@pytest.mark.parametrize("name", sorted(catalog.curated()))
def test_no_curated_template_lets_a_variable_add_an_object(name):
    """Every free-text variable of every curated template, given the exact attack: refused
    with a reason, or rendered with the same objects as with a harmless value (inert)."""
    template = catalog.curated()[name]
    free = [v for v in template.variables if v.type == "string" and not v.validation.get("choices")]
    assert free, f"{name} has no free-text variable to attack"
    for variable in free:
        try:
            harmless = resolve(template, {variable.name: "x"}).values
            values = resolve(template, {variable.name: SMUGGLE}).values
        except VariableError:
            continue  # its validation refuses the value already
        baseline = render_manifests(template, harmless, release=name, namespace="ns")
        expected = [(o["kind"], o["metadata"]["name"]) for o in baseline.objects]
        try:
            rendered = render_manifests(template, values, release=name, namespace="ns")
        except TemplateError as error:
            assert "changes the structure" in str(error) or "YAML is invalid" in str(error)
            continue
        got = [(o["kind"], o["metadata"]["name"]) for o in rendered.objects]
        assert got == expected, f"{name}.{variable.name}"
        assert "smuggled" not in json.dumps(got)


def test_a_namespace_that_is_not_a_name_is_refused():
    with pytest.raises(TemplateError, match="is not a Kubernetes namespace name"):
        render_manifests(one(), {}, release="r", namespace="ns\n---\nkind: x")


def test_the_helm_timeout_constant_is_sane():
    assert 10 <= charts.TIMEOUT <= 300


def test_a_stored_community_template_with_an_unsafe_chart_is_left_out(monkeypatch):
    row = {
        "name": "hostile",
        "status": "validated",
        "votes": 0,
        "template": json.dumps(data(helm_charts=[{**CHART, "chart": "--post-renderer=x"}])),
    }
    monkeypatch.setattr(catalog, "community_rows", lambda store: [row])
    names = [e.template.name for e in catalog.entries(None)]
    assert "hostile" not in names and "minecraft" in names


def test_chart_values_are_data_and_an_injection_never_reaches_helm(fake_helm):
    quoted = one(variables=NOTE, helm_charts=[{**CHART, "values": "note: {{ note }}"}])
    values = resolve(quoted, {"note": SMUGGLE}).values
    render_manifests(quoted, values, release="r", namespace="ns", helm_allowed=True)
    ((call),) = fake_helm()
    assert call["argv"][4].startswith("--values=")
    assert load_documents(call["values"][0]) == [{"note": SMUGGLE}]  # one key, the value inert

    leaky = one(helm_charts=[{**CHART, "values": "note: {{ note ~ '' }}"}], variables=NOTE)
    for limits in (None, LIMITS):
        with pytest.raises(TemplateError, match=r"helm_charts\[0\].values: the value of note"):
            render_manifests(
                leaky, values, release="r", namespace="ns", limits=limits, helm_allowed=True
            )
    assert len(fake_helm()) == 1  # helm never saw the injected values
