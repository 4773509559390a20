// kit.js: what the browser tests share: where things are (from the
// environment ctest sets: TAILOR, TAILOR_ROOT, TAILOR_TEST_TMP, CHROMIUM),
// Chromium's headless flags, a tally of checks, and `tailor serve` started
// in a folder and waited for until it says it is ready.
"use strict";

const { spawn } = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");

const ROOT = process.env.TAILOR_ROOT || path.join(__dirname, "..", "..");
// A path, resolved now: servers run in their test's folder.
const TAILOR = (process.env.TAILOR || "tailor").includes("/")
  ? path.resolve(process.env.TAILOR) : (process.env.TAILOR || "tailor");
const TMP = process.env.TAILOR_TEST_TMP || os.tmpdir();
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
  "--no-first-run", "--disable-background-networking", "--disable-component-update",
  "--disable-sync"];
const START_DEADLINE_MS = 60000; // for tailor serve to say it is ready

/* Checks counted; a failed one is printed with what was seen. */
function tally() {
  const t = {
    passed: 0,
    failed: 0,
    check(name, cond, detail) {
      if (cond) t.passed++;
      else {
        t.failed++;
        const more = detail === undefined ? ""
          : " " + (typeof detail === "string" ? detail : JSON.stringify(detail));
        console.error("FAIL: " + name + more);
      }
      return cond;
    },
    summary() { return t.passed + " passed, " + t.failed + " failed"; },
  };
  return t;
}

/* `tailor serve ARGS` in `dir`, its output in dir/serve.log; resolves to
   {proc, port, log} once it has said "listening on" and "ready:", rejects
   with the log if it exits or takes longer than the deadline. */
function startTailor(dir, args) {
  const log = path.join(dir, "serve.log");
  const out = fs.openSync(log, "w");
  const proc = spawn(TAILOR, ["serve", ...args], { cwd: dir, stdio: ["ignore", out, out] });
  return new Promise((resolve, reject) => {
    const started = Date.now();
    proc.once("error", (e) => reject(new Error("cannot run " + TAILOR + ": " + e.message)));
    const poll = setInterval(() => {
      const text = fs.readFileSync(log, "utf8");
      const m = text.match(/listening on 127\.0\.0\.1:(\d+)/);
      if (m && text.includes("ready:")) {
        clearInterval(poll);
        resolve({ proc, port: Number(m[1]), log });
      } else if (proc.exitCode !== null || Date.now() - started > START_DEADLINE_MS) {
        clearInterval(poll);
        proc.kill("SIGKILL");
        reject(new Error("tailor serve did not start:\n" + text));
      }
    }, 50);
  });
}

module.exports = { ROOT, TAILOR, TMP, CHROMIUM, CHROMIUM_ARGS, tally, startTailor };
