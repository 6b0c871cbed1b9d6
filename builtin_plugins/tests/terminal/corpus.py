"""Seeded test corpora for redaction: secrets inside realistic shell output, and output
with no secret at all. Every secret is made up here, at run time (none is in the tree)."""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field

ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"
HEX = "0123456789abcdef"
# The markers are split so that no file of the tree holds an armoured key block.
KEY_BEGIN = "-----BEGIN " + "RSA PRIVATE KEY-----"
KEY_END = "-----END " + "RSA PRIVATE KEY-----"


@dataclass
class Secret:
    value: str
    kind: str
    keep: str = ""
    """The part masking leaves visible (``sk_live_``); the rest must not show."""

    def leaked_in(self, text: str, width: int = 8) -> bool:
        """Whether any ``width`` characters of the secret's hidden part show in ``text``."""
        core = self.value[len(self.keep) :]
        if len(core) <= width:
            return core in text
        return any(core[i : i + width] in text for i in range(len(core) - width + 1))


@dataclass
class Case:
    text: str
    """Commands (``$ command`` lines) and their output."""
    secrets: list[Secret] = field(default_factory=list)

    def steps(self) -> list[tuple[str | None, str]]:
        """``(command, its output)`` pairs; the first command may be None."""
        return split_steps(self.text)


def split_steps(text: str) -> list[tuple[str | None, str]]:
    steps: list[tuple[str | None, list[str]]] = [(None, [])]
    for line in text.splitlines(keepends=True):
        if line.startswith("$ "):
            steps.append((line[2:].rstrip("\n"), []))
        else:
            steps[-1][1].append(line)
    return [(command, "".join(lines)) for command, lines in steps if command or lines]


