"""serve_prefs_test.py: the guided-selling quiz and the preference centre
through a real `tailor serve` (issue 20 item 1), with the shipped quiz
(strategies/quiz.lua) and a storefront token, as tailor.js speaks to it:

  - the quiz decision gives its questions; answers sent as quiz_answer
    events become the visitor's prefs, with source and time, which
    POST /v1/prefs (and the NDJSON op prefs) reads back and decisions see
  - an answer, a question or a quiz not offered is refused (400, the field
    named) and nothing changes: no event stored, the prefs as they were;
    pipelined with other requests on the same connection, only the bad one
    is refused (the writer's group commit does not share its refusal)
  - a pref_removed event takes one back; without a key it is refused
  - a storefront reads a customer's prefs only with a customer token
"""

import json
import os
import shutil
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import serve_kit  # noqa: E402
from serve_kit import (ADMIN, ROOT, STOREFRONT, Checks, Server,  # noqa: E402
                       customer_token, error_code, result)

T = Checks()
check = T.check

PROBE = """
return { probe = function(ctx)
  return { prefs = ctx.customer.prefs, sources = ctx.customer.pref_sources }
end }
"""


def http(port, method, path, body=None, key=STOREFRONT, headers=None):
    status, _, doc = serve_kit.request(port, method, path, body, key, headers, timeout=30)
    return status, doc

class QuizServer(Server):
    def strategies(self):
        d = os.path.join(self.dir, "strategies")
        os.makedirs(d, exist_ok=True)
        shutil.copy(os.path.join(ROOT, "strategies", "quiz.lua"), d)
        with open(os.path.join(d, "probe.lua"), "w") as f:
            f.write(PROBE)
        return d


def answer(port, who, question, ans, quiz="fit", headers=None):
    ev = dict(who, type="quiz_answer", props={"quiz": quiz, "question": question, "answer": ans})
    return http(port, "POST", "/v1/events", ev, headers=headers)


def prefs(port, who, headers=None):
    status, body = http(port, "POST", "/v1/prefs", who, headers=headers)
    check("prefs read for %s" % json.dumps(who), status == 200, (status, body))
    return (body or {}).get("prefs", {})


def events_total(port):
    return http(port, "GET", "/v1/stats", key=ADMIN)[1]["events_total"]


