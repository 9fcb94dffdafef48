// The conversation's settings dialog (system prompt, thinking): a plain form posted to `conversation_settings`,
// opened from the header's Settings button and from the line under the composer that shows both.

export function initSettingsDialog() {
  const dialog = document.getElementById("settings-dialog");
  document.getElementById("settings-button").addEventListener("click", () => dialog.showModal());
  document.getElementById("settings-summary").addEventListener("click", () => dialog.showModal());
  dialog.querySelector(".dialog-cancel").addEventListener("click", () => dialog.close());
}
