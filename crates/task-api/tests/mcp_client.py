"""An assistant's session against task-api's MCP tools, with the official Python SDK (PyPI `mcp`).

Driven by crates/task-api/tests/mcp.rs (streamable HTTP) and crates/todoctl/tests/mcp_stdio.rs
(stdio through `todoctl mcp`). It checks what a client alone can see (tool list and schemas,
results, tool errors, isolation between users, idempotency) and prints one JSON object on
stdout with the ids it touched and its timings, so the Rust side can read the events back from
Kafka and compare them with the REST path's.

Environment: MCP_TRANSPORT (http|stdio), MCP_URL (http), TODOCTL + TODO_API_URL (stdio),
TOKEN_A, TOKEN_B (two users), RUN (a unique word for titles); MCP_CHECK=services and TASK_ID for
the tools that ask audit-service and recurring-task-service (crates/system-tests/tests/assistant.rs).
"""

import asyncio
import json
import os
import sys
import time

from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

EXPECTED_TOOLS = {
    "add_task": {"title"},
    "update_task": {"id"},
    "complete_task": {"id"},
    "reopen_task": {"id"},
    "delete_task": {"id"},
    "find_tasks": set(),
    "get_task": {"id"},
    "task_history": {"id"},
    "preview_recurrence": set(),
    "share_task": {"id", "email", "role"},
    "assign_task": {"id"},
}


def client_for(token):
    if os.environ["MCP_TRANSPORT"] == "stdio":
        env = dict(os.environ)
        env["TODO_TOKEN"] = token
        return Client(StdioServerParameters(command=os.environ["TODOCTL"], args=["mcp"], env=env))
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    return Client(streamable_http_client(os.environ["MCP_URL"], http_client=http))


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def text_of(result):
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def call(client, name, args, timings):
    started = time.perf_counter()
    result = await client.call_tool(name, args)
    timings.append({"tool": name, "ms": round((time.perf_counter() - started) * 1000, 2)})
    return result


def ok(result, what):
    check(not result.is_error, f"{what} failed: {text_of(result)}")
    check(result.structured_content is not None, f"{what}: no structured content")
    check(len(result.content) >= 1 and text_of(result), f"{what}: no text")
    return result.structured_content


