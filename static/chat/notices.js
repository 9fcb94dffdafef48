// Notices: errors from the server or from fetches, shown as dismissible toasts.

const { element } = window.ChatRender;

const NOTICE_LIFETIME_MS = 8000;

export function showNotice(text) {
  const container = document.getElementById("notices");
  if (!container) {
    window.alert(text);
    return;
  }
  const notice = element("div", "notice");
  notice.setAttribute("role", "alert");
  notice.append(element("span", "notice-text", text));
  const close = element("button", "notice-close", "×");
  close.type = "button";
  close.setAttribute("aria-label", "Dismiss");
  close.addEventListener("click", () => notice.remove());
  notice.append(close);
  container.append(notice);
  window.setTimeout(() => notice.remove(), NOTICE_LIFETIME_MS);
}
