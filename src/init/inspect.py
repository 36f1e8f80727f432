"""What `sockpit init` knows of a Django project, as one JSON object on stdout.

Run by `sockpit init` with the project's own interpreter: `python - PROJECT_DIR`, this
file on stdin. Read-only: it imports the settings and the ASGI application (as `runserver`
would) and runs nothing else: no migrations, no management commands, no writes. When
Django cannot be imported it reads the files as text instead (`"mode": "text"`).

The secret's value is in the answer (`secret.value`) because only the caller knows
whether the user asked to see it; it is never part of a message.
"""

import ast
import contextlib
import importlib
import importlib.util
import io
import json
import os
import re
import sys

SETTINGS_RE = re.compile(
    r"""os\.environ\.setdefault\(\s*["']DJANGO_SETTINGS_MODULE["']\s*,\s*["']([\w.]+)["']"""
)
ENV_CALLS = {"get", "getenv", "str", "env", "config"}


def main():
    project = os.path.abspath(sys.argv[1])
    answer = {"python": sys.executable, "python_version": sys.version.split()[0], "notes": []}
    try:
        inspect(project, answer)
    except Refusal as r:
        answer = {"error": r.kind, "message": str(r), "env_var": r.env_var}
    # Settings may print; only this line is the answer.
    sys.__stdout__.write("\n" + json.dumps(answer) + "\n")


class Refusal(Exception):
    def __init__(self, kind, message, env_var=None):
        super().__init__(message)
        self.kind = kind
        self.env_var = env_var


def inspect(project, answer):
    module, source = settings_module(project)
    answer["settings_module"] = module
    answer["settings_source"] = source
    settings_file = module_file(project, module)
    answer["settings_file"] = rel(project, settings_file) if settings_file else None
    sources = settings_sources(project, settings_file)
    answer["servers"] = {name: installed_version(name) for name in ("daphne", "uvicorn")}
    sys.path.insert(0, project)
    os.chdir(project)
    django = try_import("django")
    if isinstance(django, str):
        answer["mode"] = "text"
        answer["why_text"] = django
        from_text(project, sources, answer)
    else:
        answer["mode"] = "django"
        answer["django_version"] = django.get_version()
        from_django(project, module, sources, answer)


def settings_module(project):
    """DJANGO_SETTINGS_MODULE: the environment's, else what manage.py or asgi.py sets."""
    if os.environ.get("DJANGO_SETTINGS_MODULE"):
        return os.environ["DJANGO_SETTINGS_MODULE"], "the environment (DJANGO_SETTINGS_MODULE)"
    candidates = ["manage.py"] + sorted(
        os.path.join(d, "asgi.py")
        for d in os.listdir(project)
        if os.path.isfile(os.path.join(project, d, "asgi.py"))
    )
    for name in candidates:
        m = SETTINGS_RE.search(read(os.path.join(project, name)) or "")
        if m:
            return m.group(1), name
    raise Refusal(
        "settings",
        "no DJANGO_SETTINGS_MODULE: manage.py does not set it (os.environ.setdefault("
        "\"DJANGO_SETTINGS_MODULE\", …)); set it in the environment and run again",
    )


def module_file(project, module):
    base = os.path.join(project, *module.split("."))
    for path in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(path):
            return path
    return None


def settings_sources(project, settings_file):
    """The settings file and what it star-imports from beside it (settings/base.py …)."""
    found = []
    todo = [settings_file] if settings_file else []
    while todo and len(found) < 10:
        path = todo.pop(0)
        tree = parse(path)
        if tree is None:
            continue
        found.append((path, tree))
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.level and node.module:
                nxt = os.path.join(os.path.dirname(path), *node.module.split(".")) + ".py"
                if os.path.isfile(nxt) and nxt not in [p for p, _ in found]:
                    todo.append(nxt)
    return found