async def session_of_user_a(out):
    run = os.environ["RUN"]
    timings = []
    started = time.perf_counter()
    async with client_for(os.environ["TOKEN_A"]) as client:
        out["protocol_version"] = client.protocol_version
        connected = time.perf_counter()

        listed = await client.list_tools()
        tools = {t.name: t for t in listed.tools}
        check(set(tools) == set(EXPECTED_TOOLS), f"tools: {sorted(tools)}")
        for name, required in EXPECTED_TOOLS.items():
            schema = tools[name].input_schema
            check(schema.get("type") == "object", f"{name}: schema type {schema.get('type')}")
            check(set(schema.get("required", [])) == required, f"{name}: required {schema.get('required')}")
            check(len(tools[name].description or "") > 40, f"{name}: description too short")
            for prop, spec in schema.get("properties", {}).items():
                check(spec.get("description"), f"{name}.{prop} has no description")
        add = tools["add_task"].input_schema["properties"]
        check({"title", "priority", "due_at", "tags", "recurrence", "reminders", "idempotency_key"} <= set(add),
              f"add_task properties: {sorted(add)}")
        out["tool_count"] = len(tools)

        # The life of one task, each change a tool call (the Rust side reads the events).
        task = ok(await call(client, "add_task", {
            "title": f"Water the plants {run}", "priority": "high", "due_at": "2026-12-07T09:00",
            "tags": ["home", "garden"], "reminders": [{"before_due": 30, "channel": "email"}],
        }, timings), "add_task")
        check(task["version"] == 1 and task["priority"] == "high" and task["status"] == "open", task)
        check(task["role"] == "owner" and task["assignee_id"] is None, task)
        out["task_id"] = task["id"]
        out["created"] = task

        found = ok(await call(client, "find_tasks", {"q": run, "status": "open"}, timings), "find_tasks")
        check([t["id"] for t in found["items"]] == [task["id"]], f"find_tasks: {found}")

        updated = ok(await call(client, "update_task", {
            "id": task["id"], "expected_version": 1, "title": f"Water the orchids {run}", "priority": "low",
        }, timings), "update_task")
        check(updated["version"] == 2 and updated["title"] == f"Water the orchids {run}", updated)

        stale = await call(client, "update_task", {"id": task["id"], "expected_version": 1, "title": "x"}, timings)
        check(stale.is_error and "changed meanwhile" in text_of(stale), f"stale update: {text_of(stale)}")

        done = ok(await call(client, "complete_task", {"id": task["id"]}, timings), "complete_task")
        check(done["status"] == "completed" and done["version"] == 3 and done["completed_at"], done)

        reopened = ok(await call(client, "reopen_task", {"id": task["id"]}, timings), "reopen_task")
        check(reopened["status"] == "open" and reopened["version"] == 4, reopened)

        got = ok(await call(client, "get_task", {"id": task["id"]}, timings), "get_task")
        check(got == reopened, f"get_task differs from the last result: {got} vs {reopened}")

        deleted = await call(client, "delete_task", {"id": task["id"]}, timings)
        check(not deleted.is_error, text_of(deleted))
        gone = await call(client, "get_task", {"id": task["id"]}, timings)
        check(gone.is_error and "Not found" in text_of(gone), f"deleted task: {text_of(gone)}")
        out["session_ms"] = {"connect": round((connected - started) * 1000, 2)}

        # Errors a model can act on: isError, the problem's title and each invalid field.
        bad_due = await client.call_tool("add_task", {"title": "x", "due_at": "next tuesday-ish"})
        check(bad_due.is_error, "an invalid due date is a tool error")
        check("Some fields are invalid" in text_of(bad_due) and "due_at" in text_of(bad_due), text_of(bad_due))
        check(bad_due.structured_content["errors"][0]["field"] == "due_at", bad_due.structured_content)
        bad_rule = await client.call_tool("add_task", {"title": "x", "recurrence": {"rrule": "FREQ=SOMETIMES"}})
        check(bad_rule.is_error and "recurrence.rrule" in text_of(bad_rule), text_of(bad_rule))
        both = await client.call_tool("add_task", {"title": " ", "priority": "urgent"})
        fields = {e["field"] for e in both.structured_content["errors"]}
        check(both.is_error and fields == {"title", "priority"}, f"every invalid field: {text_of(both)}")
        wrong_type = await client.call_tool("add_task", {"title": 42})
        check(wrong_type.is_error and wrong_type.structured_content["errors"][0]["field"] == "title",
              f"wrong type: {text_of(wrong_type)}")
        missing = await client.call_tool("update_task", {"title": "no id"})
        check(missing.is_error and missing.structured_content["errors"][0]["field"] == "id", text_of(missing))

        # A retried add_task with the same key creates one task.
        key = f"retry-{run}"
        first = ok(await client.call_tool("add_task", {"title": f"Call mum {run}", "idempotency_key": key}), "first")
        again = ok(await client.call_tool("add_task", {"title": f"Call mum {run}", "idempotency_key": key}), "again")
        check(first["id"] == again["id"], f"idempotency: {first['id']} vs {again['id']}")
        other = await client.call_tool("add_task", {"title": f"Call dad {run}", "idempotency_key": key})
        check(other.is_error, f"a reused key with other arguments: {text_of(other)}")
        out["idempotent_id"] = first["id"]

        kept = ok(await client.call_tool("add_task", {"title": f"Kept {run}"}), "kept")
        out["kept_id"] = kept["id"]
    out["timings"] = timings


async def session_of_user_b(out):
    run = os.environ["RUN"]
    async with client_for(os.environ["TOKEN_B"]) as client:
        for name, args in [
            ("get_task", {"id": out["kept_id"]}),
            ("update_task", {"id": out["kept_id"], "title": "mine now"}),
            ("complete_task", {"id": out["kept_id"]}),
            ("delete_task", {"id": out["kept_id"]}),
        ]:
            result = await client.call_tool(name, args)
            check(result.is_error and "Not found" in text_of(result), f"B {name}: {text_of(result)}")
        found = ok(await client.call_tool("find_tasks", {"q": run}), "B find_tasks")
        check(found["items"] == [], f"B sees A's tasks: {found}")


