// On a narrow screen the sidebar is a drawer behind the menu button (the CSS decides when): Escape and a tap on
// the backdrop close it, focus moves into it on open and back to the button on close.

export function initDrawer() {
  const button = document.getElementById("menu-button");
  const sidebar = document.getElementById("sidebar");
  const backdrop = document.getElementById("sidebar-backdrop");
  if (!button || !sidebar || !backdrop) return;
  const app = sidebar.closest(".app");

  function setOpen(open, { restoreFocus = true } = {}) {
    app.classList.toggle("sidebar-open", open);
    button.setAttribute("aria-expanded", String(open));
    backdrop.hidden = !open;
    if (open) {
      const target = sidebar.querySelector("[aria-current=page]") || sidebar.querySelector("a, button");
      // The drawer becomes visible (and focusable) at once; its slide is only a transform.
      if (target) target.focus();
    } else if (restoreFocus) {
      button.focus();
    }
  }

  button.addEventListener("click", () => setOpen(button.getAttribute("aria-expanded") !== "true"));
  backdrop.addEventListener("click", () => setOpen(false));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && app.classList.contains("sidebar-open") && !sidebar.querySelector(".rename-input")) {
      setOpen(false);
    }
  });
  // Widened past the drawer's breakpoint (a rotated tablet), the sidebar is a column again.
  window.matchMedia("(max-width: 800px)").addEventListener("change", (event) => {
    if (!event.matches) setOpen(false, { restoreFocus: false });
  });
}
