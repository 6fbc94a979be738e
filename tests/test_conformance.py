"""Side by side with the reference stack: the same requests, the same answers.

The peer (../shared/peer) is a stand-in of integrator.io's Node Server stack
built from its published core; it is installed with npm and run on a loopback
port by this module's fixture, serving ``tests/peer/reference.js`` (every kind
of function, plus the stand-in's own bench wrappers). wrapgate serves the
plugins that do the same in Python (``wrapgate_testkit.reference`` as ``ref``
and the bench connector), with the reference's bare function names mapped to
theirs as a user migrating from a Node stack would (``[aliases]``).

``CASES`` go to both; status, WWW-Authenticate and the body must match. They
include, translated into data, every request of the reference's own test
suites (express-integrator-extension and integrator-extension ``test/*.js``)
that a Server stack answers over HTTP, for every ``type``. ``DIFFERENT`` are
the requests where wrapgate answers otherwise on purpose (docs/protocol.md,
"Deliberate differences"): both answers are asserted, so that neither side
drifts unnoticed.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
from support import ROOT, TESTKIT, Gunicorn, free_port, wait_until

from wrapgate_testkit.reference import FUNCTIONS

# ../shared beside the checkout (the layout CI uses); WRAPGATE_SHARED_DIR for a checkout elsewhere.
PEER = Path(os.environ.get("WRAPGATE_SHARED_DIR") or ROOT.parent / "shared") / "peer"
MODULE = ROOT / "tests" / "peer" / "reference.js"
TOKEN = "conformance-token"
BEARER = "ott873f2beed978433997c42b4e5af05d9b"
CONNECTOR_ID = "9ce44f88a25272b6d9cbb430ebbcfcf1"
CONNECTION = {
    "_id": "64b000000000000000000003",
    "type": "wrapper",
    "wrapper": {"unencrypted": {"baseUrl": "https://api.example.invalid"}, "encrypted": {}},
}
BENCH_FUNCTIONS = ("ping", "exportPage", "importEcho")


@pytest.fixture(scope="module")
def peer(tmp_path_factory):
    for tool in ("node", "npm"):
        assert shutil.which(tool), f"{tool} is not installed; scripts/test installs Node.js"
    assert PEER.is_dir(), f"no reference stand-in at {PEER}"
    folder = tmp_path_factory.mktemp("peer")
    shutil.copytree(PEER, folder, dirs_exist_ok=True)
    shutil.copy(MODULE, folder / "reference.js")
    subprocess.run(
        ["npm", "ci", "--silent", "--no-audit", "--no-fund"],
        cwd=folder,
        check=True,
        capture_output=True,
        timeout=300,
    )
    port = free_port()
    proc = subprocess.Popen(
        ["node", "server.js"],
        cwd=folder,
        env=dict(os.environ, PORT=str(port), TOKEN=TOKEN, MODULE="reference.js"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _up(url), 30, what="the reference stand-in")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def ours(testkit_site, tmp_path_factory):
    folder = tmp_path_factory.mktemp("conformance")
    config = folder / "gateway.toml"
    # The peer's bare function names, mapped to wrapgate's wire names.
    aliases = {name: f"bench.{name}" for name in BENCH_FUNCTIONS}
    aliases.update({name: f"ref.{name}" for name in FUNCTIONS})
    config.write_text("[aliases]\n" + "".join(f'{k} = "{v}"\n' for k, v in aliases.items()))
    bench = ROOT / "bench"
    site = folder / "site"
    info = site / "wrapgate_bench-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: wrapgate-bench\nVersion: 0\n")
    (info / "entry_points.txt").write_text("[wrapgate]\nbench = wrapgate_bench\n")
    server = Gunicorn(
        testkit_site,
        folder,
        workers=1,
        env={
            "WRAPGATE_CONFIG": str(config),
            "WRAPGATE_SYSTEM_TOKEN": TOKEN,
            "WRAPGATE_PLUGINS": "bench,ref",
            "PYTHONPATH": os.pathsep.join(map(str, (site, bench, testkit_site, TESTKIT))),
        },
    )
    with server:
        yield server.url


def _up(url):
    try:
        return requests.get(url + "/", timeout=1).ok
    except requests.RequestException:
        return False


def options(**extra):
    return {"connection": CONNECTION, "_integrationId": "64b000000000000000000001", **extra}


def hook_options(**extra):
    return {"key1": ["abc"], "key2": {"k": "v"}, "bearerToken": BEARER, "_importId": "_importId", **extra}


def app_options(**extra):
    return {"key": "value", "bearerToken": BEARER, "_integrationId": "_integrationId", **extra}


def diy(type_, function, opts, **extra):
    return {"diy": True, "type": type_, "function": function, "options": opts, **extra}


def app(type_, function, opts, **extra):
    # An integration app's call; neither stack serves this _connectorId (the
    # stand-in serves a DIY module only), so both refuse it alike.
    return {
        "diy": False,
        "_connectorId": CONNECTOR_ID,
        "type": type_,
        "function": function,
        "options": opts,
        **extra,
    }


def records(n):
    return [{"id": i, "name": f"r{i}"} for i in range(n)]


CASES = {
    # -- wrappers (the stand-in's bench wrappers; bench connector here) --------
    "ping": diy("wrapper", "ping", options()),
    "export page": diy("wrapper", "exportPage", options(configuration={"records": 7})),
    "import echo": diy("wrapper", "importEcho", options(postMapData=[{"a": 1}, {"b": 2}, {"c": 3}])),
    "response too large": diy(
        "wrapper", "exportPage", options(configuration={"records": 20}), maxResponseSize=1000
    ),
    "limit as a numeric string": diy(
        "wrapper", "exportPage", options(configuration={"records": 10}), maxResponseSize="900"
    ),
    # -- the reference's request checks -----------------------------------------
    "empty body": {},
    "no diy": {"function": "ping", "options": options()},
    "connector id not served": {"_connectorId": "nope", "function": "ping", "options": options()},
    "function missing": {"diy": True, "options": options()},
    "function empty": {"diy": True, "function": "", "options": options()},
    "function not a string": {"diy": True, "function": 42, "options": options()},
    "options missing": {"diy": True, "function": "ping"},
    "options null": {"diy": True, "function": "ping", "options": None},
    "all three, in order": {"_connectorId": "x", "function": ["ping"]},
    "unknown function": diy("wrapper", "nothingHere", options()),
    "wrapper called as a hook": diy("hook", "ping", options()),
    "hook called as a wrapper": diy("wrapper", "doSomething", hook_options()),
    "installer step called as a setting": diy("setting", "runInstallerSuccessStep", app_options()),
    "unknown group": diy("x", "ping", options()),
    "unknown group, a number": diy(5, "ping", options()),
    "unknown group, true": diy(True, "ping", options()),
    "unknown group, an array": diy([], "ping", options()),
    "type empty: flat": diy("", "doSomething", hook_options()),
    "type null: flat": diy(None, "myUtility", app_options()),
    # -- express-integrator-extension test/test.hooks.js -----------------------
    "hooks: doSomething": diy("hook", "doSomething", hook_options(), maxResponseSize=2000),
    "hooks: doSomethingError": diy("hook", "doSomethingError", hook_options(), maxResponseSize=2000),
    # -- test/test.installer.js (as DIY, and as the suite sends it) ------------
    "installer: success step": diy("installer", "runInstallerSuccessStep", app_options(key1="value1")),
    "installer: connectorInstallerFunction": diy("installer", "connectorInstallerFunction", app_options()),
    "installer: error step": diy("installer", "runInstallerErrorStep", app_options()),
    "installer: function as an array": diy(
        "installer", ["installer", "runInstallerSuccessStep"], app_options()
    ),
    "installer: postBody instead of options": {
        "diy": True,
        "type": "installer",
        "function": "runInstallerSuccessStep",
        "postBody": app_options(),
    },
    "installer: integration app": app("installer", "runInstallerSuccessStep", app_options()),
    "uninstaller: success step": diy("uninstaller", "runUninstallerSuccessStep", app_options()),
    "uninstaller: connectorUninstallerFunction": diy(
        "uninstaller", "connectorUninstallerFunction", app_options()
    ),
    "uninstaller: error step": diy("uninstaller", "runUninstallerErrorStep", app_options()),
    # -- test/test.settings.js ---------------------------------------------------
    "settings: persistSettings error": diy("setting", "persistSettings", app_options(error=True)),
    "settings: persistSettings": diy(
        "setting", "persistSettings", app_options(pending={"fieldOne": "oldValue", "fieldTwo": "newValue"})
    ),
    "settings: refreshMetadata": diy("setting", "refreshMetadata", app_options()),
    "settings: function as an array": diy("setting", ["setting", "persistSettings"], app_options()),
    "settings: postBody instead of options": {
        "diy": True,
        "type": "setting",
        "function": "persistSettings",
        "postBody": app_options(),
    },
    "settings: integration app": app("setting", "persistSettings", app_options()),
    "settings: group's own name": diy("settings", "refreshMetadata", app_options()),
    # -- test/test.utilities.js --------------------------------------------------
    "utilities: error": diy("utility", "myUtility", app_options(error=True)),
    "utilities: myUtility": diy("utility", "myUtility", app_options(a="b")),
    "utilities: group's own name": diy("utilities", "myUtility", app_options()),
    "utilities: integration app": app("utility", "myUtility", app_options()),
    # -- test/test.wrappers.js ---------------------------------------------------
    "wrappers: pingError": diy("wrapper", "pingError", hook_options(), maxResponsSize=2000),
    "wrappers: importOptions with records": diy(
        "wrapper", "importOptions", hook_options(postMapData=[{"a": 1}]), maxResponseSize=2000
    ),
    "wrappers: function as an array": diy("wrapper", ["wrapper", "importOptions"], hook_options()),
    "wrappers: postBody instead of options": {
        "diy": True,
        "type": "wrapper",
        "function": "importOptions",
        "postBody": hook_options(),
    },
    "wrappers: group's own name": diy("wrappers", "pingError", hook_options()),
    # -- test/test.routes.js and integrator-extension test/test.callFunction.js -
    "routes: no function": {"diy": True, "type": "hook", "options": hook_options()},
    "routes: no options": {"diy": True, "type": "hook", "function": "doSomething"},
    "routes: neither diy nor _connectorId": {
        "type": "hook",
        "function": "doSomething",
        "options": hook_options(),
    },
    "routes: connectorId misspelled": {
        "type": "installer",
        "diy": False,
        "connectorId": "12ege39f7a016v72a8b9c79q",
        "function": "doSomething",
        "options": hook_options(),
    },
    "routes: response over maxResponseSize": diy(
        "hook", "echoResponse", {"resp": ["abc", "abc"], "bearerToken": BEARER}, maxResponseSize=2
    ),
    "routes: response not serialisable": diy(
        "hook", "respondWithNonSearializableObject", hook_options(), maxResponseSize=2000
    ),
    "routes: request over 100 kB": diy(
        "hook", "echoResponse", {"key1": ["a" * 4_000_001], "resp": {"ok": 1}}, maxResponseSize=2000
    ),
    "callFunction: export dates passed back": diy(
        "hook",
        "stringifyDateObject",
        hook_options(
            lastExportDateTime="2019-01-01T00:00:00.000Z", currentExportDateTime="2020-01-01T00:00:00.000Z"
        ),
        maxResponseSize=2000,
    ),
    "callFunction flat: doSomething": diy(None, "doSomething", hook_options()),
    "callFunction flat: no function": {"diy": True, "options": hook_options()},
    "callFunction flat: response over maxResponseSize": {
        "diy": True,
        "function": "echoResponse",
        "maxResponseSize": 2,
        "options": {"resp": ["abc", "abc"]},
    },
    "callFunction flat: installer step": {
        "diy": True,
        "function": "runInstallerSuccessStep",
        "options": app_options(),
    },
    "callFunction flat: wrapper": {"diy": True, "function": "pingError", "options": hook_options()},
    # -- answers of every JSON type ---------------------------------------------
    **{
        f"answer {label}": diy("hook", "echoResponse", {"resp": value})
        for label, value in [
            ("null", None),
            ("false", False),
            ("0", 0),
            ("a string", "text"),
            ("an empty object", {}),
            ("an empty array", []),
            ("non-ASCII", {"name": "Zoë ☃ 😀"}),
        ]
    },
    # -- errors with a code, a name, a class ------------------------------------
    **{
        f"error {how}": diy("hook", "fail", {"error": how})
        for how in ("coded", "named", "type", "empty", "unknown")
    },
    # -- maxResponseSize in UTF-16 code units, as JavaScript counts --------------
    # "\"éééé\"" is 6 units (10 bytes); "\"😀😀\"" is 6 units (10 bytes).
    "size: accented, at the limit": diy("hook", "echoResponse", {"resp": "éééé"}, maxResponseSize=6),
    "size: accented, one over": diy("hook", "echoResponse", {"resp": "ééééé"}, maxResponseSize=6),
    "size: emoji, at the limit": diy("hook", "echoResponse", {"resp": "😀😀"}, maxResponseSize=6),
    "size: emoji, one over": diy("hook", "echoResponse", {"resp": "😀😀"}, maxResponseSize=5),
    "size: a page the reference takes": diy(
        "hook",
        "echoResponse",
        {"resp": [{"note": "façade " * 40} for _ in range(50)]},
        maxResponseSize=15_000,
    ),
    "size: numeric string at the limit": diy("hook", "echoResponse", {"resp": "éééé"}, maxResponseSize="6"),
    # -- flow hooks of each kind, well-formed answers ---------------------------
    "preSavePage": diy("hook", "savePage", {"data": records(3), "errors": [], "_exportId": "e1"}),
    "preMap": diy("hook", "mapBefore", {"data": records(2), "_importId": "i1"}),
    "postMap": diy("hook", "mapAfter", {"preMapData": records(2), "postMapData": records(2)}),
    "postSubmit": diy(
        "hook",
        "afterSubmit",
        {
            "postMapData": records(2),
            "responseData": [{"statusCode": 200, "id": "1"}, {"statusCode": 200, "id": "2"}],
        },
    ),
    "postResponseMap": diy("hook", "afterResponseMap", {"postResponseMapData": records(2)}),
    "postAggregate": diy("hook", "afterAggregate", {"postAggregateData": {"success": True}}),
    "postAggregate flat": {"diy": True, "function": "afterAggregate", "options": {"postAggregateData": {}}},
}

# Not JSON: neither stack reads the body (a token or a field in it is not seen).
NOT_JSON = {
    "text/plain body, token in the header": ("text/plain", True),
    "form body, token in the header": ("application/x-www-form-urlencoded", True),
    "text/plain body, token in the body": ("text/plain", False),
}

# Where wrapgate answers otherwise on purpose: name -> (request, reference's answer, wrapgate's).
DIFFERENT = {
    # The reference passes an import without records to the function; integrator.io
    # always sends postMapData, and an import cannot answer one entry per record without it.
    "wrappers: importOptions without records": (
        diy("wrapper", "importOptions", hook_options(), maxResponseSize=2000),
        (200, [{"statusCode": 200, "id": hook_options()}]),
        (
            422,
            {
                "errors": [
                    {"code": "invalid_field", "message": "options.postMapData must be an array of records."}
                ]
            },
        ),
    ),
    # A function that returns nothing: the reference sends an empty body (not JSON)
    # with a JSON content type; wrapgate sends JSON null.
    "answer nothing": (
        diy("hook", "echoResponse", {"key1": ["abc"]}),
        (200, None),
        (200, "null"),
    ),
    # The call's bearerToken in an error message: masked by wrapgate.
    "error with a secret": (
        diy("hook", "fail", {"error": "secret", "bearerToken": BEARER}),
        (422, {"errors": [{"code": "Error", "message": f"token {BEARER} was refused"}]}),
        (422, {"errors": [{"code": "Error", "message": "token ******** was refused"}]}),
    ),
    # Hook answers integrator.io would misread: passed on by the reference, refused by wrapgate.
    "preMap answer of the wrong length": (
        diy("hook", "mapBefore", {"data": records(3), "resp": [{"data": {}}]}),
        (200, [{"data": {}}]),
        (
            422,
            {
                "errors": [
                    {
                        "code": "invalid_extension_response",
                        "message": "ref.mapBefore (preMap) returned 1 results for 3 records of data; "
                        "it must return exactly one per record.",
                    }
                ]
            },
        ),
    ),
    "preSavePage answer without data": (
        diy("hook", "savePage", {"data": records(1), "resp": {"records": []}}),
        (200, {"records": []}),
        (
            422,
            {
                "errors": [
                    {
                        "code": "invalid_extension_response",
                        "message": "ref.savePage (preSavePage) must return an object with data as an array of records.",
                    }
                ]
            },
        ),
    ),
}


def _post(url, body, content_type="application/json", token=True, raw=None):
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {TOKEN}"
    data = raw if raw is not None else json.dumps(body)
    return requests.post(url + "/function", data=data, headers=headers, timeout=60)


def _answer(response):
    body = response.json() if response.content else None
    return response.status_code, body, response.headers.get("WWW-Authenticate")


def test_every_reference_function_is_served_by_both(peer, ours):
    """The case list reaches every function of the module, so none is left untested."""
    sent = [*CASES.values(), *(case[0] for case in DIFFERENT.values())]
    called = {r.get("function") for r in sent if isinstance(r.get("function"), str)}
    assert set(FUNCTIONS) <= called, set(FUNCTIONS) - called


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_answer_as_the_reference(peer, ours, name):
    theirs, mine = (_post(url, CASES[name]) for url in (peer, ours))
    assert _answer(mine) == _answer(theirs)


@pytest.mark.parametrize("name", sorted(NOT_JSON))
def test_same_answer_to_a_body_that_is_not_json(peer, ours, name):
    content_type, header = NOT_JSON[name]
    body = dict(diy("hook", "doSomething", hook_options()), access_token=TOKEN)
    theirs, mine = (_post(url, body, content_type=content_type, token=header) for url in (peer, ours))
    assert _answer(mine) == _answer(theirs)
    assert mine.status_code in (401, 422)


@pytest.mark.parametrize("name", sorted(DIFFERENT))
def test_deliberate_differences(peer, ours, name):
    request, (their_status, their_body), (my_status, my_body) = DIFFERENT[name]
    theirs, mine = (_post(url, request) for url in (peer, ours))
    assert (theirs.status_code, theirs.json() if theirs.content else None) == (their_status, their_body)
    if isinstance(my_body, str):
        assert (mine.status_code, mine.text) == (my_status, my_body)
    else:
        assert (mine.status_code, mine.json()) == (my_status, my_body)


def test_options_is_answered_in_json_where_the_reference_answers_text(peer, ours):
    """A deliberate difference (docs/protocol.md): the same methods, in the gateway's JSON."""
    theirs, mine = (requests.options(url + "/function", timeout=10) for url in (peer, ours))
    assert (theirs.status_code, theirs.headers["Allow"], theirs.text) == (200, "POST", "POST")
    assert theirs.headers["Content-Type"].startswith("text/html")
    allow = ["OPTIONS", "POST"]
    assert (mine.status_code, mine.headers["Allow"], mine.json()) == (200, ", ".join(allow), {"allow": allow})
    assert mine.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("how", ["wrong bearer", "no token", "body token", "query token", "basic scheme"])
def test_same_auth_answers_as_the_reference(peer, ours, how):
    body = {"diy": True, "type": "wrapper", "function": "ping", "options": options()}
    headers, params = {"Content-Type": "application/json"}, None
    if how == "wrong bearer":
        headers["Authorization"] = "Bearer wrong"
    elif how == "body token":
        body["access_token"] = TOKEN
    elif how == "query token":
        params = {"access_token": TOKEN}
    elif how == "basic scheme":
        headers["Authorization"] = "Basic Y29uZm9ybWFuY2U="
        params = {"access_token": TOKEN}
    answers = [
        requests.post(url + "/function", data=json.dumps(body), headers=headers, params=params, timeout=30)
        for url in (peer, ours)
    ]
    assert _answer(answers[0]) == _answer(answers[1])


@pytest.mark.parametrize("path", ["/", "/healthCheck"])
def test_same_health_answers(peer, ours, path):
    assert requests.get(peer + path, timeout=10).json() == requests.get(ours + path, timeout=10).json()