async def sharing_session(out):
    """A shares a task with B (EMAIL_B) as editor; B reads it, takes it, may not share it; A stops
    sharing and B no longer sees it. What B may do is what REST allows (crates/task-api/tests/sharing.rs)."""
    run = os.environ["RUN"]
    email_b = os.environ["EMAIL_B"]
    async with client_for(os.environ["TOKEN_A"]) as a:
        task = ok(await a.call_tool("add_task", {"title": f"Shared {run}"}), "shared add")
        share = ok(await a.call_tool("share_task", {"id": task["id"], "email": email_b, "role": "editor"}), "share_task")
        check(share["status"] == "active" and share["role"] == "editor", share)
        invited = ok(await a.call_tool("share_task", {"id": task["id"], "email": f"nobody-{run}@example.com",
                                                      "role": "viewer"}), "invite")
        check(invited["status"] == "pending" and invited["user_id"] is None, invited)
        bad = await a.call_tool("share_task", {"id": task["id"], "email": email_b, "role": "boss"})
        check(bad.is_error and "role" in text_of(bad), f"a bad role: {text_of(bad)}")
    async with client_for(os.environ["TOKEN_B"]) as b:
        seen = ok(await b.call_tool("get_task", {"id": task["id"]}), "B get shared")
        check(seen["role"] == "editor", seen)
        mine = ok(await b.call_tool("assign_task", {"id": task["id"], "assignee": "me"}), "B takes it")
        check(mine["assignee_id"] == share["user_id"], mine)
        found = ok(await b.call_tool("find_tasks", {"owner": "others", "assignee": "me"}), "B find")
        check([t["id"] for t in found["items"]] == [task["id"]], found)
        reshare = await b.call_tool("share_task", {"id": task["id"], "email": f"x-{run}@example.com", "role": "viewer"})
        check(reshare.is_error and "Not found" in text_of(reshare), f"B shares A's task: {text_of(reshare)}")
    async with client_for(os.environ["TOKEN_A"]) as a:
        ok(await a.call_tool("share_task", {"id": task["id"], "email": email_b, "role": "none"}), "unshare")
        back = ok(await a.call_tool("get_task", {"id": task["id"]}), "A after unshare")
        check(back["assignee_id"] is None and back["collaborators"] == [], f"unsharing the assignee unassigns: {back}")
    async with client_for(os.environ["TOKEN_B"]) as b:
        gone = await b.call_tool("get_task", {"id": task["id"]})
        check(gone.is_error and "Not found" in text_of(gone), f"B after unshare: {text_of(gone)}")
    out["shared_id"] = task["id"]


async def ten_call_session(out):
    """What an assistant's session of ten tool calls costs end to end: connect, ten calls, close."""
    run = os.environ["RUN"]
    rounds = []
    for _ in range(3):
        started = time.perf_counter()
        async with client_for(os.environ["TOKEN_A"]) as client:
            await client.list_tools()
            created = ok(await client.call_tool("add_task", {"title": f"Ten calls {run}"}), "ten")
            for i in range(8):
                if i % 2 == 0:
                    ok(await client.call_tool("find_tasks", {"q": run, "limit": 5}), "ten find")
                else:
                    ok(await client.call_tool("update_task", {"id": created["id"], "title": f"Ten calls {run} {i}"}), "ten update")
            await client.call_tool("delete_task", {"id": created["id"]})
        rounds.append(round((time.perf_counter() - started) * 1000, 1))
    out["ten_call_session_ms"] = rounds


async def tools_of_other_services(out):
    """task_history (audit-service) and preview_recurrence (recurring-task-service), as user A,
    of TASK_ID (created, updated and completed over REST by the test); user B sees no history."""
    task_id = os.environ["TASK_ID"]
    async with client_for(os.environ["TOKEN_A"]) as client:
        preview = ok(await client.call_tool("preview_recurrence", {
            "rrule": "FREQ=WEEKLY;BYDAY=MO", "timezone": "Europe/Berlin", "count": 3, "start": "2026-12-07T09:00",
        }), "preview_recurrence")
        local = [o["local"] for o in preview["occurrences"]]
        check(local == ["2026-12-07T09:00:00+01:00", "2026-12-14T09:00:00+01:00", "2026-12-21T09:00:00+01:00"],
              f"preview: {preview}")
        bad = await client.call_tool("preview_recurrence", {"rrule": "FREQ=SOMETIMES"})
        check(bad.is_error and "rrule" in text_of(bad), f"a bad rule: {text_of(bad)}")
        history = ok(await client.call_tool("task_history", {"id": task_id}), "task_history")
        out["history_types"] = [e["event_type"] for e in history["items"]]
    async with client_for(os.environ["TOKEN_B"]) as client:
        theirs = await client.call_tool("task_history", {"id": task_id})
        check(theirs.is_error and "Not found" in text_of(theirs), f"B reads A's history: {text_of(theirs)}")


async def main():
    out = {"transport": os.environ["MCP_TRANSPORT"]}
    if os.environ.get("MCP_CHECK") == "services":
        await tools_of_other_services(out)
    else:
        await session_of_user_a(out)
        await session_of_user_b(out)
        if os.environ.get("EMAIL_B"):
            await sharing_session(out)
        await ten_call_session(out)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main())
