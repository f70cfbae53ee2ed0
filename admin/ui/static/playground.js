// The playground: POST /v1/chat/completions with the pasted key and read the SSE stream as it comes.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("playground");
  const output = document.getElementById("pg-output");
  const errorBox = document.getElementById("pg-error");
  const meta = document.getElementById("pg-meta");
  const state = document.getElementById("pg-state");
  const send = document.getElementById("pg-send");
  const stop = document.getElementById("pg-stop");
  let controller = null;

  function fail(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
  }

  function handleEvent(data, usage) {
    if (data === "[DONE]") return true;
    const event = JSON.parse(data);
    if (event.error) {
      fail(event.error.message || "The stream ended with an error.");
      return true;
    }
    for (const choice of event.choices || []) {
      if (choice.delta && choice.delta.content) output.textContent += choice.delta.content;
    }
    if (event.usage) Object.assign(usage, event.usage);
    return false;
  }

  stop.addEventListener("click", () => { if (controller) controller.abort(); });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = document.getElementById("pg-key").value.trim();
    const system = document.getElementById("pg-system").value.trim();
    const messages = system ? [{ role: "system", content: system }] : [];
    messages.push({ role: "user", content: document.getElementById("pg-message").value });
    const body = {
      model: document.getElementById("pg-model").value,
      messages,
      stream: true,
      stream_options: { include_usage: true },
    };
    const maxTokens = parseInt(document.getElementById("pg-max-tokens").value, 10);
    if (maxTokens > 0) body.max_tokens = maxTokens;

    output.textContent = "";
    meta.textContent = "";
    errorBox.hidden = true;
    state.textContent = "sending…";
    send.disabled = true;
    stop.disabled = false;
    controller = new AbortController();
    const usage = {};
    const started = performance.now();
    try {
      const response = await fetch("/v1/chat/completions", {
        method: "POST",
        headers: { "Authorization": "Bearer " + key, "Content-Type": "application/json" },
        body: JSON.stringify(body),
        signal: controller.signal,
        credentials: "omit",
      });
      const requestId = response.headers.get("x-request-id") || "";
      const deployment = response.headers.get("x-gateway-deployment") || "";
      if (!response.ok) {
        let message = "HTTP " + response.status;
        try { message += ": " + (await response.json()).error.message; } catch (_) { /* not JSON */ }
        fail(message);
        state.textContent = "refused";
        meta.textContent = requestId ? "request " + requestId : "";
        return;
      }
      state.textContent = "streaming…";
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      let done = false;
      while (!done) {
        const chunk = await reader.read();
        if (chunk.done) break;
        buffer += chunk.value;
        let end;
        while (!done && (end = buffer.search(/\r?\n\r?\n/)) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
          const data = block.split(/\r?\n/).filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
          if (data) done = handleEvent(data, usage);
        }
      }
      state.textContent = "done";
      const seconds = ((performance.now() - started) / 1000).toFixed(2);
      const parts = ["request " + requestId, deployment && "served by " + deployment, seconds + " s"];
      if (usage.prompt_tokens !== undefined) parts.push(usage.prompt_tokens + " tokens in, " + usage.completion_tokens + " out");
      meta.textContent = parts.filter(Boolean).join(" · ");
    } catch (error) {
      state.textContent = error.name === "AbortError" ? "stopped" : "failed";
      if (error.name !== "AbortError") fail("The request failed: " + error.message);
    } finally {
      send.disabled = false;
      stop.disabled = true;
      controller = null;
    }
  });
});
