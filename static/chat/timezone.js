// "Use Europe/Paris (your browser's time zone)?" The server renders the banner (hidden) only until the user has
// chosen a zone (templates/chat/_time_zone_banner.html); this fills in the browser's zone and shows the banner
// when that differs from the saved one. Both answers are forms checked by the server; with script they are
// posted by fetch and the banner goes (form_posts.js: a draft stays), without it they are plain posts. Dates
// already on the page (the sidebar's headings) follow the new zone from the next page load.

import { postInPlace } from "./form_posts.js";

function browserTimeZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch {
    return "";
  }
}

function initTimeZoneBanner() {
  const banner = document.getElementById("time-zone-banner");
  if (!banner) return;
  for (const form of banner.querySelectorAll("form")) postInPlace(form, () => banner.remove());
  const zone = browserTimeZone();
  if (!zone || zone === banner.dataset.savedZone) return;
  banner.querySelector(".time-zone-browser").textContent = zone;
  banner.querySelector(".time-zone-browser-input").value = zone;
  banner.hidden = false;
}

initTimeZoneBanner();
