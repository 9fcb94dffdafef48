// The conversation's prompt cache, as the page shows it: "cache warm: 3:12 left" under the composer until the
// server-given expiry instant, then "cache expired" (chat/cache_stats.py, docs/claude.md "Cache you can see").
// One timer for the page, not one per message; screen readers hear only the change to expired. While the cache
// is warm, `rewriteWarning` says what an action that breaks the cached prefix would cost the next reply.
//
// The warmth comes with the page (the `cache-warmth` script) and with each finished reply's frame
// (`message.cache.warmth`), whose instant replaces the page's.

import { integerFormat } from "./format.js";
import { chat } from "./state.js";

const AUTO = "auto";
const TICK_MS = 1000;
// With reduced motion the countdown changes once every half minute, in whole minutes, instead of every second.
const CALM_TICK_MS = 30000;
const calm = window.matchMedia("(prefers-reduced-motion: reduce)");

const cache = { warmth: null, timer: null, expiredAnnounced: false };

export function initCacheStatus() {
  const data = document.getElementById("cache-warmth");
  cacheWarmthUpdate(data ? JSON.parse(data.textContent) : null);
  calm.addEventListener("change", restartTimer);
  chat.modelSelect.addEventListener("change", showModelWarning);
}

// Another model reads nothing of this one's cache: the next reply writes the whole prefix again. Auto may keep
// the model, so it says nothing.
function showModelWarning() {
  const warning = document.getElementById("cache-model-warning");
  const chosen = chat.modelSelect.value;
  const other = cache.warmth && chosen !== AUTO && chosen !== cache.warmth.model;
  warning.textContent = other ? rewriteWarning() : "";
  warning.hidden = !warning.textContent;
}

// From the page, then from each finished reply's frame: the latest request's cache is the conversation's (a
// 5-minute reply after a 1-hour one shortens the countdown: its own prefix expires first).
export function cacheWarmthUpdate(warmth) {
  if (!warmth) {
    showStatus();
    return;
  }
  cache.warmth = { ...warmth, expires: Date.parse(warmth.expires_at) };
  cache.expiredAnnounced = false;
  restartTimer();
}

export function cacheIsWarm() {
  return Boolean(cache.warmth) && cache.warmth.expires > Date.now();
}

// "This will rewrite ~N cached tokens: about $X extra on the next reply", or "" when the cache is cold. `kept`:
// how many tokens at the start of the cached prefix the action leaves as they were (an edit keeps what came
// before the edited message). The estimate: the tokens that change × (write price − read price).
export function rewriteWarning(kept = 0) {
  if (!cacheIsWarm()) return "";
  const changed = cache.warmth.prefix_tokens - Math.max(0, kept);
  if (changed <= 0) return "";
  const dollars = (changed * Number(cache.warmth.rewrite_price)) / 1e6;
  return `This will rewrite ~${integerFormat.format(changed)} cached tokens: about ${formatDollars(dollars)} extra on the next reply.`;
}

// Cents where they mean something, four decimals for the small sums a cache rewrite usually costs.
function formatDollars(dollars) {
  return "$" + (dollars >= 1 ? dollars.toFixed(2) : dollars.toFixed(4));
}

function restartTimer() {
  window.clearInterval(cache.timer);
  cache.timer = null;
  showStatus();
  showModelWarning();
  if (cacheIsWarm()) cache.timer = window.setInterval(showStatus, calm.matches ? CALM_TICK_MS : TICK_MS);
}

function showStatus() {
  const status = document.getElementById("cache-status");
  if (!status) return;
  if (!cache.warmth) {
    status.hidden = true;
    return;
  }
  const left = cache.warmth.expires - Date.now();
  status.hidden = false;
  if (left > 0) {
    status.textContent = `cache warm: ${formatLeft(left)} left`;
    status.dataset.state = "warm";
    return;
  }
  status.textContent = "cache expired";
  status.dataset.state = "expired";
  window.clearInterval(cache.timer);
  cache.timer = null;
  showModelWarning(); // a cold cache costs nothing to leave
  if (!cache.expiredAnnounced) {
    cache.expiredAnnounced = true;
    const announce = document.getElementById("cache-status-announce");
    if (announce) announce.textContent = "The prompt cache of this conversation has expired.";
  }
}

function formatLeft(milliseconds) {
  const seconds = Math.ceil(milliseconds / 1000);
  if (calm.matches) return `${Math.ceil(seconds / 60)} min`;
  const [hours, minutes] = [Math.floor(seconds / 3600), Math.floor((seconds % 3600) / 60)];
  const rest = String(seconds % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${rest}` : `${minutes}:${rest}`;
}
