// The bulk question's files: each is uploaded as it is chosen, through the same POST /attachments/ as the chat's
// attachments, and the form carries the ids the server answered with.

import { readCookie } from "../chat/csrf.js";

const form = document.getElementById("bulk-form");
const picker = document.getElementById("bulk-files");
const list = document.getElementById("bulk-file-list");
const submit = document.getElementById("bulk-submit");
let uploading = 0;

picker.addEventListener("change", () => {
  const max = Number(form.dataset.maxFiles);
  for (const file of picker.files) {
    if (form.querySelectorAll("input[name=attachments]").length + uploading >= max) {
      addLine(`${file.name}: at most ${max} files at a time.`);
      break;
    }
    upload(file);
  }
  picker.value = "";
});

async function upload(file) {
  const line = addLine(`${file.name}: uploading…`);
  uploading += 1;
  submit.disabled = true;
  const body = new FormData();
  body.append("file", file, file.name);
  try {
    const response = await fetch(form.dataset.uploadUrl, {
      method: "POST", body, headers: { "X-CSRFToken": readCookie("csrftoken") }, credentials: "same-origin",
    });
    const answer = await response.json();
    for (const result of answer.files || []) {
      if (!result.attachment) {
        line.textContent = `${result.name}: ${result.error}`;
        continue;
      }
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = "attachments";
      input.value = String(result.attachment.id);
      form.append(input);
      line.textContent = `${result.attachment.name}: ready`;
    }
    if (!answer.files) line.textContent = `${file.name}: ${answer.error || "the upload failed"}`;
  } catch {
    line.textContent = `${file.name}: the upload failed; try again.`;
  } finally {
    uploading -= 1;
    submit.disabled = uploading > 0;
  }
}

function addLine(text) {
  const item = document.createElement("li");
  item.textContent = text;
  list.append(item);
  return item;
}
