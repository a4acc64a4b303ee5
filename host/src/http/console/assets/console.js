// fnhost console: the few things a server-rendered page cannot do by itself. It talks to the
// same /rpc and /v1 API as any client; the session cookie authenticates it, and every request
// that changes something carries the session's CSRF token (from the page's <meta>), never a
// token kept in the browser's storage.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

async function api(method, path, body, contentType) {
  const headers = { "x-fnhost-csrf": csrf() };
  if (contentType) headers["content-type"] = contentType;
  const r = await fetch(path, { method, headers, body, credentials: "same-origin" });
  let json = null;
  try { json = await r.json(); } catch (_) { /* not JSON */ }
  return { status: r.status, json, headers: r.headers };
}

function convert(input) {
  const raw = input.value.trim();
  if (raw === "") return undefined;
  switch (input.dataset.type) {
    case "integer":
    case "number": {
      const n = Number(raw);
      if (Number.isNaN(n)) throw new Error(`${input.name}: "${raw}" is not a number`);
      return n;
    }
    case "boolean": return raw === "true";
    case "string": return raw;
    default:
      try { return JSON.parse(raw); } catch (_) { return raw; }
  }
}

// Try-it forms: a JSON-RPC call with named params built from the method's schema.
for (const form of document.querySelectorAll("form.try")) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const out = form.querySelector("output");
    out.className = "answer";
    let params = {};
    try {
      for (const input of form.querySelectorAll("input, select")) {
        const v = convert(input);
        if (v !== undefined) params[input.name] = v;
      }
    } catch (e) {
      out.className = "answer error";
      out.textContent = e.message;
      return;
    }
    if (form.dataset.raw === "true") params = params.params ?? [];
    const call = { jsonrpc: "2.0", id: 1, method: form.dataset.method, params };
    const r = await api("POST", "/rpc", JSON.stringify(call), "application/json");
    const fuel = r.headers.get("x-fnhost-fuel-used");
    const us = r.headers.get("x-fnhost-elapsed-us");
    const cost = fuel ? ` · fuel ${fuel} · ${us} µs` : "";
    if (r.json && "result" in r.json) {
      out.textContent = `${JSON.stringify(r.json.result)}${cost}`;
    } else if (r.json && r.json.error) {
      const e = r.json.error;
      const f = e.data && e.data.fuel_used !== undefined ? ` · fuel ${e.data.fuel_used}` : "";
      out.className = "answer error";
      out.textContent = `error ${e.code} (${e.data?.kind ?? "?"}): ${e.message}${f}`;
    } else {
      out.className = "answer error";
      out.textContent = `HTTP ${r.status}`;
    }
  });
}

// Rollback buttons.
for (const button of document.querySelectorAll("button.rollback")) {
  button.addEventListener("click", async () => {
    const status = document.getElementById("rollback-status");
    const { name, version } = button.dataset;
    const r = await api("POST", `/v1/functions/${encodeURIComponent(name)}/rollback`,
      JSON.stringify({ to: Number(version) }), "application/json");
    if (r.status === 200) {
      status.textContent = `Version ${r.json.version} is current (the bytes of version ${version}).`;
      location.reload();
    } else {
      status.textContent = r.json?.error?.message ?? `HTTP ${r.status}`;
      status.className = "error";
    }
  });
}

// Deploy form.
const deploy = document.getElementById("deploy");
if (deploy) {
  deploy.addEventListener("submit", async (event) => {
    event.preventDefault();
    const status = document.getElementById("deploy-status");
    status.className = "";
    status.textContent = "Deploying…";
    const file = document.getElementById("wasm").files[0];
    const name = document.getElementById("name").value.trim();
    const query = ["fuel", "timeout_ms", "memory_mib"]
      .map((k) => [k, document.getElementById(k).value.trim()])
      .filter(([, v]) => v !== "")
      .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
      .join("&");
    const path = `/v1/functions/${encodeURIComponent(name)}${query ? "?" + query : ""}`;
    const r = await api("PUT", path, await file.arrayBuffer(), "application/wasm");
    if (r.status === 201 || r.status === 200) {
      location.href = `/console/functions/${encodeURIComponent(name)}`;
    } else {
      status.className = "error";
      status.textContent = r.json?.error?.message ?? `HTTP ${r.status}`;
    }
  });
}

// Live log tail: server-sent events from the logs endpoint (the cookie authenticates it).
const log = document.getElementById("log");
if (log) {
  const source = new EventSource(
    `/v1/functions/${encodeURIComponent(log.dataset.name)}/logs?follow=1&limit=50`);
  const add = (text, cls) => {
    const li = document.createElement("li");
    li.textContent = text;
    if (cls) li.className = cls;
    log.append(li);
    while (log.children.length > 200) log.firstElementChild.remove();
  };
  source.addEventListener("line", (e) => {
    const l = JSON.parse(e.data);
    add(`${l.time} ${l.level} ${l.function} [${l.request_id}] ${l.message}`);
  });
  source.addEventListener("lost", (e) => add(`… ${JSON.parse(e.data).lost} lines lost`, "error"));
}
