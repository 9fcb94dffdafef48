// The sidebar's theme switch and the time zone banner are plain forms that work without script; with it they
// post by fetch instead, so an unsent draft and its attachments stay, and their `next` (where the plain form
// goes back to) is this page's address when it is submitted, not when it was rendered: a new chat's first
// message moves the page to /conversations/<id>/ with history.replaceState (new_chat.js).

// This page's address as it is now, without `message`: a search hit's (`?message=<id>`) asks for a branch
// switch, which going back must not ask again (config/origins.py `redirect_next` drops it too).
export function pageAddress() {
  const url = new URL(window.location.href);
  url.searchParams.delete("message");
  return url.pathname + url.search;
}

// Posts `form` (with the button that submitted it) by fetch, `X-Requested-With: fetch`, to which the server
// answers 204; then runs `done`. Should that fail (the server unreachable, a session that ended, a refusal),
// the form is posted the plain way, which shows the server's answer.
export function postInPlace(form, done) {
  form.addEventListener("submit", async (event) => {
    const next = form.querySelector("input[name=next]");
    if (next) next.value = pageAddress();
    if (form.dataset.plainPost) return;
    event.preventDefault();
    const submitter = event.submitter;
    let ok = false;
    try {
      const response = await fetch(form.action, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-Requested-With": "fetch" },
        body: new URLSearchParams(new FormData(form, submitter)),
      });
      ok = response.status === 204;
    } catch {
      ok = false;
    }
    if (ok) {
      done(submitter);
      return;
    }
    form.dataset.plainPost = "1";
    form.requestSubmit(submitter);
  });
}
