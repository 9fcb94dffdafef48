// Attachments: files picked, dropped on the conversation or pasted are uploaded at once, one request per file
// (XMLHttpRequest, for its upload progress; docs/protocol.md, "Uploading attachments"). The `send` frame then
// names the ids the server accepted (`readyAttachmentIds`); a refused file shows the server's reason until
// removed. The composer's attachments are `chat.uploads`; `onChange` (from `initAttachments`) runs whenever
// they changed.

import { readCookie } from "./csrf.js";
import { integerFormat } from "./format.js";
import { showNotice } from "./notices.js";
import { chat } from "./state.js";

const { element } = window.ChatRender;

const MAX_ATTACHMENTS = 20; // per message, as the server enforces
const MEGABYTE = 1024 * 1024;
// What a browser shows in an <img> while the file uploads; the others (HEIC, TIFF) wait for the thumbnail.
const PREVIEWABLE = new Set([
  "image/jpeg", "image/png", "image/gif", "image/webp", "image/avif", "image/bmp",
]);

let uploadsChanged = () => {};

// Drop anywhere on the conversation; a file dropped elsewhere on the page must not navigate away to it. Paste
// (a screenshot with Ctrl+V) anywhere on the page; pasted text is left to the browser.
export function initAttachments(root, onChange) {
  uploadsChanged = onChange;
  const input = document.getElementById("attach-input");
  document.getElementById("attach-button").addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    addFiles([...input.files]);
    input.value = ""; // so the same file can be chosen again
  });

  let dragDepth = 0; // dragenter/dragleave fire for every child element crossed
  root.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    dragDepth += 1;
    root.classList.add("is-dropping");
  });
  root.addEventListener("dragleave", (event) => {
    if (!hasFiles(event)) return;
    dragDepth = Math.max(0, dragDepth - 1);
    if (dragDepth === 0) root.classList.remove("is-dropping");
  });
  root.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    dragDepth = 0;
    root.classList.remove("is-dropping");
    addFiles([...event.dataTransfer.files]);
  });
  for (const type of ["dragover", "drop"]) {
    window.addEventListener(type, (event) => {
      if (hasFiles(event)) event.preventDefault();
    });
  }
  document.addEventListener("paste", (event) => {
    const files = [...((event.clipboardData && event.clipboardData.files) || [])];
    if (!files.length) return;
    event.preventDefault();
    addFiles(files);
  });
}

export function readyAttachmentIds() {
  return chat.uploads.filter((upload) => upload.status === "ready").map((upload) => upload.attachment.id);
}

export function removeUpload(upload) {
  if (upload.request) upload.request.abort();
  if (upload.previewUrl) URL.revokeObjectURL(upload.previewUrl);
  chat.uploads = chat.uploads.filter((candidate) => candidate !== upload);
  renderUploads();
}

function hasFiles(event) {
  return Boolean(event.dataTransfer) && [...event.dataTransfer.types].includes("Files");
}

// Sizes as the server's refusals write them (chat/attachments/limits.py, `megabytes`): whole megabytes as such,
// else rounded up to a tenth, so a file just over a limit never reads as the limit. Exact: dividing by a power
// of two loses nothing.
function megabytes(size) {
  if (size % MEGABYTE === 0) return `${size / MEGABYTE} MB`;
  const tenths = Math.ceil((size * 10) / MEGABYTE);
  return `${Math.floor(tenths / 10)}.${tenths % 10} MB`;
}

// A file over the server's limit for one file (ATTACHMENT_MAX_FILE_BYTES, from the page) is refused here, with
// the server's sentence, before any of it is sent.
function addFiles(files) {
  const maxFileBytes = Number(chat.root.dataset.maxFileBytes);
  for (const file of files) {
    if (chat.uploads.length >= MAX_ATTACHMENTS) {
      showNotice(`A message can carry at most ${MAX_ATTACHMENTS} attachments.`);
      break;
    }
    const upload = { file, status: "uploading", progress: 0, attachment: null, error: "", request: null };
    chat.uploads.push(upload);
    if (file.size > maxFileBytes) {
      upload.status = "failed";
      const limit = megabytes(maxFileBytes);
      upload.error = `This file is ${megabytes(file.size)}; files can be at most ${limit}.`;
      continue;
    }
    if (PREVIEWABLE.has(file.type)) upload.previewUrl = URL.createObjectURL(file);
    startUpload(upload);
  }
  renderUploads();
}