class Fakes:
    """Secret makers, each returning a :class:`Secret`."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def chars(self, alphabet: str, n: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def aws_key_id(self) -> Secret:
        return Secret(
            "AKIA" + self.chars(string.ascii_uppercase + string.digits, 16), "aws", "AKIA"
        )

    def aws_secret(self) -> Secret:
        return Secret(self.chars(B64, 40), "aws-secret")

    def stripe(self) -> Secret:
        prefix = self.rng.choice(["sk_live_", "sk_test_", "rk_live_"])
        return Secret(prefix + self.chars(ALNUM, 24), "stripe", prefix)

    def github(self) -> Secret:
        prefix = self.rng.choice(["ghp_", "gho_", "ghs_", "github_pat_"])
        n = 82 if prefix == "github_pat_" else 36
        return Secret(prefix + self.chars(ALNUM, n), "github", prefix)

    def slack(self) -> Secret:
        digits = string.digits
        value = f"xoxb-{self.chars(digits, 12)}-{self.chars(digits, 13)}-{self.chars(ALNUM, 24)}"
        return Secret(value, "slack", "xoxb-")

    def google(self) -> Secret:
        return Secret("AIza" + self.chars(B64URL, 35), "google", "AIza")

    def discord(self) -> Secret:
        snowflake = str(self.rng.randrange(10**17, 10**19))
        first = base64.b64encode(snowflake.encode()).decode().rstrip("=")
        value = f"{first}.{self.chars(B64URL, 6)}.{self.chars(B64URL, 38)}"
        return Secret(value, "discord")

    def jwt(self) -> Secret:
        def part(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).decode().rstrip("=")

        claims = {"sub": f"system:serviceaccount:default:{self.chars(string.ascii_lowercase, 6)}"}
        claims["exp"] = self.rng.randrange(1_700_000_000, 1_900_000_000)
        value = ".".join(
            [
                part(b'{"alg":"RS256","kid":"' + self.chars(ALNUM, 12).encode() + b'"}'),
                part(json.dumps(claims).encode()),
                part(self.rng.randbytes(64)),
            ]
        )
        return Secret(value, "jwt", "eyJ")

    def password(self) -> Secret:
        words = ["Summer", "Winter", "dragon", "Orange", "falcon", "Purple", "monkey", "Tiger"]
        if self.rng.random() < 0.5:
            value = self.rng.choice(words) + str(self.rng.randrange(1000, 9999))
            value += self.rng.choice("!#%*?") + self.chars(ALNUM, 3)
        else:
            value = self.chars(ALNUM + "!#%^*", self.rng.randrange(12, 24))
        return Secret(value, "password")

    def cookie(self) -> Secret:
        return Secret(self.chars(ALNUM, 32), "cookie")

    def random_base64(self) -> Secret:
        return Secret(base64.b64encode(self.rng.randbytes(32)).decode(), "base64")

    def random_hex(self) -> Secret:
        return Secret(self.rng.randbytes(32).hex(), "hex")

    def private_key(self) -> tuple[str, list[Secret]]:
        body = [self.chars(B64, 64) for _ in range(self.rng.randrange(8, 26))]
        body.append(self.chars(B64, 24) + "==")
        text = "\n".join([KEY_BEGIN, *body, KEY_END])
        return text, [Secret(line, "private-key") for line in body]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret_cases(seed: int, count: int) -> list[Case]:
    """Shell sessions with at least ``count`` secrets in them, in many settings."""
    rng = random.Random(seed)
    fakes = Fakes(rng)
    makers = [
        _env_dump,
        _secret_yaml,
        _secret_json,
        _curl_verbose,
        _config_json,
        _config_yaml,
        _dotenv,
        _aws_credentials,
        _private_key,
        _bare_tokens,
        _grep_color,
        _processes,
        _kubeconfig,
        _decoded_secret,
        _mounted_secret,
        _registry_login,
        _cookie,
        _free_text,
        _decoded_glued,
        _clone_url,
    ]
    cases: list[Case] = []
    while sum(len(c.secrets) for c in cases) < count:
        cases.append(rng.choice(makers)(fakes))
    return cases


def _env_dump(f: Fakes) -> Case:
    pairs = [
        ("AWS_ACCESS_KEY_ID", f.aws_key_id()),
        ("AWS_SECRET_ACCESS_KEY", f.aws_secret()),
        ("STRIPE_SECRET_KEY", f.stripe()),
        ("GITHUB_TOKEN", f.github()),
        ("SLACK_BOT_TOKEN", f.slack()),
        ("GOOGLE_API_KEY", f.google()),
        ("DISCORD_TOKEN", f.discord()),
        ("DB_PASSWORD", f.password()),
        ("PGPASSWORD", f.password()),
        ("MYSQL_ROOT_PASSWORD", f.password()),
        ("SESSION_SECRET", f.random_base64()),
        ("ENCRYPTION_KEY", f.random_hex()),
    ]
    chosen = f.rng.sample(pairs, 3)
    lines = ["$ env", *BENIGN_ENV[:4], *(f"{k}={s.value}" for k, s in chosen), *BENIGN_ENV[4:]]
    return Case("\n".join(lines) + "\n", [s for _, s in chosen])


def _secret_yaml(f: Fakes) -> Case:
    password, token = f.password(), f.github()
    user = f.chars(string.ascii_lowercase, 6)
    encoded = [Secret(b64(password.value), "k8s"), Secret(b64(token.value), "k8s")]
    text = f"""$ kubectl get secret app-credentials -o yaml
apiVersion: v1
data:
  api-token: {encoded[1].value}
  password: {encoded[0].value}
  username: {b64(user)}
kind: Secret
metadata:
  creationTimestamp: "2024-01-15T10:00:00Z"
  name: app-credentials
  namespace: prod
  resourceVersion: "48213"
  uid: 6f1c2a7e-3b9d-4e51-9a0c-2d8f7b6e1c44
type: Opaque
"""
    return Case(text, encoded)


def _secret_json(f: Fakes) -> Case:
    password = f.password()
    encoded = Secret(b64(password.value), "k8s")
    key = Secret(b64(f.chars(B64, 48)), "k8s")
    text = f"""$ kubectl get secret db -o json
{{
    "apiVersion": "v1",
    "data": {{
        "db-pass": "{encoded.value}",
        "tls.key": "{key.value}"
    }},
    "kind": "Secret",
    "metadata": {{
        "name": "db",
        "namespace": "prod"
    }},
    "type": "Opaque"
}}
"""
    return Case(text, [encoded, key])


def _curl_verbose(f: Fakes) -> Case:
    if f.rng.random() < 0.5:
        token = f.jwt() if f.rng.random() < 0.5 else f.github()
        header = f"Bearer {token.value}"
    else:
        password = f.password()
        token = Secret(b64(f"admin:{password.value}"), "basic")
        header = f"Basic {token.value}"
    text = f"""$ curl -v https://api.internal:8443/v1/items