def quiz_and_prefs(s):
    p = s.port
    who = {"anon": "v-quiz-1"}
    status, d = http(p, "POST", "/v1/decide/quiz", dict(who, context={"quiz": "fit"}))
    qs = [q["id"] for q in ((d or {}).get("result") or {}).get("questions", [])]
    check("the quiz decision gives the shipped quiz's questions",
          status == 200 and qs == ["size", "style", "budget"], (status, d))

    t0 = int(time.time() * 1000)
    for q, a in (("size", "m"), ("style", "sporty"), ("budget", "under_50")):
        status, r = answer(p, who, q, a)
        check("answer %s=%s kept" % (q, a), status == 200 and r == {"ok": True}, (status, r))
    got = prefs(p, who)
    check("the prefs are what the answers set",
          {k: v.get("value") for k, v in got.items()} ==
          {"size": "M", "style": "sporty", "budget": "50"}, got)
    check("each with its source", all(v.get("source") == "quiz:fit" for v in got.values()), got)
    now = int(time.time() * 1000)
    check("and the server's time", all(t0 - 1000 <= v.get("time", 0) <= now + 1000
                                       for v in got.values()), got)
    status, d = http(p, "POST", "/v1/decide/probe", who)
    check("a decision sees them as ctx.customer.prefs",
          (d.get("result") or {}).get("prefs") == {"size": "M", "style": "sporty", "budget": "50"},
          d)
    status, d = http(p, "POST", "/v1/decide/quiz", dict(who, context={"quiz": "fit"}))
    check("the quiz resumes with what was answered",
          (d.get("result") or {}).get("answered") ==
          {"size": "m", "style": "sporty", "budget": "under_50"}, d)

    # Not offered: refused with the field named, nothing changed.
    before = events_total(p)
    for field, q, a, quiz, bad in (("answer", "size", "xxl", "fit", "xxl"),
                                   ("question", "colour", "m", "fit", "colour"),
                                   ("quiz", "size", "m", "nope", "nope")):
        status, r = answer(p, who, q, a, quiz)
        err = (r or {}).get("error", {})
        check("a %s not offered is refused, naming it" % field,
              status == 400 and err.get("code") == "bad_field" and err.get("field") == field and
              "'%s'" % bad in err.get("message", ""), (status, r))
    status, r = http(p, "POST", "/v1/events",
                     [{"type": "view", "item": "x1", "anon": "v-quiz-1"},
                      {"type": "quiz_answer", "anon": "v-quiz-1",
                       "props": {"quiz": "fit", "question": "size", "answer": "xxl"}}])
    errs = (r or {}).get("errors", [])
    check("a batch with an answer not offered lists it by index and keeps the rest",
          status == 200 and r.get("accepted") == 1 and r.get("rejected") == 1 and
          errs and errs[0].get("index") == 1 and errs[0].get("field") == "answer", (status, r))
    check("only the view was stored", events_total(p) == before + 1, (before, events_total(p)))
    check("the prefs are as they were", prefs(p, who).get("size", {}).get("value") == "M")

    # Pipelined with other requests on one connection: only the bad one is refused.
    conn = s.connect()
    lines = []
    for i in range(12):
        ev = {"type": "view", "item": "x%d" % (i % 3), "anon": "v-other-%d" % i}
        if i == 6:
            ev = {"type": "quiz_answer", "anon": "v-quiz-1",
                  "props": {"quiz": "fit", "question": "size", "answer": "xxl"}}
        lines.append(json.dumps({"id": i, "op": "event", "event": ev, "token": STOREFRONT}))
    conn.send_raw(("\n".join(lines) + "\n").encode())
    answers = {}
    for _ in lines:
        r = conn.line()
        answers[r.get("id")] = r
    conn.close()
    check("pipelined: the bad answer is refused", error_code(answers.get(6)) == "bad_field",
          answers.get(6))
    ok = [i for i in range(12) if i != 6 and result(answers.get(i)) == {"ok": True}]
    check("pipelined: every other request is kept", len(ok) == 11, answers)

    # Changing an answer, and taking one back.
    status, r = answer(p, who, "size", "l")
    check("a changed answer replaces the earlier one",
          status == 200 and prefs(p, who)["size"]["value"] == "L", (status, r))
    status, r = http(p, "POST", "/v1/events", dict(who, type="pref_removed", props={"key": "style"}))
    check("pref_removed kept", status == 200, (status, r))
    check("the preference is gone", "style" not in prefs(p, who), prefs(p, who))
    before = events_total(p)
    status, r = http(p, "POST", "/v1/events", dict(who, type="pref_removed"))
    check("pref_removed without a key is refused, naming it",
          status == 400 and (r or {}).get("error", {}).get("field") == "key", (status, r))
    check("and stores nothing", events_total(p) == before)

    # The NDJSON op, and what it refuses.
    conn = s.connect()
    r = conn.call("prefs", anon="v-quiz-1", token=STOREFRONT)
    check("prefs over NDJSON", (result(r) or {}).get("prefs", {}).get("size", {}).get("value") ==
          "L", r)
    r = conn.call("prefs", token=STOREFRONT)
    check("prefs without a visitor is refused", error_code(r) == "bad_field", r)
    r = conn.call("prefs", anon="v1", colour="red", token=STOREFRONT)
    check("prefs with an unknown field is refused", error_code(r) == "bad_field", r)
    conn.close()
    status, r = http(p, "GET", "/v1/prefs")
    check("GET /v1/prefs: use POST", status == 405, (status, r))
    check("a visitor who gave nothing has no prefs", prefs(p, {"anon": "v-nobody"}) == {})


