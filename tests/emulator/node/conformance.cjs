// The shared conformance scenarios (tests/emulator/scenarios.py) through @azure/service-bus (Node).
//
//   node conformance.cjs --list           -> JSON array of the scenario ids implemented here
//   node conformance.cjs <config.json>    -> one JSON line per scenario: {"id","ok","error","ms"}
//
// config.json: {"connectionString": "...", "scenarios": [{"id": "...", "entities": {"queue": "q-..."}}]}
// Run by tests/emulator/test_conformance_node.py with NODE_PATH pointing at the installed SDK.
// Each implementation uses only the public SDK, except "session-list": @azure/service-bus 7.x has
// no public list-sessions call, so it uses the SDK's own ManagementClient.listMessageSessions.
"use strict";

const assert = require("node:assert/strict");
const { ServiceBusClient, isServiceBusError } = require("@azure/service-bus");

const SCENARIO_TIMEOUT_MS = 60000;
// .NET DateTime.MaxValue as the SDKs send it: "no last-updated-time filter" for get-message-sessions
const MAX_DATETIME = new Date(253402300800000);
// no background lock renewal: every lock in these scenarios is renewed (or not) on purpose
const NO_RENEW = { maxAutoLockRenewalDurationInMs: 0 };

function client(conn, maxRetries = 1) {
  return new ServiceBusClient(conn, { retryOptions: { maxRetries, retryDelayInMs: 100 } });
}

async function receive(receiver, n, timeoutMs = 10000) {
  const got = [];
  const deadline = Date.now() + timeoutMs;
  while (got.length < n && Date.now() < deadline) {
    got.push(...(await receiver.receiveMessages(n - got.length, { maxWaitTimeInMs: 1000 })));
  }
  assert.equal(got.length, n, `expected ${n} messages, got ${got.length}`);
  return got;
}

async function send(c, queue, ...messages) {
  const sender = c.createSender(queue);
  try {
    await sender.sendMessages(messages);
  } finally {
    await sender.close();
  }
}

async function expectCannotBeLocked(promise) {
  try {
    const r = await promise;
    await r.close();
  } catch (err) {
    assert.ok(isServiceBusError(err), `not a ServiceBusError: ${err}`);
    assert.equal(err.code, "SessionCannotBeLocked");
    return;
  }
  assert.fail("the session was accepted although another receiver holds it");
}

