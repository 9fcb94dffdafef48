// The sidebar's theme switch (templates/chat/_sidebar.html): Light, Dark or System, saved by `theme_set`. With
// script the choice is posted by fetch and the page changes in place, as base.html and chat.html would render
// it: <html data-theme>, the color-scheme and theme-color metas, and which highlight.js stylesheet applies.

import { postInPlace } from "./form_posts.js";

// base.html's theme-color for each scheme.
const THEME_COLORS = { light: "#faf9f6", dark: "#1d1c1a" };

function applyTheme(theme) {
  const root = document.documentElement;
  if (theme) root.dataset.theme = theme;
  else delete root.dataset.theme;
  const scheme = document.querySelector('meta[name="color-scheme"]');
  if (scheme) scheme.content = theme || "light dark";
  for (const meta of document.querySelectorAll('meta[name="theme-color"]')) meta.remove();
  for (const [name, color] of Object.entries(THEME_COLORS)) {
    if (theme && theme !== name) continue;
    const meta = document.createElement("meta");
    meta.name = "theme-color";
    meta.content = color;
    if (!theme) meta.media = `(prefers-color-scheme: ${name})`;
    document.head.append(meta);
  }
  // templates/chat/_theme_media.html, for the stylesheets marked with their scheme.
  for (const sheet of document.querySelectorAll("link[data-theme-scheme]")) {
    const name = sheet.dataset.themeScheme;
    sheet.media = !theme ? `(prefers-color-scheme: ${name})` : theme === name ? "all" : "not all";
  }
}

function initThemeSwitch() {
  const form = document.querySelector("form.theme-switch");
  if (!form) return;
  postInPlace(form, (submitter) => {
    const theme = submitter ? submitter.value : "";
    applyTheme(theme);
    for (const option of form.querySelectorAll("button[name=theme]")) {
      option.setAttribute("aria-pressed", String(option.value === theme));
    }
  });
}

initThemeSwitch();
