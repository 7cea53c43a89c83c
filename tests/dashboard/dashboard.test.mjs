// The admin dashboard (web/dashboard.html, served at / by admin) in Debian's headless
// Chromium, driven by playwright-core: `junction run` moves 20000 customers through the real
// Kafka and Redis while the page samples /api/status and /metrics, then the Reload button
// is clicked. A screenshot is kept in .artifacts/dashboard.png.
// Run: node --test tests/dashboard/dashboard.test.mjs (JUNCTION_BIN picks the binary).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, "..", "..");
const BINARY = process.env.JUNCTION_BIN || join(ROOT, "build", "junction");
const BROKER = process.env.KAFKA_BOOTSTRAP_SERVERS || `127.0.0.1:${process.env.KAFKA_PORT || 9092}`;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

// A fresh clone has no node_modules: install the pinned playwright-core from the lock file.
// Never `npx playwright install`: the browser is Debian's (tools/setup), nothing is downloaded.
if (!existsSync(join(HERE, "node_modules", "playwright-core"))) {
  execFileSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: HERE, stdio: "inherit" });
}
const { chromium } = await import("playwright-core");

const sleep = ms => new Promise(r => setTimeout(r, ms));

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.on("error", fail);
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => ok(port)); });
  });
}

async function waitFor(what, fn, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try { const v = await fn(); if (v) return v; } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

function lua(v) {
  if (typeof v === "object") return "{" + Object.entries(v).map(([k, x]) => `${k} = ${lua(x)}`).join(", ") + "}";
  return JSON.stringify(v);
}

describe("admin dashboard", { timeout: 240_000 }, () => {
  let tmp, profile, proc, logPath, admin, context, page, ADMIN_TOKEN;

  before(async () => {
    ADMIN_TOKEN = "adm-" + Math.random().toString(16).slice(2);
    execFileSync(join(ROOT, "tools", "services"), ["up"], { stdio: ["ignore", "ignore", "inherit"] });
    // Every customer is delivered anew: no de-duplication keys left by an earlier run.
    execFileSync("redis-cli", ["-h", process.env.REDIS_HOST || "127.0.0.1", "-p",
      process.env.REDIS_PORT || "6379", "FLUSHALL"]);
    tmp = mkdtempSync(join(tmpdir(), "jn-dashboard-"));
    profile = mkdtempSync(join(tmpdir(), "jn-chromium-"));
    const tag = Math.random().toString(16).slice(2, 10);
    const [adm, crm, inv, ana] = [await freePort(), await freePort(), await freePort(), await freePort()];
    admin = `http://127.0.0.1:${adm}`;
    const cfg = {
      admin: { listen: `127.0.0.1:${adm}`, token: ADMIN_TOKEN },
      analytics: { listen: `127.0.0.1:${ana}` },
      apis: {
        crm: { listen: `127.0.0.1:${crm}`, script: "scripts/crm.lua", resource: "customers",
               singular: "Customer" },
        inventory: { listen: `127.0.0.1:${inv}`, script: "scripts/inventory.lua",
                     resource: "products", singular: "Product" },
      },
      producer: { poll_interval_ms: 200 },
      sources: {
        crm: { url: `http://127.0.0.1:${crm}/customers`, topic: `customer_data_${tag}`,
               script: "scripts/map_customers.lua", noun: "customer(s)" },
        inventory: { url: `http://127.0.0.1:${inv}/products`, topic: `inventory_data_${tag}`,
                     script: "scripts/map_products.lua", noun: "product(s)" },
      },
      consumer: { dead_letter_topic: `dead_letter_${tag}`, hold_ms: 5000 },
      pipelines: {
        default: {
          group_id: `group_${tag}`, transform: "scripts/join.lua",
          streams: { customers: { topic: `customer_data_${tag}`, changelog: "auto" } },
          tables: { products: `inventory_data_${tag}` },
          sinks: { analytics: { type: "http", url: `http://127.0.0.1:${ana}/analytics` } },
        },
      },
      kafka: { brokers: BROKER },
    };
    const config = join(tmp, "config.lua");
    writeFileSync(config, `return ${lua(cfg)}\n`);

    // The browser first: the records flow for only a few seconds after junction starts,
    // and the page has to be sampling by then.
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 900 },
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    page = context.pages()[0] || await context.newPage();

    logPath = join(tmp, "junction.log");
    const log = openSync(logPath, "w");
    proc = spawn(BINARY, ["run", "--config", config, "--records", "20000"],
      { cwd: ROOT, stdio: ["ignore", log, log] });
    await waitFor("junction's /healthz", async () => {
      if (proc.exitCode !== null) throw new Error("exited");
      return (await fetch(admin + "/healthz")).ok;
    }, 15_000).catch(e => { throw new Error(`${e.message}\n${readFileSync(logPath, "utf8")}`); });
  });

  after(async () => {
    if (context) await context.close();
    if (proc && proc.exitCode === null) {
      proc.kill("SIGTERM");
      let timer;
      const stopped = await Promise.race([new Promise(r => proc.once("exit", () => r(true))),
        new Promise(r => { timer = setTimeout(r, 20_000, false); })]);
      clearTimeout(timer); // a pending timer would keep node (and ctest) waiting 20 s for nothing
      if (!stopped) proc.kill("SIGKILL");
      assert.ok(stopped, "junction did not stop within 20 s of SIGTERM");
    }
    if (profile) rmSync(profile, { recursive: true, force: true });
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it("serves the page at / as HTML with no external URLs", async () => {
    const r = await fetch(admin + "/");
    assert.equal(r.status, 200);
    assert.match(r.headers.get("content-type"), /^text\/html/);
    const html = await r.text();
    assert.match(html, /<title>junction dashboard<\/title>/);
    // The machine may have no internet: the page must not load anything from elsewhere.
    assert.doesNotMatch(html, /(src|href)\s*=\s*["']?(https?:)?\/\//i);
  });

  it("loads with its four charts and samples the pipeline as it runs", async () => {
    // Sampling twice a second catches more of the few seconds the 20000 records take.
    await page.goto(admin + "/?interval_ms=500");
    assert.equal(await page.title(), "junction dashboard");
    const canvases = await page.locator("canvas").evaluateAll(cs => cs.map(c => c.id));
    assert.deepEqual(canvases, ["chart-throughput", "chart-lag", "chart-dedupe", "chart-errors"]);

    // Every stage moved: a per-second rate above 0 in some sample, and the page kept sampling.
    const peaks = await waitFor("delivered/s > 0 in the dashboard", () => page.evaluate(() => {
      const d = window.junctionDashboard, max = a => Math.max(0, ...a);
      const p = { samples: d.samples, published: max(d.series.published),
                  merged: max(d.series.merged), delivered: max(d.series.delivered) };
      return p.delivered > 0 && p.merged > 0 && p.published > 0 ? p : null;
    }), 60_000);
    assert.ok(peaks.samples >= 2, JSON.stringify(peaks));

    // The totals line agrees with admin once everything is delivered (more than 20000
    // if a product came after its customers' hold and re-emitted them, as the policy
    // says: the page must show admin's figure, whatever it is).
    const delivered = await waitFor("all 20000 delivered", async () => {
      const d = (await (await fetch(admin + "/api/status")).json()).consumer.delivered;
      return d >= 20000 ? d : null;
    }, 120_000);
    await sleep(1500); // a re-emission still on its way would change admin's figure
    const settled = (await (await fetch(admin + "/api/status")).json()).consumer.delivered;
    assert.ok(settled >= delivered);
    await waitFor(`the page's totals to show ${settled} delivered`, async () =>
      (await page.locator("#tot-throughput").textContent()).includes(`delivered ${settled}`),
      10_000);
    const samples = await page.evaluate(() => window.junctionDashboard.samples);
    await sleep(1200);
    assert.ok(await page.evaluate(() => window.junctionDashboard.samples) > samples, "sampling stopped");
    assert.equal(await page.locator("#conn").textContent(), "live");
  });

  it("lists the scripts and reloads them with the button, asking for the admin token once", async () => {
    // admin.token is set: the first reload is refused, the page asks, keeps the token for
    // the tab and does not ask again.
    let dialogs = 0;
    page.on("dialog", d => { dialogs++; d.accept(ADMIN_TOKEN); });
    assert.equal((await fetch(admin + "/api/reload", { method: "POST" })).status, 401);
    const before = Object.fromEntries(
      (await (await fetch(admin + "/api/status")).json()).scripts.map(s => [s.name, s.version]));
    assert.ok(Object.keys(before).includes("default"), JSON.stringify(before)); // the default pipeline's transform
    await waitFor("the scripts table", async () =>
      await page.locator("#scripts tbody tr").count() === Object.keys(before).length, 10_000);

    await page.click("#reload");
    await page.locator("#reload-result.ok").waitFor({ timeout: 10_000 });
    assert.match(await page.locator("#reload-result").textContent(), /^reloaded 5 scripts/);
    const shown = await page.locator('#scripts tr[data-script="default"] td[data-version]').textContent();
    assert.equal(Number(shown), before.default + 1);

    const after = (await (await fetch(admin + "/api/status")).json()).scripts;
    for (const s of after) {
      assert.equal(s.version, before[s.name] + 1, s.name);
      assert.equal(s.history[0].reason, "POST /api/reload");
    }
    assert.equal(dialogs, 1);
    await page.click("#reload");
    await waitFor("the second reload", async () =>
      /^reloaded 5 scripts/.test(await page.locator("#reload-result.ok").textContent()) &&
      (await (await fetch(admin + "/api/status")).json()).scripts[0].version ===
        before[after[0].name] + 2, 10_000);
    assert.equal(dialogs, 1);
    // The next samples keep the table in step: the history shows the reload.
    await waitFor("the reload in the history column", async () =>
      /POST \/api\/reload/.test(await page.locator('#scripts tr[data-script="default"]').textContent()), 5_000);

    mkdirSync(join(ROOT, ".artifacts"), { recursive: true });
    await page.screenshot({ path: join(ROOT, ".artifacts", "dashboard.png"), fullPage: true });
  });
});