def customer_proof(s):
    """A storefront speaks for a customer only with a customer token."""
    p = s.port
    proof = {"X-Tailor-Customer": customer_token("c-quiz")}
    status, r = answer(p, {"customer": "c-quiz", "anon": "v-c"}, "size", "s", headers=proof)
    check("a customer's answer with proof", status == 200, (status, r))
    got = prefs(p, {"customer": "c-quiz"}, headers=proof)
    check("their prefs, with proof", got.get("size", {}).get("value") == "S", got)
    check("without proof, nothing of the customer's",
          prefs(p, {"customer": "c-quiz"}) == {})
    got = http(p, "POST", "/v1/prefs", {"customer": "c-quiz"}, key=ADMIN)[1]
    check("the admin reads anyone's", got.get("prefs", {}).get("size", {}).get("value") == "S", got)
    status, c = http(p, "GET", "/v1/customers/c-quiz", key=ADMIN)
    check("customer.get lists them among the figures",
          c.get("figures", {}).get("prefs", {}).get("size", {}).get("value") == "S", c)

    # The token in the body, as strategies.md shows it: the request's, as
    # NDJSON's envelope field, and never kept with the event (a credential).
    tok = customer_token("c-body")
    ev = {"type": "quiz_answer", "customer": "c-body", "customer_token": tok,
          "props": {"quiz": "fit", "question": "size", "answer": "m"}}
    status, r = http(p, "POST", "/v1/events", ev)
    check("an answer with the token in the body", status == 200, (status, r))
    status, r = http(p, "POST", "/v1/prefs", {"customer": "c-body", "customer_token": tok})
    check("prefs with the token in the body",
          status == 200 and r.get("prefs", {}).get("size", {}).get("value") == "M", (status, r))
    status, r = http(p, "POST", "/v1/decide/probe", {"customer": "c-body", "customer_token": tok})
    check("a decision with the token in the body sees the customer",
          status == 200 and ((r.get("result") or {}).get("prefs") or {}).get("size") == "M", (status, r))
    status, r = http(p, "POST", "/v1/events", [
        {"type": "view", "anon": "v-b1", "item": "i1", "customer_token": tok},
        {"type": "view", "anon": "v-b1", "item": "i2", "customer_token": customer_token("c-other")}])
    check("events with two customer tokens are refused",
          status == 400 and (r.get("error") or {}).get("field") == "customer_token", (status, r))
    status, r = http(p, "POST", "/v1/events",
                     {"type": "view", "anon": "v-b2", "item": "i3", "customer_token": tok})
    check("a view with a token is taken", status == 200, (status, r))
    conn = s.connect()
    r = conn.call("event", token=ADMIN, event={"type": "view", "anon": "v-b2", "item": "i4",
                                                "customer_token": tok})
    check("an NDJSON event with a token inside is taken", result(r) is not None, r)
    conn.close()
    status, x = http(p, "GET", "/v1/customers/c-body/export", key=ADMIN)
    check("the export has no customer token", status == 200 and "c-body." not in json.dumps(x),
          (status, x))
    # Nor one nested in what an event keeps: a profile, traits, a line.
    conn = s.connect()
    r = conn.call("event", token=ADMIN, event={
        "type": "customer_upsert", "customer": {"id": "c-nest", "customer_token": tok,
                                                "prefs": {"customer_token": tok}}})
    check("a profile with a token inside is taken", result(r) is not None, r)
    r = conn.call("event", token=ADMIN, event={
        "type": "identify", "anon": "v-b3", "customer": "c-nest",
        "traits": {"plan": "gold", "customer_token": tok}})
    check("traits with a token inside are taken", result(r) is not None, r)
    r = conn.call("event", token=ADMIN, event={
        "type": "purchase", "customer": "c-nest", "order_id": "o-nest",
        "items": [{"id": "i1", "price": 5, "customer_token": tok}, {"id": "i2", "price": 6}]})
    check("order lines with a token inside are taken", result(r) is not None, r)
    deep = {"customer_token": tok}
    for _ in range(24):  # near the parser's depth limit
        deep = {"x": deep}
    r = conn.call("event", token=ADMIN, event={"type": "view", "customer": "c-nest", "item": "i1",
                                                "props": {"deep": deep}})
    check("a token nested deep inside is taken", result(r) is not None, r)
    conn.close()
    db = sqlite3.connect(s.db)
    kept = db.execute("SELECT count(*) FROM events WHERE body LIKE '%customer_token%'").fetchone()
    n = db.execute("SELECT count(*) FROM events WHERE anon = 'v-b2'").fetchone()
    nest = db.execute("SELECT count(*) FROM events WHERE customer = 'c-nest'").fetchone()
    db.close()
    check("no stored event keeps a customer token", kept[0] == 0 and n[0] == 2 and nest[0] == 4,
          (kept, n, nest))


def main():
    s = QuizServer()
    try:
        T.run(quiz_and_prefs, s)
        T.run(customer_proof, s)
        T.stopped_clean(s)
    finally:
        s.cleanup()


if __name__ == "__main__":
    T.run(main)
    sys.exit(T.done())