def from_django(project, module, sources, answer):
    os.environ["DJANGO_SETTINGS_MODULE"] = module
    import django
    from django.conf import settings

    secret_origin = env_origin(sources, "SECRET_KEY")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            django.setup()
            secret_key = settings.SECRET_KEY
    except Exception as e:  # noqa: BLE001 - whatever the settings raise is the answer
        refuse_settings(e, secret_origin, module)
    answer["debug"] = bool(getattr(settings, "DEBUG", False))
    answer["allowed_hosts"] = [str(h) for h in getattr(settings, "ALLOWED_HOSTS", [])]
    answer["cors_origins"] = [
        str(o)
        for name in ("CORS_ALLOWED_ORIGINS", "CORS_ORIGIN_WHITELIST", "CSRF_TRUSTED_ORIGINS")
        for o in getattr(settings, name, None) or []
    ]
    answer["cors_allow_all"] = bool(
        getattr(settings, "CORS_ALLOW_ALL_ORIGINS", False) or getattr(settings, "CORS_ORIGIN_ALLOW_ALL", False)
    )
    answer["installed_apps"] = list(settings.INSTALLED_APPS)
    answer["channel_layer"] = channel_layer(getattr(settings, "CHANNEL_LAYERS", None))
    answer["asgi_application"] = getattr(settings, "ASGI_APPLICATION", None)

    jwt = simplejwt(settings)
    key_name = "SECRET_KEY"
    key_value = secret_key
    if jwt and jwt.pop("signing_key_is_own"):
        key_name = "SIMPLE_JWT['SIGNING_KEY']"
        key_value = jwt.pop("signing_key")
        secret_origin = env_origin(sources, "SIGNING_KEY")
    elif jwt:
        jwt.pop("signing_key")
    answer["jwt"] = jwt
    answer["secret"] = secret_answer(project, key_name, key_value, secret_origin, True)

    answer["routes"], answer["routes_source"] = asgi_routes(answer["asgi_application"], answer)
    if answer["routes"] is None:
        answer["routes"] = text_routes(project)
        answer["routes_source"] = "routing.py files, read as text"


def refuse_settings(e, secret_origin, module):
    var = secret_origin and secret_origin["env"]
    # Blame the variable only for what its absence causes: a KeyError naming it, or
    # Django refusing an empty SECRET_KEY.
    if var and not os.environ.get(var) and (var in str(e) or "SECRET_KEY" in str(e)):
        raise Refusal(
            "secret_env_missing",
            f"SECRET_KEY is read from the environment variable {var} "
            f"({secret_origin['where']}), which is not set here; importing {module} failed "
            f"with {type(e).__name__}: {short(e)}. Set {var} as the project's server sees it "
            "and run sockpit init again",
            env_var=var,
        )
    tb = e.__traceback__
    where = ""
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.startswith(os.getcwd()):
            where = f" ({rel(os.getcwd(), tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno})"
        tb = tb.tb_next
    raise Refusal(
        "settings",
        f"importing the settings {module} raised {type(e).__name__}: {short(e)}{where}",
    )


def short(e):
    text = str(e).strip().splitlines()
    return (text[0] if text else "")[:300]


def simplejwt(settings):
    """SimpleJWT's effective settings (its defaults applied), or None without it."""
    if not getattr(settings, "SIMPLE_JWT", None) and "rest_framework_simplejwt" not in "".join(
        settings.INSTALLED_APPS
    ) and importlib.util.find_spec("rest_framework_simplejwt") is None:
        return None
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            from rest_framework_simplejwt.settings import api_settings as s
        token_classes = [c.split(".")[-1] if isinstance(c, str) else c.__name__ for c in s.AUTH_TOKEN_CLASSES]
        own = "SIGNING_KEY" in (getattr(settings, "SIMPLE_JWT", None) or {})
        return {
            "algorithm": s.ALGORITHM,
            "user_id_claim": s.USER_ID_CLAIM,
            "token_type_claim": s.TOKEN_TYPE_CLAIM,
            "token_classes": token_classes,
            "audience": s.AUDIENCE,
            "issuer": s.ISSUER,
            "leeway": int(s.LEEWAY.total_seconds() if hasattr(s.LEEWAY, "total_seconds") else s.LEEWAY or 0),
            "has_verifying_key": bool(s.VERIFYING_KEY),
            "signing_key_is_own": own and s.SIGNING_KEY != settings.SECRET_KEY,
            "signing_key": s.SIGNING_KEY,
        }
    except Exception:  # noqa: BLE001 - SIMPLE_JWT unreadable: say so, keep the rest
        return None


