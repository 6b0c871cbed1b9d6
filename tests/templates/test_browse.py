"""Browsing the catalog through the kernel: search, info, render, guide."""

from __future__ import annotations

import yaml


async def test_search_by_category_and_words(templates):
    media = await templates.run("/template search category:media")
    assert media.ok, media.text
    names = [t["name"] for t in media.reply.data["templates"]]
    assert names[0] == "jellyfin"  # the most popular first
    assert set(names) == {"jellyfin", "media-stack", "music", "photos"}
    found = await templates.run("/template search query:grafana")
    assert [t["name"] for t in found.reply.data["templates"]] == ["observability"]


async def test_info_shows_requirements_components_variables_and_resources(templates):
    result = await templates.run("/template info template:minecraft")
    assert result.ok, result.text
    data = result.reply.data
    assert data["requirements"]["memory"] == "4Gi"
    assert "Backup CronJob (every 6 hours, 7 kept)" in data["components"]
    assert {"server_name", "difficulty", "max_players", "enable_whitelist", "rcon_password"} <= set(
        data["variables"]
    )
    assert data["estimate"] == {
        "cpu_requests": "1.21",
        "cpu_limits": "3.6",
        "memory_requests": "3.3Gi",
        "memory_limits": "5.3Gi",
        "storage": "21Gi",
    }
    fields = {f.name: f.value for f in result.reply.cards[0].fields}
    assert (
        "`rcon_password` (string, secret) — RCON password (generated when empty)"
        in fields["Variables"]
    )
    elevated = await templates.run("/template info template:observability")
    assert elevated.reply.data["elevated"] == ["hostPath"]
    unknown = await templates.run("/template info template:minecraf")
    assert (
        unknown.status == "error"
        and unknown.text == "no template named 'minecraf'; did you mean minecraft?"
    )


async def test_render_attaches_yaml_with_secrets_hidden(templates):
    result = await templates.run(
        "/template render template:redis vars:size=1Gi,password=s3cr3t-s3cr3t"
    )
    assert result.ok, result.text
    (file,) = result.reply.files
    assert file.name == "redis.yaml"
    text = file.data.decode()
    assert "s3cr3t" not in text
    objects = list(yaml.safe_load_all(text))
    assert [f"{o['kind']}/{o['metadata']['name']}" for o in objects] == [
        "Secret/redis-credentials",
        "StatefulSet/redis",
        "PersistentVolumeClaim/redis-data",
        "Service/redis",
    ]
    assert objects[2]["spec"]["resources"]["requests"]["storage"] == "1Gi"
    bad = await templates.run("/template render template:redis vars:size=lots")
    assert bad.status == "error"
    assert (
        bad.text == "redis: variable size (quantity): 'lots' is not a quantity "
        "(examples: 500m, 2, 1Gi, 512Mi)"
    )


async def test_guide_lists_next_steps(templates):
    result = await templates.run("/template guide template:gitea")
    assert result.ok
    assert result.reply.data["steps"][0].startswith("Open https://git.home.local")