*   Trying 10.96.12.4:8443...
* Connected to api.internal (10.96.12.4) port 8443 (#0)
* SSL connection using TLSv1.3 / TLS_AES_256_GCM_SHA384
> GET /v1/items HTTP/2
> Host: api.internal:8443
> user-agent: curl/8.5.0
> accept: */*
> authorization: {header}
>
< HTTP/2 200
< content-type: application/json
< x-request-id: 9b2f6c1e-4a7d-4f3b-8e21-5c9d0a7b3e12
<
{{"items": [], "total": 0}}
"""
    return Case(text, [token])


def _config_json(f: Fakes) -> Case:
    password, key = f.password(), f.stripe()
    text = f"""$ cat /app/config.json
{{
  "database": {{
    "host": "postgres.prod.svc.cluster.local",
    "port": 5432,
    "user": "app",
    "password": "{password.value}"
  }},
  "payments": {{"apiKey": "{key.value}", "currency": "eur"}},
  "log_level": "info"
}}
"""
    return Case(text, [password, key])


def _config_yaml(f: Fakes) -> Case:
    password, url_password = f.password(), f.password()
    text = f"""$ cat config.yaml
server:
  port: 8080
database:
  url: postgres://app:{url_password.value}@postgres.prod:5432/app?sslmode=require
  password: {password.value}
cache:
  ttl: 300s
"""
    return Case(text, [password, url_password])


def _dotenv(f: Fakes) -> Case:
    secrets = [f.stripe(), f.slack(), f.google()]
    text = (
        "$ cat .env\n"
        "NODE_ENV=production\n"
        f"STRIPE_KEY={secrets[0].value}\n"
        f"SLACK_WEBHOOK_TOKEN='{secrets[1].value}'\n"
        "PORT=3000\n"
        f'MAPS_API_KEY="{secrets[2].value}"\n'
    )
    return Case(text, secrets)


def _aws_credentials(f: Fakes) -> Case:
    key_id, secret = f.aws_key_id(), f.aws_secret()
    text = (
        "$ cat ~/.aws/credentials\n[default]\n"
        f"aws_access_key_id = {key_id.value}\naws_secret_access_key = {secret.value}\n"
        "region = eu-west-1\n"
    )
    return Case(text, [key_id, secret])


def _private_key(f: Fakes) -> Case:
    key, secrets = f.private_key()
    return Case(f"$ cat /etc/tls/tls.key\n{key}\n$ ls\n", secrets)


def _bare_tokens(f: Fakes) -> Case:
    token, b, h = f.jwt(), f.random_base64(), f.random_hex()
    text = (
        f"$ kubectl create token deployer\n{token.value}\n"
        f"$ openssl rand -base64 32\n{b.value}\n$ openssl rand -hex 32\n{h.value}\n"
    )
    return Case(text, [token, b, h])


def _grep_color(f: Fakes) -> Case:
    password = f.password()
    text = (
        "$ grep -rn --color=always PASSWORD config/\n"
        f"\x1b[35m\x1b[Kconfig/app.env\x1b[m\x1b[K\x1b[36m\x1b[K:\x1b[m\x1b[K\x1b[32m\x1b[K3"
        f"\x1b[m\x1b[K\x1b[36m\x1b[K:\x1b[m\x1b[KDB_\x1b[01;31m\x1b[KPASSWORD\x1b[m\x1b[K="
        f"\x1b[1m{password.value}\x1b[0m\n"
    )
    return Case(text, [password])


def _processes(f: Fakes) -> Case:
    password, token = f.password(), f.jwt()
    text = f"""$ ps aux
USER         PID %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND
root           1  0.0  0.1   4364  3328 ?        Ss   10:00   0:00 /bin/sh -c ./start.sh
root          14  0.3  1.2 812344 48212 ?        Sl   10:00   0:04 mysqld --user=mysql
root     52  0.0  0.0  10432  3912 ?  S    10:01   0:00 mysql -uroot -p{password.value} -h db
app      77  0.1  0.4 742112 17344 ?  Sl   10:02   0:01 kubectl --token={token.value} get pods
"""
    return Case(text, [password, token])


def _kubeconfig(f: Fakes) -> Case:
    token = f.jwt()
    client_key = Secret(b64(f.chars(B64, 900)), "k8s")
    text = f"""$ cat ~/.kube/config
apiVersion: v1
clusters:
- cluster:
    server: https://10.0.0.1:6443
  name: prod
users:
- name: deployer
  user:
    token: {token.value}
- name: admin
  user:
    client-key-data: {client_key.value}
"""
    return Case(text, [token, client_key])


def _one_secret(make: Callable[[Fakes], Secret], template: str) -> Callable[[Fakes], Case]:
    """A maker of the session ``template`` with a secret of ``make`` where it says
    ``{secret}`` (replaced, not formatted: the sessions have braces of their own)."""

    def case(f: Fakes) -> Case:
        secret = make(f)
        return Case(template.replace("{secret}", secret.value), [secret])

    return case


_decoded_secret = _one_secret(
    Fakes.password,
    "$ kubectl get secret db -o jsonpath='{.data.password}' | base64 -d; echo\n{secret}\n",
)
_mounted_secret = _one_secret(Fakes.password, "$ cat /etc/db-secret/password\n{secret}\n")
_registry_login = _one_secret(
    Fakes.password,
    "$ history | tail -3\n  501  kubectl get pods\n"
    "  502  docker login -u deploy -p {secret} registry.example.com\n"
    "  503  history | tail -3\n",
)
_cookie = _one_secret(
    Fakes.cookie,
    "$ curl -si https://app.internal/login -d @creds.json | head -4\nHTTP/1.1 200 OK\n"
    "set-cookie: session={secret}; Path=/; HttpOnly; Secure\n"
    "content-type: application/json\n\n",
)
# ``base64 -d`` without ``; echo``: the value has no newline, the next prompt follows it.
_decoded_glued = _one_secret(
    Fakes.password, "$ kubectl get secret db -o jsonpath='{.data.password}' | base64 -d\n{secret}"
)
_clone_url = _one_secret(
    Fakes.github,
    "$ git remote -v\norigin\thttps://x-access-token:{secret}@github.com/org/repo (fetch)\n",
)
# Prose: no rule can know this one (counted, to keep the recall honest).
_free_text = _one_secret(
    Fakes.password,
    "$ cat NOTES.md\n# Staging\nAsk ops for access; until rotation the login is admin / {secret}\n",
)


# -- output without a secret ------------------------------------------------------------
BENIGN_ENV = [
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOSTNAME=api-7c5ddbdf54-x2x7k",
    "HOME=/root",
    "KUBERNETES_SERVICE_HOST=10.96.0.1",
    "KUBERNETES_SERVICE_PORT_HTTPS=443",
    "TERM=xterm",
    "PWD=/app",
    "LANG=C.UTF-8",
]


def benign_text(seed: int) -> str:
    """Everyday output that holds no secret: listings, processes, pods, logs, digests."""
    rng = random.Random(seed)
    f = Fakes(rng)
    parts = [
        _ls(f),
        _ps(f),
        _pods(f),
        _describe_pod(f),
        _git_log(f),
        _digests(f),
        _logs(f),
        _manifests(f),
        _misc(f),
        "\n".join(BENIGN_ENV) + "\n",
    ]
    rng.shuffle(parts)
    return "".join(parts)


def _hash(f: Fakes) -> str:
    return f.rng.randbytes(5).hex()[:10]


def _pod_name(f: Fakes, app: str) -> str:
    return f"{app}-{_hash(f)}-{f.chars(string.ascii_lowercase + string.digits, 5)}"


def _ls(f: Fakes) -> str:
    names = ["app.py", "config.json", "requirements.txt", "Dockerfile", ".env.example", "data"]
    names += ["static", "run.sh", "README.md", "node_modules", "package-lock.json", "venv"]
    lines = ["$ ls -la", f"total {f.rng.randrange(8, 400)}"]
    for name in names:
        mode = f.rng.choice(["drwxr-xr-x", "-rw-r--r--", "-rwxr-xr-x"])
        size, day = f.rng.randrange(0, 90000), f.rng.randrange(1, 28)
        lines.append(f"{mode}  1 app  app  {size:>6} Jan {day:>2} 10:{day:02d} {name}")
    return "\n".join(lines) + "\n"


def _ps(f: Fakes) -> str:
    commands = [
        "/usr/local/bin/python3 -m gunicorn app:app --workers 4 --bind 0.0.0.0:8000",
        "/usr/lib/jvm/java-17-openjdk-amd64/bin/java -Xmx512m -Dspring.profiles.active=prod "
        "-jar /app/app.jar",
        "node /app/server.js --port 3000",
        "nginx: worker process",
        "/pause",
        "/coredns -conf /etc/coredns/Corefile",
        "sleep infinity",
    ]
    lines = ["$ ps aux", "USER  PID %CPU %MEM    VSZ   RSS TTY  STAT START   TIME COMMAND"]
    for pid, command in enumerate(commands, start=1):
        vsz, rss = f.rng.randrange(1000, 900000), f.rng.randrange(100, 90000)
        lines.append(
            f"app {pid:>4}  0.{pid}  1.{pid} {vsz:>6} {rss:>5} ?    Ssl  10:00   0:0{pid} {command}"
        )
    return "\n".join(lines) + "\n"


def _pods(f: Fakes) -> str:
    lines = ["$ kubectl get pods -o wide", "NAME  READY  STATUS  RESTARTS  AGE  IP  NODE"]
    for app in ["api", "web", "worker", "coredns", "ingress-nginx-controller", "postgres"]:
        for _ in range(3):
            ip = f"10.244.{f.rng.randrange(0, 4)}.{f.rng.randrange(2, 250)}"
            lines.append(
                f"{_pod_name(f, app)}  1/1  Running  0  {f.rng.randrange(1, 90)}d  {ip}  "
                f"node-{f.rng.randrange(1, 4)}"
            )
    lines += ["$ kubectl get secrets", "NAME              TYPE                 DATA   AGE"]
    lines += [
        "app-credentials   Opaque               3      41d",
        "tls-cert   kubernetes.io/tls   2   12d",
    ]
    return "\n".join(lines) + "\n"


def _describe_pod(f: Fakes) -> str:
    digest = f.rng.randbytes(32).hex()
    container = f.rng.randbytes(32).hex()
    uid = "-".join(f.rng.randbytes(n).hex() for n in (4, 2, 2, 2, 6))
    return f"""$ kubectl describe pod {_pod_name(f, "api")}
Name:             api
Namespace:        prod
Labels:           app=api
                  pod-template-hash={_hash(f)}
Containers:
  api:
    Container ID:   containerd://{container}
    Image:          registry.example.com/team/api:v1.4.2
    Image ID:       registry.example.com/team/api@sha256:{digest}
    Environment:
      DB_PASSWORD:  <set to the key 'password' in secret 'db'>  Optional: false
    Mounts:
      /var/run/secrets/kubernetes.io/serviceaccount from kube-api-access-{_hash(f)[:5]} (ro)
Volumes:
  kube-api-access:
    Type:                    Projected (a volume that contains injected data from multiple sources)
    TokenExpirationSeconds:  3607
    ConfigMapName:           kube-root-ca.crt
Events:
  Normal  Pulled     2m    kubelet  Successfully pulled image "registry.example.com/team/api:v1.4.2"
  Normal  Scheduled  3m    default-scheduler  Successfully assigned prod/api to node-2
  Normal  ScalingReplicaSet  5m  deployment-controller  Scaled up replica set api-{_hash(f)} to 3
metadata uid: {uid}
"""


def _git_log(f: Fakes) -> str:
    lines = ["$ git log -3"]
    for message in ["Fix retry loop in worker", "Bump chart to 1.4.2", "Add readiness probe"]:
        lines += [f"commit {f.rng.randbytes(20).hex()}", "Author: Alice <alice@example.com>"]
        lines += ["Date:   Mon Jan 15 10:00:00 2024 +0000", "", f"    {message}", ""]
    lines.append("$ git log --oneline -3")
    lines += [
        f"{f.rng.randbytes(4).hex()[:7]} Merge pull request #{n} from team/feature"
        for n in range(3)
    ]
    lines.append(f"Merge: {f.rng.randbytes(4).hex()[:7]} {f.rng.randbytes(4).hex()[:7]}")
    lines += ["$ git log -1 --format=%H", f.rng.randbytes(20).hex()]
    lines += ["$ git rev-parse HEAD", f.rng.randbytes(20).hex()]
    return "\n".join(lines) + "\n"


def _digests(f: Fakes) -> str:
    lines = ["$ sha256sum *.tar.gz"]
    lines += [f"{f.rng.randbytes(32).hex()}  release-{n}.tar.gz" for n in range(3)]
    lines += ["$ crictl images --digests", "IMAGE   TAG   DIGEST   IMAGE ID   SIZE"]
    lines += [f"docker.io/library/nginx  1.25  {_hash(f)}  {_hash(f)}  67.3MB"]
    lines += [f"image: docker.io/library/postgres@sha256:{f.rng.randbytes(32).hex()}"]
    lines += ["$ echo hello | base64", b64("hello\n"), "$ echo admin | base64", b64("admin\n")]
    lines += [f'"integrity": "sha512-{base64.b64encode(f.rng.randbytes(64)).decode()}"']
    return "\n".join(lines) + "\n"


def _uuid(f: Fakes) -> str:
    return "-".join(f.rng.randbytes(n).hex() for n in (4, 2, 2, 2, 6))


def _logs(f: Fakes) -> str:
    lines = ["$ kubectl logs deploy/api --tail=8"]
    for _ in range(8):
        status = f.rng.choice([200, 200, 201, 304, 404, 500])
        request = _uuid(f)
        trace = f.rng.randbytes(16).hex()
        lines.append(
            json.dumps(
                {
                    "ts": f"2024-01-15T10:{f.rng.randrange(60):02d}:00Z",
                    "level": "info",
                    "msg": "request finished",
                    "status": status,
                    "request_id": request,
                    "trace_id": trace,
                    "path": f.rng.choice(
                        ["/api/v1/items", "/healthz", "/login", "/api/v1/token/refresh"]
                    ),
                }
            )
        )
        ip = f"10.244.1.{f.rng.randrange(2, 250)}"
        lines.append(
            f'{ip} - - [15/Jan/2024:10:00:00 +0000] "GET /index.html HTTP/1.1" {status} 612 '
            '"-" "kube-probe/1.29"'
        )
    return "\n".join(lines) + "\n"


def _manifests(f: Fakes) -> str:
    return """$ kubectl get deploy api -o yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  template:
    spec:
      containers:
      - env:
        - name: DB_PASSWORD
          valueFrom:
            secretKeyRef:
              key: password
              name: db
        image: registry.example.com/team/api:v1.4.2
      imagePullSecrets:
      - name: registry
      volumes:
      - name: tls
        secret:
          secretName: api-tls
$ kubectl get cm app-config -o yaml
apiVersion: v1
data:
  LOG_LEVEL: debug
  FEATURE_FLAGS: search,export
  config.yaml: |
    server:
      port: 8080
kind: ConfigMap
metadata:
  name: app-config
$ kubectl describe secret db
Name:         db
Type:  Opaque

Data
====
password:  16 bytes
username:  5 bytes
"""


def _misc(f: Fakes) -> str:
    cert = "\n".join(f.chars(B64, 64) for _ in range(6))
    return f"""$ df -h
Filesystem      Size  Used Avail Use% Mounted on
overlay          95G   41G   50G  46% /
$ kubectl top pods
NAME                  CPU(cores)   MEMORY(bytes)
{_pod_name(f, "api")}   12m          148Mi
$ openssl s_client -connect api:443 -showcerts
-----BEGIN CERTIFICATE-----
{cert}
-----END CERTIFICATE-----
$ python -c 'import uuid; print(uuid.uuid4())'
{_uuid(f)}
$ helm list
NAME    NAMESPACE   REVISION   UPDATED                                   STATUS     CHART
api     prod        14         2024-01-15 10:00:00.123456 +0000 UTC      deployed   api-1.4.2
$ java -jar app.jar
Exception in thread "main" java.lang.IllegalStateException: Failed to load ApplicationContext
\tat org.springframework.boot.SpringApplication.run(SpringApplication.java:1306)
\tat com.example.api.ApiApplication.main(ApiApplication.java:10)
Please enter the password for the keystore (or press enter):
"""
