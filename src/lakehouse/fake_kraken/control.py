"""Faults and inspection over plain HTTP on the fake Kraken's port: GET /control/<action>?<params> calls the server's
own methods (FakeKraken.drop_connections, .set_system, ...) and answers their result as JSON. A bad parameter is a
400 naming it, an unknown action a 404.

    curl http://127.0.0.1:8765/control/drop
    curl 'http://127.0.0.1:8765/control/rest?fault=ratelimit&n=3'

The actions are listed in server.py's docstring.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Optional

from lakehouse.fake_kraken.kraken_ws import CLOSE_1001_REASON, HALTED
from lakehouse.fake_kraken.rest import FAULTS, REST_MAX_COUNT


class ControlError(ValueError):
    """A /control/ request with a bad parameter (answered 400 with this message)."""


def int_param(q: dict, name: str, default: int, lo: int, hi: int) -> int:
    text = q.get(name)
    if text is None:
        return default
    if not re.fullmatch(r"-?[0-9]{1,12}", text) or not lo <= int(text) <= hi:
        raise ControlError(f"{name}={text[:40]!r}: expected an integer in {lo}..{hi}")
    return int(text)


def choice_param(q: dict, name: str, default: str, allowed: tuple) -> str:
    text = q.get(name, default)
    if text not in allowed:
        raise ControlError(f"{name}={text[:40]!r}: expected one of {', '.join(allowed)}")
    return text


def control_action(server: Any, action: str, q: dict) -> Optional[dict]:
    """Run `action` on `server` with the query's parameters; its answer, or None for an unknown action. Raises
    ControlError for a bad parameter."""
    run = ACTIONS.get(action)
    return None if run is None else run(server, q)


def _close(server: Any, q: dict) -> dict:
    return {"closed": server.close_connections(int_param(q, "code", 1001, 1000, 4999),
                                               q.get("reason", CLOSE_1001_REASON)[:120])}


def _status(server: Any, q: dict) -> dict:
    server.set_system(choice_param(q, "system", "online", ("online", *HALTED)))
    return {"system": server.system}


def _ratelimit(server: Any, q: dict) -> dict:
    server.rate_limit_next(int_param(q, "n", 1, 0, 1000))
    return {"ratelimit_next": server.kraken_ws.ratelimit_next}


def _hold(server: Any, q: dict) -> dict:
    server.set_hold(choice_param(q, "on", "1", ("1", "0", "true", "false", "on", "off")) in ("1", "true", "on"))
    return {"hold": server.hold}


def _step(server: Any, q: dict) -> dict:
    pair = q.get("pair")
    if pair is not None and pair not in server.history:
        raise ControlError(f"pair={pair!r}: not one of {', '.join(server.pairs)}")
    return {"generated": len(server.step(int_param(q, "n", 1, 0, 100_000), pair))}


def _stats(server: Any, q: dict) -> dict:
    return {**server.counters, "generated": server.generated, "system": server.system,
            "active_connections": server.active_connections()}


def _rest(server: Any, q: dict) -> dict:
    """rest?fault=ratelimit|error|slow&n=1&status=502&delay=2 , rest?down=1|0 , rest?depth=N , rest?page=N"""
    rest = server.rest
    if "fault" in q:
        server.add_rest_fault(choice_param(q, "fault", "", FAULTS), int_param(q, "n", 1, 1, 1000),
                              int_param(q, "status", 502, 400, 599), int_param(q, "delay", 2, 0, 120))
    if "down" in q:
        server.set_rest_down(choice_param(q, "down", "1", ("1", "0")) == "1")
    if "depth" in q:
        rest.depth = int_param(q, "depth", 0, 0, 10_000_000)
    if "page" in q:
        rest.page_size = int_param(q, "page", REST_MAX_COUNT, 1, REST_MAX_COUNT)
    return {"faults_queued": len(rest.faults), "down": rest.down, "depth": rest.depth, "page": rest.page_size}


ACTIONS: dict[str, Callable[[Any, dict], dict]] = {
    "drop": lambda server, q: {"dropped": server.drop_connections()},
    "close": _close,
    "freeze": lambda server, q: {"frozen": server.freeze_connections()},
    "status": _status,
    "ratelimit": _ratelimit,
    "hold": _hold,
    "step": _step,
    "stats": _stats,
    "trades": lambda server, q: server.sent_trades(choice_param(q, "api", "v2", ("v2", "v1"))),
    "rest": _rest,
}
