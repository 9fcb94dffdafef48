// A reply's footer: its status when it did not complete, then its model, tokens, cost and time, a badge when
// it was served from the prompt cache, and what the cache did for it (`message.cache`, from its ledger rows).

import { formatCost, formatDuration, integerFormat } from "./format.js";
import { modelName } from "./picker.js";

const { element } = window.ChatRender;

const STATUS_LABELS = { stopped: "Stopped", failed: "Failed", interrupted: "Interrupted" };

export function renderFooter(view) {
  const { footer, message } = view;
  footer.replaceChildren();
  if (message.role !== "assistant") return;
  const label = STATUS_LABELS[message.status];
  if (label) {
    footer.append(element("span", `status-badge status-${message.status}`, label));
    if (message.error) footer.append(element("span", "message-error", message.error));
  }
  const usage = message.usage || {};
  // A reply cut off before its usage arrived (interrupted, most often) has no numbers worth showing.
  if (message.status === "streaming" || (!usage.output_tokens && !Number(message.cost))) return;
  const parts = [modelName(message.model), tokensIn(usage), `${integerFormat.format(usage.output_tokens || 0)} out`];
  parts.push(formatCost(message.cost || 0));
  if (message.duration_ms) parts.push(formatDuration(message.duration_ms));
  const stats = element("span", "message-stats", parts.join(" · "));
  stats.title = tokensInTitle(usage);
  footer.append(stats);
  if (usage.cache_read_input_tokens > 0) {
    const cached = element("span", "cache-badge", "Served from cache");
    const tokens = integerFormat.format(usage.cache_read_input_tokens);
    cached.title = `${tokens} input tokens were read from the prompt cache, at a tenth of the price`;
    footer.append(cached);
  }
  // Only a reply that read or wrote the cache says so: "0% hit · saved $0.0000" on one that could not use it
  // (a prompt under the model's cache minimum) would be noise.
  const cache = message.cache;
  if (cache && (cache.read_tokens || cache.written_tokens)) footer.append(cacheStats(cache));
}

// "Cache 92% hit · saved $0.0123", or on a write "Cache 0% hit · cost $0.0040 to write".
function cacheStats(cache) {
  const saved = Number(cache.saved);
  const share = `${Math.round(cache.hit_share * 100)}% hit`;
  const effect = saved >= 0 ? `saved ${formatCost(saved)}` : `cost ${formatCost(-saved)} to write`;
  const stats = element("span", "cache-stats", `Cache ${share} · ${effect}`);
  const [read, written, all] = [cache.read_tokens, cache.written_tokens, cache.input_tokens].map((tokens) => integerFormat.format(tokens));
  stats.title = `${read} of ${all} input tokens read from the prompt cache, ${written} written to it; against sending them all uncached`;
  return stats;
}

// Input as the model read it: the API's `input_tokens` are only what came after the last cache breakpoint, so a
// long prompt served from (or written to) the cache would read "0 in". Cache reads and writes are input too.
function tokensIn(usage) {
  const [read, written] = [usage.cache_read_input_tokens || 0, usage.cache_creation_input_tokens || 0];
  const cached = [];
  if (read) cached.push(`${integerFormat.format(read)} cached`);
  if (written) cached.push(`${integerFormat.format(written)} written to cache`);
  const total = integerFormat.format((usage.input_tokens || 0) + read + written);
  return cached.length ? `${total} in (${cached.join(", ")})` : `${total} in`;
}

function tokensInTitle(usage) {
  const [fresh, read, written] = [usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens]
    .map((tokens) => integerFormat.format(tokens || 0));
  return `Input: ${fresh} uncached, ${read} read from the prompt cache (a tenth of the price), ${written} written to it`;
}
