"""Hooks of a contacts flow, served as ``contacts.<function>``.

* ``contacts.cleanPage`` (preSavePage of a contacts export): trims and
  lower-cases e-mail addresses, drops records without a valid one and records
  with an id already seen on the page, and reports each dropped record as an
  error so that integrator.io shows it in the flow's dashboard.
* ``contacts.splitNames`` (postMap of a contacts import): splits the mapped
  ``fullName`` into ``firstName``/``lastName`` and fails a record that has no
  e-mail, the target's required field.
* ``contacts.installDefaults`` (an installer step of an integration app):
  checks the settings the user chose and fills in the defaults.

None of them talks to an external system: a plugin of hooks is a module of
functions, nothing more.
"""

import re
from typing import Any

from gateway import hookimpl

#: The plugin contract these hooks are written against (gateway.CONTRACT_VERSION).
WRAPGATE_CONTRACT = 1

#: a practical check, not RFC 5322: something@something.tld, no spaces
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DEFAULTS = {"region": "eu", "pageSize": 100, "syncDeleted": False}
REGIONS = ("eu", "us", "ap")


@hookimpl
def wrapgate_functions():
    return {"cleanPage": "preSavePage", "splitNames": "postMap", "installDefaults": "installer"}


@hookimpl
def wrapgate_preSavePage(data, errors, settings):
    """Keep records with a valid, normalised e-mail, each id once."""
    field = (settings or {}).get("emailField", "email")
    kept, problems, seen = [], list(errors or []), set()
    for record in data:
        email = str(record.get(field) or "").strip().lower()
        if not EMAIL.match(email):
            problems.append(_problem("invalid_email", record, f"no valid e-mail in {field}"))
            continue
        if record.get("id") in seen:
            problems.append(_problem("duplicate_record", record, "already on this page"))
            continue
        seen.add(record.get("id"))
        kept.append({**record, field: email})
    return {"data": kept, "errors": problems}


@hookimpl
def wrapgate_postMap(postMapData):
    """One answer per record: the record with its name split, or its error."""
    answers: list[dict[str, Any]] = []
    for record in postMapData:
        if not record.get("email"):
            answers.append(
                {"errors": [{"code": "missing_email", "message": "email is required by the target"}]}
            )
            continue
        first, _, last = str(record.get("fullName") or "").strip().partition(" ")
        answers.append({"data": {**record, "firstName": first, "lastName": last.strip()}})
    return answers


class InvalidSettings(Exception):
    """The installer step refuses the user's settings (answered 422 with this code)."""

    code = "invalid_settings"


@hookimpl
def wrapgate_installer(function, options):
    """``installDefaults``: the user's settings, checked and completed."""
    chosen = dict(options.get("settings") or {})
    region = chosen.get("region", DEFAULTS["region"])
    if region not in REGIONS:
        raise InvalidSettings(f"region must be one of {', '.join(REGIONS)}, not {region!r}")
    size = chosen.get("pageSize", DEFAULTS["pageSize"])
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 1000:
        raise InvalidSettings("pageSize must be a whole number from 1 to 1000")
    return {"success": True, "settings": {**DEFAULTS, **chosen}}


def _problem(code, record, why):
    return {"code": code, "message": f"record {record.get('id')!r}: {why}"}