def secret_answer(project, name, value, origin, imported):
    """Where the signing key comes from: an environment variable, or written in a file."""
    answer = {"name": name, "value": value, "env": None, "env_set": False, "where": None}
    if origin:
        answer["where"] = origin["where"]
        if origin["env"]:
            answer["env"] = origin["env"]
            answer["env_set"] = bool(os.environ.get(origin["env"]))
    if imported and not answer["env"]:
        # Settings that read the environment some other way (django-environ's env.str …).
        for var, v in sorted(os.environ.items()):
            if v and v == value and ("KEY" in var or "SECRET" in var):
                answer["env"], answer["env_set"] = var, True
                break
    return answer


def env_origin(sources, name):
    """Where `NAME = …` (or `"NAME": …` in a dict) is assigned, and the env var it reads."""
    for path, tree in sources:
        for node in ast.walk(tree):
            value = None
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets
            ):
                value = node.value
            elif isinstance(node, ast.Dict):
                for k, v in zip(node.keys, node.values):
                    if isinstance(k, ast.Constant) and k.value == name:
                        value = v
            if value is not None:
                where = f"{rel(os.getcwd(), path)}:{value.lineno}"
                return {"env": env_var_in(value), "where": where}
    return None


def env_var_in(node):
    """`os.environ["X"]`, `os.environ.get("X", …)`, `os.getenv("X")`, `env("X")`,
    `config("X")`: the variable's name."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Subscript) and "environ" in ast.unparse(sub.value):
            key = sub.slice
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                return key.value
        if isinstance(sub, ast.Call) and sub.args:
            fn = sub.func
            fname = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            first = sub.args[0]
            if fname in ENV_CALLS and isinstance(first, ast.Constant) and isinstance(first.value, str):
                if fname != "get" or "environ" in ast.unparse(fn):
                    return first.value
    return None


def channel_layer(layers):
    default = (layers or {}).get("default")
    if not default:
        return None
    config = default.get("CONFIG") or {}
    redis = None
    for host in config.get("hosts") or []:
        if isinstance(host, str):
            redis = host
        elif isinstance(host, (tuple, list)) and len(host) == 2:
            redis = f"redis://{host[0]}:{host[1]}"
        elif isinstance(host, dict):
            redis = host.get("address") or (
                f"redis://{host.get('host', '127.0.0.1')}:{host.get('port', 6379)}/{host.get('db', 0)}"
            )
        break
    return {"backend": str(default.get("BACKEND", "")), "redis": redis, "prefix": config.get("prefix", "asgi")}


def asgi_routes(asgi_path, answer):
    """The `websocket` routes of the ASGI application, walked through its middleware."""
    if not asgi_path or "." not in asgi_path:
        return None, None
    module_name, attr = asgi_path.rsplit(".", 1)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            app = getattr(importlib.import_module(module_name), attr)
    except Exception as e:  # noqa: BLE001
        answer["notes"].append(f"importing {asgi_path} raised {type(e).__name__}: {short(e)}; routes read as text")
        return None, None
    mapping = getattr(app, "application_mapping", None)
    if not isinstance(mapping, dict) or "websocket" not in mapping:
        return [], f"{asgi_path} (no \"websocket\" protocol)"
    routes = []
    walk(mapping["websocket"], "/", routes, answer, 0)
    return routes, asgi_path


def walk(app, prefix, routes, answer, depth):
    for _ in range(20):
        if type(app).__name__ == "URLRouter" or depth > 10:
            break
        inner = next(
            (getattr(app, a) for a in ("inner", "application", "app") if getattr(app, a, None) is not None),
            None,
        )
        if inner is None:
            return
        app = inner
    for route in getattr(app, "routes", []):
        path, params, exact = route_path(route.pattern)
        callback = getattr(route, "callback", None)
        if type(callback).__name__ == "URLRouter":
            walk(callback, prefix + path, routes, answer, depth + 1)
            continue
        consumer = getattr(callback, "consumer_class", callback)
        name = f"{getattr(consumer, '__module__', '?')}.{getattr(consumer, '__qualname__', type(consumer).__name__)}"
        routes.append(
            {
                "path": prefix + path,
                "params": params,
                "exact": exact,
                "consumer": name,
                "groups": consumer_groups(consumer),
            }
        )


def route_path(pattern):
    """A Django route as a Sockpit path: `<str:room>` and `(?P<room>…)` become `{room}`."""
    route = getattr(pattern, "_route", None)
    if route is not None:
        return route_text(str(route))
    return regex_text(str(getattr(pattern, "_regex", pattern)))


def route_text(text):
    params = []
    exact = True

    def conv(m):
        nonlocal exact
        conv_name, name = (m.group(1) or "str"), m.group(2)
        if conv_name == "path":
            exact = False
        params.append(name)
        return "{" + name + "}"

    return re.sub(r"<(?:(\w+):)?(\w+)>", conv, text), params, exact


def regex_text(regex):
    params = []
    text = regex.lstrip("^").rstrip("$")
    text = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: params.append(m.group(1)) or "{" + m.group(1) + "}", text)
    text = text.replace("\\/", "/").replace("\\.", ".").replace("\\-", "-")
    exact = not re.search(r"[\\()\[\]*+?|^$]", text)
    return text, params, exact


def consumer_groups(consumer):
    """Group names the consumer joins, where written as plain strings."""
    try:
        import inspect as pyinspect

        source = pyinspect.getsource(consumer)
    except Exception:  # noqa: BLE001
        return []
    found = re.findall(r"""group_add\(\s*["']([\w.\-]+)["']""", source)
    found += re.findall(r"""groups\s*=\s*\[\s*["']([\w.\-]+)["']""", source)
    # group_add(GROUP, …) with GROUP a string constant of the consumer's module.
    module = sys.modules.get(getattr(consumer, "__module__", ""), None)
    for name in re.findall(r"group_add\(\s*([A-Za-z_]\w*)\s*,", source):
        value = getattr(module, name, None)
        if isinstance(value, str) and re.fullmatch(r"[\w.\-]+", value):
            found.append(value)
    return sorted(set(found))


def from_text(project, sources, answer):
    values = {}
    for path, tree in reversed(sources):
        for node in module_level(tree.body):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        values[target.id] = node.value
    lit = lambda name, default=None: literal(values.get(name), default)  # noqa: E731
    answer["debug"] = bool(lit("DEBUG", False))
    answer["allowed_hosts"] = [h for h in lit("ALLOWED_HOSTS", []) or [] if isinstance(h, str)]
    answer["cors_origins"] = [
        o
        for name in ("CORS_ALLOWED_ORIGINS", "CORS_ORIGIN_WHITELIST", "CSRF_TRUSTED_ORIGINS")
        for o in lit(name, []) or []
        if isinstance(o, str)
    ]
    answer["cors_allow_all"] = bool(lit("CORS_ALLOW_ALL_ORIGINS", False) or lit("CORS_ORIGIN_ALLOW_ALL", False))
    answer["installed_apps"] = [a for a in lit("INSTALLED_APPS", []) or [] if isinstance(a, str)]
    layers = dict_literal(values.get("CHANNEL_LAYERS"))
    if layers and isinstance(layers.get("default"), dict):
        answer["channel_layer"] = channel_layer(layers)
    else:
        answer["channel_layer"] = None
    answer["asgi_application"] = lit("ASGI_APPLICATION")
    jwt_dict = dict_literal(values.get("SIMPLE_JWT")) or {}
    answer["jwt"] = (
        {
            "algorithm": jwt_dict.get("ALGORITHM", "HS256"),
            "user_id_claim": jwt_dict.get("USER_ID_CLAIM", "user_id"),
            "token_type_claim": jwt_dict.get("TOKEN_TYPE_CLAIM", "token_type"),
            "token_classes": ["AccessToken"],
            "audience": jwt_dict.get("AUDIENCE"),
            "issuer": jwt_dict.get("ISSUER"),
            "leeway": jwt_dict.get("LEEWAY", 0) if isinstance(jwt_dict.get("LEEWAY", 0), int) else 0,
            "has_verifying_key": bool(jwt_dict.get("VERIFYING_KEY")),
        }
        if "SIMPLE_JWT" in values or "rest_framework_simplejwt" in answer["installed_apps"]
        else None
    )
    name, node, key = "SECRET_KEY", values.get("SECRET_KEY"), "SECRET_KEY"
    if "SIGNING_KEY" in jwt_dict or has_dict_key(values.get("SIMPLE_JWT"), "SIGNING_KEY"):
        name, key = "SIMPLE_JWT['SIGNING_KEY']", "SIGNING_KEY"
        node = dict_value(values.get("SIMPLE_JWT"), "SIGNING_KEY")
    origin = env_origin(sources, key)
    value = default_of(node)
    if origin and origin["env"] and os.environ.get(origin["env"]):
        value = os.environ[origin["env"]]
    elif origin and origin["env"] and value is None:
        raise Refusal(
            "secret_env_missing",
            f"{name} is read from the environment variable {origin['env']} ({origin['where']}), "
            f"which is not set here and has no default. Set {origin['env']} as the project's "
            "server sees it and run sockpit init again",
            env_var=origin["env"],
        )
    answer["secret"] = secret_answer(project, name, value, origin, False)
    answer["routes"] = text_routes(project)
    answer["routes_source"] = "routing.py files, read as text"


def module_level(body):
    """Statements run at import, `if`/`try` branches included (the last one wins)."""
    for node in body:
        yield node
        for branch in ("body", "orelse", "finalbody"):
            if isinstance(node, (ast.If, ast.Try)):
                yield from module_level(getattr(node, branch, []))


def literal(node, default=None):
    if node is None:
        return default
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return default


def dict_literal(node):
    """A dict's literal entries (entries such as `timedelta(…)` skipped)."""
    if not isinstance(node, ast.Dict):
        return None
    out = {}
    for k, v in zip(node.keys, node.values):
        if isinstance(k, ast.Constant):
            if isinstance(v, ast.Dict):
                out[k.value] = dict_literal(v)
                continue
            try:
                out[k.value] = ast.literal_eval(v)
            except (ValueError, SyntaxError, TypeError):
                pass
    return out


def has_dict_key(node, key):
    return isinstance(node, ast.Dict) and any(isinstance(k, ast.Constant) and k.value == key for k in node.keys)


def dict_value(node, key):
    for k, v in zip(node.keys, node.values):
        if isinstance(k, ast.Constant) and k.value == key:
            return v
    return None


def default_of(node):
    """A literal string, or the literal default of `os.environ.get("X", "default")`."""
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Call):
        for arg in node.args[1:2] + [k.value for k in node.keywords if k.arg == "default"]:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                return arg.value
    return None


def text_routes(project):
    """`path(…)`/`re_path(…)` in every `websocket_urlpatterns` list under the project."""
    routes = []
    for root, dirs, files in os.walk(project):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("node_modules", "venv", "env", "__pycache__")]
        if "site-packages" in root:
            dirs[:] = []
            continue
        for f in files:
            if f not in ("routing.py", "asgi.py", "urls.py"):
                continue
            tree = parse(os.path.join(root, f))
            for node in ast.walk(tree) if tree else []:
                if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "websocket_urlpatterns" for t in node.targets
                ):
                    for call in ast.walk(node.value):
                        if (
                            isinstance(call, ast.Call)
                            and getattr(call.func, "id", getattr(call.func, "attr", "")) in ("path", "re_path", "url")
                            and call.args
                            and isinstance(call.args[0], ast.Constant)
                        ):
                            raw = call.args[0].value
                            regex = getattr(call.func, "id", getattr(call.func, "attr", "")) != "path"
                            path, params, exact = regex_text(raw) if regex else route_text(raw)
                            consumer = ast.unparse(call.args[1]) if len(call.args) > 1 else "?"
                            routes.append(
                                {
                                    "path": "/" + path.lstrip("/"),
                                    "params": params,
                                    "exact": exact,
                                    "consumer": f"{consumer} ({rel(project, os.path.join(root, f))})",
                                    "groups": [],
                                }
                            )
    return routes


def try_import(name):
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return importlib.import_module(name)
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {short(e)}"


def installed_version(name):
    if importlib.util.find_spec(name) is None:
        return None
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # noqa: BLE001
        return "?"


def parse(path):
    text = read(path)
    try:
        return ast.parse(text, path) if text is not None else None
    except SyntaxError:
        return None


def read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def rel(base, path):
    """`path` relative to `base` when inside it, else as it is."""
    r = os.path.relpath(path, base)
    return path if r.startswith("..") else r


if __name__ == "__main__":
    main()
