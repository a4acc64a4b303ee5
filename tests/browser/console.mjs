// The console end to end in Debian's Chromium, driven by playwright-core (no browser of its
// own). Run by tests/tests/console.rs:
//   node console.mjs URL ADMIN_TOKEN NEW_VERSION.wasm SCREENSHOT_DIR
// Signs in, sees the examples, calls math.add (10) and math.divide by zero (the guest's error)
// through the try-it form, deploys a new version of `hello` by upload, rolls it back, signs
// out; a screenshot of every page goes to SCREENSHOT_DIR. Exits non-zero on the first failure.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [url, token, wasm, shots] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "fnhost-chromium-"));
// A fresh profile dir per run (Playwright's persistent context is how it takes one).
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
  timeout: 60_000,
});
const fail = (why) => { throw new Error(why); };
let step = "start";
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(20_000);
  const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

  step = "sign-in page";
  await page.goto(`${url}/console`);
  if (!page.url().endsWith("/console/login")) fail(`not sent to sign in: ${page.url()}`);
  await shot("1-sign-in");
  await page.getByLabel("Admin token or deploy key").fill("wrong-token");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#login-error").waitFor();
  await page.getByLabel("Admin token or deploy key").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();

  step = "functions";
  await page.waitForURL(`${url}/console`);
  for (const name of ["math", "echo", "hello"]) {
    await page.locator("#functions").getByRole("link", { name, exact: true }).waitFor();
  }
  const stored = await page.evaluate(() => JSON.stringify(localStorage) + JSON.stringify(sessionStorage));
  if (stored.includes(token)) fail("the token is in the browser's storage");
  if (await page.evaluate(() => document.cookie.includes("fnhost_session"))) {
    fail("the session cookie is readable by scripts (not HttpOnly)");
  }
  await shot("2-functions");

  step = "math.add through the try-it form";
  await page.locator("#functions").getByRole("link", { name: "math", exact: true }).click();
  await page.waitForURL(`${url}/console/functions/math`);
  const add = page.locator('form[data-method="math.add"]');
  await add.getByLabel("x").fill("7");
  await add.getByLabel("y").fill("3");
  await add.getByRole("button", { name: "Call add" }).click();
  await add.locator("output").filter({ hasText: /^10 · fuel \d+/ }).waitFor();

  step = "math.divide by zero";
  const divide = page.locator('form[data-method="math.divide"]');
  await divide.getByLabel("x").fill("1");
  await divide.getByLabel("y").fill("0");
  await divide.getByRole("button", { name: "Call divide" }).click();
  await divide.locator("output").filter({ hasText: "error -32010 (guest_error)" }).waitFor();
  await page.locator("#log li").first().waitFor({ state: "attached", timeout: 5_000 }).catch(() => {});
  await shot("3-math");

  step = "deploy a new version by upload";
  await page.getByRole("link", { name: "Deploy" }).click();
  await page.waitForURL(`${url}/console/deploy`);
  await page.getByLabel("Name").fill("Bad Name");
  await page.getByLabel("Module (.wasm)").setInputFiles(wasm);
  // The browser's own check stops a bad name; the API's words are shown for what it refuses.
  await page.getByLabel("Name").fill("hello");
  await page.getByLabel("Fuel").fill("99999999999999");
  await page.getByRole("button", { name: "Deploy" }).click();
  await page.locator("#deploy-status").filter({ hasText: /fuel/ }).waitFor();
  await shot("4-deploy-refused");
  await page.getByLabel("Fuel").fill("");
  await page.getByRole("button", { name: "Deploy" }).click();
  await page.waitForURL(`${url}/console/functions/hello`);
  await page.getByRole("heading", { name: /hello version 2/ }).waitFor();
  await shot("5-hello-v2");

  step = "roll back";
  await page.getByRole("button", { name: "Roll back to version 1" }).click();
  await page.getByRole("heading", { name: /hello version 3/ }).waitFor();
  await shot("6-hello-rolled-back");

  step = "keys and audit";
  await page.getByRole("link", { name: "Keys & audit" }).click();
  await page.locator("#audit").getByRole("cell", { name: "rollback" }).first().waitFor();
  await shot("7-keys-audit");

  step = "narrow screen";
  await page.setViewportSize({ width: 380, height: 800 });
  await page.goto(`${url}/console`);
  await shot("8-functions-narrow");

  step = "sign out";
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(`${url}/console/login`);
  await page.goto(`${url}/console/functions/math`);
  if (!page.url().endsWith("/console/login")) fail("still signed in after signing out");
  console.log("console checks passed");
} catch (e) {
  console.error(`console check failed at "${step}": ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
