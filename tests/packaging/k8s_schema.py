"""An offline schema check of Kubernetes manifests against the API types of
Debian's python3-kubernetes (the official client's generated models: every
field's JSON name and type, and which fields are required). No cluster, no
network: kubectl's client-side dry run needs an API server for discovery, and
its OpenAPI schema comes from that server too.

validate(doc) returns a list of problems: unknown fields, wrong types (a
string where an integer belongs, a map where a list belongs...), missing
required fields, an apiVersion/kind the client does not know.
"""

import re

import kubernetes.client as kc

_LIST = re.compile(r"^list\[(.*)\]$")
_DICT = re.compile(r"^dict\(([^,]*), (.*)\)$")
# Resource quantities are strings in the client's types, numbers are fine
# in a manifest (cpu: 1).
_QUANTITY_MAPS = {"limits", "requests", "hard", "capacity", "allocatable"}


def model_name(api_version, kind):
    group, _, version = api_version.rpartition("/")
    return version[:1].upper() + version[1:] + kind


def _scalar_ok(value, typ, key):
    if typ == "str":
        return isinstance(value, str) or (key in _QUANTITY_MAPS and isinstance(value, (int, float))
                                          and not isinstance(value, bool))
    if typ == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if typ == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if typ == "bool":
        return isinstance(value, bool)
    if typ in ("datetime", "date"):
        return isinstance(value, str)
    if typ == "object":  # IntOrString, raw extensions
        return True
    return None


def _check(value, typ, path, key, problems):
    m = _LIST.match(typ)
    if m:
        if not isinstance(value, list):
            problems.append("%s: expected a list (%s), got %r" % (path, typ, value))
            return
        for i, v in enumerate(value):
            _check(v, m.group(1), "%s[%d]" % (path, i), key, problems)
        return
    m = _DICT.match(typ)
    if m:
        if not isinstance(value, dict):
            problems.append("%s: expected a map (%s), got %r" % (path, typ, value))
            return
        for k, v in value.items():
            _check(v, m.group(2), "%s.%s" % (path, k), key, problems)
        return
    ok = _scalar_ok(value, typ, key)
    if ok is not None:
        if not ok:
            problems.append("%s: expected %s, got %r" % (path, typ, value))
        return
    cls = getattr(kc, typ, None)
    if cls is None:
        problems.append("%s: type %s unknown to python3-kubernetes" % (path, typ))
        return
    if not isinstance(value, dict):
        problems.append("%s: expected an object (%s), got %r" % (path, typ, value))
        return
    by_json = {j: a for a, j in cls.attribute_map.items()}
    for k, v in value.items():
        attr = by_json.get(k)
        if attr is None:
            problems.append("%s: unknown field %r in %s" % (path, k, typ))
            continue
        if v is None:
            continue
        _check(v, cls.openapi_types[attr], "%s.%s" % (path, k), k, problems)


def validate(doc, where="doc"):
    """Problems (strings) of one manifest; [] when it is valid."""
    if not isinstance(doc, dict):
        return ["%s: not an object" % where]
    api, kind = doc.get("apiVersion"), doc.get("kind")
    if not isinstance(api, str) or not isinstance(kind, str):
        return ["%s: apiVersion and kind are required" % where]
    name = model_name(api, kind)
    if getattr(kc, name, None) is None:
        return ["%s: %s %s unknown to python3-kubernetes" % (where, api, kind)]
    path = "%s(%s %s)" % (where, kind, (doc.get("metadata") or {}).get("name", "?"))
    problems = []
    _check(doc, name, path, None, problems)
    if not problems:
        # The generated constructors refuse a required field left out.
        try:
            kc.ApiClient()._ApiClient__deserialize(doc, name)
        except (ValueError, TypeError) as e:
            problems.append("%s: %s" % (path, e))
    return problems
