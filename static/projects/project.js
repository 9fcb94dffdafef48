// The project page's "Add files": each chosen file goes to the upload endpoint (POST /attachments/, the same
// pipeline, limits and refusals as the composer's), then the ids of what it accepted are posted to the project.
// A refused file is listed with the server's reason; the others are still added.
"use strict";

(() => {
  const form = document.getElementById("project-files-form");
  if (!form) return;
  const input = document.getElementById("project-file-input");
  const errors = document.getElementById("project-file-errors");
  const token = form.querySelector("[name=csrfmiddlewaretoken]").value;

  function refused(name, reason) {
    const item = document.createElement("li");
    item.textContent = `${name}: ${reason}`;
    errors.append(item);
  }

  async function upload(file) {
    const maxFileBytes = Number(form.dataset.maxFileBytes);
    if (file.size > maxFileBytes) {
      refused(file.name, `This file is too large; files can be at most ${Math.floor(maxFileBytes / 1048576)} MB.`);
      return [];
    }
    const body = new FormData();
    body.append("file", file, file.name);
    try {
      const response = await fetch(form.dataset.uploadUrl, {
        method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": token }, body,
      });
      const answer = await response.json();
      if (!response.ok) {
        refused(file.name, answer.error || `The upload failed (HTTP ${response.status}).`);
        return [];
      }
      for (const result of answer.files.filter((result) => result.error)) refused(result.name, result.error);
      return answer.files.filter((result) => result.attachment).map((result) => result.attachment.id);
    } catch (error) {
      refused(file.name, "The upload failed: the connection was lost.");
      return [];
    }
  }

  input.addEventListener("change", async () => {
    errors.replaceChildren();
    input.disabled = true;
    const ids = [];
    for (const file of input.files) ids.push(...(await upload(file)));
    input.disabled = false;
    input.value = "";
    if (!ids.length) return;
    for (const id of ids) {
      const field = document.createElement("input");
      field.type = "hidden";
      field.name = "attachment";
      field.value = id;
      form.append(field);
    }
    form.submit();
  });
})();