const scenarios = {
  async "session-next-available"(conn, { queue }) {
    const c = client(conn);
    try {
      const msgs = [];
      for (let i = 0; i < 3; i++) for (const sid of ["A", "B"]) msgs.push({ body: `${sid}${i}`, sessionId: sid });
      await send(c, queue, ...msgs);
      const r1 = await c.acceptNextSession(queue, NO_RENEW);
      const r2 = await c.acceptNextSession(queue, NO_RENEW);
      assert.deepEqual([r1.sessionId, r2.sessionId].sort(), ["A", "B"]);
      for (const r of [r1, r2]) {
        const got = await receive(r, 3);
        assert.deepEqual(
          got.map((m) => m.body),
          [0, 1, 2].map((i) => `${r.sessionId}${i}`),
        );
        for (const m of got) await r.completeMessage(m);
        await r.close();
      }
    } finally {
      await c.close();
    }
  },

  async "session-specific"(conn, { queue }) {
    const c = client(conn);
    try {
      await send(c, queue, { body: "a", sessionId: "A" }, { body: "b", sessionId: "B" });
      const r = await c.acceptSession(queue, "B", NO_RENEW);
      const [m] = await receive(r, 1);
      assert.equal(m.body, "b");
      assert.equal(m.sessionId, "B");
      await r.completeMessage(m);
      assert.equal((await r.receiveMessages(1, { maxWaitTimeInMs: 1000 })).length, 0);
      await r.close();
    } finally {
      await c.close();
    }
  },

  async "session-cannot-be-locked"(conn, { queue }) {
    const c = client(conn);
    const other = client(conn, 0);
    try {
      await send(c, queue, { body: "x", sessionId: "S" });
      const holder = await c.acceptSession(queue, "S", NO_RENEW);
      const [m] = await receive(holder, 1);
      await expectCannotBeLocked(other.acceptSession(queue, "S", NO_RENEW));
      await holder.renewSessionLock();
      await holder.completeMessage(m);
      await holder.close();
    } finally {
      await other.close();
      await c.close();
    }
  },

  async "session-state"(conn, { queue }) {
    const c = client(conn);
    try {
      await send(c, queue, { body: "x", sessionId: "S" });
      let r = await c.acceptSession(queue, "S", NO_RENEW);
      assert.equal(await r.getSessionState(), null);
      await r.setSessionState(Buffer.from("step-1"));
      assert.deepEqual(Buffer.from(await r.getSessionState()), Buffer.from("step-1"));
      await r.close();
      r = await c.acceptSession(queue, "S", NO_RENEW);
      assert.deepEqual(Buffer.from(await r.getSessionState()), Buffer.from("step-1"));
      await r.setSessionState(null);
      assert.equal(await r.getSessionState(), null);
      const [m] = await receive(r, 1);
      await r.completeMessage(m);
      await r.close();
    } finally {
      await c.close();
    }
  },

  async "session-renew"(conn, { queue }) {
    const c = client(conn);
    try {
      await send(c, queue, { body: "x", sessionId: "S" });
      const r = await c.acceptSession(queue, "S", NO_RENEW);
      const before = r.sessionLockedUntilUtc.getTime();
      await new Promise((resolve) => setTimeout(resolve, 50));
      const after = (await r.renewSessionLock()).getTime();
      assert.ok(after > before, `renewed ${after} is not after ${before}`);
      assert.equal(r.sessionLockedUntilUtc.getTime(), after);
      const [m] = await receive(r, 1);
      await r.completeMessage(m);
      await r.close();
    } finally {
      await c.close();
    }
  },

  async "session-list"(conn, { queue }) {
    const c = client(conn);
    try {
      const ids = [];
      for (let i = 0; i < 120; i++) ids.push(`s${String(i).padStart(3, "0")}`);
      await send(c, queue, ...ids.map((sid) => ({ body: "x", sessionId: sid })));
      await send(c, queue, { body: "y", sessionId: "state-only" });
      const r = await c.acceptSession(queue, "state-only", NO_RENEW);
      await r.setSessionState(Buffer.from("kept"));
      const [m] = await receive(r, 1);
      await r.completeMessage(m);
      await r.close();
      const mgmt = c._connectionContext.getManagementClient(queue);
      const listed = [];
      for (let skip = 0, pages = 0; pages < 10; pages++) {
        const page = await mgmt.listMessageSessions(skip, 50, MAX_DATETIME);
        listed.push(...page);
        if (page.length < 50) break;
        skip += page.length;
      }
      assert.equal(listed.length, ids.length + 1);
      assert.deepEqual([...listed].sort(), [...ids, "state-only"].sort());
      const since = new Date(Date.now() - 5 * 60 * 1000);
      assert.deepEqual(await mgmt.listMessageSessions(0, 50, since), ["state-only"]);
    } finally {
      await c.close();
    }
  },

  async "session-race"(conn, { queue }) {
    const c = client(conn);
    const a = client(conn, 0);
    const b = client(conn, 0);
    try {
      await send(c, queue, { body: "x", sessionId: "S" });
      const results = await Promise.allSettled([
        a.acceptSession(queue, "S", NO_RENEW),
        b.acceptSession(queue, "S", NO_RENEW),
      ]);
      const won = results.filter((x) => x.status === "fulfilled");
      const lost = results.filter((x) => x.status === "rejected");
      assert.equal(won.length, 1, "exactly one receiver must win the session");
      assert.equal(lost.length, 1);
      assert.equal(lost[0].reason.code, "SessionCannotBeLocked");
      const r = won[0].value;
      const [m] = await receive(r, 1);
      await r.completeMessage(m);
      await r.close();
    } finally {
      await a.close();
      await b.close();
      await c.close();
    }
  },

  async "session-release-accept-by-id"(conn, { queue }) {
    const c = client(conn);
    try {
      await send(c, queue, { body: "x", sessionId: "S" });
      let r = await c.acceptSession(queue, "S", NO_RENEW);
      let [m] = await receive(r, 1);
      assert.equal(m.deliveryCount, 0);
      await r.close();
      r = await c.acceptSession(queue, "S", NO_RENEW);
      [m] = await receive(r, 1);
      assert.equal(m.deliveryCount, 1);
      await r.completeMessage(m);
      await r.close();
    } finally {
      await c.close();
    }
  },

  async "abandon-count"(conn, { queue }) {
    const c = client(conn);
    try {
      await send(c, queue, { body: "x", sessionId: "S" });
      const r = await c.acceptSession(queue, "S", NO_RENEW);
      for (const expected of [0, 1, 2]) {
        const [m] = await receive(r, 1);
        assert.equal(m.deliveryCount, expected);
        await r.abandonMessage(m);
      }
      const [m] = await receive(r, 1);
      assert.equal(m.deliveryCount, 3);
      await r.completeMessage(m);
      await r.close();
    } finally {
      await c.close();
    }
  },

  async "abandon-properties"(conn, { queue }) {
    const c = client(conn);
    try {
      await send(c, queue, { body: "x", applicationProperties: { keep: "yes", step: 0 } });
      const r = c.createReceiver(queue, NO_RENEW);
      let [m] = await receive(r, 1);
      await r.abandonMessage(m, { step: 1, note: "retry" });
      [m] = await receive(r, 1);
      assert.equal(m.deliveryCount, 1);
      assert.deepEqual(m.applicationProperties, { keep: "yes", step: 1, note: "retry" });
      // a deferred message settles over $management: update-disposition's properties-to-modify
      const seq = m.sequenceNumber;
      await r.deferMessage(m);
      let [d] = await r.receiveDeferredMessages([seq]);
      await r.abandonMessage(d, { step: 2 });
      [d] = await r.receiveDeferredMessages([seq]); // abandoning a deferred message keeps it deferred
      assert.equal(d.applicationProperties.step, 2);
      assert.equal(d.applicationProperties.note, "retry");
      await r.completeMessage(d);
      await r.close();
    } finally {
      await c.close();
    }
  },

  async defer(conn, { queue }) {
    const c = client(conn);
    try {
      await send(c, queue, { body: "later" }, { body: "now" });
      const r = c.createReceiver(queue, NO_RENEW);
      const [first, second] = await receive(r, 2);
      const seq = first.sequenceNumber;
      await r.deferMessage(first);
      await r.completeMessage(second);
      assert.equal((await r.receiveMessages(1, { maxWaitTimeInMs: 1000 })).length, 0);
      const [again] = await r.receiveDeferredMessages([seq]);
      assert.equal(again.body, "later");
      await r.completeMessage(again);
      await r.close();
    } finally {
      await c.close();
    }
  },

  async "dead-letter"(conn, { queue }) {
    const c = client(conn);
    try {
      await send(c, queue, { body: "bad" });
      const r = c.createReceiver(queue, NO_RENEW);
      const [m] = await receive(r, 1);
      await r.deadLetterMessage(m, { deadLetterReason: "bad-total", deadLetterErrorDescription: "total < 0" });
      await r.close();
      const d = c.createReceiver(queue, { subQueueType: "deadLetter", ...NO_RENEW });
      const [dead] = await receive(d, 1);
      assert.equal(dead.deadLetterReason, "bad-total");
      assert.equal(dead.deadLetterErrorDescription, "total < 0");
      assert.equal(dead.body, "bad");
      await d.completeMessage(dead);
      await d.close();
    } finally {
      await c.close();
    }
  },

  async peek(conn, { queue }) {
    const c = client(conn);
    try {
      await send(c, queue, { body: "m0" }, { body: "m1" }, { body: "m2" });
      const r = c.createReceiver(queue, NO_RENEW);
      const peeked = await r.peekMessages(10);
      assert.deepEqual(
        peeked.map((m) => m.body),
        ["m0", "m1", "m2"],
      );
      const seqs = peeked.map((m) => m.sequenceNumber.toNumber());
      assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y));
      const got = await receive(r, 3); // peeking locked nothing
      for (const m of got) await r.completeMessage(m);
      await r.close();
    } finally {
      await c.close();
    }
  },

  async "schedule-cancel"(conn, { queue }) {
    const c = client(conn);
    try {
      const when = new Date(Date.now() + 2000);
      const sender = c.createSender(queue);
      const [keep] = await sender.scheduleMessages({ body: "kept" }, when);
      const [drop] = await sender.scheduleMessages({ body: "cancelled" }, when);
      await sender.cancelScheduledMessages(drop);
      await sender.close();
      const r = c.createReceiver(queue, NO_RENEW);
      const peeked = await r.peekMessages(10);
      assert.equal(peeked.length, 1);
      assert.equal(peeked[0].sequenceNumber.toString(), keep.toString());
      const [m] = await receive(r, 1, 15000);
      assert.equal(m.body, "kept");
      assert.ok(Math.abs(m.scheduledEnqueueTimeUtc.getTime() - when.getTime()) < 1000);
      await r.completeMessage(m);
      assert.equal((await r.receiveMessages(1, { maxWaitTimeInMs: 1000 })).length, 0);
      await r.close();
    } finally {
      await c.close();
    }
  },

  async "lock-expiry-max-delivery"(conn, { queue }) {
    const c = client(conn);
    try {
      await send(c, queue, { body: "x" });
      const r = c.createReceiver(queue, NO_RENEW);
      let [m] = await receive(r, 1);
      assert.equal(m.deliveryCount, 0);
      [m] = await receive(r, 1, 15000); // the lock expired: back with the count incremented
      assert.equal(m.deliveryCount, 1);
      await r.close();
      const d = c.createReceiver(queue, { subQueueType: "deadLetter", ...NO_RENEW });
      const [dead] = await receive(d, 1, 15000);
      assert.equal(dead.deadLetterReason, "MaxDeliveryCountExceeded");
      await d.completeMessage(dead);
      await d.close();
    } finally {
      await c.close();
    }
  },

  async "close-link-holding-locks"(conn, { queue }) {
    const c = client(conn);
    try {
      await send(c, queue, { body: "a" }, { body: "b" });
      let r = c.createReceiver(queue, NO_RENEW);
      const held = await receive(r, 2);
      assert.deepEqual(
        held.map((m) => m.deliveryCount),
        [0, 0],
      );
      await r.close();
      r = c.createReceiver(queue, NO_RENEW);
      const back = await receive(r, 2, 15000); // only after the 2 s locks expire
      assert.deepEqual(back.map((m) => m.body).sort(), ["a", "b"]);
      assert.deepEqual(
        back.map((m) => m.deliveryCount),
        [1, 1],
      );
      for (const m of back) await r.completeMessage(m);
      await r.close();
    } finally {
      await c.close();
    }
  },

  async "receive-and-delete"(conn, { queue }) {
    const c = client(conn);
    try {
      await send(c, queue, { body: "a" }, { body: "b" });
      const r = c.createReceiver(queue, { receiveMode: "receiveAndDelete" });
      const got = await receive(r, 2);
      assert.deepEqual(
        got.map((m) => m.body),
        ["a", "b"],
      );
      assert.ok(got.every((m) => m.lockToken === undefined));
      await r.close();
      const p = c.createReceiver(queue, NO_RENEW);
      assert.equal((await p.peekMessages(10)).length, 0);
      await p.close();
    } finally {
      await c.close();
    }
  },

  async "properties-round-trip"(conn, { queue }) {
    const c = client(conn);
    try {
      const messageId = `id-${Date.now()}`;
      await send(c, queue, {
        body: Buffer.from('{"k": 1}'),
        messageId,
        correlationId: "corr-1",
        contentType: "application/json",
        subject: "order.created",
        to: "dest",
        replyTo: "replies",
        replyToSessionId: "rs-1",
        timeToLive: 5 * 60 * 1000,
        applicationProperties: { s: "text", i: 42, f: 1.5, b: true, neg: -7 },
      });
      // skipParsingBodyAsJson: by default the SDK JSON-decodes binary bodies; compare the bytes
      const r = c.createReceiver(queue, { ...NO_RENEW, skipParsingBodyAsJson: true });
      const [m] = await receive(r, 1);
      assert.deepEqual(Buffer.from(m.body), Buffer.from('{"k": 1}'));
      assert.equal(m.messageId, messageId);
      assert.equal(m.correlationId, "corr-1");
      assert.equal(m.contentType, "application/json");
      assert.equal(m.subject, "order.created");
      assert.equal(m.to, "dest");
      assert.equal(m.replyTo, "replies");
      assert.equal(m.replyToSessionId, "rs-1");
      assert.equal(m.timeToLive, 5 * 60 * 1000);
      assert.deepEqual(m.applicationProperties, { s: "text", i: 42, f: 1.5, b: true, neg: -7 });
      assert.ok(m.sequenceNumber.toNumber() > 0);
      assert.ok(Math.abs(Date.now() - m.enqueuedTimeUtc.getTime()) < 60000);
      await r.completeMessage(m);
      await r.close();
    } finally {
      await c.close();
    }
  },

  async "large-message"(conn, { queue }) {
    const c = client(conn);
    try {
      const body = Buffer.alloc(256000); // Standard refuses a message over 262,144 bytes
      for (let i = 0; i < body.length; i++) body[i] = i % 256;
      await send(c, queue, { body });
      const r = c.createReceiver(queue, NO_RENEW);
      const [m] = await receive(r, 1);
      assert.ok(Buffer.from(m.body).equals(body), "body differs");
      await r.completeMessage(m);
      await r.close();
    } finally {
      await c.close();
    }
  },

  async "topic-fan-out-filters"(conn, { topic }) {
    const c = client(conn);
    try {
      await send(
        c,
        topic,
        { body: "plain" },
        { body: "red", applicationProperties: { color: "red" } },
        { body: "urgent", subject: "urgent", applicationProperties: { color: "blue" } },
      );
      const seqs = {};
      for (const [sub, want] of [
        ["all", ["plain", "red", "urgent"]],
        ["red", ["red"]],
        ["urgent", ["urgent"]],
      ]) {
        const r = c.createReceiver(topic, sub, NO_RENEW);
        const got = await receive(r, want.length);
        got.push(...(await r.receiveMessages(5, { maxWaitTimeInMs: 500 })));
        assert.deepEqual(
          got.map((m) => m.body),
          want,
          sub,
        );
        for (const m of got) {
          const seq = m.sequenceNumber.toNumber();
          if (seqs[m.body] === undefined) seqs[m.body] = seq;
          assert.equal(seq, seqs[m.body], `sequence number of ${m.body} in ${sub}`);
          await r.completeMessage(m);
        }
        await r.close();
      }
    } finally {
      await c.close();
    }
  },

  async "topic-session-subscription"(conn, { topic }) {
    const c = client(conn);
    const other = client(conn, 0);
    try {
      await send(c, topic, { body: "a", sessionId: "A" }, { body: "b", sessionId: "B" });
      const r = await c.acceptSession(topic, "sessions", "B", NO_RENEW);
      const [m] = await receive(r, 1);
      assert.equal(m.body, "b");
      assert.equal(m.sessionId, "B");
      await expectCannotBeLocked(other.acceptSession(topic, "sessions", "B", NO_RENEW));
      await r.setSessionState("st-B");
      assert.equal(Buffer.from(await r.getSessionState()).toString(), "st-B");
      await r.completeMessage(m);
      await r.close();
      const next = await c.acceptNextSession(topic, "sessions", NO_RENEW);
      assert.equal(next.sessionId, "A");
      const [a] = await receive(next, 1);
      assert.equal(a.body, "a");
      await next.completeMessage(a);
      await next.close();
    } finally {
      await other.close();
      await c.close();
    }
  },
};

function withTimeout(promise, ms) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`scenario timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function main() {
  const arg = process.argv[2];
  if (arg === "--list") {
    process.stdout.write(JSON.stringify(Object.keys(scenarios)) + "\n");
    return;
  }
  const config = JSON.parse(require("node:fs").readFileSync(arg, "utf8"));
  const version = require("@azure/service-bus/package.json").version;
  process.stdout.write(JSON.stringify({ client: "@azure/service-bus", version }) + "\n");
  for (const { id, entities } of config.scenarios) {
    const started = Date.now();
    const fn = scenarios[id];
    let result;
    if (fn === undefined) {
      result = { id, ok: false, error: "not implemented for Node" };
    } else {
      try {
        await withTimeout(fn(config.connectionString, entities), SCENARIO_TIMEOUT_MS);
        result = { id, ok: true };
      } catch (err) {
        result = { id, ok: false, error: String((err && err.stack) || err) };
      }
    }
    result.ms = Date.now() - started;
    process.stdout.write(JSON.stringify(result) + "\n");
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(String((err && err.stack) || err) + "\n");
    process.exit(2);
  },
);