function startUpload(upload) {
  const request = new XMLHttpRequest();
  upload.request = request;
  request.open("POST", chat.root.dataset.uploadUrl);
  request.setRequestHeader("X-CSRFToken", readCookie("csrftoken"));
  request.responseType = "json";
  request.upload.addEventListener("progress", (event) => {
    if (!event.lengthComputable) return;
    upload.progress = event.loaded / event.total;
    if (upload.bar) upload.bar.value = upload.progress;
  });
  request.addEventListener("load", () => finishUpload(upload, request));
  request.addEventListener("error", () => {
    finishUpload(upload, { status: 0, response: { error: "The upload failed: the connection was lost." } });
  });
  const form = new FormData();
  // A pasted screenshot may come without a name; the server only displays it anyway.
  form.append("file", upload.file, upload.file.name || "pasted image.png");
  request.send(form);
}

// One file may come back as several attachments (each page of a multi-page TIFF): the first is this chip, the
// others get chips of their own right after it.
function finishUpload(upload, request) {
  upload.request = null;
  const body = request.response || {};
  const [result, ...more] = body.files || [];
  if (request.status === 200 && result && result.attachment) {
    upload.status = "ready";
    upload.attachment = result.attachment;
    const pages = more.map((page) => ({ ...upload, previewUrl: null, attachment: page.attachment }));
    chat.uploads.splice(chat.uploads.indexOf(upload) + 1, 0, ...pages);
  } else {
    upload.status = "failed";
    const fallback = `The upload failed (HTTP ${request.status}). Reload the page and try again.`;
    upload.error = (result && result.error) || body.error || fallback;
  }
  renderUploads();
}

function renderUploads() {
  const tray = document.getElementById("composer-attachments");
  tray.replaceChildren(...chat.uploads.map(renderUpload));
  tray.hidden = chat.uploads.length === 0;
  uploadsChanged();
}

// A chip per file: a preview (the server's thumbnail once processed), else an icon or "PDF", the name, then a
// progress bar, what the server made of it (size, pages or tokens, and its note on what the model gets), or its
// reason for refusing it; and a remove button.
function renderUpload(upload) {
  const { attachment, status } = upload;
  const name = attachment ? attachment.name : upload.file.name || "pasted image";
  const item = element("li", `composer-attachment is-${status}`);
  item.dataset.status = status;
  const kind = attachment ? attachment.kind : null;
  const previewUrl = (attachment && attachment.thumbnail_url) || upload.previewUrl;
  if (previewUrl && status !== "failed" && (kind === null || kind === "image")) {
    const preview = element("img", "composer-attachment-preview");
    preview.src = previewUrl;
    preview.alt = "";
    item.append(preview);
  } else if (kind === "text") {
    item.append(textIcon());
  } else {
    const isPdf = upload.file.type === "application/pdf" || kind === "pdf";
    item.append(element("span", "composer-attachment-kind", isPdf ? "PDF" : "File"));
  }
  const details = element("div", "composer-attachment-details");
  details.append(element("span", "composer-attachment-name", name));
  if (status === "uploading") {
    upload.bar = element("progress", "composer-attachment-progress");
    upload.bar.max = 1;
    upload.bar.value = upload.progress;
    upload.bar.setAttribute("aria-label", `Uploading ${name}`);
    details.append(upload.bar);
  } else if (status === "failed") {
    details.append(element("span", "composer-attachment-error", upload.error));
  } else {
    details.append(element("span", "composer-attachment-meta", describeAttachment(attachment)));
    if (attachment.note) details.append(element("span", "composer-attachment-note", attachment.note));
  }
  const remove = element("button", "composer-attachment-remove", "×");
  remove.type = "button";
  remove.setAttribute("aria-label", `Remove ${name}`);
  remove.addEventListener("click", () => removeUpload(upload));
  item.append(details, remove);
  return item;
}

// A page with lines of text, for text documents (plain text, Markdown, code, Word), which have no preview.
function textIcon() {
  const icon = element("span", "composer-attachment-kind is-text");
  icon.setAttribute("role", "img");
  icon.setAttribute("aria-label", "Text document");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "22");
  svg.setAttribute("height", "22");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", "M6 2.5h8l4.5 4.5v14.5H6zM14 2.5V7h4.5M9 11h6.5M9 14h6.5M9 17h4");
  path.setAttribute("fill", "none");
  path.setAttribute("stroke", "currentColor");
  path.setAttribute("stroke-width", "1.6");
  path.setAttribute("stroke-linejoin", "round");
  svg.append(path);
  icon.append(svg);
  return icon;
}

function describeAttachment(attachment) {
  if (attachment.kind === "pdf") {
    return `${attachment.page_count} page${attachment.page_count === 1 ? "" : "s"}`;
  }
  if (attachment.kind === "text") return `${integerFormat.format(attachment.tokens)} tokens`;
  return `${attachment.width} × ${attachment.height}`;
}
