"""Imports keep order per key, stay within the connection's level, and batch (issue 11)."""

import threading

from options import conn


def test_writes_of_one_key_keep_their_order(call, api):
    records = [
        {"id": "k1", "v": 1, "sleep": 0.3},
        {"id": "k2", "v": 1, "sleep": 0.3},
        {"id": "k1", "v": 2},
        {"id": "k2", "v": 2},
        {"id": "k3", "v": 1},
    ]
    status, results = call(
        "rest.import",
        {
            "connection": conn(api),
            "postMapData": records,
            "configuration": {"method": "PUT", "path": "/items/{id}", "concurrency": 4},
        },
    )
    assert [r["statusCode"] for r in results] == [200] * 5
    # The slow first write of each key must not land after the second.
    assert api.state["versions"] == {"k1": 2, "k2": 2, "k3": 1}


def test_requests_in_flight_stay_within_the_connection_level_across_calls(call, api):
    results = []

    def one_call():
        records = [{"name": str(i), "sleep": 0.15} for i in range(6)]
        options = {
            "connection": conn(api, concurrencyLevel=2),
            "postMapData": records,
            "configuration": {"path": "/items", "idPath": "data.id", "concurrency": 4},
        }
        results.append(call("rest.import", options))

    threads = [threading.Thread(target=one_call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [[r["statusCode"] for r in answer] for _, answer in results] == [[200] * 6] * 3
    assert api.state["max_in_flight"] == 2  # level 2: never more, and used


def test_batch_import_maps_each_result_back(call, api):
    records = [{"name": "a"}, {"name": "b"}, {"name": "c", "bad": True}, {"name": "d"}, "not a record"]
    status, results = call(
        "rest.import",
        {
            "connection": conn(api),
            "postMapData": records,
            "configuration": {
                "path": "/items-batch",
                "batchSize": 3,
                "order": "batch",  # the two requests one after the other: ids in order
                "batchBodyPath": "records",
                "resultsPath": "results",
                "resultErrorPath": "error.message",
            },
        },
    )
    assert results[:2] == [{"statusCode": 200, "id": "b-1"}, {"statusCode": 200, "id": "b-2"}]
    assert results[2] == {
        "statusCode": 422,
        "errors": [{"code": "record_failed", "message": "name is required"}],
    }
    assert results[3] == {"statusCode": 200, "id": "b-3"}
    assert results[4]["statusCode"] == 422
    assert len([c for c in api.state["calls"] if c[0] == "POST"]) == 2  # 3 + 1 records


def test_batch_answer_of_the_wrong_length_is_an_unknown_outcome(call, api):
    status, results = call(
        "rest.import",
        {
            "connection": conn(api),
            "postMapData": [{"name": "a"}, {"name": "b"}],
            "configuration": {
                "path": "/items-batch",
                "batchSize": 2,
                "batchBodyPath": "records",
                "resultsPath": "data",
            },
        },
    )
    assert [r["statusCode"] for r in results] == [422, 422]
    assert results[0]["errors"][0]["code"] == "unknown_outcome"


def test_lanes_keep_each_keys_records_in_one_lane_in_order():
    """Unit test of the grouping: a batch unit holding two keys joins their lanes."""
    from wrapgate_rest.imports import _lanes

    records = [{"id": "a"}, {"id": "b"}, {"id": "a"}, {"name": "no key"}, {"id": "c"}, {"id": "b"}]
    configuration = {"order": "key", "orderKey": None, "idField": "id"}
    assert _lanes(configuration, records, [[p] for p in range(6)]) == [[[0], [2]], [[1], [5]], [[3]], [[4]]]
    # Units of two records: [a, b] [a, no key] [c, b] -> all three share keys, one lane.
    units = [[0, 1], [2, 3], [4, 5]]
    assert _lanes(configuration, records, units) == [units]
    assert _lanes(dict(configuration, order="none"), records, units) == [[u] for u in units]
    assert _lanes(dict(configuration, order="batch"), records, units) == [units]
